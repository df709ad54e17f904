"""Send a prompt to an OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import os

from pipeline.config import LLMConfig
from pipeline.errors import LLMError


def complete(prompt: str, config: LLMConfig) -> str:
    if not config.configured:
        raise LLMError("no LLM endpoint configured: set [llm] base_url and model in the config")
    import httpx

    key = os.environ.get(config.api_key_env, "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {
        "model": config.model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
    }
    url = config.base_url.rstrip("/") + "/chat/completions"
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=config.timeout_s)
    except httpx.HTTPError as exc:
        raise LLMError(f"LLM endpoint {url} unreachable: {exc}") from None
    if response.status_code >= 400:
        raise LLMError(f"LLM endpoint {url} answered {response.status_code}: {response.text[:200]}")
    try:
        return str(response.json()["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"LLM endpoint {url} sent an answer that is not a chat completion") from None

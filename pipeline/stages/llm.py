"""Talk to an OpenAI-compatible chat-completions endpoint: one answer, or its tokens as they stream.

Streams are read as Server-Sent Events with httpx-sse (the format OpenAI, vLLM, llama.cpp and Ollama
send). The async stream is what the HTTP API relays: when its consumer goes away, closing the generator
closes the upstream request, so a chat front end that disconnects stops the model's work too.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pipeline.config import LLMConfig
from pipeline.errors import LLMError
from pipeline.types import Turn


def messages(prompt: str, history: Sequence[Turn] = ()) -> list[dict[str, str]]:
    """The chat so far, then the prompt (context and question) as the last user message."""
    return [{"role": t.role, "content": t.content} for t in history] + [{"role": "user", "content": prompt}]


def _request(chat: list[dict[str, str]], config: LLMConfig, stream: bool, max_tokens: int | None) -> dict[str, Any]:
    if not config.configured:
        raise LLMError("no LLM endpoint configured: set [llm] base_url and model in the config")
    key = os.environ.get(config.api_key_env, "")
    body = {
        "model": config.model,
        "messages": chat,
        "temperature": config.temperature,
        "max_tokens": max_tokens or config.max_tokens,
        **({"stream": True} if stream else {}),
    }
    return {
        "url": config.base_url.rstrip("/") + "/chat/completions",
        "json": body,
        "headers": {"Authorization": f"Bearer {key}"} if key else {},
    }


def _refused(url: str, status: int, text: str) -> LLMError:
    return LLMError(f"LLM endpoint {url} answered {status}: {text[:200]}")


def chat(chat: list[dict[str, str]], config: LLMConfig, max_tokens: int | None = None) -> str:
    """The whole answer to ``chat``."""
    import httpx

    request = _request(chat, config, False, max_tokens)
    url = request["url"]
    try:
        response = httpx.post(**request, timeout=config.timeout_s)
    except httpx.HTTPError as exc:
        raise LLMError(f"LLM endpoint {url} unreachable: {exc}") from None
    if response.status_code >= 400:
        raise _refused(url, response.status_code, response.text)
    try:
        return str(response.json()["choices"][0]["message"]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"LLM endpoint {url} sent an answer that is not a chat completion") from None


def complete(prompt: str, config: LLMConfig, history: Sequence[Turn] = ()) -> str:
    return chat(messages(prompt, history), config)


def _token(data: str, url: str) -> str | None:
    """The text of one streamed chunk (None at ``[DONE]``)."""
    if data.strip() == "[DONE]":
        return None
    try:
        choice = json.loads(data)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError(f"LLM endpoint {url} streamed a chunk that is not a chat completion chunk") from None
    return str((choice.get("delta") or {}).get("content") or "")


@contextmanager
def _streaming(url: str) -> Iterator[None]:
    """The one-line errors of a streamed request, sync or async: no stream, or no connection."""
    import httpx
    from httpx_sse import SSEError

    try:
        yield
    except SSEError:
        raise LLMError(f"LLM endpoint {url} did not stream (no text/event-stream answer)") from None
    except httpx.HTTPError as exc:
        raise LLMError(f"LLM endpoint {url} unreachable: {exc}") from None


def stream(prompt: str, config: LLMConfig, history: Sequence[Turn] = ()) -> Iterator[str]:
    """The answer's tokens as the endpoint sends them (for the CLI)."""
    import httpx
    from httpx_sse import connect_sse

    request = _request(messages(prompt, history), config, True, None)
    url = request.pop("url")
    with (
        _streaming(url),
        httpx.Client(timeout=config.timeout_s) as client,
        connect_sse(client, "POST", url, **request) as events,
    ):
        if events.response.status_code >= 400:
            raise _refused(url, events.response.status_code, events.response.read().decode(errors="replace"))
        for event in events.iter_sse():
            if (token := _token(event.data, url)) is None:
                return
            if token:
                yield token


async def astream(prompt: str, config: LLMConfig, history: Sequence[Turn] = ()) -> AsyncGenerator[str]:
    """:func:`stream` for an event loop: closing this generator closes the upstream request."""
    import httpx
    from httpx_sse import aconnect_sse

    request = _request(messages(prompt, history), config, True, None)
    url = request.pop("url")
    with _streaming(url):
        async with (
            httpx.AsyncClient(timeout=config.timeout_s) as client,
            aconnect_sse(client, "POST", url, **request) as events,
        ):
            if events.response.status_code >= 400:
                text = (await events.response.aread()).decode(errors="replace")
                raise _refused(url, events.response.status_code, text)
            async for event in events.aiter_sse():
                if (token := _token(event.data, url)) is None:
                    return
                if token:
                    yield token

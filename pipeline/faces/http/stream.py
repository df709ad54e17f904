"""``POST /ask`` with ``"stream": true``: the answer as Server-Sent Events.

Order of events: ``sources`` (the ranked, cited results and the prompt's sources, so a UI shows them while
the model writes), one ``token`` per piece the OpenAI-compatible endpoint streams, then ``done`` with the
whole answer and the timings, or ``error`` with one line. Retrieval runs before the response starts, so a
bad request still gets its 4xx. When the client goes away the upstream request is closed at once: each
token is sent only after checking the connection, and the token iterator is closed on every exit.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from pipeline.app import Prompt, Ragline, SearchResponse
from pipeline.errors import RaglineError
from pipeline.faces import render
from pipeline.tracing import observed
from pipeline.types import Turn

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # proxies must not hold events back


def event(name: str, data: dict[str, Any]) -> str:
    """One SSE frame (``data`` is one line of JSON, so it needs no ``data:`` continuation lines)."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def answer_events(
    rag: Ragline, request: Any, prompt: Prompt, response: SearchResponse, history: Sequence[Turn]
) -> AsyncIterator[str]:
    """The frames of one streamed answer; ``request`` is the Starlette request, asked whether its client left."""
    yield event("sources", render.sources_dict(prompt, response))
    parts: list[str] = []
    t0 = time.perf_counter()
    try:
        async with aclosing(rag.answer_tokens_async(prompt, history)) as tokens:
            async for token in tokens:
                if await request.is_disconnected():
                    return  # aclosing closes the upstream stream
                parts.append(token)
                yield event("token", {"text": token})
    except RaglineError as exc:
        observed("llm", time.perf_counter() - t0, ok=False)
        yield event("error", {"error": str(exc)})
        return
    observed("llm", time.perf_counter() - t0)
    timings = {**response.timings_ms, "llm": (time.perf_counter() - t0) * 1e3}
    yield event("done", {"answer": "".join(parts), "timings_ms": render.rounded_ms(timings)})

"""Stage timing, and an OpenTelemetry span per stage when ``opentelemetry`` is installed.

Every stage of a query (embed, retrieve, fuse, payload, rerank, prompt, llm, ...) is timed through
:func:`stage`, so the milliseconds a response reports and the spans a tracing backend receives measure
the same interval. Without opentelemetry the cost is one ``perf_counter`` pair; with the API but no SDK
configured, OpenTelemetry's own no-op tracer answers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

TRACER = "ragline"


@functools.cache
def _tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer(TRACER)


def span(name: str, **attributes: Any) -> Any:
    """A span around a whole operation (``search``, ``ask``), parent of its stages' spans."""
    tracer = _tracer()
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(f"ragline.{name}", attributes=attributes or None)


@contextmanager
def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Time one stage into ``timings[name]`` (milliseconds, added to what is there), inside a span."""
    t0 = time.perf_counter()
    try:
        with span(name):
            yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t0) * 1e3

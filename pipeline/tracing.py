"""Stage timing, an OpenTelemetry span per stage when ``opentelemetry`` is installed, and observers.

Every stage of a query (embed, retrieve, fuse, payload, rerank, prompt, llm, ...) and every sync is timed
through :func:`stage`, so the milliseconds a response reports, the spans a tracing backend receives and
the histograms ``/metrics`` shows (an observer, :func:`watch`) measure the same interval. Without
opentelemetry the cost is one ``perf_counter`` pair; with the API but no SDK configured, OpenTelemetry's
own no-op tracer answers.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from typing import Any

TRACER = "ragline"

Observer = Callable[[str, float, bool], None]
"""Told each finished stage: its name, its seconds, and whether it ended without an exception."""
_observers: list[weakref.WeakMethod[Observer]] = []


def watch(observer: Observer) -> None:
    """Tell ``observer`` (a bound method, held weakly: it goes with its object) of every finished stage."""
    _observers.append(weakref.WeakMethod(observer))


def observed(name: str, seconds: float, ok: bool = True) -> None:
    """Tell the observers of a stage timed elsewhere (a streamed answer's tokens arrive in another loop)."""
    for ref in list(_observers):
        observer = ref()
        if observer is None:
            with suppress(ValueError):  # another thread dropped it first
                _observers.remove(ref)
        else:
            observer(name, seconds, ok)


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
def stage(name: str, timings: dict[str, float], observe: bool = True) -> Iterator[None]:
    """Time one stage into ``timings[name]`` (milliseconds, added to what is there), inside a span that
    carries the same milliseconds as its ``ragline.ms`` attribute (the span itself also covers its own
    bookkeeping). ``observe=False``: one of several intervals of a stage, whose total the caller hands to
    :func:`observed` (so a histogram counts the stage once per query)."""
    with span(name) as current:
        t0 = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            seconds = time.perf_counter() - t0
            timings[name] = timings.get(name, 0.0) + seconds * 1e3
            if current is not None:
                current.set_attribute("ragline.ms", seconds * 1e3)
            if observe and _observers:
                observed(name, seconds, ok)

"""Writes to a Qdrant server in bounded requests, retried when the failure is passing.

A sync hands the store all the points of a window of documents at once; a cluster behind a proxy wants
requests of bounded size (Qdrant's own limit is 32 MB a request; proxies often allow less), and a
rolling restart or a busy node answers 503 or drops the connection for a moment. Points are written by
id, so sending a batch again is harmless: a transient failure is retried with exponential backoff, and
anything else (a bad request, a refused key) fails at once, in the one line the store makes of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WritePolicy:
    max_points: int = 256
    max_bytes: int = 8 * 1024 * 1024
    retries: int = 5
    """Attempts after the first; 0: fail on the first error."""
    backoff_s: float = 0.5
    """The first wait; each next one doubles, up to ``max_backoff_s``."""
    max_backoff_s: float = 8.0


def point_bytes(dense: Sequence[float], sparse_terms: int, payload: dict[str, Any]) -> int:
    """About what one point weighs as JSON: a float is ~10 characters, a sparse term ~20, the payload its text."""
    return 10 * len(dense) + 20 * sparse_terms + len(json.dumps(payload, ensure_ascii=False, default=str)) + 64


def batches(items: Sequence[T], size_of: Callable[[T], int], max_points: int, max_bytes: int) -> Iterator[list[T]]:
    """``items`` in order, in batches of at most ``max_points`` and ``max_bytes`` (one item over the byte
    limit goes alone: splitting a point is not possible)."""
    batch: list[T] = []
    weight = 0
    for item in items:
        size = size_of(item)
        if batch and (len(batch) >= max_points or weight + size > max_bytes):
            yield batch
            batch, weight = [], 0
        batch.append(item)
        weight += size
    if batch:
        yield batch


def transient(exc: BaseException) -> bool:
    """Whether a failed request may succeed if sent again: a 5xx or 429 answer, a timeout, a dropped connection."""
    import grpc
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in TRANSIENT_STATUS
    if isinstance(exc, ResponseHandlingException | httpx.TransportError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, grpc.Call):
        codes = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
        return exc.code() in codes
    return False


def retried(send: Callable[[], object], policy: WritePolicy, sleep: Callable[[float], None] = time.sleep) -> int:
    """Call ``send`` until it succeeds, at most ``policy.retries`` more times after a transient failure;
    returns how many retries it took. The last failure, or any other one, is raised."""
    for attempt in range(policy.retries + 1):
        try:
            send()
            return attempt
        except Exception as exc:
            if attempt == policy.retries or not transient(exc):
                raise
            wait = min(policy.backoff_s * 2**attempt, policy.max_backoff_s)
            log.warning("Qdrant write failed (%s); retry %d of %d in %.1f s", exc, attempt + 1, policy.retries, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover

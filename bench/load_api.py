"""Bounded load on `ragline serve` over loopback; prints one JSON object.

Serves the SciFact abstracts (5,183 chunks, the cached eval index) in-process and sends a
fixed number of /search requests from concurrent clients, with a time limit after which
it stops by itself. Refused requests (503 from server.max_concurrent) are counted apart
from errors.

    python bench/load_api.py --beir ../shared/datasets/scifact --requests 2000 --clients 32
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def run_load(
    app: Any, queries: Sequence[str], requests: int, clients: int, max_seconds: float, top_k: int = 10
) -> dict[str, Any]:
    """Drive ``app`` (a Ragline) through a real uvicorn server; latency is per answered request."""
    import httpx

    from pipeline.faces.http import create_app, running_server

    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    next_request = iter(range(requests))
    deadline = time.monotonic() + max_seconds

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    n = next(next_request, None)
                if n is None:
                    return
                started = time.perf_counter()
                try:
                    status = str(
                        http.post("/search", json={"query": queries[n % len(queries)], "top_k": top_k}).status_code
                    )
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                elapsed = (time.perf_counter() - started) * 1e3
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == "200":
                        latencies.append(elapsed)

    with running_server(create_app(app)) as url:
        httpx.post(f"{url}/search", json={"query": queries[0]}, timeout=60)  # warm-up, not counted
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
    sent = sum(statuses.values())
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if latencies else (0.0, 0.0, 0.0)
    return {
        "requests": sent,
        "clients": clients,
        "ok": statuses.get("200", 0),
        "refused": statuses.get("503", 0) + statuses.get("429", 0),
        "errors": sent - statuses.get("200", 0) - statuses.get("503", 0) - statuses.get("429", 0),
        "statuses": statuses,
        "latency_ms": {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)},
        "throughput_rps": round(statuses.get("200", 0) / seconds, 1) if seconds else 0.0,
        "seconds": round(seconds, 2),
        "stopped_by_time_limit": sent < requests,
    }


def main() -> None:
    from pipeline.app import Ragline
    from pipeline.config import parse_config, with_index
    from pipeline.eval.beir import load_beir
    from pipeline.eval.evaluate import eval_index

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    dataset = load_beir(args.beir, "test")
    queries = [json.loads(line)["text"] for line in (Path(args.beir) / "queries.jsonl").open(encoding="utf-8")]
    config = parse_config({"rerank": {"enabled": False}})
    with eval_index(dataset, config) as (built, _):  # built once, then re-used
        folder = built.index_path
    # Served as `ragline serve` would: the plain model (queries are embedded, LRU-cached per process).
    with Ragline(with_index(config, folder)) as app:
        chunks = app.store().count()
        result = run_load(app, queries, args.requests, args.clients, args.max_seconds)
    print(json.dumps({"chunks": chunks, "distinct_queries": len(queries), **result}))


if __name__ == "__main__":
    main()

"""uvicorn around the app: ``ragline serve``, and a background server for tests and load scripts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.app import Ragline
from pipeline.errors import RaglineError
from pipeline.faces.http.app import create_app


@contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """uvicorn in a background thread (tests, load scripts); yields its base URL; stops on exit."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RaglineError("the HTTP server did not start")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def check_sources(rag: Ragline) -> None:
    """A ``[server] sources`` folder that is not there fails at start, not when a job first runs."""
    from pathlib import Path

    for name, folder in sorted(rag.config.server.sources.items()):
        if not Path(folder).is_dir():
            raise RaglineError(f"[server] sources: {name} = {folder} is not a folder")


def serve(rag: Ragline, host: str, port: int) -> None:
    """Run the API until stopped. With ``--log-format json`` uvicorn's lines (start, access) go through
    ragline's JSON handler too, with one structured line per request (route, status, ms)."""
    import logging

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from pipeline.faces import logs

    check_sources(rag)
    app = create_app(rag, host)  # a config that cannot identify callers fails here, before the model loads
    rag.warm_up()
    structured = logs.json_lines()
    if structured:
        logging.getLogger("ragline.http").setLevel(logging.INFO)
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None if structured else LOGGING_CONFIG)

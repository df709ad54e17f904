"""What stands before every HTTP route: the admin key from the environment, the body size limit and the concurrency
limit (callers are told apart in :mod:`pipeline.faces.identity`)."""

from __future__ import annotations

import os
from typing import Any

from pipeline.config import ServerConfig

API_KEY_ENV = "RAGLINE_API_KEY"


def api_key(config: ServerConfig) -> str:
    return os.environ.get(API_KEY_ENV) or config.api_key


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, counting as they stream in
    (a chunked upload has no Content-Length to check up front)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from fastapi import HTTPException

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(413, f"request body over {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            from fastapi.responses import JSONResponse

            await JSONResponse({"error": too_large.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise too_large
            return message

        await self.app(scope, counted, send)


class ConcurrencyLimit:
    """Refuse requests beyond ``limit`` in flight with 503 at once (health checks always pass).
    The counter lives on the event loop's one thread, so it needs no lock."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            from fastapi.responses import JSONResponse

            busy = JSONResponse(
                {"error": f"server busy: {self.active} requests in flight (server.max_concurrent); retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
            await busy(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

"""The page ``ragline serve`` shows at ``/``: a search box over the index, in plain HTML, CSS and JavaScript.

The three files ship in :mod:`pipeline.faces.web` and are served from memory by a fixed allow-list, so no
request names a path on disk. The page loads nothing from another host; its Content-Security-Policy says so
to the browser too (no inline script or style, no framing). The page itself holds no data and needs no
credential: it calls the API with the key its user enters (kept in the tab's sessionStorage).
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The packaged file ``name`` (one of :data:`ASSETS`) and its ETag."""
    from importlib.resources import files

    body = files("pipeline.faces.web").joinpath(name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _served(name: str, if_none_match: str | None) -> Any:
    from fastapi import Response

    body, etag = asset(name)
    headers = {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-cache",  # kept, but checked against the ETag: an upgraded ragline shows its new page
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    if if_none_match is not None and etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=ASSETS[name], headers=headers)


def web_router() -> Any:
    """GET ``/`` (the page) and GET ``/web/{name}`` for exactly its script and style sheet."""
    from fastapi import APIRouter, Header, HTTPException

    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def page(if_none_match: str | None = Header(None)) -> Any:  # noqa: B008
        return _served("index.html", if_none_match)

    @router.get("/web/{name}", include_in_schema=False)
    def web_asset(name: str, if_none_match: str | None = Header(None)) -> Any:  # noqa: B008
        if name not in ASSETS:  # a fixed allow-list: no path from the request reaches the file system
            raise HTTPException(404, "not found")
        return _served(name, if_none_match)

    return router

"""Every HTTP error is a JSON object with a one-line ``error``: request validation, routing, domain errors
(``RaglineError`` → 400, 503 for an unavailable index or model, 502 for a failing LLM endpoint) and bugs."""

from typing import Any

from pipeline.errors import IndexUnavailableError, LLMError, ModelUnavailableError, RaglineError


def _shown(part: object, limit: int = 100) -> str:
    """``part`` (a field name, possibly from the request) printable on one line and short."""
    text = str(part)
    if not text.isprintable():
        text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def _problem(detail: dict[str, Any]) -> str:
    return f"{'.'.join(str(p) for p in detail['loc'] if p != 'body') or 'body'}: {' '.join(detail['msg'].split())}"


def _bad_json(error: Any) -> str | None:
    """FastAPI says ``14: JSON decode error``; say that the body is not JSON, where, and what is wrong."""
    if error.get("type") != "json_invalid":
        return None
    where = next((p for p in error.get("loc", ()) if isinstance(p, int)), None)
    what = _shown((error.get("ctx") or {}).get("error") or "cannot be parsed")
    at = f" at character {where}" if where is not None else ""
    return f"the request body is not valid JSON{at}: {what}"


def domain_status(exc: RaglineError) -> int:
    if isinstance(exc, IndexUnavailableError | ModelUnavailableError):
        return 503
    return 502 if isinstance(exc, LLMError) else 400  # 502: the LLM endpoint failed, not the request


def install_error_handlers(app: Any) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        if isinstance(exc.body, bytes):  # FastAPI left the body unparsed: its Content-Type is not JSON
            return JSONResponse({"error": "the request body must be JSON (Content-Type: application/json)"}, 415)
        # The offending input is not echoed back: it may be 64 KiB, nested deeper than the JSON
        # encoder recurses, or hold lone surrogates that cannot be encoded (each was a 500).
        detail = [
            {"type": e["type"], "loc": [p if isinstance(p, int) else _shown(p) for p in e["loc"]], "msg": e["msg"]}
            for e in exc.errors()
        ]
        problems = [_bad_json(e) or _problem(d) for e, d in zip(exc.errors(), detail, strict=True)]
        return JSONResponse({"error": "; ".join(problems), "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)  # also FastAPI's own (a subclass) and routing's 404/405
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for a body json.loads cannot parse
            message = "request body is nested too deeply to parse"
        elif isinstance(exc.__cause__, UnicodeDecodeError):
            message = "request body is not valid UTF-8"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        # A bug: still a JSON error, never a traceback; uvicorn logs the exception.
        return JSONResponse({"error": "internal server error"}, status_code=500)

    @app.exception_handler(RaglineError)
    async def domain_error(_: Request, exc: RaglineError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=domain_status(exc))

"""The Model Context Protocol face: ragline's search as tools an assistant can call.

Built on the official SDK (``mcp``, its ``MCPServer``), which writes each tool's JSON schema from the
typed signature below and validates calls against it. Two transports, one set of tools:
``ragline mcp`` speaks stdio (a desktop assistant starts it as a subprocess; the caller is the local
user, an admin, or whom ``--as`` names), and ``ragline serve`` answers the streamable-HTTP transport at
``/mcp``, behind the same bearer credentials and access control as the HTTP API (:class:`McpEndpoint`).
A tool's failure is one line (``ToolError``), as the other faces' errors are.

(No ``from __future__ import annotations``: the SDK reads the tools' annotations as objects.)
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.access import ADMIN, Reader
from pipeline.app import Ragline
from pipeline.errors import RaglineError
from pipeline.faces import render
from pipeline.filters import SearchFilter, normal_types
from pipeline.types import Turn

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context, MCPServer

READER = "ragline_reader"
"""Where the HTTP endpoint leaves the caller's :class:`Reader` in the request scope's state."""

INSTRUCTIONS = (
    "ragline searches an indexed folder of documents (hybrid BM25 + dense retrieval). Use get_context to "
    "ground an answer: it returns numbered blocks with citations (file, page, heading) and a confidence; "
    "cite the blocks you use as [n]. Use search for ranked chunks with scores, list_sources for what is indexed."
)


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


Query = Annotated[str, Field(min_length=1, max_length=2000, description="The question or search terms.")]
TopK = Annotated[int, Field(ge=1, le=100, description="How many results.")]
Mode = Annotated[Literal["hybrid", "dense", "bm25"], Field(description="Which retrieval: hybrid is best.")]
PathFilter = Annotated[
    str | None, Field(max_length=1000, description="Only files under this folder/file prefix or glob.")
]
Types = Annotated[list[str] | None, Field(max_length=50, description='Only these file types, e.g. ["pdf", "md"].')]
History = Annotated[
    list[ChatTurn] | None,
    Field(max_length=50, description="The chat so far, oldest first: a follow-up is searched as a standalone query."),
]
Budget = Annotated[int | None, Field(ge=32, le=100_000, description="Context token budget (default: configured).")]


def _args(
    top_k: int, mode: str, path: str | None, file_types: list[str] | None, history: list[ChatTurn] | None
) -> dict[str, Any]:
    where = SearchFilter(path or None, normal_types(file_types or ())) if path or file_types else None
    return {
        "top_k": top_k,
        "mode": mode,
        "where": where,
        "history": [Turn(t.role, t.content) for t in history or ()],
    }


def _call(action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a tool's work; a domain error becomes the tool's one-line error."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return action()
    except RaglineError as exc:
        raise ToolError(str(exc)) from None


def build_server(rag: Ragline, reader_of: Callable[["Context | None"], Reader]) -> "MCPServer":
    """The tools over ``rag``; ``reader_of`` says who is calling (from the HTTP request, or fixed for stdio)."""
    from mcp.server.mcpserver import Context as Caller  # the tools' annotations name it: bound here, at runtime
    from mcp.server.mcpserver import MCPServer

    server: MCPServer = MCPServer(
        "ragline", instructions=INSTRUCTIONS, version=render.package_version(), middleware=[one_line_errors]
    )

    @server.tool()
    def search(
        query: Query,
        ctx: Caller,
        top_k: TopK = 5,
        mode: Mode = "hybrid",
        path: PathFilter = None,
        file_types: Types = None,
        history: History = None,
    ) -> dict[str, Any]:
        """Ranked chunks of the indexed documents, each with its file, page, heading, text, highlighted
        sentences and per-stage scores."""
        args = _args(top_k, mode, path, file_types, history)
        return _call(lambda: render.search_dict(rag.search(query, reader=reader_of(ctx), **args)))

    def context(query: str, budget: int | None, reader: Reader, args: dict[str, Any]) -> dict[str, Any]:
        prompt, response = rag.context(query, budget, reader=reader, **args)
        return render.context_dict(query, prompt, response)

    _add_context_tool(
        server,
        "get_context",
        "Numbered, cited context blocks for answering the query, within a token budget, with the retrieval "
        "confidence (low_confidence: the blocks may not hold the answer).",
        reader_of,
        context,
    )

    @server.tool()
    def list_sources(ctx: Caller) -> dict[str, Any]:
        """The indexed folders and how many documents of each the caller may read."""
        return _call(lambda: {"sources": rag.sources(reader_of(ctx))})

    if rag.config.llm.configured:

        def ask(query: str, budget: int | None, reader: Reader, args: dict[str, Any]) -> dict[str, Any]:
            return render.answer_dict(rag.ask(query, budget, reader=reader, **args))

        _add_context_tool(
            server,
            "ask",
            "An answer from the configured LLM, grounded in cited context blocks, with its sources.",
            reader_of,
            ask,
        )
    return server


def _add_context_tool(
    server: "MCPServer",
    name: str,
    description: str,
    reader_of: Callable[["Context | None"], Reader],
    run: Callable[[str, int | None, Reader, dict[str, Any]], dict[str, Any]],
) -> None:
    """A tool that takes a question and a context budget (``get_context``, ``ask``): one signature, one schema."""
    from mcp.server.mcpserver import Context as Caller  # the tool's annotations name it: bound here, at runtime

    def tool(
        query: Query,
        ctx: Caller,
        budget: Budget = None,
        top_k: TopK = 10,
        path: PathFilter = None,
        file_types: Types = None,
        history: History = None,
    ) -> dict[str, Any]:
        args = _args(top_k, "hybrid", path, file_types, history)
        return _call(lambda: run(query, budget, reader_of(ctx), args))

    server.tool(name=name, description=description)(tool)


def one_line(text: str) -> str:
    """A tool error on one line: pydantic's report of bad arguments ("1 validation error for searchArguments /
    top_k / Input should be ... [type=...] / For further information ...") as ``top_k: Input should be ...``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and "validation error" in lines[0]:
        prefix = lines[0].split(":", 1)[0] + ": " if lines[0].startswith("Error executing tool") else ""
        details = [line for line in lines[1:] if not line.startswith("For further information")]
        pairs = [
            f"{field}: {msg.split(' [type=', 1)[0]}" for field, msg in zip(details[::2], details[1::2], strict=False)
        ]
        return prefix + "invalid arguments: " + "; ".join(pairs)
    return " ".join(lines)


async def one_line_errors(ctx: Any, call_next: Any) -> Any:
    """Server middleware: every failed tool call's text on one line, as the other faces' errors are (the
    result arrives here serialized, as the wire's JSON object)."""
    result = await call_next(ctx)
    if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
        content = [
            {**c, "text": one_line(c["text"])} if c.get("type") == "text" else c for c in result.get("content", [])
        ]
        return {**result, "content": content}
    return result


def stdio(rag: Ragline, reader: Reader = ADMIN) -> None:
    """``ragline mcp``: serve the tools on stdin/stdout until the client closes them."""
    build_server(rag, lambda _: reader).run("stdio")


def request_reader(ctx: "Context | None") -> Reader:
    """The caller the HTTP endpoint identified (no request: the tool was not called over HTTP)."""
    request = ctx.request_context.request if ctx is not None else None
    reader = request.scope.get("state", {}).get(READER) if request is not None else None
    if not isinstance(reader, Reader):
        raise RaglineError("no identified caller on this MCP request")
    return reader


class McpEndpoint:
    """``/mcp`` on ``ragline serve``: the SDK's streamable-HTTP handler (stateless: every request stands
    alone, so any worker may answer it) behind ragline's bearer check. ``identify`` turns the
    ``Authorization`` header into a :class:`Reader` or raises :class:`Unauthorized`; the reader rides in
    the request scope to the tools."""

    def __init__(self, rag: Ragline, identify: Callable[[str | None], Reader], host: str) -> None:
        from starlette.routing import Route

        server = build_server(rag, request_reader)
        app = server.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True, host=host
        )
        self.handler = next(r.app for r in app.routes if isinstance(r, Route) and r.path == "/mcp")
        self.session_manager = server.session_manager
        self.identify = identify

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from fastapi.responses import JSONResponse

        from pipeline.faces.identity import Unauthorized

        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        try:
            reader = self.identify(token or None)
        except Unauthorized as exc:
            refused = JSONResponse({"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await refused(scope, receive, send)
            return
        scope.setdefault("state", {})[READER] = reader
        await self.handler(scope, receive, send)

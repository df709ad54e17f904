"""The HTTP request bodies. Their limits come from ``[server]`` so they show in the OpenAPI schema and fail
with a 422 that names the field. Filters are flat, bounded data (a path, file types, up to
``MAX_FILTER_FIELDS`` scalar matches), validated before any store sees them.

(No ``from __future__ import annotations`` here: the models are built per app, from its limits, and
FastAPI and pydantic read their annotations as objects.)
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from pipeline.config import Fusion, ServerConfig
from pipeline.filters import INT64, SearchFilter, normal_types
from pipeline.types import Turn

MAX_FILTER_PATH = 1000
MAX_FILTER_FIELDS = 20
MAX_FIELD_KEY = 200
MAX_FIELD_VALUE = 1000
MAX_NAME = 200  # file types, source names, job ids


def _scalar_kind(value: object) -> str | None:
    """Which branch of a filter field's value type ``value`` is; None (a 422) for anything else."""
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "str" if isinstance(value, str) else None


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(
        None, max_length=MAX_FILTER_PATH, description="Folder/file prefix or glob over source paths."
    )
    file_types: list[Annotated[str, Field(max_length=MAX_NAME)]] = Field(
        default_factory=list, max_length=50, description='e.g. ["pdf", "md"]'
    )
    fields: dict[
        Annotated[str, Field(min_length=1, max_length=MAX_FIELD_KEY)],
        Annotated[
            Annotated[str, Field(max_length=MAX_FIELD_VALUE), Tag("str")]
            # lt 2**63, not le 2**63 - 1: the schema shows the bound as a float, and 2**63 is exact
            | Annotated[int, Field(ge=INT64[0], lt=INT64[1] + 1), Tag("int")]
            | Annotated[bool, Tag("bool")],
            Discriminator(
                _scalar_kind,
                custom_error_type="scalar_type",
                custom_error_message="Input should be a string, integer or boolean",
            ),
        ],
    ] = Field(
        default_factory=dict,
        max_length=MAX_FILTER_FIELDS,
        description="Exact payload matches (all must hold): field name to a string, integer or boolean.",
    )

    def search_filter(self) -> SearchFilter:
        return SearchFilter(self.path or None, normal_types(self.file_types), tuple(self.fields.items()))


MAX_TURNS = 50


class ChatTurn(BaseModel):
    """One message of the chat so far."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)

    def turn(self) -> Turn:
        return Turn(self.role, self.content)


class SearchBody(Protocol):
    """What the handlers read of a search request (the per-app model below), for the type checker."""

    query: str
    top_k: int | None
    filters: Filters | None
    fusion: Fusion | None
    mode: Literal["hybrid", "dense", "bm25"]
    rerank: bool | None
    history: list[ChatTurn]


class ContextBody(SearchBody, Protocol):
    budget: int | None


class AskBody(ContextBody, Protocol):
    stream: bool


class IngestBody(Protocol):
    source: str


@dataclass(frozen=True)
class RequestModels:
    """The request bodies of one app, with its ``[server]`` limits."""

    search: Any
    context: Any
    ask: Any
    ingest: Any


def search_args(request: SearchBody) -> dict[str, Any]:
    """A search or context request as the keyword arguments of :meth:`pipeline.app.Ragline.search`."""
    return {
        "top_k": request.top_k,
        "where": request.filters.search_filter() if request.filters is not None else None,
        "fusion": request.fusion,
        "mode": request.mode,
        "rerank": request.rerank,
        "history": [t.turn() for t in request.history],
    }


def request_models(limits: ServerConfig) -> RequestModels:
    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: str = Field(min_length=1, max_length=limits.max_query_chars)
        top_k: int | None = Field(None, ge=1, le=limits.max_top_k)
        filters: Filters | None = None
        fusion: Fusion | None = None
        mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
        rerank: bool | None = None
        history: list[ChatTurn] = Field(
            default_factory=list,
            max_length=MAX_TURNS,
            description="The chat so far, oldest first: `query` is then searched as the standalone question it "
            "makes (rewritten by the LLM when one is configured, else joined with the last user turn).",
        )

    class ContextRequest(SearchRequest):
        query: str = Field(min_length=1, max_length=limits.max_query_chars, description="The user's question.")
        budget: int | None = Field(None, ge=32, le=100_000, description="Context token budget.")

    class AskRequest(ContextRequest):
        stream: bool = Field(
            False,
            description="Answer as Server-Sent Events: `sources`, then `token` events as the LLM streams, then "
            "`done` (or `error`).",
        )

    class IngestRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        source: str = Field(
            max_length=MAX_NAME,
            description=f"One of the configured sources: {sorted(limits.sources) or 'none configured'}",
            examples=sorted(limits.sources)[:1] or None,
        )

    return RequestModels(SearchRequest, ContextRequest, AskRequest, IngestRequest)

"""Where a framework retriever's results come from: a :class:`pipeline.app.Ragline` in this process, or a ragline
server's ``POST /search``.

Both give the search JSON of :func:`pipeline.faces.render.search_dict` (the server renders its body with it), so a
retriever turns one shape into its framework's documents and the metadata is the same whichever way the index is
reached. What every call of one retriever asks besides the query (top_k, mode, rerank, filters) is checked once,
when the retriever is made, the way the HTTP API and ``parse_filter`` check it: a bad field name fails there, not
at the first question.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, get_args

from pipeline.access import ADMIN, Reader
from pipeline.errors import RaglineError
from pipeline.filters import SearchFilter, normal_types

if TYPE_CHECKING:
    import httpx

    from pipeline.app import Ragline

Mode = Literal["hybrid", "dense", "bm25"]
SCORE_ORDER = ("rerank", "fused", "dense", "bm25")
"""The stage whose score decides the order is the last that ran (as :attr:`pipeline.types.ScoredChunk.score`)."""


@dataclass(frozen=True)
class SearchOptions:
    """A retriever's fixed search arguments: those of :meth:`pipeline.app.Ragline.search` and of the HTTP body."""

    top_k: int | None = None
    mode: Mode = "hybrid"
    rerank: bool | None = None
    where: SearchFilter | None = None

    @classmethod
    def build(
        cls,
        top_k: int | None = None,
        mode: str = "hybrid",
        rerank: bool | None = None,
        path: str | None = None,
        file_types: Iterable[str] = (),
        fields: Mapping[str, str | int | bool] | None = None,
    ) -> SearchOptions:
        """Options from the retrievers' keyword arguments; a bad one is a one-line error naming it."""
        if mode not in get_args(Mode):
            raise RaglineError(f"mode {mode!r} is not a search mode: use {', '.join(get_args(Mode))}")
        if top_k is not None and top_k < 1:
            raise RaglineError(f"top_k must be at least 1, not {top_k}")
        where = SearchFilter(path or None, normal_types(file_types), tuple((fields or {}).items()))
        return cls(top_k, cast(Mode, mode), rerank, None if where.empty else where)

    def body(self, query: str) -> dict[str, Any]:
        """The ``POST /search`` body that asks what :meth:`LocalSource.search` asks."""
        body: dict[str, Any] = {"query": query, "top_k": self.top_k, "mode": self.mode, "rerank": self.rerank}
        if self.where is not None:
            where = self.where
            body["filters"] = {"path": where.path, "file_types": list(where.file_types), "fields": dict(where.fields)}
        return body


class Source(Protocol):
    """Search JSON for a query, called from synchronous code or from a running event loop."""

    def search(self, query: str) -> dict[str, Any]: ...

    async def asearch(self, query: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LocalSource:
    """A Ragline in this process, searched as ``reader`` (an admin unless told: the Python API's default)."""

    rag: Ragline
    options: SearchOptions
    reader: Reader = ADMIN

    def search(self, query: str) -> dict[str, Any]:
        from pipeline.faces.render import search_dict

        o = self.options
        found = self.rag.search(query, top_k=o.top_k, where=o.where, mode=o.mode, rerank=o.rerank, reader=self.reader)
        return search_dict(found)

    async def asearch(self, query: str) -> dict[str, Any]:
        # The search is CPU work (embedding, fusion, reranking): a worker thread keeps the event loop answering,
        # as the HTTP API runs its handlers in a thread pool.
        return await asyncio.to_thread(self.search, query)


@dataclass(frozen=True)
class RemoteSource:
    """A ragline server (``ragline serve``) at ``url``, called with its API key; it reads as that key's caller.

    A client per call: an AsyncClient belongs to the event loop it was made on, and a retriever may be called from
    several (each ``asyncio.run``, each thread); a new connection costs little next to a search.
    """

    url: str
    options: SearchOptions
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0

    def _request(self, query: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return {"url": f"{self.url.rstrip('/')}/search", "json": self.options.body(query), "headers": headers}

    def search(self, query: str) -> dict[str, Any]:
        import httpx

        try:
            with httpx.Client(timeout=self.timeout) as client:
                return self._read(client.post(**self._request(query)))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    async def asearch(self, query: str) -> dict[str, Any]:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                return self._read(await client.post(**self._request(query)))
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> RaglineError:
        return RaglineError(
            f"the ragline server at {self.url} did not answer: {_one_line(str(exc) or type(exc).__name__)}"
        )

    def _read(self, response: httpx.Response) -> dict[str, Any]:
        """The search JSON, or the server's one-line ``error`` with its status as a RaglineError."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict):
            return data
        said = data.get("error") if isinstance(data, dict) else None
        reason = said or response.text[:200] or response.reason_phrase
        raise RaglineError(
            f"the ragline server at {self.url} answered {response.status_code}: {_one_line(str(reason))}"
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def open_source(
    rag: Ragline | None,
    url: str | None,
    options: SearchOptions,
    api_key: str | None = None,
    reader: Reader | None = None,
    timeout: float = 60.0,
) -> Source:
    """The source a retriever's arguments name: ``rag`` (in process) or ``url`` (a server), exactly one."""
    if (rag is None) == (url is None):
        raise RaglineError("give rag= (a Ragline in this process) or url= (a ragline server), one of them")
    if rag is not None:
        if api_key is not None:
            raise RaglineError("api_key= is for url=: a Ragline in this process takes reader= instead")
        return LocalSource(rag, options, reader or ADMIN)
    assert url is not None
    if reader is not None:
        raise RaglineError("reader= is for rag=: a ragline server reads as the caller its api_key= names")
    if not url.startswith(("http://", "https://")):
        raise RaglineError(f"url {url!r} is not an HTTP address: use http://HOST:PORT (where ragline serve listens)")
    return RemoteSource(url, options, api_key, timeout)


def citation(result: Mapping[str, Any]) -> str:
    """A search result's citation, ``label/file, p. 2, Heading > Sub``: :attr:`pipeline.types.Chunk.citation` from
    the JSON, so a server's results cite as the CLI does."""
    parts = [str(result["path"])]
    if result.get("page") is not None:
        parts.append(f"p. {result['page']}")
    if result.get("heading"):
        parts.append(str(result["heading"]))
    return ", ".join(parts)


def result_metadata(result: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, Any]:
    """What a framework document carries besides its text: where it is from, how to cite it, and how sure ragline
    is (its scores per stage, and the response's confidence that the first result is relevant)."""
    scores = dict(result["scores"])
    metadata = {key: result.get(key) for key in ("chunk_id", "rank", "source", "root", "path", "page", "heading")}
    metadata |= {
        "citation": citation(result),
        "score": next((scores[k] for k in SCORE_ORDER if scores.get(k) is not None), None),
        "scores": scores,
        "confidence": response.get("confidence"),
        "low_confidence": response.get("low_confidence"),
    }
    if result.get("highlights") is not None:  # evidence spans of the chunk's text, where the server gives them
        metadata["highlights"] = [dict(span) for span in result["highlights"]]
    if result.get("copies"):  # other paths of this text, collapsed into this result
        metadata["copies"] = list(result["copies"])
    if response.get("searched_query") is not None:
        metadata["searched_query"] = response["searched_query"]
    return metadata

"""ragline as a LangChain retriever: ``RaglineRetriever(rag=...)`` in process, ``RaglineRetriever(url=...)`` over
the HTTP API, giving LangChain ``Document``s whose metadata carries ragline's citation, scores and confidence.

A retriever is a Runnable, so ``invoke``, ``ainvoke``, ``batch`` and LCEL chains (``retriever | format_docs``)
work as with any other; the async path does not block the event loop (a worker thread in process, httpx's
AsyncClient over HTTP).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, SecretStr

from pipeline.access import Reader
from pipeline.app import Ragline
from pipeline.faces.adapters.source import Mode, SearchOptions, Source, open_source, result_metadata

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - the extra is in the test environment
    raise ImportError(
        f"ragline's LangChain retriever needs langchain-core: pip install 'ragline[langchain]' ({exc})"
    ) from exc

__all__ = ["RaglineRetriever"]


def documents(found: dict[str, Any]) -> list[Document]:
    """Search JSON as LangChain documents: the chunk's text, its id, and ragline's metadata."""
    return [
        Document(page_content=r["text"], metadata=result_metadata(r, found), id=r["chunk_id"]) for r in found["results"]
    ]


class RaglineRetriever(BaseRetriever):
    """Ranked, cited chunks from a ragline index, as LangChain documents.

    Give ``rag`` (a :class:`ragline.Ragline`; ``reader`` applies its access control) or ``url`` (a ``ragline
    serve`` address, with its ``api_key``). The other fields are those of ``POST /search``: ``top_k``, ``mode``,
    ``rerank`` and the filters ``path``, ``file_types`` and ``fields``. Each document's metadata holds
    ``citation``, ``source``, ``path``, ``page``, ``heading``, ``chunk_id``, ``rank``, ``score``, ``scores``
    (dense, bm25, fused, rerank), ``copies`` (other paths of the same text) where there are any, and the
    response's ``confidence`` and ``low_confidence``.
    """

    rag: Ragline | None = None
    url: str | None = None
    api_key: SecretStr | None = None
    reader: Reader | None = None
    top_k: int | None = None
    mode: Mode = "hybrid"
    rerank: bool | None = None
    path: str | None = None
    file_types: list[str] = Field(default_factory=list)
    fields: dict[str, str | int | bool] = Field(default_factory=dict)
    timeout: float = 60.0
    _source: Source = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        # The source is checked after pydantic's fields, not in a validator: a bad argument is ragline's one-line
        # error, as from the LlamaIndex retriever, not a ValidationError wrapped around it.
        super().__init__(**data)
        options = SearchOptions.build(self.top_k, self.mode, self.rerank, self.path, self.file_types, self.fields)
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        self._source = open_source(self.rag, self.url, options, key, self.reader, self.timeout)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return documents(self._source.search(query))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return documents(await self._source.asearch(query))

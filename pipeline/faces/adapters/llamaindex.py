"""ragline as a LlamaIndex retriever: ``RaglineRetriever(rag=...)`` in process, ``RaglineRetriever(url=...)`` over
the HTTP API, giving ``NodeWithScore``s of ``TextNode``s whose metadata carries ragline's citation, scores and
confidence, for query engines and response synthesizers like any other retriever's.

LlamaIndex shows a node's metadata to the LLM with its text (``MetadataMode.LLM``) and to embedding models
(``MetadataMode.EMBED``): only the citation goes to the LLM, so an answer can cite it without reading scores,
and nothing goes to an embedder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.access import Reader
from pipeline.app import Ragline
from pipeline.faces.adapters.source import Mode, SearchOptions, open_source, result_metadata

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - the extra is in the test environment
    raise ImportError(
        f"ragline's LlamaIndex retriever needs llama-index-core: pip install 'ragline[llamaindex]' ({exc})"
    ) from exc

__all__ = ["RaglineRetriever"]

SHOWN_TO_LLM = ("citation",)


def nodes(found: dict[str, Any]) -> list[NodeWithScore]:
    """Search JSON as scored LlamaIndex nodes: the chunk's text and id, ragline's metadata, and the score of the
    stage that decided the order (the reranker's when it ran)."""
    scored = []
    for r in found["results"]:
        metadata = result_metadata(r, found)
        node = TextNode(
            id_=r["chunk_id"],
            text=r["text"],
            metadata=metadata,
            excluded_llm_metadata_keys=[k for k in metadata if k not in SHOWN_TO_LLM],
            excluded_embed_metadata_keys=list(metadata),
        )
        scored.append(NodeWithScore(node=node, score=metadata["score"]))
    return scored


class RaglineRetriever(BaseRetriever):
    """Ranked, cited chunks from a ragline index, as LlamaIndex nodes.

    Give ``rag`` (a :class:`ragline.Ragline`; ``reader`` applies its access control) or ``url`` (a ``ragline
    serve`` address, with its ``api_key``). The other arguments are those of ``POST /search``: ``top_k``,
    ``mode``, ``rerank`` and the filters ``path``, ``file_types`` and ``fields``. Each node's metadata holds
    ``citation``, ``source``, ``path``, ``page``, ``heading``, ``chunk_id``, ``rank``, ``score``, ``scores``
    (dense, bm25, fused, rerank), ``copies`` (other paths of the same text) where there are any, and the
    response's ``confidence`` and ``low_confidence``.
    """

    def __init__(
        self,
        *,
        rag: Ragline | None = None,
        url: str | None = None,
        api_key: str | None = None,
        reader: Reader | None = None,
        top_k: int | None = None,
        mode: Mode = "hybrid",
        rerank: bool | None = None,
        path: str | None = None,
        file_types: Iterable[str] = (),
        fields: Mapping[str, str | int | bool] | None = None,
        timeout: float = 60.0,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        options = SearchOptions.build(top_k, mode, rerank, path, file_types, fields)
        self._source = open_source(rag, url, options, api_key, reader, timeout)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return nodes(self._source.search(query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return nodes(await self._source.asearch(query_bundle.query_str))

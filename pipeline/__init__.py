"""ragline: a retrieval pipeline for RAG (hybrid BM25 + dense on Qdrant, reranking, cited prompts).

Importing this package is cheap; models and the Qdrant engine load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pipeline.app import Ragline

__all__ = ["Ragline", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Ragline":
        from pipeline.app import Ragline

        return Ragline
    raise AttributeError(name)

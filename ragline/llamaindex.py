"""``from ragline.llamaindex import RaglineRetriever``: ragline as a LlamaIndex retriever (``pip install
'ragline[llamaindex]'``), in process or over the HTTP API; see :mod:`pipeline.faces.adapters.llamaindex`."""

from pipeline.faces.adapters.llamaindex import RaglineRetriever

__all__ = ["RaglineRetriever"]

"""``from ragline.langchain import RaglineRetriever``: ragline as a LangChain retriever (``pip install
'ragline[langchain]'``), in process or over the HTTP API; see :mod:`pipeline.faces.adapters.langchain`."""

from pipeline.faces.adapters.langchain import RaglineRetriever

__all__ = ["RaglineRetriever"]

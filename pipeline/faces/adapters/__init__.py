"""Adapters: ragline as a retriever of the frameworks apps are built on, LangChain (``langchain``) and LlamaIndex
(``llamaindex``), over one search source (``source``) that is either a :class:`pipeline.app.Ragline` in this
process or a ragline server's HTTP API. Both paths give the same search JSON, so a retriever's documents carry
the same metadata (citation, scores, confidence) wherever the index lives.

The frameworks are optional (``pip install 'ragline[langchain]'``, ``'ragline[llamaindex]'``): only the module
of a framework imports it, and importing this package imports neither.

May import: ``pipeline.app``, ``pipeline.faces.render``, ``pipeline.access``, ``pipeline.filters`` and the
ground floor; the frameworks and httpx.
"""

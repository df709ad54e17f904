"""Training: contrastive fine-tuning of the embedder and the reranker (``ragline train-embedder`` and
``train-reranker``): data, hard negatives mined with ragline's own retriever, one optimisation loop.

May import: ``pipeline.eval``, ``pipeline.app``, ``retrieval``, ``models`` and below.
"""

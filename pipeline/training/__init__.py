"""Contrastive fine-tuning of the embedder and the reranker (``ragline train-embedder``/``train-reranker``)."""

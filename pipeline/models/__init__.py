"""Models: everything that owns weights: where they come from (weights), the embedder and the reranker,
the vector cache, and the one backend policy (backends) over the ONNX exports (onnx/).

May import: the ground floor only. Consumers above take models by ``protocols``.
"""

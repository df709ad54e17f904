"""ONNX: export a transformer, checked against PyTorch (export), quantise it (quantize), open and feed
ONNX Runtime (session), and run it without PyTorch (runtime). ``pipeline.models.backends`` decides which.

May import: the ground floor only (and nothing above it in ``pipeline.models``).
"""

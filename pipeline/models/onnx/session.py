"""ONNX Runtime, opened and fed one way for every graph: the export checks, the runners and the shim."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def session(file: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are noise
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def run(runner: Any, arrays: Mapping[str, Any]) -> np.ndarray:
    """The graph's one output for the inputs it takes (of ``input_ids``, ``attention_mask``, ``token_type_ids``)."""
    feeds = {i.name: np.asarray(arrays[i.name]).astype(np.int64, copy=False) for i in runner.get_inputs()}
    return np.asarray(runner.run([runner.get_outputs()[0].name], feeds)[0])

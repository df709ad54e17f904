"""Cross-encoder reranking (sentence-transformers CrossEncoder), loaded on first use.

A model that cannot be loaded is reported once, in one line, and remembered,
so a server does not retry the hub on every request. A model folder trained by
``ragline train-reranker`` carries ``ragline_rerank.json`` with the interpolation
weight chosen on validation: the final score is ``w * minmax(cross-encoder) +
(1 - w) * minmax(first-stage score)``; other models rerank by their own score (w = 1).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import RerankConfig
from pipeline.errors import ModelUnavailableError
from pipeline.models import resolve_model
from pipeline.types import ScoredChunk

if TYPE_CHECKING:
    from pipeline.query_models import OnnxCrossEncoder

SETTINGS_FILE = "ragline_rerank.json"


def minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high == low else (values - low) / (high - low)


def interpolate(cross_encoder: np.ndarray, first_stage: np.ndarray, weight: float) -> np.ndarray:
    return weight * minmax(cross_encoder) + (1 - weight) * minmax(first_stage)


def interpolation_weight(model_path: str) -> float:
    from pathlib import Path

    file = Path(model_path) / SETTINGS_FILE
    if not file.is_file():
        return 1.0
    try:
        weight = float(json.loads(file.read_text(encoding="utf-8"))["interpolation"])
    except (ValueError, KeyError, TypeError):
        raise ModelUnavailableError(f'{file} is damaged: expected {{"interpolation": 0..1}}') from None
    if not 0.0 <= weight <= 1.0:
        raise ModelUnavailableError(f"{file}: interpolation {weight} is not between 0 and 1")
    return weight


class CrossEncoderReranker:
    """``model_cache``: where the ``onnx-int8`` backend keeps its export (None: ``~/.cache/ragline/onnx``)."""

    def __init__(self, config: RerankConfig | None = None, model_cache: Path | None = None) -> None:
        self.config = config or RerankConfig()
        self.model_cache = model_cache
        self._model: Any = None
        self.weight = 1.0
        self._error: ModelUnavailableError | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.config.model

    def load(self) -> Any:
        """Load the model or raise ModelUnavailableError (the same one on every later call)."""
        with self._lock:
            if self._model is not None:
                return self._model
            if self._error is not None:
                raise self._error
            try:
                path = resolve_model(self.config.model, "reranker")
                lean = self._lean(path)
                if lean is not None:  # its fp32 ONNX export: no PyTorch import (pipeline/query_models.py)
                    self.weight = interpolation_weight(path)
                    self._model = lean
                    return lean
                from sentence_transformers import CrossEncoder

                model = CrossEncoder(path, device="cpu")
                self.weight = interpolation_weight(path)
                positions = getattr(model.config, "max_position_embeddings", None) or self.config.max_length
                # A model trained on shorter inputs (train-reranker saves its max length) keeps it:
                # rerank.max_length only caps.
                own = min(int(getattr(model, "max_seq_length", None) or positions), int(positions))
                model.max_seq_length = min(self.config.max_length, own)
            except ModelUnavailableError as exc:
                self._error = exc
                raise
            except Exception as exc:  # a broken folder, an incompatible checkpoint, ...
                self._error = ModelUnavailableError(f"reranker model {self.config.model!r} cannot be loaded: {exc}")
                raise self._error from None
            if getattr(model.config, "num_labels", 1) != 1:
                self._error = ModelUnavailableError(
                    f"reranker model {self.config.model!r} has {model.config.num_labels} output labels; "
                    f"a reranker needs exactly one relevance score"
                )
                raise self._error
            if self.config.backend == "onnx-int8":
                self._use_onnx_int8(model, path)
            else:
                from pipeline.onnx_backend import default_cache_dir
                from pipeline.query_models import export_cross_encoder

                if export_cross_encoder(model, self.config.model, path, default_cache_dir(), own):
                    model = self._lean(path) or model  # the same scores, faster, from the first call on
            self._model = model
            return model

    def _lean(self, path: str) -> OnnxCrossEncoder | None:
        """The fp32 export of the torch backend's model, once written (pipeline/query_models.py)."""
        if self.config.backend != "torch":
            return None
        from pipeline.onnx_backend import default_cache_dir
        from pipeline.query_models import OnnxCrossEncoder, find_lean, lean_folder

        def load(folder: Path) -> OnnxCrossEncoder:
            return OnnxCrossEncoder(folder, self.config.max_length)

        return find_lean("reranker", self.config.model, lean_folder(self.config.model, path, default_cache_dir()), load)

    def _use_onnx_int8(self, model: Any, path: str) -> None:
        from pipeline.onnx_backend import use_onnx_int8

        try:
            use_onnx_int8(model, "reranker", self.config.model, path, self.model_cache)
        except ModelUnavailableError as exc:
            self._error = exc
            raise

    def rerank(self, query: str, candidates: Sequence[ScoredChunk], top_n: int | None = None) -> list[ScoredChunk]:
        """Score (query, chunk) pairs and return the best ``top_n``, highest first."""
        top_n = top_n or self.config.top_n
        if not candidates:
            return []
        model = self.load()
        scores = model.predict(
            [(query, c.chunk.text) for c in candidates],
            batch_size=self.config.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        final = np.asarray(scores, dtype=np.float64).reshape(-1)
        if self.weight < 1.0:
            final = interpolate(final, np.array([c.score for c in candidates], dtype=np.float64), self.weight)
        rescored = [dataclasses.replace(c, rerank=float(s)) for c, s in zip(candidates, final)]
        rescored.sort(key=lambda c: -(c.rerank or 0.0))
        return rescored[:top_n]

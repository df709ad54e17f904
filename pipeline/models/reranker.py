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
from pipeline.models.backends import ModelPlan, find_runner, prepare_export
from pipeline.models.weights import resolve_model
from pipeline.types import ScoredChunk

if TYPE_CHECKING:
    from pipeline.models.onnx.runtime import OnnxCrossEncoder

SETTINGS_FILE = "ragline_rerank.json"


def minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high == low else (values - low) / (high - low)


def interpolate(cross_encoder: np.ndarray, first_stage: np.ndarray, weight: float) -> np.ndarray:
    return weight * minmax(cross_encoder) + (1 - weight) * minmax(first_stage)


def interpolation_weight(model_path: str) -> float:
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
            if self._model is None and self._error is None:
                try:
                    self._model = self._load()
                except ModelUnavailableError as exc:
                    self._error = exc
                except Exception as exc:  # noqa: BLE001 - a broken folder, an incompatible checkpoint, ...
                    self._error = ModelUnavailableError(f"reranker model {self.name!r} cannot be loaded: {exc}")
            if self._error is not None:
                raise self._error
            return self._model

    def _load(self) -> Any:
        """The backend's torch-free runner when its export is there (no PyTorch import); else the
        sentence-transformers CrossEncoder, whose first load writes that export (pipeline/models/backends.py)."""
        from pipeline.models.onnx.runtime import OnnxCrossEncoder

        path = resolve_model(self.config.model, "reranker")
        plan = ModelPlan("reranker", self.config.model, path, self.config.backend, "cpu", self.model_cache)
        found = self._runner(plan)
        self.weight = interpolation_weight(path)
        if found is not None:
            return found
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(path, device="cpu")
        positions = getattr(model.config, "max_position_embeddings", None) or self.config.max_length
        # A model trained on shorter inputs (train-reranker saves its max length) keeps it: rerank.max_length
        # only caps.
        own = min(int(getattr(model, "max_seq_length", None) or positions), int(positions))
        model.max_seq_length = min(self.config.max_length, own)
        if getattr(model.config, "num_labels", 1) != 1:
            raise ModelUnavailableError(
                f"reranker model {self.name!r} has {model.config.num_labels} output labels; "
                f"a reranker needs exactly one relevance score"
            )
        if prepare_export(model, plan, OnnxCrossEncoder, OnnxCrossEncoder.spec_for(model, own)):
            return self._runner(plan) or model  # the same scores, faster, from the first call on
        return model

    def _runner(self, plan: ModelPlan) -> OnnxCrossEncoder | None:
        from pipeline.models.onnx.runtime import OnnxCrossEncoder

        return find_runner(plan, lambda folder: OnnxCrossEncoder(folder, max_length=self.config.max_length))

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
        rescored = [dataclasses.replace(c, rerank=float(s)) for c, s in zip(candidates, final, strict=True)]
        rescored.sort(key=lambda c: -(c.rerank or 0.0))
        return rescored[:top_n]

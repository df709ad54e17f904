"""Dense embeddings with sentence-transformers; the model loads on first use."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import EmbeddingConfig
from pipeline.errors import ModelUnavailableError
from pipeline.models.backends import ModelPlan, find_runner, prepare_export
from pipeline.models.weights import canonical_model_name, resolve_model

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from pipeline.models.onnx.runtime import OnnxQueryEncoder


class ModelTokens:
    """A :class:`~pipeline.types.TokenCounter` over a model's own tokenizer (a fast ``tokenizers`` one)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token, to cut over-long text on token borders."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)


def load_token_counter(model_path: str) -> ModelTokens:
    from tokenizers import Tokenizer

    file = Path(model_path) / "tokenizer.json"
    if file.exists():
        tokenizer = Tokenizer.from_file(str(file))
    else:
        tokenizer = Tokenizer.from_pretrained(model_path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return ModelTokens(tokenizer)


class SentenceTransformerEmbedder:
    """All-MiniLM-L6-v2 by default, from the packaged weights: no download.

    ``model_cache`` is where the ``onnx-int8`` backend keeps its export; None (what the app passes) means
    ``~/.cache/ragline/onnx``, one export per model and CPU recipe that every index on the machine shares.
    The model name is the same for every backend: int8 vectors approximate the fp32 ones, so an index built
    with either can be searched with the other.
    """

    def __init__(self, config: EmbeddingConfig | None = None, model_cache: Path | None = None) -> None:
        self.config = config or EmbeddingConfig()
        self.name = canonical_model_name(self.config.model)
        self.model_cache = model_cache
        self._lock = threading.Lock()

    @cached_property
    def path(self) -> str:
        return resolve_model(self.name, "embedder")

    def _unloadable(self, exc: Exception) -> ModelUnavailableError:
        """A folder that is not a usable model (junk config, missing or damaged weights), in one line."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        where = "" if self.path == self.name else f" (from {self.path})"
        return ModelUnavailableError(f"embedder model {self.name!r}{where} cannot be loaded: {reason}")

    @cached_property
    def plan(self) -> ModelPlan:
        """Where this model runs: its backend's ONNX export, or PyTorch (:mod:`pipeline.models.backends`)."""
        config = self.config
        return ModelPlan("embedder", self.name, self.path, config.backend, config.device, self.model_cache)

    @cached_property
    def model(self) -> Any:
        path = self.path  # a missing model is reported before the slow imports
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        from pipeline.models.onnx.runtime import OnnxQueryEncoder

        hf_logging.disable_progress_bar()  # a per-layer "Loading weights" bar is noise on every start
        with self._lock:
            try:
                model = SentenceTransformer(path, device=self.config.device, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - junk config, missing or damaged weights: one line
                raise self._unloadable(exc) from None
            if prepare_export(model, self.plan, OnnxQueryEncoder, OnnxQueryEncoder.spec_for(model)):
                self.__dict__.pop("query_encoder", None)  # found from now on, in this process too
            return model

    @cached_property
    def query_encoder(self) -> OnnxQueryEncoder | None:
        """Queries run on the backend's ONNX export once it is runnable, with no PyTorch import; None: through
        the model."""
        from pipeline.models.onnx.runtime import OnnxQueryEncoder

        return find_runner(self.plan, OnnxQueryEncoder)

    @cached_property
    def tokens(self) -> ModelTokens:
        path = self.path
        try:
            return load_token_counter(path)
        except Exception as exc:  # noqa: BLE001 - a damaged tokenizer: one line
            raise self._unloadable(exc) from None

    @cached_property
    def dimension(self) -> int:
        """From the query encoder's spec when there is one, so that opening an index to search loads no torch."""
        encoder = self.query_encoder
        if encoder is not None:
            return encoder.spec.dimension
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    @cached_property
    def max_tokens(self) -> int:
        """Longest text (in tokens, without [CLS]/[SEP]) the model reads without truncation; from the query
        encoder's spec when there is one, so that a sync that finds nothing changed loads no torch."""
        encoder = self.query_encoder
        if encoder is not None:
            return encoder.spec.max_length - 2
        return int(self.model.max_seq_length) - 2

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        return self._encode(texts, progress)

    def _encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Through the ONNX query encoder when there is one (no PyTorch import), else the model; never cached."""
        encoder = self.query_encoder
        return encoder.embed([text])[0] if encoder is not None else self._encode([text])[0]

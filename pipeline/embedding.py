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
from pipeline.models import resolve_model

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from pipeline.query_models import OnnxQueryEncoder


class TokenCounter:
    """Counts tokens with a model's own tokenizer (a fast ``tokenizers`` one)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token, to cut over-long text on token borders."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)


def load_token_counter(model_path: str) -> TokenCounter:
    from pathlib import Path

    from tokenizers import Tokenizer

    file = Path(model_path) / "tokenizer.json"
    if file.exists():
        tokenizer = Tokenizer.from_file(str(file))
    else:
        tokenizer = Tokenizer.from_pretrained(model_path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return TokenCounter(tokenizer)


def canonical_model_name(name: str) -> str:
    """One name per model, so the same-model check compares like with like:
    the packaged MiniLM under any alias or path, a folder by its absolute path."""
    from pathlib import Path

    from pipeline.models import PACKAGED_ALIASES, packaged_minilm_path

    if name in PACKAGED_ALIASES:
        return "all-MiniLM-L6-v2"
    path = Path(name).expanduser()
    if path.exists():
        resolved = path.resolve()
        return "all-MiniLM-L6-v2" if resolved == packaged_minilm_path().resolve() else str(resolved)
    return name


class SentenceTransformerEmbedder:
    """All-MiniLM-L6-v2 by default, from the packaged weights: no download.

    ``model_cache`` is where the ``onnx-int8`` backend keeps its export (the app passes ``<index>/models``);
    None means ``~/.cache/ragline/onnx``. The model name is the same for every backend: int8 vectors
    approximate the fp32 ones, so an index built with either can be searched with the other.
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
    def model(self) -> Any:
        path = self.path  # a missing model is reported before the slow imports
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-layer "Loading weights" bar is noise on every start
        with self._lock:
            try:
                model = SentenceTransformer(path, device=self.config.device, local_files_only=True)
            except Exception as exc:
                raise self._unloadable(exc) from None
            found = False
            if self.config.backend == "onnx-int8":
                from pipeline.onnx_backend import use_onnx_int8
                from pipeline.query_models import add_query_files

                found = add_query_files(model, use_onnx_int8(model, "embedder", self.name, path, self.model_cache))
            elif self.config.device == "cpu":
                from pipeline.onnx_backend import default_cache_dir
                from pipeline.query_models import export_query_encoder

                found = export_query_encoder(model, self.name, path, default_cache_dir()) is not None
            if found:
                self.__dict__.pop("query_encoder", None)  # found from now on, in this process too
            return model

    @cached_property
    def query_encoder(self) -> OnnxQueryEncoder | None:
        """Queries run on the backend's ONNX export (fp32 for torch, the int8 one for onnx-int8) once it has
        been written, with no PyTorch import (pipeline/query_models.py); None: through the model."""
        from pipeline.onnx_backend import default_cache_dir, int8_folder
        from pipeline.query_models import OnnxQueryEncoder, find_lean, lean_folder

        if self.config.backend == "onnx-int8":
            return find_lean(
                "embedder", self.name, int8_folder(self.name, self.path, self.model_cache), OnnxQueryEncoder
            )
        if self.config.device != "cpu":
            return None
        return find_lean(
            "embedder", self.name, lean_folder(self.name, self.path, default_cache_dir()), OnnxQueryEncoder
        )

    @cached_property
    def tokens(self) -> TokenCounter:
        path = self.path
        try:
            return load_token_counter(path)
        except Exception as exc:
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
        """Longest text (in tokens, without [CLS]/[SEP]) the model reads without truncation."""
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

"""Run exported models on ONNX Runtime: the torch-free runners of queries and reranking, and the shim that
puts an export inside a loaded sentence-transformers model.

Why runners: a search process that imports torch, transformers and sentence-transformers spends about 3 s on
the imports alone, and torch takes about 20 ms to embed one short query on 2 cores, the whole hybrid latency
budget. ONNX Runtime imports in 0.1 s and embeds a query in a few ms. A runner is the model's tokenizer, its
exported transformer and what sentence-transformers does around it (pooling, activation), described by a
spec; both runners share :class:`OnnxRunner` (one tokenizer setup, one session setup, one way to feed it).
An export folder becomes runnable when its ``spec.json`` lands, last, after the runner was checked against
sentence-transformers (:mod:`pipeline.models.backends`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.models.onnx.export import MODEL_FILE, PROBE, probe_pairs, write_atomic
from pipeline.models.onnx.session import run, session

SPEC_FILE = "spec.json"
TOKENIZER_FILE = "tokenizer.json"


@cache
def _torch_module_base() -> type:
    """An ``nn.Module`` subclass, so sentence-transformers' ``.to()``, ``.eval()`` and module walks still work."""
    import torch

    class OnnxRuntimeTransformer(torch.nn.Module):
        """Stands in for the PyTorch transformer: same inputs, same named output, computed by ONNX Runtime."""

        main_input_name = "input_ids"

        def __init__(self, session: Any, config: Any, output: str) -> None:
            super().__init__()
            self.session = session
            self.config = config
            self.output = output

        @property
        def device(self) -> Any:
            return torch.device("cpu")

        @property
        def dtype(self) -> Any:
            return torch.float32

        def forward(self, **inputs: Any) -> dict[str, Any]:
            arrays = {i.name: inputs[i.name].detach().cpu().numpy() for i in self.session.get_inputs()}
            return {self.output: torch.from_numpy(run(self.session, arrays))}

    return OnnxRuntimeTransformer


def swap_in(module: Any, output: str, folder: Path) -> None:
    """Put the export in ``folder`` in place of the PyTorch model of a sentence-transformers Transformer."""
    module.model = _torch_module_base()(session(folder / MODEL_FILE), module.model.config, output)


@dataclass(frozen=True)
class EmbedderSpec:
    """What sentence-transformers does around the transformer, for the embedders this recipe covers."""

    pooling: str  # "mean" or "cls"
    max_length: int
    lowercase: bool
    dimension: int


@dataclass(frozen=True)
class CrossEncoderSpec:
    max_length: int  # the model's own limit; rerank.max_length may lower it
    activation: str  # "sigmoid" or "identity"


Spec = EmbedderSpec | CrossEncoderSpec


def write_tokenizer(folder: Path, st_model: Any) -> None:
    write_atomic(folder / TOKENIZER_FILE, st_model.tokenizer.backend_tokenizer.to_str())


def publish_spec(folder: Path, spec: Spec) -> None:
    """The spec lands last and whole: it marks the folder runnable."""
    write_atomic(folder / SPEC_FILE, json.dumps(asdict(spec)))


class OnnxRunner:
    """An export folder's tokenizer (truncating and padding as sentence-transformers does) and session."""

    SPEC: ClassVar[type[EmbedderSpec] | type[CrossEncoderSpec]]

    def __init__(self, folder: Path, spec: Spec | None = None, max_length: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.spec: Any = spec or self.SPEC(**json.loads((folder / SPEC_FILE).read_text(encoding="utf-8")))
        self.max_seq_length = min(max_length or self.spec.max_length, self.spec.max_length)
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(self.max_seq_length, strategy="longest_first")
        self.tokenizer.enable_padding()
        self.session = session(folder / MODEL_FILE)

    def _forward(self, inputs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """The transformer's output for a batch of texts (or pairs), and the batch's attention mask."""
        batch = self.tokenizer.encode_batch(list(inputs))
        mask = np.asarray([e.attention_mask for e in batch], dtype=np.int64)
        arrays = {
            "input_ids": np.asarray([e.ids for e in batch], dtype=np.int64),
            "attention_mask": mask,
            "token_type_ids": np.asarray([e.type_ids for e in batch], dtype=np.int64),
        }
        return run(self.session, arrays), mask

    @staticmethod
    def spec_for(st_model: Any, max_length: int | None = None) -> Spec | None:
        """The spec of a loaded sentence-transformers model, or None when this recipe does not cover it;
        ``max_length``: the model's own input limit, where the model does not say it itself."""
        raise NotImplementedError

    def expected_and_got(self, st_model: Any) -> tuple[np.ndarray, np.ndarray]:
        """sentence-transformers' outputs on the probe set, and this runner's."""
        raise NotImplementedError


class OnnxQueryEncoder(OnnxRunner):
    """An embedder's tokenizer, transformer and pooling, with no PyTorch."""

    SPEC = EmbedderSpec

    @staticmethod
    def spec_for(st_model: Any, max_length: int | None = None) -> EmbedderSpec | None:
        """Transformer → Pooling (mean or CLS) [→ Normalize] with no default prompt; else None.
        (ragline normalises every vector, so a Normalize module changes nothing here.)"""
        from sentence_transformers.base.modules.normalize import Normalize
        from sentence_transformers.base.modules.transformer import Transformer
        from sentence_transformers.sentence_transformer.modules.pooling import Pooling

        modules = list(st_model)
        if len(modules) not in (2, 3) or not isinstance(modules[0], Transformer):
            return None
        if not isinstance(modules[1], Pooling) or (len(modules) == 3 and not isinstance(modules[2], Normalize)):
            return None
        if getattr(st_model, "default_prompt_name", None) or modules[1].pooling_mode not in ("mean", "cls"):
            return None
        return EmbedderSpec(
            pooling=modules[1].pooling_mode,
            max_length=max_length or int(modules[0].max_seq_length),
            lowercase=bool(getattr(modules[0], "do_lower_case", False)),
            dimension=int(st_model.get_embedding_dimension()),
        )

    def expected_and_got(self, st_model: Any) -> tuple[np.ndarray, np.ndarray]:
        expected = st_model.encode(list(PROBE), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(expected), self.embed(PROBE)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if self.spec.lowercase:
            texts = [t.lower() for t in texts]
        hidden, mask = self._forward(texts)
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return np.asarray(pooled, dtype=np.float32)


class OnnxCrossEncoder(OnnxRunner):
    """A one-logit cross-encoder's pair tokenizer, transformer and activation, with no PyTorch;
    ``predict`` takes what ``CrossEncoder.predict`` takes, for the reranker."""

    SPEC = CrossEncoderSpec

    @staticmethod
    def spec_for(st_model: Any, max_length: int | None = None) -> CrossEncoderSpec | None:
        import torch

        activation = {torch.nn.Sigmoid: "sigmoid", torch.nn.Identity: "identity"}.get(type(st_model.activation_fn))
        limit = max_length or int(st_model.max_seq_length)
        return None if activation is None else CrossEncoderSpec(limit, activation)

    def expected_and_got(self, st_model: Any) -> tuple[np.ndarray, np.ndarray]:
        pairs = probe_pairs()
        expected = st_model.predict(pairs, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(expected).reshape(-1), self.predict(pairs)

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16, **_: Any) -> np.ndarray:
        scores = []
        for begin in range(0, len(pairs), batch_size):
            logits, _mask = self._forward(pairs[begin : begin + batch_size])
            scores.append(logits.reshape(-1))
        out = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        return 1.0 / (1.0 + np.exp(-out)) if self.spec.activation == "sigmoid" else out

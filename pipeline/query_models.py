"""The models a query runs (embedder, cross-encoder) on their fp32 ONNX exports, without PyTorch.

Why: a search process that imports torch, transformers and sentence-transformers spends about 3 s on the
imports alone, and torch takes about 20 ms to embed one short query on 2 cores, the whole hybrid latency
budget. ONNX Runtime imports in 0.1 s and embeds a query in a few ms. The outputs are the fp32 models' own
(checked against sentence-transformers at export, to 1e-4), so an index built with torch is searched, and
candidates reranked, exactly as before.

The export is made once per model weights, the first time the torch model is loaded on this machine (an
ingest does that for the embedder, the first reranked search for the cross-encoder), into
``~/.cache/ragline/onnx/<model>-onnx-fp32-<key>``. Until it exists, or for a model this recipe does not cover
(an embedder with pooling other than mean or CLS, extra modules or a default prompt; a cross-encoder whose
activation is not sigmoid or identity), the model runs through sentence-transformers as before: the export is
a speed-up, never a requirement.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pipeline.onnx_backend import FP32_TAG, MODEL_FILE, export_folder, one_line, prune_stale, session, write_export

SPEC_FILE = "spec.json"
TOKENIZER_FILE = "tokenizer.json"
_QUERIES = (
    "How often should the boiler be descaled?",
    "A longer query about the warranty terms, spare parts and the opening hours of the service desk.",
)
_PASSAGES = ("Descale every 8 weeks in hard-water areas.", "The service desk opens at 9.")

log = logging.getLogger(__name__)
Runner = TypeVar("Runner", "OnnxQueryEncoder", "OnnxCrossEncoder")


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


def embedder_spec(st_model: Any) -> EmbedderSpec | None:
    """Transformer → Pooling (mean or CLS) [→ Normalize] with no default prompt; else None.
    (ragline normalises every vector, so a Normalize module changes nothing here.)"""
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    modules = list(st_model)
    if len(modules) not in (2, 3) or not isinstance(modules[0], Transformer) or not isinstance(modules[1], Pooling):
        return None
    if len(modules) == 3 and not isinstance(modules[2], Normalize):
        return None
    if getattr(st_model, "default_prompt_name", None) or modules[1].pooling_mode not in ("mean", "cls"):
        return None
    return EmbedderSpec(
        pooling=modules[1].pooling_mode,
        max_length=int(modules[0].max_seq_length),
        lowercase=bool(getattr(modules[0], "do_lower_case", False)),
        dimension=int(st_model.get_embedding_dimension()),
    )


def cross_encoder_spec(st_model: Any, max_length: int) -> CrossEncoderSpec | None:
    import torch

    activation = {torch.nn.Sigmoid: "sigmoid", torch.nn.Identity: "identity"}.get(type(st_model.activation_fn))
    return None if activation is None else CrossEncoderSpec(max_length, activation)


def lean_folder(name: str, path: str, cache_dir: Path) -> Path:
    """Where the fp32 export of these weights lives (or will)."""
    from pipeline.embedding_cache import model_identity

    return export_folder(cache_dir, name, model_identity(name, path), FP32_TAG)


def _require_match(error: float) -> None:
    """An export is published only when it gives sentence-transformers' own outputs."""
    if error > 1e-4:
        raise RuntimeError(f"ONNX outputs differ from sentence-transformers by {error:.3g}")


def _export(
    kind: str,
    st_model: Any,
    name: str,
    path: str,
    cache_dir: Path,
    spec: EmbedderSpec | CrossEncoderSpec | None,
    check: Callable[[Path], float],
) -> Path | None:
    """Write the export unless it exists; None (logged, never raised) when the model or this machine cannot.
    ``check`` returns the largest difference from sentence-transformers on probe inputs."""
    from pipeline.onnx_backend import target_module

    folder = lean_folder(name, path, cache_dir)
    if (folder / SPEC_FILE).is_file():
        return folder
    tokenizer = getattr(st_model.tokenizer, "backend_tokenizer", None)
    if spec is None or tokenizer is None:
        log.info("%s %s: no fp32 ONNX export for this model's modules; it runs on PyTorch", kind, name)
        return None

    def finish(scratch: Path) -> None:
        (scratch / TOKENIZER_FILE).write_text(tokenizer.to_str(), encoding="utf-8")
        (scratch / SPEC_FILE).write_text(json.dumps(asdict(spec)), encoding="utf-8")
        _require_match(check(scratch))

    source = {"name": name, "path": str(Path(path).resolve()), "recipe": FP32_TAG}
    shutil.rmtree(folder, ignore_errors=True)  # exports land whole (renamed into place): this one was damaged
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so here rather than deep in torch)

        write_export(st_model, target_module(st_model, kind, name), folder, source, None, finish)
    except Exception as exc:
        log.warning("%s %s: no fp32 ONNX export (%s); it runs on PyTorch", kind, name, one_line(exc))
        return None
    prune_stale(folder, source)
    return folder


def export_query_encoder(st_model: Any, name: str, path: str, cache_dir: Path) -> Path | None:
    def check(folder: Path) -> float:
        expected = st_model.encode(list(_QUERIES), normalize_embeddings=True, convert_to_numpy=True)
        return float(np.max(np.abs(expected - OnnxQueryEncoder(folder).embed(_QUERIES))))

    return _export("embedder", st_model, name, path, cache_dir, embedder_spec(st_model), check)


def export_cross_encoder(st_model: Any, name: str, path: str, cache_dir: Path, max_length: int) -> Path | None:
    """``max_length``: the model's own input limit (before rerank.max_length lowers it)."""
    pairs = [(q, p) for q in _QUERIES for p in _PASSAGES]

    def check(folder: Path) -> float:
        expected = st_model.predict(pairs, convert_to_numpy=True, show_progress_bar=False)
        got = OnnxCrossEncoder(folder, int(st_model.max_seq_length)).predict(pairs)
        return float(np.max(np.abs(np.asarray(expected).reshape(-1) - got)))

    spec = cross_encoder_spec(st_model, max_length)
    return _export("reranker", st_model, name, path, cache_dir, spec, check)


def add_query_files(st_model: Any, folder: Path) -> bool:
    """Make an embedder's int8 export (``folder``, already swapped into ``st_model``) a query encoder too:
    the tokenizer and spec go beside its ``model.onnx`` when the recipe covers the model and the lean
    encoder gives sentence-transformers' own int8 vectors. False (logged) when it cannot."""
    if (folder / SPEC_FILE).is_file():
        return True
    spec, tokenizer = embedder_spec(st_model), getattr(st_model.tokenizer, "backend_tokenizer", None)
    if spec is None or tokenizer is None:
        return False
    try:
        (folder / TOKENIZER_FILE).write_text(tokenizer.to_str(), encoding="utf-8")
        expected = st_model.encode(list(_QUERIES), normalize_embeddings=True, convert_to_numpy=True)
        _require_match(float(np.max(np.abs(expected - OnnxQueryEncoder(folder, spec).embed(_QUERIES)))))
        scratch = folder / f".{SPEC_FILE}.tmp"
        scratch.write_text(json.dumps(asdict(spec)), encoding="utf-8")
        scratch.replace(folder / SPEC_FILE)  # the spec lands last and whole: it marks the folder usable
    except Exception as exc:
        log.warning("embedder: no torch-free int8 query path in %s (%s)", folder, one_line(exc))
        return False
    return True


def find_lean(kind: str, name: str, folder: Path, load: Callable[[Path], Runner]) -> Runner | None:
    """The runner for an export folder if it is complete and ONNX Runtime can load it; else None."""
    if not (folder / SPEC_FILE).is_file():
        return None
    try:
        return load(folder)
    except Exception as exc:  # onnxruntime missing or broken, a damaged export: PyTorch still works
        log.warning(
            "%s %s: the fp32 ONNX export in %s cannot be loaded (%s); it runs on PyTorch "
            "(delete that folder to export it again)",
            kind,
            name,
            folder,
            one_line(exc),
        )
        return None


def _tokenizer(folder: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    tokenizer.enable_padding()
    return tokenizer


def _run(runner: Any, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The transformer's output for a tokenised batch, and the batch's attention mask."""
    arrays = {
        "input_ids": np.asarray([e.ids for e in batch], dtype=np.int64),
        "attention_mask": np.asarray([e.attention_mask for e in batch], dtype=np.int64),
        "token_type_ids": np.asarray([e.type_ids for e in batch], dtype=np.int64),
    }
    feeds = {i.name: arrays[i.name] for i in runner.get_inputs()}
    return runner.run([runner.get_outputs()[0].name], feeds)[0], arrays["attention_mask"]


class OnnxQueryEncoder:
    """An embedder's tokenizer, transformer and pooling, with no PyTorch."""

    def __init__(self, folder: Path, spec: EmbedderSpec | None = None) -> None:
        self.spec = spec or EmbedderSpec(**json.loads((folder / SPEC_FILE).read_text(encoding="utf-8")))
        self.tokenizer = _tokenizer(folder, self.spec.max_length)
        self.session = session(folder / MODEL_FILE)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if self.spec.lowercase:
            texts = [t.lower() for t in texts]
        hidden, mask = _run(self.session, self.tokenizer.encode_batch(list(texts)))
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return np.asarray(pooled, dtype=np.float32)


class OnnxCrossEncoder:
    """A one-logit cross-encoder's pair tokenizer, transformer and activation, with no PyTorch;
    ``predict`` takes what ``CrossEncoder.predict`` takes, for the reranker."""

    def __init__(self, folder: Path, max_length: int) -> None:
        self.spec = CrossEncoderSpec(**json.loads((folder / SPEC_FILE).read_text(encoding="utf-8")))
        self.max_seq_length = min(max_length, self.spec.max_length)
        self.tokenizer = _tokenizer(folder, self.max_seq_length)
        self.session = session(folder / MODEL_FILE)

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16, **_: Any) -> np.ndarray:
        scores = []
        for begin in range(0, len(pairs), batch_size):
            logits, _mask = _run(self.session, self.tokenizer.encode_batch(list(pairs[begin : begin + batch_size])))
            scores.append(logits.reshape(-1))
        out = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        return 1.0 / (1.0 + np.exp(-out)) if self.spec.activation == "sigmoid" else out

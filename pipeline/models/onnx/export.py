"""Export a sentence-transformers model's transformer to ONNX, checked against PyTorch, written once.

Why not sentence-transformers' own ``backend="onnx"``: it loads through optimum-onnx, whose only release
(0.1.0) pins ``transformers<4.58``; installing it next to sentence-transformers 6 (transformers 5) makes pip
downgrade the whole model stack. The recipe here needs only ``onnxruntime`` and ``onnx`` (dependencies of
ragline): the transformer is exported with PyTorch's ONNX exporter, checked against PyTorch on a batch of
another shape than it was traced with (:data:`PROBE`, within :data:`TOLERANCE`), optionally quantised
(:mod:`.quantize`), and renamed into place whole, so a crash never leaves half an export.

Every export of every model and backend lives in ``<cache>/<model>-onnx-<fp32|int8>-<key>``
(:func:`export_folder`); :mod:`pipeline.models.backends` decides which one a model uses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelUnavailableError, one_line
from pipeline.models.onnx.quantize import EXPORT_VERSION, QuantRecipe, quantise

MODEL_FILE = "model.onnx"
SOURCE_FILE = "source.json"
OPSET = 17
FP32_TAG = f"fp32-v{EXPORT_VERSION}"
PROBE = (
    "How often should the boiler be descaled?",
    "Descale every 8 weeks in hard-water areas.",
    "A third, longer input about the warranty terms, spare parts and the opening hours of the service desk, so "
    "that every check runs on another batch size and sequence length than the export was traced with.",
)
"""The one probe set: the export is traced on the first two, and every check (graph against PyTorch, runner
against sentence-transformers) runs on all three."""
TOLERANCE = 1e-4
"""The one tolerance: the largest difference allowed, relative to the largest expected value (at least 1)."""

log = logging.getLogger(__name__)


def probe_pairs() -> list[tuple[str, str]]:
    """The probe set as (query, passage) pairs, for cross-encoders."""
    return list(zip(PROBE, reversed(PROBE), strict=True))


def mismatch(expected: Any, got: Any) -> float:
    """The largest difference, relative to the largest expected value (at least 1); 0.0 for empty outputs."""
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if not expected.size:
        return 0.0
    return float(np.max(np.abs(expected - got))) / max(1.0, float(np.max(np.abs(expected))))


def require_match(expected: Any, got: Any, what: str) -> None:
    """Refuse an export (raise) that does not give the model's own outputs."""
    error = mismatch(expected, got)
    if not error <= TOLERANCE:
        raise RuntimeError(f"{what} differs from PyTorch by {error:.3g} on the probe inputs")


def _slug(name: str) -> str:
    base = Path(name.rstrip("/")).name or "model"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in base)[:80]


def export_folder(cache_dir: Path, name: str, identity: str, tag: str) -> Path:
    """``<cache_dir>/<model>-onnx-<int8|fp32>-<key>``: the key hashes the weights' identity
    (:func:`pipeline.models.weights.model_identity`, which changes when the weight files do) and the tag
    (the quantisation recipe's, or :data:`FP32_TAG`)."""
    key = hashlib.sha256(f"{identity}\n{tag}".encode()).hexdigest()[:12]
    return cache_dir / f"{_slug(name)}-onnx-{'fp32' if tag == FP32_TAG else 'int8'}-{key}"


@dataclass(frozen=True)
class ExportTarget:
    """The sentence-transformers Transformer module whose PyTorch model is exported, and what it outputs."""

    module: Any
    output: str
    pairs: bool


def target_module(st_model: Any, kind: str, name: str) -> ExportTarget:
    from sentence_transformers.base.modules.transformer import Transformer

    first = st_model[0] if len(st_model) else None
    if not isinstance(first, Transformer):
        raise ModelUnavailableError(
            f"{kind} model {name!r} cannot use backend 'onnx-int8': its first module is "
            f"{type(first).__name__}, not a Transformer"
        )
    text = first.modality_config.get("text", {})
    output = text.get("method_output_name")
    if text.get("method") != "forward" or output not in ("last_hidden_state", "logits"):
        raise ModelUnavailableError(
            f"{kind} model {name!r} cannot use backend 'onnx-int8': unsupported output {output!r}"
        )
    return ExportTarget(first, output, pairs=output == "logits")


def _probe_inputs(st_model: Any, target: ExportTarget, texts: tuple[str, ...]) -> dict[str, Any]:
    tokenizer = st_model.tokenizer
    if target.pairs:
        batch = tokenizer(list(texts), list(reversed(texts)), padding=True, return_tensors="pt")
    else:
        batch = tokenizer(list(texts), padding=True, return_tensors="pt")
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def _export_fp32(st_model: Any, target: ExportTarget, file: Path, additive_mask: bool) -> None:
    """PyTorch's TorchScript exporter (the dynamo one needs onnxscript), with batch and length dynamic.

    ``additive_mask``: the graph turns the 0/1 attention mask into the additive float mask itself and hands
    the model that (transformers uses a 4-D mask as given). The traced boolean-mask path of transformers 5's
    SDPA attention costs a Where and an IsNaN per layer: about a quarter of MiniLM's int8 run time.
    """
    import torch

    class _Forward(torch.nn.Module):
        def __init__(self, model: Any, names: list[str], output: str) -> None:
            super().__init__()
            self.model, self.names, self.output = model, names, output

        def forward(self, *tensors: Any) -> Any:
            inputs = dict(zip(self.names, tensors, strict=True))
            if additive_mask:
                keep = inputs["attention_mask"][:, None, None, :].to(torch.float32)
                inputs["attention_mask"] = (1.0 - keep) * torch.finfo(torch.float32).min
            return self.model(**inputs, return_dict=True)[self.output]

    inputs = _probe_inputs(st_model, target, PROBE[:2])
    names = list(inputs)
    wrapper = _Forward(target.module.model, names, target.output).eval()
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[target.output] = {0: "batch", 1: "sequence"} if target.output == "last_hidden_state" else {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapper,
            tuple(inputs.values()),
            str(file),
            input_names=names,
            output_names=[target.output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def _verify_export(st_model: Any, target: ExportTarget, file: Path) -> None:
    """The exported graph must match PyTorch on inputs of another shape than it was traced with: a model
    whose forward does not trace cleanly is refused here instead of serving wrong vectors."""
    import torch

    from pipeline.models.onnx.session import run, session

    inputs = _probe_inputs(st_model, target, PROBE)
    with torch.no_grad():
        expected = target.module.model(**inputs, return_dict=True)[target.output].numpy()
    got = run(session(file), {k: v.numpy() for k, v in inputs.items()})
    if target.output == "last_hidden_state":  # padded positions are never read
        keep = inputs["attention_mask"].numpy().astype(bool)
        expected, got = expected[keep], got[keep]
    require_match(expected, got, "the exported graph")


def _export_checked(st_model: Any, target: ExportTarget, file: Path) -> Path:
    """The faster additive-mask graph where the model takes it and it checks out; else the plain one."""
    try:
        _export_fp32(st_model, target, file, additive_mask=True)
        _verify_export(st_model, target, file)
        return file
    except Exception as exc:  # noqa: BLE001 - a model whose forward wants the 2-D mask
        log.info("additive-mask export refused (%s); exporting with the 0/1 mask", one_line(exc))
    _export_fp32(st_model, target, file, additive_mask=False)
    _verify_export(st_model, target, file)
    return file


def write_export(
    st_model: Any, target: ExportTarget, folder: Path, source: Mapping[str, str], recipe: QuantRecipe | None
) -> None:
    """Export (and with a ``recipe``, quantise) into a scratch folder beside the destination, then rename it
    into place: a crash leaves no half export, and of two processes exporting at once the second simply uses
    the first's."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fp32 = _export_checked(st_model, target, scratch / "fp32.onnx")
        if recipe is None:
            fp32.rename(scratch / MODEL_FILE)
        else:
            quantise(fp32, scratch / MODEL_FILE, recipe)
            fp32.unlink()
        (scratch / SOURCE_FILE).write_text(json.dumps(dict(source), indent=2), encoding="utf-8")
        try:
            scratch.rename(folder)
        except OSError:
            if not (folder / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_atomic(file: Path, text: str) -> None:
    """A file that readers see whole or not at all."""
    scratch = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(file)


def prune_stale(folder: Path, source: Mapping[str, str]) -> None:
    """Earlier exports of the same model folder with the same recipe (the weights since re-trained) are dead
    weight. Another recipe's export is kept: a cache folder shared by a VNNI and an AVX2 machine would
    otherwise delete and re-export forever."""
    for other in folder.parent.glob("*-onnx-*-*"):
        if other == folder or not (other / SOURCE_FILE).is_file():
            continue
        try:
            earlier = json.loads((other / SOURCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (earlier.get("path"), earlier.get("recipe")) == (source["path"], source["recipe"]):
            shutil.rmtree(other, ignore_errors=True)

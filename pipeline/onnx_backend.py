"""The optional ``onnx-int8`` backend: a model exported to ONNX, dynamically quantised to int8, run by ONNX Runtime.

Why not sentence-transformers' own ``backend="onnx"``: it loads through optimum-onnx, whose only release
(0.1.0) pins ``transformers<4.58``; installing it next to sentence-transformers 6 (transformers 5) makes pip
downgrade the whole model stack. The recipe here needs only ``onnxruntime`` and ``onnx``
(dependencies of ragline): the model's transformer is exported with PyTorch's ONNX exporter, checked
against PyTorch on a batch of another shape, quantised with ``onnxruntime.quantization.quantize_dynamic``, and
put in place of the PyTorch transformer inside the loaded sentence-transformers model. Tokenisation,
pooling, normalisation and the cross-encoder's activation stay sentence-transformers' own, so a fine-tuned
folder with other pooling works unchanged.

The export happens once per model weights and is cached (see :func:`export_folder`); a later load only
opens the cached ``model.onnx``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelUnavailableError

INSTALL_HINT = "pip install onnxruntime onnx"
EXPORT_VERSION = 1
"""Part of the cache key: bump it when the export or quantisation recipe changes, so old exports are not re-used."""
MODEL_FILE = "model.onnx"
SOURCE_FILE = "source.json"
OPSET = 17
_PROBE = (
    "Regular descaling keeps the boiler clean.",
    "How often?",
    "A third, longer input, so that the check runs on another batch size and sequence length than the export.",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantRecipe:
    """Dynamic int8: per-channel symmetric int8 weights, uint8 activations quantised at run time, MatMuls only.

    Per-channel weights matter: with per-tensor scales MiniLM's int8 vectors of SciFact abstracts fell to a
    cosine of 0.91 to fp32 at worst (0.66 with 7-bit weights); per-channel keeps every one above 0.99.
    ``reduce_range`` (7-bit weights) is for x86 CPUs without VNNI, whose u8 x s8 multiply-add
    (``vpmaddubsw``) saturates int16 sums with full 8-bit weights, as ONNX Runtime's quantisation guide
    says; VNNI (``vpdpbusd``, 32-bit sums) and ARM's dot products do not saturate and keep all 8 bits.
    Either recipe runs on any CPU: the choice is accuracy, not compatibility.
    """

    reduce_range: bool
    target: str

    @property
    def tag(self) -> str:
        """What distinguishes the quantised weights (two VNNI CPUs share an export; the target name does not)."""
        return f"int8-pc{'-rr7' if self.reduce_range else ''}-v{EXPORT_VERSION}"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags on Linux (x86 ``flags``, ARM ``Features``); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def quantisation_recipe(flags: frozenset[str] | None = None, machine: str | None = None) -> QuantRecipe:
    """Chosen by CPU: full 8-bit weights on VNNI x86 (avx512_vnni, avx_vnni, amx_int8) and on ARM,
    7-bit weights (``reduce_range``) on other x86 CPUs (plain AVX2 / AVX-512)."""
    machine = (machine or platform.machine()).lower()
    if machine in ("arm64", "aarch64"):
        return QuantRecipe(reduce_range=False, target="arm64")
    flags = cpu_flags() if flags is None else flags
    vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    if vnni:
        return QuantRecipe(reduce_range=False, target=vnni[0])
    return QuantRecipe(reduce_range=True, target="avx2")


def backend_tag(backend: str) -> str | None:
    """What a cache key of vectors must add for this backend: None for torch, so fp32 keys stay as they were."""
    return None if backend == "torch" else f"{backend}:{quantisation_recipe().tag}"


def default_cache_dir() -> Path:
    """Exports of models that have no index folder to sit beside (a Qdrant server store, reindex, tools)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ragline" / "onnx"


def _slug(name: str) -> str:
    base = Path(name.rstrip("/")).name or "model"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in base)[:80]


FP32_TAG = f"fp32-v{EXPORT_VERSION}"


def export_folder(cache_dir: Path, name: str, identity: str, tag: str) -> Path:
    """``<cache_dir>/<model>-onnx-<int8|fp32>-<key>``: the key hashes the weights' identity
    (:func:`pipeline.embedding_cache.model_identity`, which changes when the weight files do) and the tag
    (the quantisation recipe's, or :data:`FP32_TAG`)."""
    key = hashlib.sha256(f"{identity}\n{tag}".encode()).hexdigest()[:12]
    return cache_dir / f"{_slug(name)}-onnx-{'fp32' if tag == FP32_TAG else 'int8'}-{key}"


def int8_folder(name: str, path: str, cache_dir: Path | None) -> Path:
    """Where the int8 export of these weights for this CPU lives (or will)."""
    from pipeline.embedding_cache import model_identity

    return export_folder(cache_dir or default_cache_dir(), name, model_identity(name, path), quantisation_recipe().tag)


def _check_packages(kind: str, name: str, exporting: bool) -> None:
    """A missing package is one line naming the model and the fix, before any slow work."""
    import importlib

    for package in ("onnxruntime", "onnx") if exporting else ("onnxruntime",):
        try:
            importlib.import_module(package)
        except ImportError:
            raise ModelUnavailableError(
                f"{kind} model {name!r}: backend 'onnx-int8' needs the package {package}: {INSTALL_HINT}"
                ' (or set backend = "torch")'
            ) from None


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# -- export ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportTarget:
    """The sentence-transformers Transformer module whose PyTorch model is replaced, and what it outputs."""

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
            inputs = dict(zip(self.names, tensors))
            if additive_mask:
                keep = inputs["attention_mask"][:, None, None, :].to(torch.float32)
                inputs["attention_mask"] = (1.0 - keep) * torch.finfo(torch.float32).min
            return self.model(**inputs, return_dict=True)[self.output]

    inputs = _probe_inputs(st_model, target, _PROBE[:2])
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


def session(file: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers are noise
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


def _verify_export(st_model: Any, target: ExportTarget, file: Path) -> None:
    """The exported graph must match PyTorch on inputs of another shape than it was traced with: a model
    whose forward does not trace cleanly is refused here instead of serving wrong vectors."""
    import torch

    inputs = _probe_inputs(st_model, target, _PROBE)
    with torch.no_grad():
        expected = target.module.model(**inputs, return_dict=True)[target.output].numpy()
    runner = session(file)
    feeds = {i.name: inputs[i.name].numpy().astype(np.int64) for i in runner.get_inputs()}
    got = runner.run([target.output], feeds)[0]
    if target.output == "last_hidden_state":  # padded positions are never read
        keep = inputs["attention_mask"].numpy().astype(bool)
        expected, got = expected[keep], got[keep]
    error = float(np.max(np.abs(expected - got))) if expected.size else 0.0
    if not error <= 1e-3 * max(1.0, float(np.max(np.abs(expected)))):
        raise RuntimeError(f"the exported graph differs from PyTorch by {error:.3g} on a check batch")


def _export_checked(st_model: Any, target: ExportTarget, file: Path) -> Path:
    """The faster additive-mask graph where the model takes it and it checks out; else the plain one."""
    try:
        _export_fp32(st_model, target, file, additive_mask=True)
        _verify_export(st_model, target, file)
        return file
    except Exception as exc:  # a model whose forward wants the 2-D mask
        log.info("additive-mask export refused (%s); exporting with the 0/1 mask", one_line(exc))
    _export_fp32(st_model, target, file, additive_mask=False)
    _verify_export(st_model, target, file)
    return file


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantiser logs through the root logger (``logging.warning``), which would also install
    a stderr handler on the root logger of the whole process: hold it off for the call."""
    root = logging.getLogger()
    guard, level = logging.NullHandler(), root.level
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
        root.removeHandler(guard)


def _quantise(source: Path, target: Path, recipe: QuantRecipe) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            reduce_range=recipe.reduce_range,
            weight_type=QuantType.QInt8,
        )


def write_export(
    st_model: Any,
    target: ExportTarget,
    folder: Path,
    source: Mapping[str, str],
    recipe: QuantRecipe | None,
    finish: Callable[[Path], None] | None = None,
) -> None:
    """Export (and with a ``recipe``, quantise) into a scratch folder beside the destination, then rename it
    into place: a crash leaves no half export, and of two processes exporting at once the second simply uses
    the first's. ``finish`` adds files to the scratch folder, and may refuse the export by raising."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fp32 = _export_checked(st_model, target, scratch / "fp32.onnx")
        if recipe is None:
            fp32.rename(scratch / MODEL_FILE)
        else:
            _quantise(fp32, scratch / MODEL_FILE, recipe)
            fp32.unlink()
        if finish is not None:
            finish(scratch)
        (scratch / SOURCE_FILE).write_text(json.dumps(dict(source), indent=2), encoding="utf-8")
        try:
            scratch.rename(folder)
        except OSError:
            if not (folder / MODEL_FILE).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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


# -- run time ------------------------------------------------------------------------------------------


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
            self.input_names = [i.name for i in session.get_inputs()]

        @property
        def device(self) -> Any:
            return torch.device("cpu")

        @property
        def dtype(self) -> Any:
            return torch.float32

        def forward(self, **inputs: Any) -> dict[str, Any]:
            feeds = {n: inputs[n].detach().cpu().numpy().astype(np.int64, copy=False) for n in self.input_names}
            return {self.output: torch.from_numpy(self.session.run([self.output], feeds)[0])}

    return OnnxRuntimeTransformer


def use_onnx_int8(st_model: Any, kind: str, name: str, path: str, cache_dir: Path | None) -> Path:
    """Swap the PyTorch transformer of a loaded sentence-transformers model (a SentenceTransformer or a
    CrossEncoder, on CPU) for its int8 ONNX export, exporting it first when no cached export exists.

    Returns the export's folder. Every failure is a one-line :class:`ModelUnavailableError` naming the model.
    """
    from pipeline.embedding_cache import model_identity

    _check_packages(kind, name, exporting=False)
    target = target_module(st_model, kind, name)
    recipe = quantisation_recipe()
    identity = model_identity(name, path)
    folder = int8_folder(name, path, cache_dir)
    if not (folder / MODEL_FILE).is_file():
        _check_packages(kind, name, exporting=True)
        log.info("exporting %s model %s to ONNX int8 (%s) in %s, once", kind, name, recipe.target, folder)
        source = {"name": name, "path": str(Path(path).resolve()), "identity": identity, "recipe": recipe.tag}
        try:
            write_export(st_model, target, folder, source, recipe)
        except Exception as exc:
            raise ModelUnavailableError(
                f"{kind} model {name!r} cannot be exported to ONNX int8: {one_line(exc)}"
                ' (set backend = "torch" to run it with PyTorch)'
            ) from None
        prune_stale(folder, source)
    try:
        runner = session(folder / MODEL_FILE)
    except Exception as exc:
        raise ModelUnavailableError(
            f"{kind} model {name!r}: the cached ONNX export in {folder} cannot be loaded ({one_line(exc)}); "
            "delete that folder to export it again"
        ) from None
    config = target.module.model.config
    target.module.model = _torch_module_base()(runner, config, target.output)
    return folder

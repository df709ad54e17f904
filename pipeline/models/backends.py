"""The one backend policy, for the embedder and the cross-encoder alike: which export a model runs on.

* ``backend = "torch"`` on the CPU: the model's fp32 ONNX export, in the user cache
  (``~/.cache/ragline/onnx``), written the first time the PyTorch model loads on this machine. It gives the
  model's own outputs (checked), so it is a speed-up, never a requirement: a model the recipe does not cover,
  or an export that fails, stays on PyTorch with a log line.
* ``backend = "onnx-int8"`` (the embedder's default on the CPU): the export quantised to int8 for this CPU,
  in the same user cache, so every index on the machine shares one export of a model. Its vectors are what
  the index holds, so a failure is a one-line :class:`~pipeline.errors.ModelUnavailableError` that names
  ``backend = "torch"`` as the way out, not a silent switch to other vectors. The loaded PyTorch model gets
  the int8 graph in place of its transformer (ingest embeds through it), and the folder gains the runner
  files when the recipe covers the model, so queries and reranking then run with no PyTorch import.
* A GPU device: PyTorch, no export.

Before a model loads, :func:`find_runner` opens a complete export (its spec written last) with no PyTorch;
after a PyTorch load, :func:`prepare_export` writes what is missing.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config import cache_home
from pipeline.errors import ModelUnavailableError, one_line
from pipeline.models.onnx.export import (
    FP32_TAG,
    MODEL_FILE,
    export_folder,
    prune_stale,
    require_match,
    target_module,
    write_export,
)
from pipeline.models.onnx.quantize import quantisation_recipe
from pipeline.models.onnx.runtime import SPEC_FILE, OnnxRunner, Spec, publish_spec, swap_in, write_tokenizer
from pipeline.models.weights import model_identity

INT8 = "onnx-int8"
INSTALL_HINT = "pip install onnxruntime onnx"
Runner = TypeVar("Runner", bound=OnnxRunner)
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where the models' exports live: one per model, backend and CPU recipe, shared by every index."""
    return cache_home() / "onnx"


def backend_tag(backend: str) -> str | None:
    """What a cache key of vectors must add for this backend: None for torch, so fp32 keys stay as they were."""
    return None if backend == "torch" else f"{backend}:{quantisation_recipe().tag}"


@dataclass(frozen=True)
class ModelPlan:
    """One model on one backend: ``kind`` ("embedder", "reranker") names it in messages, ``path`` is its
    resolved folder, ``cache_dir`` is where int8 exports go (None: the user cache)."""

    kind: str
    name: str
    path: str
    backend: str
    device: str = "cpu"
    cache_dir: Path | None = None

    @property
    def int8(self) -> bool:
        return self.backend == INT8

    @cached_property
    def identity(self) -> str:
        return model_identity(self.name, self.path)

    @cached_property
    def folder(self) -> Path | None:
        """The export this backend runs on (or will), None where it runs on PyTorch alone (a GPU)."""
        if self.int8:
            tag = quantisation_recipe().tag
            return export_folder(self.cache_dir or default_cache_dir(), self.name, self.identity, tag)
        if self.device != "cpu":
            return None
        return export_folder(default_cache_dir(), self.name, self.identity, FP32_TAG)

    def source(self) -> dict[str, str]:
        """What ``source.json`` records of the export (its path and recipe let a re-trained model's old
        export be pruned)."""
        recipe = quantisation_recipe().tag if self.int8 else FP32_TAG
        return {"name": self.name, "path": str(Path(self.path).resolve()), "identity": self.identity, "recipe": recipe}


def find_runner(plan: ModelPlan, load: Callable[[Path], Runner]) -> Runner | None:
    """The runner of the plan's export if it is complete and ONNX Runtime can load it; else None (logged
    when an export is there but damaged: PyTorch still works)."""
    folder = plan.folder
    if folder is None or not (folder / SPEC_FILE).is_file():
        return None
    try:
        return load(folder)
    except Exception as exc:  # noqa: BLE001 - onnxruntime missing or broken, a damaged export
        log.warning(
            "%s %s: the ONNX export in %s cannot be loaded (%s); it runs on PyTorch "
            "(delete that folder to export it again)",
            plan.kind,
            plan.name,
            folder,
            one_line(exc),
        )
        return None


def prepare_export(st_model: Any, plan: ModelPlan, runner: type[OnnxRunner], spec: Spec | None) -> bool:
    """After a PyTorch load: write the plan's export if it is missing (int8: and run the loaded model on it),
    then the runner files when ``spec`` (the recipe covers the model) and the runner gives the model's own
    outputs. True when the folder is runnable. int8 failures raise; fp32 ones are logged."""
    folder = plan.folder
    if folder is None:
        return False
    if plan.int8:
        _write_int8(st_model, plan, folder)
    elif spec is None:
        log.info("%s %s: no ONNX export for this model's modules; it runs on PyTorch", plan.kind, plan.name)
        return False
    elif not _write_fp32(st_model, plan, folder):
        return False
    if spec is None or getattr(st_model.tokenizer, "backend_tokenizer", None) is None:
        return False
    return (folder / SPEC_FILE).is_file() or _add_runner_files(st_model, plan, folder, runner, spec)


def _write_fp32(st_model: Any, plan: ModelPlan, folder: Path) -> bool:
    if (folder / MODEL_FILE).is_file():
        return True
    try:
        importlib.import_module("onnx")  # the exporter needs it; say so here rather than deep in torch
        write_export(st_model, target_module(st_model, plan.kind, plan.name), folder, plan.source(), None)
    except Exception as exc:  # noqa: BLE001 - the export is a speed-up: PyTorch still works
        log.warning("%s %s: no fp32 ONNX export (%s); it runs on PyTorch", plan.kind, plan.name, one_line(exc))
        return False
    prune_stale(folder, plan.source())
    return True


def _check_packages(plan: ModelPlan, exporting: bool) -> None:
    """A missing package is one line naming the model and the fix, before any slow work."""
    for package in ("onnxruntime", "onnx") if exporting else ("onnxruntime",):
        try:
            importlib.import_module(package)
        except ImportError:
            raise ModelUnavailableError(
                f"{plan.kind} model {plan.name!r}: backend 'onnx-int8' needs the package {package}: {INSTALL_HINT}"
                ' (or set backend = "torch")'
            ) from None


def _write_int8(st_model: Any, plan: ModelPlan, folder: Path) -> None:
    """Export and quantise unless cached, then swap the int8 graph into the loaded model; every failure is one
    line naming the model."""
    _check_packages(plan, exporting=False)
    target = target_module(st_model, plan.kind, plan.name)
    if not (folder / MODEL_FILE).is_file():
        _check_packages(plan, exporting=True)
        recipe = quantisation_recipe()
        log.info("exporting %s model %s to ONNX int8 (%s) in %s, once", plan.kind, plan.name, recipe.target, folder)
        try:
            write_export(st_model, target, folder, plan.source(), recipe)
        except Exception as exc:  # noqa: BLE001 - reported in one line
            raise ModelUnavailableError(
                f"{plan.kind} model {plan.name!r} cannot be exported to ONNX int8: {one_line(exc)}"
                ' (set backend = "torch" to run it with PyTorch)'
            ) from None
        prune_stale(folder, plan.source())
    try:
        swap_in(target.module, target.output, folder)
    except Exception as exc:  # noqa: BLE001 - reported in one line
        raise ModelUnavailableError(
            f"{plan.kind} model {plan.name!r}: the cached ONNX export in {folder} cannot be loaded "
            f"({one_line(exc)}); delete that folder to export it again"
        ) from None


def _add_runner_files(st_model: Any, plan: ModelPlan, folder: Path, runner: type[OnnxRunner], spec: Spec) -> bool:
    """Write the tokenizer and spec, once a runner built from them gives the loaded model's own outputs."""
    try:
        write_tokenizer(folder, st_model)
        check = runner(folder, spec, int(st_model.max_seq_length))
        require_match(*check.expected_and_got(st_model), "the torch-free runner")
        publish_spec(folder, spec)
    except Exception as exc:  # noqa: BLE001 - the runner is a speed-up: the loaded model still works
        log.warning("%s %s: no torch-free runner in %s (%s)", plan.kind, plan.name, folder, one_line(exc))
        return False
    return True

"""Dynamic int8 quantisation of an exported graph, with the recipe chosen for this CPU."""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

EXPORT_VERSION = 1
"""Part of every export's cache key: bump it when the export or quantisation recipe changes, so old exports
are not re-used."""


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


def quantise(source: Path, target: Path, recipe: QuantRecipe) -> None:
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

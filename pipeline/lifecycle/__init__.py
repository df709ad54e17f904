"""Whole-index operations: move an index to another store, re-embed it with another model, swap it in; list
and remove the folders (roots) it holds.

A move copies every chunk point as it is stored (its dense and BM25 vectors and its payload); BM25 IDF is
computed by the engine at query time over the points it holds, so the copy answers queries exactly as the
original does. A re-embedding computes new dense vectors from the stored chunk text (no file is read or
parsed again) into a new folder, swapped in only once it is complete and closed. ``verify`` proves an index
matches its folders, and repairs what does not.

May import: ``sync``, ``stages``, ``models`` (protocols), ``stores``, ``connectors`` and the ground floor.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from pipeline.config import AppConfig, IndexConfig, QdrantConfig
from pipeline.errors import ConfigError, RaglineError
from pipeline.models.protocols import Embedder
from pipeline.stages.chunking import chunk_id, indexed_text
from pipeline.stores import roots
from pipeline.stores.base import CHUNK_IDS, Readers, Store, StoredPoint, is_under
from pipeline.stores.schema import chunk_from_payload

COPY_BATCH = 256


class MigrationError(RaglineError):
    """The target cannot take the copy (it holds points already, or another model's index)."""


def _batches(source: Store, progress: bool) -> Iterator[list[StoredPoint]]:
    if not progress:
        yield from source.export_points(COPY_BATCH)
        return
    from tqdm import tqdm

    with tqdm(total=source.count(), desc="copying", unit="point", leave=False) as bar:
        for batch in source.export_points(COPY_BATCH):
            yield batch
            bar.update(len(batch))


def copy_index(source: Store, target: Store, progress: bool = False, allow_nonempty: bool = False) -> int:
    """Copy every chunk point of ``source`` into ``target``, then the saved config; returns the points copied.

    Both stores must hold the same :class:`~pipeline.stores.edge.IndexMeta` (model, dimension,
    BM25 k1/b, tokenizer). A target that already holds points is refused unless
    ``allow_nonempty``: points with the same id are overwritten, others are kept.
    """
    if not allow_nonempty:
        held = target.count()
        if held:
            raise MigrationError(
                f"{target.location} already holds {held} points: copy only into an empty index "
                f"(choose another collection, or delete this one first)"
            )
    if astuple(source.meta) != astuple(target.meta):
        raise MigrationError(
            f"cannot copy {source.location} ({_describe(source)}) into {target.location} ({_describe(target)}): "
            f"the index metadata differs"
        )
    return _transfer(source, target, progress, lambda batch: batch)


def reembed(source: Store, target: Store, embedder: Embedder, progress: bool = False) -> int:
    """Copy every chunk point with a new dense vector from ``embedder``, computed from the stored
    chunk text (and heading), as sync would have indexed it: no file is read or parsed again.
    BM25 vectors and payloads are copied as they are; each point gets the id sync gives it now
    (``chunk_id``: its document's key first), so ``target`` is created with ``chunk_ids = CHUNK_IDS``."""

    def with_new_vectors(batch: list[StoredPoint]) -> list[StoredPoint]:
        chunks = [chunk_from_payload(p.id, p.payload) for p in batch]
        vectors = embedder.embed([indexed_text(c, embedder.tokens, embedder.max_tokens) for c in chunks])
        return [
            dataclasses.replace(p, id=chunk_id(c.document_id, c.ordinal, c.text), dense=v.tolist())
            for p, c, v in zip(batch, chunks, vectors, strict=True)
        ]

    return _transfer(source, target, progress, with_new_vectors)


def _transfer(
    source: Store, target: Store, progress: bool, convert: Callable[[list[StoredPoint]], list[StoredPoint]]
) -> int:
    """Write every point of ``source`` (converted) into ``target``, then the saved config. The target is
    optimized as a sync leaves it: an Edge index copied into unmerged segments searched ~2x slower."""
    written = 0
    for batch in _batches(source, progress):
        target.import_points(convert(batch))
        written += len(batch)
    target.flush()
    target.optimize()
    config = source.saved_config()
    if config is not None:
        target.save_config(config)
    return written


def _describe(store: Store) -> str:
    m = store.meta
    return f"model {m.model!r}, dimension {m.dimension}, k1={m.k1}, b={m.b}, tokenizer {m.tokenizer}"


@dataclass(frozen=True)
class Moved:
    """A whole-index operation's outcome: points written, from where to where, how long it took."""

    points: int
    source: str
    target: str
    seconds: float
    model: str | None = None
    """The embedder of the written vectors, when they were re-embedded."""


def _server_config(config: AppConfig, url: str, collection: str | None) -> QdrantConfig:
    from pydantic import ValidationError

    if not url.strip():
        raise ConfigError("--to: give the Qdrant server URL, e.g. http://localhost:6333")
    settings = {**config.qdrant.model_dump(), "url": url.strip()}
    if collection is not None:
        settings["collection"] = collection
    try:
        return QdrantConfig.model_validate(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{first['loc'][0]} {settings.get(str(first['loc'][0]))!r}: {first['msg']}") from None


def migrate_to_server(config: AppConfig, url: str, collection: str | None = None, progress: bool = False) -> Moved:
    """Copy the embedded index into an empty collection on a Qdrant server, without re-embedding."""
    from pipeline.stores.edge import EdgeStore
    from pipeline.stores.server import ServerStore

    target_config = _server_config(config, url, collection)
    started = time.perf_counter()
    with EdgeStore.open(config.index.path) as source:
        # An existing collection is opened as it is, so that one holding points is refused
        # (by copy_index) before its model is compared with the source's.
        exists = ServerStore.exists(target_config)
        with ServerStore.open(target_config, None if exists else source.meta) as target:
            copied = copy_index(source, target, progress=progress)
            return Moved(copied, source.location, target.location, time.perf_counter() - started)


def reindex(config: AppConfig, embedder: Embedder, progress: bool = False) -> Moved:
    """Re-embed the embedded index's stored chunks with ``embedder`` into a new folder, then swap it in."""
    from pipeline.stores.edge import EdgeStore

    if config.qdrant.enabled:
        raise ConfigError("reindex works on the embedded index; for a Qdrant server, ingest into a new collection")
    started = time.perf_counter()
    folder = Path(config.index.path).expanduser().resolve()
    with EdgeStore.open(folder) as source:
        fresh, points = reembedded_copy(source, folder, embedder, progress, layout=config.index)
    swap_folder(folder, fresh)
    return Moved(points, str(folder), str(folder), time.perf_counter() - started, embedder.name)


def reembedded_copy(
    source: Store,
    folder: Path,
    embedder: Embedder,
    progress: bool = False,
    extra: dict[str, Any] | None = None,
    layout: IndexConfig | None = None,
) -> tuple[Path, int]:
    """``source`` (the open index in ``folder``) re-embedded into ``folder.reindex``, closed and complete, with
    ``extra`` files (name -> JSON) written into it; ``source`` keeps answering searches meanwhile. Returns the
    new folder and the points written. Settings ``ragline tune`` chose are not copied: they were fitted to the
    old vectors. ``layout``: the new index's storage and quantization (default: the old index's quantization)."""
    from pipeline.stores.edge import EdgeStore
    from pipeline.stores.folder import write_json_atomic

    fresh = folder.with_name(folder.name + ".reindex")
    shutil.rmtree(fresh, ignore_errors=True)  # what a killed run left
    quantized = (
        source.meta.quantization if layout is None else "" if layout.quantization == "none" else layout.quantization
    )
    meta = dataclasses.replace(
        source.meta, model=embedder.name, dimension=embedder.dimension, chunk_ids=CHUNK_IDS, quantization=quantized
    )
    with EdgeStore.open(fresh, meta, layout=layout) as target:
        points = reembed(source, target, embedder, progress=progress)
        target.save_roots(source.roots())
    for name, data in (extra or {}).items():
        write_json_atomic(fresh / name, data)
    return fresh, points


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd, rename_exchange = -100, 2
    return renameat2(at_cwd, os.fsencode(str(a)), at_cwd, os.fsencode(str(b)), rename_exchange) == 0


def swap_folder(folder: Path, fresh: Path) -> None:
    """Put the complete, closed index ``fresh`` in place of ``folder``. Where the system can exchange the two
    folders in one step, a process killed at any point leaves one whole index at ``folder``, old or new;
    elsewhere the old one is renamed away first and stays until the new one is in place."""
    if _exchange(fresh, folder):
        shutil.rmtree(fresh)  # it holds the old index now
        return
    retired = folder.with_name(folder.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    folder.rename(retired)
    fresh.rename(folder)
    shutil.rmtree(retired)


def remove_source(store: Store, target: str) -> list[str]:
    """Delete the documents of a root (by label or folder), or of a file or folder under one, and drop a root
    left with none from the record; returns what went, as ``label/path``."""
    everything = store.documents()
    known = roots.known(store.roots(), {s.root for s in everything.values()})
    root, prefix = roots.locate(target, known, must_exist=True)
    assert root is not None
    held = [s for s in everything.values() if s.root == root.uri]
    gone = sorted((s for s in held if not prefix or is_under(s.source, prefix)), key=lambda s: s.source)
    if not gone:
        raise RaglineError(f"the index holds nothing under {target!r} ({root.label}/{prefix})")
    for state in gone:
        store.delete_document(state.document_id)
    store.flush()
    store.optimize()
    if len(gone) == len(held):
        store.save_roots(roots.to_record({u: r for u, r in known.items() if u != root.uri}))
    return [f"{root.label}/{s.source}" for s in gone]


def held_sources(store: Store, readers: Readers = None) -> list[dict[str, Any]]:
    """Each root: its label, folder, documents, chunks, last sync, and whether its folder is there now.
    ``readers``: only what they may read, and no root they read nothing of, nor where a root lies on disk."""
    everything = store.documents(readers)
    held = {s.root for s in everything.values()}
    known = roots.known(store.roots(), held)
    return [
        {
            "label": r.label,
            "folder": (r.folder or r.uri) if readers is None else r.label,
            "documents": sum(1 for s in everything.values() if s.root == uri),
            "chunks": sum(s.points for s in everything.values() if s.root == uri),
            "last_sync": r.last_sync,
            "present": r.present,
        }
        for uri, r in sorted(known.items(), key=lambda item: item[1].label)
        if readers is None or uri in held
    ]

"""Move an index to another store (the embedded index to a Qdrant server, say) without re-embedding.

Every chunk point is copied as it is stored: its dense and BM25 vectors and its
payload. BM25 IDF is computed by the engine at query time over the points it
holds, so the copy answers queries exactly as the original does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import astuple

from pipeline.errors import RaglineError
from pipeline.models.protocols import Embedder
from pipeline.stores.edge import Store, StoredPoint, chunk_from_payload
from pipeline.stages.chunking import indexed_text

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
    BM25 vectors and payloads are copied as they are."""

    def with_new_vectors(batch: list[StoredPoint]) -> list[StoredPoint]:
        chunks = [chunk_from_payload(p.id, p.payload) for p in batch]
        vectors = embedder.embed([indexed_text(c, embedder.tokens, embedder.max_tokens) for c in chunks])
        return [dataclasses.replace(p, dense=v.tolist()) for p, v in zip(batch, vectors)]

    return _transfer(source, target, progress, with_new_vectors)


def _transfer(
    source: Store, target: Store, progress: bool, convert: Callable[[list[StoredPoint]], list[StoredPoint]]
) -> int:
    """Write every point of ``source`` (converted) into ``target``, then the saved config."""
    written = 0
    for batch in _batches(source, progress):
        target.import_points(convert(batch))
        written += len(batch)
    target.flush()
    config = source.saved_config()
    if config is not None:
        target.save_config(config)
    return written


def _describe(store: Store) -> str:
    m = store.meta
    return f"model {m.model!r}, dimension {m.dimension}, k1={m.k1}, b={m.b}, tokenizer {m.tokenizer}"

"""``ragline verify``: prove that the index matches its sources, and repair exactly what does not.

Sync keeps the index its own record (``pipeline.sync``); this checks that record against the folders and
against itself, point by point, with no model loaded:

* each file of each root: indexed, with the content hash of its bytes now; each indexed document: its file
  still there (else an ``orphan``);
* each document's points: ``chunk_count`` of them, one per ordinal, one content hash (else ``incomplete``);
  each point's id the one its document, place and text give (``chunk_id``);
* both vectors on every point: a dense vector of the index's dimension, finite and of unit length (or none yet,
  on a point a sync wrote for BM25 first and was stopped before it embedded: ``unembedded``), and a BM25
  vector wherever the chunk has BM25 terms;
* BM25 statistics: each term weight is ``tf (k1 + 1) / (tf + k1 (1 - b + b n / avg_len))`` for a whole ``tf``
  with the index's pivot, and the ``tf`` add up to the chunk's ``n_tokens`` (weights written with another
  pivot or another length, the drift the fixed pivot exists to prevent, do not);
* access labels: with access control on, each document's readers are those its rules and permissions give.

``repair`` syncs each root with the documents found wrong parsed and written again (their unchanged
neighbours untouched), which also removes orphans and rewrites stale readers, then checks again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connectors.loader import content_hash, read_stable
from connectors.parse_pool import load
from connectors.permissions import Mode
from pipeline.config import AppConfig
from pipeline.errors import EmptyFolderError, UnreadableFileError
from pipeline.models.protocols import Embedder
from pipeline.stages.chunking import chunk_id
from pipeline.stores import roots
from pipeline.stores.base import CHUNK_IDS, Store, StoredPoint
from pipeline.stores.schema import ACCESS, AWAITING_DENSE, DOC_STATE_FIELDS, PENDING
from pipeline.sync import SyncReport, file_grant, scan_folder, sync_folder
from pipeline.types import SparseVector, document_id

REQUIRED = (*(f for f in DOC_STATE_FIELDS if f != ACCESS), "text", "ordinal")
"""Payload fields every chunk point must carry (``access`` only with access control on)."""
REWRITE = frozenset({"changed", "missing", "incomplete", "id", "dense", "sparse", "bm25", "payload"})
"""What a repair parses and writes again; orphans, stale readers and points an interrupted sync left without
dense vectors (``unembedded``) a plain sync of the root mends."""


@dataclass(frozen=True)
class Difference:
    kind: str
    """changed, missing, orphan, incomplete, id, dense, unembedded, sparse, bm25, payload, access, folder."""
    root: str
    """The root's label."""
    source: str
    """The file's path under its root ("" for a whole root)."""
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    roots: int
    files: int
    documents: int
    points: int
    differences: tuple[Difference, ...]
    not_indexable: int = 0
    """Files on disk that sync skips too (no text, unreadable): not differences."""
    repaired: tuple[SyncReport, ...] = ()
    before: tuple[Difference, ...] = ()
    """With ``repair``: what was found before it (``differences`` is what is left after)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class _Document:
    source: str
    root: str
    hashes: set[str] = field(default_factory=set)
    chunk_count: int = 0
    ordinals: list[int] = field(default_factory=list)
    readers: set[tuple[str, ...] | None] = field(default_factory=set)
    faults: dict[str, str] = field(default_factory=dict)
    """kind -> the first point's detail."""


def verify(store: Store, config: AppConfig) -> VerifyReport:
    """Check the whole index against its roots' folders and against itself."""
    started = time.perf_counter()
    documents, points, strays = _read_points(store)
    known = roots.known(store.roots(), {d.root for d in documents.values()})
    differences: list[Difference] = list(strays)
    files = unindexable = 0
    for uri, root in sorted(known.items(), key=lambda item: item[1].label):
        held = {doc_id: d for doc_id, d in documents.items() if d.root == uri}
        folder = Path(root.folder) if root.folder else None
        if folder is None or not folder.is_dir():
            if held:
                where = root.folder or uri
                differences.append(Difference("folder", root.label, "", f"{where} is not a folder here (unmounted?)"))
            continue
        checked = _against_folder(folder, uri, root.label, held, config)
        files += checked.files
        unindexable += checked.not_indexable
        differences += checked.differences
    for doc in documents.values():
        label = known[doc.root].label if doc.root in known else roots.default_label(doc.root)
        differences += _document_faults(doc, label)
    order = {"folder": 0, "orphan": 1, "missing": 2, "changed": 3}
    differences.sort(key=lambda d: (d.root, order.get(d.kind, 4), d.source, d.kind))
    return VerifyReport(
        roots=len(known),
        files=files,
        documents=len(documents),
        points=points,
        differences=tuple(differences),
        not_indexable=unindexable,
        seconds=time.perf_counter() - started,
    )


def repair(store: Store, embedder: Embedder, config: AppConfig, found: VerifyReport) -> VerifyReport:
    """Re-sync exactly what ``found`` reports wrong, root by root, then verify again. A root whose folder is not
    here (an unmounted share) is left as it is, and stays reported."""
    known = roots.by_label(roots.known(store.roots(), {s.root for s in store.documents().values()}))
    reports = []
    for label in sorted({d.root for d in found.differences if d.kind != "folder"}):
        root = known.get(label)
        if root is None or not root.folder or not Path(root.folder).is_dir():
            continue
        redo = {d.source for d in found.differences if d.root == label and d.kind in REWRITE}
        try:
            reports.append(sync_folder(root.folder, store, embedder, config, redo=redo))
        except EmptyFolderError:
            continue  # every file gone: removing them all is `ingest --allow-empty`'s to decide, not a repair's
    store.flush()
    after = verify(store, config)
    return VerifyReport(
        after.roots,
        after.files,
        after.documents,
        after.points,
        after.differences,
        after.not_indexable,
        tuple(reports),
        found.differences,
        found.seconds + after.seconds + sum(r.seconds for r in reports),
    )


def _read_points(store: Store) -> tuple[dict[str, _Document], int, list[Difference]]:
    """Every point, page by page: each document's summary and the faults of each point (no point is kept)."""
    documents: dict[str, _Document] = {}
    strays: list[Difference] = []
    meta = store.meta
    keyed = meta.chunk_ids == CHUNK_IDS
    count = 0
    for batch in store.export_points():
        for point in batch:
            count += 1
            payload = point.payload
            missing = [name for name in REQUIRED if name not in payload]
            if "document_id" in missing or "source" in missing:
                strays.append(
                    Difference("payload", "", str(payload.get("source", "")), f"point {point.id}: no document")
                )
                continue
            doc = documents.setdefault(
                payload["document_id"], _Document(str(payload["source"]), str(payload.get("root", "")))
            )
            if missing:
                doc.faults.setdefault("payload", f"point {point.id} lacks {', '.join(missing)}")
                continue
            doc.hashes.add(str(payload["content_hash"]))
            doc.chunk_count = max(doc.chunk_count, int(payload["chunk_count"]))
            doc.ordinals.append(int(payload["ordinal"]))
            readers = payload.get(ACCESS)
            doc.readers.add(tuple(sorted(readers)) if isinstance(readers, list) else None)
            for kind, detail in _point_faults(point, meta.dimension, keyed, meta.k1, meta.b, meta.avg_len):
                doc.faults.setdefault(kind, detail)
    if count != store.count():
        strays.append(Difference("payload", "", "", f"the engine counts {store.count()} points, a full read {count}"))
    return documents, count, strays


def _point_faults(
    point: StoredPoint, dimension: int, keyed: bool, k1: float, b: float, avg_len: float
) -> Iterable[tuple[str, str]]:
    payload = point.payload
    if keyed and point.id != chunk_id(payload["document_id"], int(payload["ordinal"]), str(payload["text"])):
        yield "id", f"point {point.id} is not the id of chunk {payload['ordinal']}'s text"
    dense = np.asarray(point.dense, dtype=np.float64)
    if not dense.size and payload.get(PENDING) == AWAITING_DENSE:
        yield "unembedded", f"point {point.id} waits for its dense vector (BM25 finds it; a sync adds the vector)"
    elif dense.size != dimension:
        yield "dense", f"point {point.id} has a dense vector of dimension {dense.size}, not {dimension}"
    elif not np.all(np.isfinite(dense)) or abs(float(np.linalg.norm(dense)) - 1.0) > 1e-3:
        yield "dense", f"point {point.id} has a dense vector that is not of unit length"
    n_tokens = int(payload["n_tokens"])
    if n_tokens and not point.sparse.indices:
        yield "sparse", f"point {point.id} has {n_tokens} BM25 terms but no BM25 vector"
    elif avg_len and n_tokens and not weights_fit(point.sparse, n_tokens, k1, b, avg_len):
        yield "bm25", f"point {point.id}'s BM25 weights do not fit its {n_tokens} terms and the pivot {avg_len:g}"


def weights_fit(vector: SparseVector, n_tokens: int, k1: float, b: float, avg_len: float) -> bool:
    """Whether BM25 weights were written for a chunk of ``n_tokens`` terms with this pivot: each weight is the
    saturation of a whole term frequency (or, where two terms hash alike, of two), and they add up to
    ``n_tokens``."""
    norm = k1 * (1 - b + b * n_tokens / avg_len)

    def saturation(tf: int) -> float:
        return tf * (k1 + 1) / (tf + norm)

    total = 0
    for weight in vector.values:
        tf = weight * norm / (k1 + 1 - weight) if weight < k1 + 1 else math.inf
        whole = round(tf) if math.isfinite(tf) else 0
        if whole >= 1 and abs(tf - whole) <= 0.02 + 1e-4 * tf:
            total += whole
            continue
        pair = next(
            (x + y for x in range(1, 33) for y in range(x, 33) if abs(saturation(x) + saturation(y) - weight) < 1e-4),
            None,
        )
        if pair is None:
            return False
        total += pair
    return total == n_tokens


@dataclass(frozen=True)
class _Checked:
    files: int
    not_indexable: int
    differences: list[Difference]


def _against_folder(folder: Path, uri: str, label: str, held: dict[str, _Document], config: AppConfig) -> _Checked:
    """The root's files against its documents."""
    scan = scan_folder(folder, config)  # as sync scans it: the index itself, if it lies inside, left out
    differences: list[Difference] = []
    access = config.access
    folders: dict[Path, Mode] = {}  # each folder's mode read once
    present = {document_id(uri, s.source) for s in scan.skipped}
    unindexable = 0
    for file in scan.files:
        doc_id = document_id(uri, file.source)
        present.add(doc_id)
        doc = held.get(doc_id)
        if doc is None:
            outcome = load(file)
            if outcome.document is None or not outcome.document.text.strip():
                unindexable += 1  # sync skips it as well, and says why
            else:
                differences.append(Difference("missing", label, file.source, "on disk, not in the index"))
            continue
        try:
            digest = content_hash(read_stable(file))
        except UnreadableFileError:
            continue  # sync keeps the indexed version of a file it cannot read
        if doc.hashes != {digest}:
            differences.append(Difference("changed", label, file.source, "its content differs from the index's"))
        if access.enabled:
            wanted = file_grant(file.path, folder, access, folders).readers
            if doc.readers != {wanted}:
                had = ", ".join(sorted({p for r in doc.readers if r for p in r})) or "nobody"
                differences.append(
                    Difference(
                        "access", label, file.source, f"readable by {had}, should be {', '.join(wanted) or 'admins'}"
                    )
                )
    for doc_id, doc in held.items():
        if doc_id not in present:
            differences.append(Difference("orphan", label, doc.source, "in the index, no such file"))
    return _Checked(len(scan.files), unindexable, differences)


def _document_faults(doc: _Document, label: str) -> list[Difference]:
    out = [Difference(kind, label, doc.source, detail) for kind, detail in sorted(doc.faults.items())]
    if len(doc.hashes) > 1 or sorted(doc.ordinals) != list(range(doc.chunk_count)):
        seen = f"{len(doc.ordinals)} of {doc.chunk_count} chunks" + (
            f", {len(doc.hashes)} versions" if len(doc.hashes) > 1 else ""
        )
        out.append(Difference("incomplete", label, doc.source, seen))
    return out

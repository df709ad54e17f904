"""An on-disk cache of dense vectors, keyed by the model's weights and the exact text.

Rebuilding an index with other BM25 or fusion settings (an evaluation sweep, a
new index folder for the same corpus) should not pay for the embedding again.
The key includes the size and modification time of the model's weight files,
so a model re-trained into the same folder never serves stale vectors.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from pipeline.config import EmbeddingConfig
from pipeline.models.backends import backend_tag
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.weights import model_identity


class CachedEmbedder(SentenceTransformerEmbedder):
    """The sentence-transformers embedder, reading and writing vectors through SQLite."""

    def __init__(self, config: EmbeddingConfig | None, cache_file: str | Path, model_cache: Path | None = None) -> None:
        super().__init__(config, model_cache)
        self.cache_file = Path(cache_file)
        self._db: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        self._db_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            # The HTTP API embeds from worker threads; every use of the connection holds _db_lock.
            self._db = sqlite3.connect(self.cache_file, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
        return self._db

    @cached_property
    def identity(self) -> bytes:
        """The weights, plus the backend unless it is torch (so fp32 keys stay valid): int8 vectors only
        approximate fp32 ones, and the two must never be served for each other."""
        tag = backend_tag(self.config.backend)
        return (model_identity(self.name, self.path) + (f"|{tag}" if tag else "")).encode()

    def _keys(self, texts: Sequence[str]) -> list[bytes]:
        return [hashlib.sha256(self.identity + b"\x00" + t.encode("utf-8")).digest() for t in texts]

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return super().embed(texts)
        keys = self._keys(texts)
        found: dict[bytes, np.ndarray] = {}
        with self._db_lock:
            db = self._connection()
            for begin in range(0, len(keys), 500):
                batch = keys[begin : begin + 500]
                marks = ",".join("?" * len(batch))
                for key, blob in db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", batch):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        self.hits += len(texts) - sum(1 for k in keys if k not in found)
        self.misses += len(missing)
        if missing:
            vectors = super().embed(missing, progress)
            new_keys = self._keys(missing)
            with self._db_lock, db:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                    [(k, v.astype(np.float32).tobytes()) for k, v in zip(new_keys, vectors, strict=True)],
                )
            found.update(zip(new_keys, vectors, strict=True))
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

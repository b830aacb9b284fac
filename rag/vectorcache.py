"""Content-addressed vector cache: every vector the model computes, kept by (model, SHA-256 of the text).

    indexes/<name>/vectors/cache.sqlite3     outside versions/, so no version copies it

txtai builds its vectors class from the embeddings config. A writer opens the index with
`method: rag.vectorcache.CachedVectors` and `vectorcache: {path, model}` (rag.index does it; both
are left out of the saved config.json, so the index stays a plain txtai index). Each batch txtai
embeds is looked up first; only texts the cache lacks go to the model, once per distinct text, and
are committed before txtai sees them. So a killed ingest keeps the batches it embedded, a rebuild
or an index-settings change embeds nothing, an edited paragraph embeds only the chunks whose text
changed, and identical chunks in several files are embedded once.

Garbage: a vector that no kept version holds is deleted by `collect` once it is older than
`keep_seconds` (unreferenced vectors of a killed ingest stay for its resume). rag.ingest collects
after a publish when the cache holds more than twice the live chunks (`due`), so the sweep, which
reads the texts of the kept versions, costs O(1) per embedded chunk, amortized.
"""

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from txtai.pipeline import Tokenizer
from txtai.vectors import Vectors, VectorsFactory

FILE = "cache.sqlite3"
METHOD = "rag.vectorcache.CachedVectors"
# Settings of the embeddings config that change the vector of a text (besides the model itself)
VECTOR_SETTINGS = ("method", "tokenizer", "maxlength", "tokenize", "instructions", "dimensionality", "quantize", "vectors", "encodeargs")
# Lookups and inserts go in groups of this many keys (below SQLite's bound-variable limit)
GROUP = 500


def model_key(model: str, settings: dict) -> str:
    """Identifies the vectors of one model with the settings that change them."""
    return json.dumps({"model": model, **{key: settings.get(key) for key in VECTOR_SETTINGS}}, sort_keys=True, default=str)


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def embedded_text(text: str, settings: dict) -> str:
    """The text the model is given for a stored passage (txtai's Vectors.prepare for category "data")."""
    if settings.get("tokenize"):
        text = " ".join(Tokenizer.tokenize(text))
    instruction = (settings.get("instructions") or {}).get("data")
    return f"{instruction}{text}" if instruction else text


class VectorCache:
    """One SQLite table of vectors by (model, text hash); append-only but for `collect`."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS models (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, dtype TEXT, dimensions INTEGER);
        CREATE TABLE IF NOT EXISTS vectors (
            model INTEGER NOT NULL, hash BLOB NOT NULL, vector BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (model, hash)
        );
        CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT OR IGNORE INTO state VALUES ('rows', 0), ('floor', 0);
    """

    def __init__(self, folder: Path, model: str):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE
        # A writer killed mid-commit leaves the WAL, which the next open replays: committed batches survive
        self.connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        with self.transaction():
            for statement in self.SCHEMA.split(";"):
                if statement.strip():
                    self.connection.execute(statement)
            self.connection.execute("INSERT OR IGNORE INTO models (key) VALUES (?)", [model])
        self.model, self.dtype, self.dimensions = self.connection.execute("SELECT id, dtype, dimensions FROM models WHERE key = ?", [model]).fetchone()

    def transaction(self):
        return Transaction(self.connection)

    def get(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among keys."""
        found = {}
        if self.dtype is None:
            return found
        for start in range(0, len(keys), GROUP):
            group = keys[start : start + GROUP]
            rows = self.connection.execute(
                f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({','.join('?' * len(group))})", [self.model, *group]
            )
            found.update((key, np.frombuffer(vector, dtype=self.dtype)) for key, vector in rows)
        return found

    def put(self, keys: list[bytes], vectors: np.ndarray):
        """Stores vectors (one row per key) durably."""
        now = time.time()
        with self.transaction():
            if self.dtype is None:
                self.dtype, self.dimensions = vectors.dtype.str, vectors.shape[1]
                self.connection.execute("UPDATE models SET dtype = ?, dimensions = ? WHERE id = ?", [self.dtype, self.dimensions, self.model])
            cursor = self.connection.executemany(
                "INSERT OR IGNORE INTO vectors VALUES (?, ?, ?, ?)",
                ((self.model, key, np.ascontiguousarray(vector, dtype=self.dtype).tobytes(), now) for key, vector in zip(keys, vectors)),
            )
            self.connection.execute("UPDATE state SET value = value + ? WHERE key = 'rows'", [cursor.rowcount])

    def count(self) -> int:
        return self.state("rows")

    def state(self, key: str) -> int:
        return self.connection.execute("SELECT value FROM state WHERE key = ?", [key]).fetchone()[0]

    def due(self, live: int) -> bool:
        """True when the cache holds more than twice `live` vectors (the chunks of the kept
        versions), and twice what the last collection left."""
        return self.count() > max(2 * live + 1000, self.state("floor"))

    def collect(self, live: Iterable[bytes], keep_seconds: float) -> int:
        """Deletes the vectors older than keep_seconds that are of another model or whose key is
        not in `live`. Returns the number deleted."""
        cutoff = time.time() - keep_seconds
        with self.transaction():
            self.connection.execute("CREATE TEMP TABLE IF NOT EXISTS live (hash BLOB PRIMARY KEY)")
            self.connection.execute("DELETE FROM live")
            self.connection.executemany("INSERT OR IGNORE INTO live VALUES (?)", ((key,) for key in live))
            deleted = self.connection.execute(
                "DELETE FROM vectors WHERE created < ? AND (model != ? OR hash NOT IN (SELECT hash FROM live))", [cutoff, self.model]
            ).rowcount
            self.connection.execute("DELETE FROM live")
            rows = self.connection.execute("SELECT count(*) FROM vectors").fetchone()[0]
            self.connection.execute("UPDATE state SET value = ? WHERE key = 'rows'", [rows])
            self.connection.execute("UPDATE state SET value = ? WHERE key = 'floor'", [2 * rows])
        return deleted

    def close(self):
        self.connection.close()


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *_):
        self.connection.execute("ROLLBACK" if kind else "COMMIT")


def version_keys(version: Path, settings: dict) -> Iterable[bytes]:
    """Cache keys of the passages stored in an index version (txtai's content database)."""
    database = Path(version) / "documents"
    if not database.exists():
        return
    connection = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        for (text,) in connection.execute("SELECT text FROM sections"):
            if isinstance(text, str):
                yield text_key(embedded_text(text, settings))
    finally:
        connection.close()


class CachedVectors(Vectors):
    """txtai vectors that look passages up in the VectorCache before encoding them.

    Wraps the vectors class txtai would pick for the same config (`vectorcache.method`, inferred
    when None), so the model, its cache entry in txtai's models dict and the vectors are the same.
    Queries are never cached. `encoded` and `reused` count passages since creation.
    """

    def __init__(self, config, scoring, models):
        options = config["vectorcache"]
        inner = {key: value for key, value in config.items() if key not in ("method", "vectorcache")}
        if options.get("method"):
            inner["method"] = options["method"]
        self.inner = VectorsFactory.create(inner, scoring, models)
        self.cache = VectorCache(options["path"], options["model"])
        self.encoded = self.reused = 0
        super().__init__(config, scoring, models)

    def loadmodel(self, path):
        return self.inner.model

    def encode(self, data, category=None):
        return self.inner.encode(data, category)

    def vectorize(self, data, category=None):
        if category != "data" or not data or not all(isinstance(text, str) for text in data):
            return super().vectorize(data, category)
        keys = [text_key(text) for text in data]
        found = self.cache.get(keys)
        missing = {key: text for key, text in zip(keys, data) if key not in found}
        if missing:
            vectors = super().vectorize(list(missing.values()), category)
            self.cache.put(list(missing), vectors)
            found.update(zip(missing, vectors))
        self.encoded += len(missing)
        self.reused += len(keys) - len(missing)
        return np.stack([found[key] for key in keys])

    def close(self):
        self.cache.close()
        self.inner.close()
        super().close()

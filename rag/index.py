"""The txtai Embeddings index of one store version: open, change, save, query.

An index is opened with classes of ours that txtai resolves from the config by dotted path: the
BM25 of rag.scoring (a faster candidate selection) always; the FAISS below when the settings carry
`annswitch` (the size switch of `index.ann`: HNSW for large indexes, exact for small ones); and for
writers the vectors of rag.vectorcache (embeds only texts it has not seen). None is written to the
saved config.json, which stays what config.yml declares, so any index opens with or without them.
"""

import json
import logging
import mmap
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
from txtai import Embeddings
from txtai.ann.dense.faiss import Faiss as TxtaiFaiss
from txtai.embeddings.index.configuration import Configuration
from txtai.embeddings.search import Hybrid, Search

from . import scoring, vectorcache

# Metadata stored with every chunk; all are queryable with txtai SQL (`where source = 'x'`).
COLUMNS = [
    "source",
    "collection",
    "document",
    "title",
    "heading",
    "page",
    "chunk",
    "filetype",
    "char_start",
    "char_end",
    "hash",
    "tokens",
    "ingested_at",
    "prefix",
]

FAISS = "rag.index.Faiss"
BLOCK = 65_536  # vectors added to FAISS at a time when building

logging.getLogger("faiss.loader").setLevel(logging.WARNING)

# Loaded models shared by every Embeddings instance of this process (txtai's models cache)
MODELS = {}


def has_index(path: Path) -> bool:
    return (Path(path) / "config.json").exists()


def cached_settings(settings: dict, folder: Path, model: str) -> dict:
    """Settings of a writer whose vectors go through the VectorCache in folder; `model` names the
    embedding model as configured (the cache key does not depend on where it is installed)."""
    cache = {"path": str(folder), "model": vectorcache.model_key(model, settings), "method": settings.get("method")}
    return {**settings, "vectorcache": cache}


def runtime(settings: dict) -> dict:
    """The settings txtai is given: our scoring, FAISS (with `annswitch`) and (with `vectorcache`)
    vectors classes."""
    settings = dict(settings)
    if settings.get("annswitch") and settings.get("backend", "faiss") == "faiss":
        settings["backend"] = FAISS
    if settings.get("vectorcache"):
        settings["method"] = vectorcache.METHOD
    bm25 = settings.get("scoring")
    if isinstance(bm25, dict) and bm25.get("method", "bm25") == "bm25" and bm25.get("terms"):
        settings["scoring"] = {**bm25, "method": scoring.METHOD}
    return settings


def open_embeddings(path: Path | None, settings: dict) -> Embeddings:
    """Loads the txtai index at path, or creates an empty one with settings.

    The embedding model always comes from `settings` (a local path), so an index copied to
    another machine or container does not try to reach a model hub.
    """
    active = runtime(settings)
    if not (path and has_index(path)):
        return Embeddings(active, models=MODELS)
    saved = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    overrides = {key: active[key] for key in ("path", "method", "vectorcache", "annswitch") if key in active}
    if active.get("backend") == FAISS and saved.get("backend", "faiss") == "faiss":
        overrides["backend"] = FAISS
    overrides.update(runtime({"scoring": saved["scoring"]}) if saved.get("scoring") else {})
    return Embeddings(models=MODELS).load(str(path), config=overrides)


def save_embeddings(embeddings: Embeddings, path: Path):
    """Saves into path (a private work folder); an empty index leaves the folder empty."""
    if embeddings.config and embeddings.count():
        embeddings.save(str(path))
        Configuration().save(portable(embeddings.config), str(path))
        return
    for entry in Path(path).iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def portable(config: dict) -> dict:
    """The config as config.yml declared it: txtai's own scoring and vectors classes."""
    config = dict(config)
    if config.pop("annswitch", None) is not None and config.get("backend") == FAISS:
        config["backend"] = "faiss"
    cache = config.pop("vectorcache", None)
    if cache:
        config.pop("method", None)
        if cache.get("method"):
            config["method"] = cache["method"]
    if isinstance(config.get("scoring"), dict) and config["scoring"].get("method") == scoring.METHOD:
        config["scoring"] = {**config["scoring"], "method": "bm25"}
    return config


class Faiss(TxtaiFaiss):
    """txtai's FAISS with the size switch of `index.ann` (settings key `annswitch`): an index built
    with at least `hnsw_above` vectors is HNSW (`IDMap2,HNSW<m>`, built with `ef_construction`),
    searched with efSearch of at least max(ef_search, 2 x depth); smaller ones keep the configured
    components (exact by default).
    `method: exact` or `hnsw` forces one. The saved config names txtai's faiss, which loads both."""

    def setting(self, name, default=None):
        return (self.config.get("faiss") or {}).get(name, default)

    @property
    def switch(self) -> dict:
        return self.config.get("annswitch") or {}

    def configure(self, count, train):
        if hnsw(self.switch, count):
            return f"IDMap2,HNSW{self.switch.get('m', 32)}"
        return super().configure(count, train)

    def create(self, embeddings, params):
        index = super().create(embeddings, params)
        inner = hnsw_of(index)
        if inner is not None:
            inner.hnsw.efConstruction = self.switch.get("ef_construction", 128)
        return index

    def index(self, embeddings):
        if not isinstance(embeddings, np.memmap) or self.setting("sample"):
            super().index(embeddings)
        else:  # txtai's, adding in blocks and releasing each block's pages of the memmap buffer
            params = self.configure(embeddings.shape[0], embeddings.shape[0])
            self.backend = self.create(embeddings, params)
            self.backend.train(embeddings)
            for start in range(0, embeddings.shape[0], BLOCK):
                block = np.ascontiguousarray(embeddings[start : start + BLOCK])
                self.backend.add_with_ids(block, np.arange(start, start + len(block), dtype=np.int64))
                release(embeddings, start, len(block))
            self.config["offset"] = embeddings.shape[0]
            self.metadata({"components": params})
        self.tune(0)

    def load(self, path):
        super().load(path)
        self.tune(0)

    def tune(self, depth: int):
        """Sets efSearch of an HNSW index for a search of `depth` results."""
        inner = hnsw_of(self.backend)
        if inner is not None:
            inner.hnsw.efSearch = ef_search(self.config, depth)

    def search(self, queries, limit):
        self.tune(limit)
        return super().search(queries, limit)


def release(array: np.memmap, start: int, rows: int):
    """Drops the resident pages of rows of a memmap (file-backed: they are read again if needed)."""
    handle = getattr(array, "_mmap", None)
    if handle is None or not hasattr(handle, "madvise"):
        return
    row = array.strides[0]
    first = (array.offset + start * row) // mmap.PAGESIZE * mmap.PAGESIZE
    last = array.offset + (start + rows) * row
    try:
        handle.madvise(mmap.MADV_DONTNEED, first, last - first)
    except (OSError, ValueError):
        pass


def hnsw(switch: dict, count: int) -> bool:
    """True when an index of count vectors is HNSW under the size switch."""
    method = switch.get("method", "auto")
    return method == "hnsw" or (method == "auto" and count >= switch.get("hnsw_above", 100_000))


def ef_search(config: dict, depth: int) -> int:
    """efSearch of an HNSW search of `depth` results: index.ann.ef_search, at least 2 x depth."""
    return max((config.get("annswitch") or {}).get("ef_search", 512), 2 * depth)


def hnsw_of(index):
    """The HNSW index inside a FAISS index (under its id map), or None."""
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    return inner if hasattr(inner, "hnsw") else None


class OwnIndexSearch(Search):
    """txtai's search, except that weights of 1 (dense) or 0 (keyword) on a hybrid index run only
    the index whose score counts: txtai runs both and drops one in the fusion. The same fusion
    then ranks the one side, so results are txtai's. One query's BM25 search runs in the calling
    thread (txtai starts a thread pool per call).

    With a `lock`, only the content database (one SQLite cursor) takes turns on it: query encoding,
    FAISS and BM25, which are safe to share, run in parallel across threads."""

    def __init__(self, embeddings, lock=None):
        super().__init__(embeddings)
        if lock is not None and self.database is not None:
            self.database = LockedDatabase(self.database, lock)

    def search(self, queries, limit, weights, index):
        if index or not (self.ann and self.scoring) or weights not in (0.0, 1.0):
            return super().search(queries, limit, weights, index)
        none = [[] for _ in queries]
        # The top `limit` of exact search are those of the 10 x limit txtai asks of a hybrid; BM25
        # is asked for as many as in a hybrid, since its candidates depend on it
        dense = self.dense(queries, limit) if weights == 1.0 else none
        sparse = self.sparse(queries, limit * 10) if weights == 0.0 else none
        fusion = Hybrid(self.scoring)
        return [fusion(pair, [weights, 1 - weights], limit) for pair in zip(dense, sparse)]

    def sparse(self, queries, limit):
        if len(queries) != 1:
            return super().sparse(queries, limit)
        return self.resolve([[(uid, score) for uid, score in self.scoring.search(queries[0], limit) if score > 0]])


class LockedDatabase:
    """A txtai content database whose searches take turns on a lock (its other methods as they are)."""

    def __init__(self, database, lock):
        self.database, self.lock = database, lock

    def search(self, *args, **kwargs):
        with self.lock:
            return self.database.search(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.database, name)


def read_content(folder: Path):
    """A read-only connection to an index folder's content database (txtai's SQLite `documents`),
    closed at the end of a `with` block."""
    database = Path(folder) / "documents"
    return closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True))


class Counted:
    """Iterates over rows, counting them in `count` (txtai consumes the rows it indexes)."""

    def __init__(self, rows):
        self.rows, self.count = rows, 0

    def __iter__(self):
        for row in self.rows:
            self.count += 1
            yield row


def folder_size(path: Path) -> int:
    """Bytes of the files under path."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

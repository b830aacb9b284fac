"""The txtai Embeddings index of one store version: open, change, save, query.

An index is opened with two classes of ours that txtai resolves from the config by dotted path:
the BM25 of rag.scoring (a faster candidate selection) always, and for writers the vectors of
rag.vectorcache (embeds only texts it has not seen). Neither is written to the saved config.json,
which stays what config.yml declares, so any index opens with or without them.
"""

import json
import logging
import shutil
from pathlib import Path

from txtai import Embeddings
from txtai.embeddings.search import Hybrid, Search
from txtai.embeddings.index.configuration import Configuration

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
    """The settings txtai is given: our scoring and (with `vectorcache`) vectors classes."""
    settings = dict(settings)
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
    overrides = {key: active[key] for key in ("path", "method", "vectorcache") if key in active}
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
    cache = config.pop("vectorcache", None)
    if cache:
        config.pop("method", None)
        if cache.get("method"):
            config["method"] = cache["method"]
    if isinstance(config.get("scoring"), dict) and config["scoring"].get("method") == scoring.METHOD:
        config["scoring"] = {**config["scoring"], "method": "bm25"}
    return config


class OwnIndexSearch(Search):
    """txtai's search, except that weights of 1 (dense) or 0 (keyword) on a hybrid index run only
    the index whose score counts: txtai runs both and drops one in the fusion. The same fusion
    then ranks the one side, so results are txtai's. One query's BM25 search runs in the calling
    thread (txtai starts a thread pool per call)."""

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


def folder_size(path: Path) -> int:
    """Bytes of the files under path."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

"""The txtai Embeddings index of one store version: open, change, save, query."""

import logging
import shutil
from pathlib import Path

from txtai import Embeddings

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


def open_embeddings(path: Path | None, settings: dict) -> Embeddings:
    """Loads the txtai index at path, or creates an empty one with settings.

    The embedding model always comes from `settings` (a local path), so an index copied to
    another machine or container does not try to reach a model hub.
    """
    embeddings = Embeddings(settings, models=MODELS)
    if path and has_index(path):
        embeddings.load(str(path), config={"path": settings["path"]})
    return embeddings


def save_embeddings(embeddings: Embeddings, path: Path):
    """Saves into path (a private work folder); an empty index leaves the folder empty."""
    if embeddings.config and embeddings.count():
        embeddings.save(str(path))
        return
    for entry in Path(path).iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

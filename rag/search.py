"""Search over the live index version: hybrid, dense or keyword, with SQL filters."""

import threading
import time
from pathlib import Path

from .config import Config
from .index import COLUMNS, has_index, open_embeddings
from .store import Store, read_json
from .types import Hit

MODES = ("hybrid", "dense", "keyword")


class SearchError(Exception):
    """A search that cannot run: bad mode, bad filter, no index."""


class Searcher:
    """Answers searches from the live index version and follows new versions as they are published.

    Thread-safe: txtai Embeddings is not (one SQLite cursor), so searches of one process take
    turns on a lock, which the swap to a newly published version also takes. Loading a new version
    happens outside the lock, so searches never wait for an ingest or a load.
    """

    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.index_dir, config.index.keep_versions)
        self.settings = config.embeddings_settings()
        self.embeddings = None
        self.version = None
        self.manifest = {}
        self.loaded_at = None
        self.lock = threading.RLock()
        self.loading = threading.Lock()
        self.checked = 0.0

    def refresh(self, force: bool = False) -> bool:
        """Loads the live version if it changed since the last look. Returns True if swapped."""
        now = time.monotonic()
        if not force and now - self.checked < 0.5:
            return False
        self.checked = now
        current = self.store.current()
        if current is None or current.name == self.version:
            return False
        # One thread loads; the others keep searching the old version meanwhile (unless forced)
        if not self.loading.acquire(blocking=force or self.version is None):
            return False
        try:
            if current.name == self.version:
                return False
            embeddings = open_embeddings(current, self.settings) if has_index(current) else None
            manifest = read_json(current / "manifest.json")
            with self.lock:
                old = self.embeddings
                self.embeddings, self.version, self.manifest = embeddings, current.name, manifest
                self.loaded_at = time.time()
                if old is not None:
                    old.close()
            return True
        finally:
            self.loading.release()

    @property
    def ready(self) -> bool:
        self.refresh()
        return self.version is not None

    def search(self, query: str, limit: int | None = None, mode: str | None = None, where: str | None = None) -> list[Hit]:
        """Ranked passages for query. `where` is a txtai SQL condition on metadata columns."""
        mode = mode or self.config.search.mode
        if mode not in MODES:
            raise SearchError(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")
        limit = limit or self.config.search.limit
        if not query or not query.strip():
            raise SearchError("empty query")
        self.refresh()
        if self.version is None:
            raise SearchError(f"no index at {self.store.path}: run `rag ingest` first")
        if self.embeddings is None:
            return []

        weights = {"hybrid": self.config.search.weights, "dense": 1.0, "keyword": 0.0}[mode]
        candidates = max(self.config.search.candidates, limit)
        sql = (
            f"select id, text, score, {', '.join(COLUMNS)} from txtai "
            f"where similar(:query, '{candidates}', '{weights}')"
            + (f" and ({where})" if where else "")
            + f" limit {int(limit)}"
        )
        try:
            with self.lock:
                rows = self.embeddings.search(sql, parameters={"query": query}) if self.embeddings else []
        except Exception as error:
            raise SearchError(f"search failed: {error}") from error
        return [to_hit(row) for row in rows if mode != "keyword" or row["score"] > 0]


def to_hit(row: dict) -> Hit:
    """A txtai result row to a Hit; the context prefix is stripped from the passage text."""
    prefix = int(row.get("prefix") or 0)
    return Hit(
        id=row["id"],
        score=float(row["score"]),
        text=row["text"][prefix:],
        source=row.get("source") or "",
        document=row.get("document") or "",
        title=row.get("title") or "",
        heading=row.get("heading") or "",
        page=row.get("page"),
        chunk=int(row.get("chunk") or 0),
        filetype=row.get("filetype") or "",
        start=int(row.get("char_start") or 0),
        end=int(row.get("char_end") or 0),
        extra={"collection": row.get("collection"), "ingested_at": row.get("ingested_at")},
    )


def status(config: Config) -> dict:
    """Index name, model, documents, chunks, size on disk, last ingest."""
    store = Store(config.index_dir, config.index.keep_versions)
    current = store.current()
    manifest = read_json(current / "manifest.json") if current else {}
    documents = manifest.get("documents", {})
    return {
        "index": config.index.name,
        "path": str(store.path),
        "model": config.index.embeddings["path"],
        "version": current.name if current else None,
        "documents": len(documents),
        "chunks": sum(d["chunks"] for d in documents.values()),
        "size_bytes": folder_size(current) if current else 0,
        "last_ingest": manifest.get("updated_at"),
    }


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())

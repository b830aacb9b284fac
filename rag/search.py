"""Search over the live index version: hybrid, dense or keyword, with SQL filters.

    searcher = Searcher(config)
    hits = searcher.search("How do I back up the index?", limit=5, mode="hybrid")
    searcher.passage("docs:guide/backup.md#0001")   # one chunk by id
    searcher.info()                                   # version, loaded_at, documents, chunks

`dense` and `keyword` run only their own index (rag.index.OwnIndexSearch); `hybrid` runs both and fuses.
"""

import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .config import Config
from .filters import Filter, FilterError, combine
from .index import COLUMNS
from .manifest import Manifest
from .store import open_store
from .types import Hit

MODES = ("hybrid", "dense", "keyword")


class SearchError(Exception):
    """A search that cannot run: bad mode, bad filter, no index."""


class PassageNotFound(KeyError):
    """No chunk with that id in the live index version."""


@dataclass
class IndexInfo:
    """The index version a process serves."""

    name: str
    version: str | None  # None: nothing published yet
    loaded_at: float | None  # Unix time the version was loaded
    documents: int
    chunks: int


class Searcher:
    """Answers searches from the live index version and follows new versions as they are published.

    Thread-safe: searches run in parallel on the snapshot served (a store's snapshot is
    thread-safe), as many at once as the process has cores (`search_slots`), each on one thread;
    a snapshot replaced by a newer version is closed when its last search ends. Loading a new
    version happens beside the searches, so they never wait for an ingest or a load.
    """

    def __init__(self, config: Config):
        self.config = config
        self.store = open_store(config)
        self.settings = config.embeddings_settings()
        self.snapshot = None  # the store's live index, open for search (rag.store.Snapshot)
        self.loaded_at = None
        self.lock = threading.Lock()  # guards the swap and `searching`
        self.searching: dict = {}  # snapshot -> searches running on it
        self.slots = threading.BoundedSemaphore(search_slots())
        self.loading = threading.Lock()
        self.checked = 0.0

    def refresh(self, force: bool = False) -> bool:
        """Loads the live version if it changed since the last look. Returns True if swapped."""
        now = time.monotonic()
        if not force and now - self.checked < 0.5:
            return False
        self.checked = now
        stamp = self.store.stamp()
        if stamp is None or stamp == self.version:
            return False
        # One thread loads; the others keep searching the old version meanwhile (unless forced)
        if not self.loading.acquire(blocking=force or self.version is None):
            return False
        try:
            old = self.snapshot
            snapshot = self.store.snapshot(self.settings, old)
            if snapshot is None or snapshot is old:
                return False
            with self.lock:
                self.snapshot = snapshot
                self.loaded_at = time.time()
                unused = old is not None and not self.searching.get(old)
            if unused:
                old.close()
            return True
        finally:
            self.loading.release()

    @contextmanager
    def using(self):
        """The snapshot served (None before the first publish), kept open until the block ends."""
        with self.lock:
            snapshot = self.snapshot
            self.searching[snapshot] = self.searching.get(snapshot, 0) + 1
        try:
            yield snapshot
        finally:
            with self.lock:
                self.searching[snapshot] -= 1
                replaced = not self.searching[snapshot] and snapshot is not self.snapshot
                if not self.searching[snapshot]:
                    del self.searching[snapshot]
            if replaced and snapshot is not None:
                snapshot.close()

    @property
    def version(self) -> str | None:
        """The stamp of the version this process serves; None before the first publish."""
        return self.snapshot.stamp if self.snapshot else None

    @property
    def manifest(self) -> Manifest:
        return self.snapshot.manifest if self.snapshot else Manifest()

    @property
    def ready(self) -> bool:
        self.refresh()
        return self.version is not None

    def info(self) -> IndexInfo:
        """The version this process serves, with its document and chunk counts."""
        manifest = self.manifest
        return IndexInfo(self.config.index.name, self.version, self.loaded_at, len(manifest.documents), manifest.chunks)

    def passage(self, uid: str) -> Hit:
        """One chunk by id; raises PassageNotFound."""
        self.refresh()
        sql = f"select id, text, {', '.join(COLUMNS)} from txtai where id = :id"
        with self.using() as snapshot:
            rows = snapshot.search(sql, {"id": uid}) if snapshot else []
        if not rows:
            raise PassageNotFound(uid)
        return to_hit({**rows[0], "score": 1.0})

    def search(
        self, query: str, limit: int | None = None, mode: str | None = None, where: "str | Filter | None" = None, filters: dict | None = None
    ) -> list[Hit]:
        """Ranked passages for query. `where` is a condition in the filter language of rag.filters
        (or an already checked Filter), `filters` equality filters on metadata columns (both: AND)."""
        mode = mode or self.config.search.mode
        if mode not in MODES:
            raise SearchError(f"unknown search mode {mode!r}; expected one of {', '.join(MODES)}")
        limit = self.config.search.limit if limit is None else limit
        if not 1 <= limit <= self.config.search.max_limit:
            raise SearchError(f"limit must be between 1 and {self.config.search.max_limit} (search.max_limit), got {limit}")
        if not query or not query.strip():
            raise SearchError("empty query")
        condition = where if isinstance(where, Filter) else checked_filter(where, filters)
        self.refresh()
        if self.version is None:
            raise SearchError(f"no index at {self.store.path}: run `rag ingest` first")

        weights = {"hybrid": self.config.search.weights, "dense": 1.0, "keyword": 0.0}[mode]
        candidates = max(self.config.search.candidates, limit)
        sql = (
            f"select id, text, score, {', '.join(COLUMNS)} from txtai "
            f"where similar(:query, '{candidates}', '{weights}')"
            + (f" and ({condition.text})" if condition else "")
            + f" limit {int(limit)}"
        )
        parameters = {"query": query, **(condition.parameters if condition else {})}
        try:
            with self.slots, one_thread(), self.using() as snapshot:
                rows = snapshot.search(sql, parameters)
        except Exception as error:
            raise SearchError(f"search failed: {error}") from error
        return [to_hit(row) for row in rows if mode != "keyword" or row["score"] > 0]


def search_slots() -> int:
    """Searches a process runs at once: its share of the cores (OMP_NUM_THREADS, which `rag serve`
    sets per worker; else every core). More would only queue on the cores and slow every search."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit():
        return max(1, int(threads))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def one_thread():
    """Runs a search's torch work (one short query to encode) on the calling thread alone: torch's
    intra-op threads cost it more than they save (a hybrid search at 100k chunks, in process:
    24.7 ms on 2 threads, 17.5 ms on one), and the cores go to searches in parallel instead.
    torch's thread count is per thread, so an ingest in another thread keeps its own."""
    torch = sys.modules.get("torch")  # loaded with the model; an index without one needs none
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def checked_filter(where: "str | Filter | None", filters: dict | None = None) -> Filter | None:
    """The condition of `where` and `filters`; SearchError when it is not in the filter language."""
    if isinstance(where, Filter) and not filters:
        return where
    try:
        return combine(where, filters)
    except FilterError as error:
        raise SearchError(str(error)) from None


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

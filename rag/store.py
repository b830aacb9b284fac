"""Where an index lives: the store interface, and the local store of versioned, crash-safe folders.

Every store (this local one; rag.pgstore on PostgreSQL, chosen by `index.store`) offers:

    store = open_store(config)
    with store.lock():                          # the one writer; IndexLocked, IndexUnwritable
        with store.begin(settings, rebuild) as write:
            write.delete(ids); write.add(rows)   # rows: (id, data) of whole documents
            write.publish(manifest)             # atomically: readers see all of it or none
    store.stamp(); store.manifest(); store.writer(); store.size()
    store.manifest(documents)                   # may be partial: only these records (Manifest.scope)
    snapshot = store.snapshot(settings)         # what a Searcher serves: search(sql, parameters)
    store.cache_keys(settings)                  # vector cache keys of everything kept


Layout of indexes/<name>/:

    CURRENT             name of the live version, replaced atomically (write aside, fsync, rename)
    segments/s-<stamp>/ immutable txtai indexes (rag.segments), shared by the versions that name them
    versions/v-<stamp>/ a version: segments.json (its segments, base first, with their tombstones),
                        manifest.json (changes since manifest-base.json) and hard links to its base
                        segment's files, so a one-segment version is a plain txtai index folder
    .work-<stamp>/      a write in progress; never read, removed by the next writer
    .lock               held (flock) by the one writer

A write of an index below `index.segments.rewrite_below` chunks rewrites its one segment (a copy
changed by txtai). Above, it adds one small segment of the rows it adds, and tombstones for the ids
it deletes or replaces in older segments; nothing is copied or rewritten. Deltas past
`merge_ratio` of the base are merged into a new base from the vector cache (nothing embedded);
the newest deltas of similar size are merged together past `max_deltas`.

New segments are renamed into segments/ before the version naming them, and that version before
CURRENT, so a writer killed at any moment leaves the previous version live (and maybe segments no
version names, removed by the next writer). Readers only open what CURRENT names and reuse the
segments they have open.
"""

import errno
import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .clock import now
from .index import Counted, folder_size, has_index, open_embeddings, read_content, save_embeddings
from .manifest import FILE as MANIFEST
from .manifest import Manifest
from .segments import (
    LAYOUT,
    Collection,
    Layout,
    Part,
    Segment,
    Stats,
    build,
    ids_of,
    live_rows,
    locate,
    plan_deltas,
    texts,
    tokenizer,
)
from .vectorcache import CachedVectors, version_keys

POINTER = "CURRENT"
VERSIONS = "versions"
SEGMENTS = "segments"
LOCK = ".lock"
WORK_PREFIX = ".work-"
TRASH_PREFIX = ".trash-"
BASE_MANIFEST = "manifest-base.json"  # in a base segment, and hard-linked into its versions
SHARING = threading.Lock()  # guards Segment.users (snapshots of one process share segments)


class IndexLocked(Exception):
    """Another writer holds the index lock."""


class IndexUnwritable(Exception):
    """The index folder cannot be written: read-only, full, or not ours. The live version is untouched."""


@contextmanager
def reported_unwritable(path, errors: tuple, reason_of):
    """Raises IndexUnwritable for an error (of the given types) that `reason_of` names the reason
    of: a store that cannot take the write. Other errors pass unchanged."""
    try:
        yield
    except errors as error:
        reason = reason_of(error)
        if not reason:
            raise
        raise IndexUnwritable(f"cannot write the index at {path}: {reason}") from error


HELD: set[Path] = set()  # index folders whose write lock this process holds
PROBING = threading.Lock()  # a thread taking the write lock and writer() in another thread take turns
LOCK_TRIES = 20  # tries 5 ms apart before a writer is refused (a probe of another process holds the lock briefly)

# Errors of a folder that cannot take the write: errno numbers, and the words that SQLite and FAISS
# (which raise their own exception types) use for them
UNWRITABLE = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM}
UNWRITABLE_WORDS = ("disk is full", "readonly database", "unable to open database", *(os.strerror(code) for code in UNWRITABLE))


class Store:
    """Directory of index versions made of shared segments, with an atomic CURRENT pointer.

    `index` is the IndexConfig (its `ann` and `segments` sections); None: their defaults."""

    def __init__(self, path: Path, keep: int = 2, index=None):
        from .config import AnnConfig, SegmentsConfig

        self.path = Path(path)
        self.keep = keep
        self.ann = (index.ann if index is not None else AnnConfig()).model_dump()
        self.policy = index.segments if index is not None else SegmentsConfig()

    def migrate(self):
        """Nothing to create: the first write makes the folders (`rag migrate` is for PostgreSQL)."""

    # ---- reading -------------------------------------------------------

    def current(self) -> Path | None:
        """Path of the live version, or None when nothing has been published."""
        try:
            name = (self.path / POINTER).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        version = self.path / VERSIONS / name
        return version if (version / MANIFEST).exists() else self.newest()

    def newest(self) -> Path | None:
        """Newest complete version (fallback when the pointer names a missing version)."""
        versions = self.versions()
        return versions[-1] if versions else None

    def versions(self) -> list[Path]:
        folder = self.path / VERSIONS
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_dir() and (p / MANIFEST).exists())

    def stamp(self) -> str | None:
        """Identifies the live version; changes whenever a new version is published."""
        current = self.current()
        return current.name if current else None

    def manifest(self, documents: list[str] | None = None) -> Manifest:
        """The manifest of the live version (empty when nothing is published). `documents`: the
        records a write needs; this store reads them all anyway (a whole manifest)."""
        return Manifest.read(self.current())

    def size(self) -> int:
        """Bytes on disk of the live version (its segments and its own files)."""
        current = self.current()
        if current is None:
            return 0
        if not (current / LAYOUT).exists():
            return folder_size(current)  # earlier layout: one folder
        own = sum(p.stat().st_size for p in current.iterdir() if p.is_file() and p.stat().st_nlink == 1)
        return own + sum(folder_size(self.segment_path(current, part.name)) for part in self.layout(current).parts)

    def layout(self, version: Path | None) -> Layout:
        """The segments of a version; a version of the earlier layout (a plain txtai folder) is its own one segment."""
        if version is None:
            return Layout()
        if (version / LAYOUT).exists() or not has_index(version):
            return Layout.read(version)
        return Layout([Part(version.name, count_rows(version))])

    def segment_path(self, version: Path | None, name: str) -> Path:
        path = self.path / SEGMENTS / name
        if not path.exists() and version is not None and version.name == name:
            return version  # earlier layout: the version folder is the segment
        return path

    def snapshot(self, settings: dict, previous: "Snapshot | None" = None) -> "Snapshot | None":
        """The live version opened for search (None when nothing is published); `previous` is the
        snapshot the caller serves: returned as it is when the version did not change, and its open
        segments are reused (only new ones are opened)."""
        for attempt in range(3):
            current = self.current()
            if current is None:
                return None
            if previous is not None and previous.stamp == current.name:
                return previous
            try:
                return Snapshot.open(self, current, self.searching(settings), previous)
            except FileNotFoundError:  # pruned while opening: a newer version is live
                if attempt == 2:
                    raise
        return None

    def searching(self, settings: dict) -> dict:
        return {**settings, "annswitch": self.ann}

    def cache_keys(self, settings: dict):
        """Vector cache keys of the passages of every kept version."""
        seen = set()
        for version in self.versions():
            for part in self.layout(version).parts:
                path = self.segment_path(version, part.name)
                if path not in seen:
                    seen.add(path)
                    yield from version_keys(path, settings)

    def begin(self, settings: dict, rebuild: bool = False) -> "VersionWrite":
        """A write of a new version on the live one (or, with rebuild, on nothing). Needs the lock."""
        return VersionWrite(self, settings, rebuild)

    # ---- writing -------------------------------------------------------

    @contextmanager
    def lock(self):
        """Holds the single-writer lock; raises IndexLocked at once if another writer has it, and
        IndexUnwritable when the folder cannot take a write (then, as after any failed write, the
        live version is the previous one)."""
        with reported_unwritable(self.path, (OSError, sqlite3.OperationalError, RuntimeError), unwritable), self.locked():
            yield self

    @contextmanager
    def locked(self):
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK, "a+", encoding="utf-8")
        try:
            for attempt in range(LOCK_TRIES):  # writer() probes hold the lock shared for microseconds
                with PROBING:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        HELD.add(self.path.resolve())
                        break
                    except BlockingIOError:
                        pass
                time.sleep(0.005)
            else:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise IndexLocked(
                    f"index {self.path} is being written by another process ({holder}); "
                    "wait for it to finish and try again"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {now()}")
            handle.flush()
            try:
                self.cleanup()
                yield
            finally:
                HELD.discard(self.path.resolve())
        finally:
            handle.close()

    def writer(self) -> str | None:
        """Who holds the write lock when another process does ("pid N since ..."); None when it is
        free or held by this process. Tells a request to wait before it does work that needs the lock."""
        try:
            handle = open(self.path / LOCK, encoding="utf-8")
        except FileNotFoundError:
            return None
        with handle, PROBING:  # not while a thread of this process is taking the lock
            if self.path.resolve() in HELD:
                return None
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "unknown"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    def workdir(self) -> Path:
        """Creates a private, empty work folder. Needs the lock."""
        work = self.path / f"{WORK_PREFIX}{newstamp()}"
        work.mkdir(parents=True)
        return work

    def publish(self, work: Path, segments: list[Path], layout: Layout, manifest: Manifest, base_manifest: Manifest | None) -> Path:
        """Makes a version of layout live: moves the new segment folders (in work) into segments/,
        writes the version (layout, manifest as changes since the base's, links to the base
        segment's files), fsyncs and points CURRENT at it atomically."""
        folder = self.path / SEGMENTS
        folder.mkdir(exist_ok=True)
        for segment in segments:
            fsync_tree(segment)
            os.rename(segment, folder / segment.name)
        if segments:
            fsync_dir(folder)

        version = work / "version"
        version.mkdir()
        base = self.path / SEGMENTS / layout.base.name if layout.base else None
        if base is not None:
            for entry in base.iterdir():
                if entry.is_file():
                    link(entry, version / entry.name)
        layout.write(version)
        if base is not None and base_manifest is not None:
            manifest.write_delta(version, BASE_MANIFEST, base_manifest)
        else:
            manifest.write(version)
        fsync_tree(version)

        versions = self.path / VERSIONS
        versions.mkdir(exist_ok=True)
        published = versions / f"v-{newstamp()}"
        os.rename(version, published)
        fsync_dir(versions)

        pointer = self.path / f"{POINTER}.tmp"
        with open(pointer, "w", encoding="utf-8") as handle:
            handle.write(published.name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, self.path / POINTER)
        fsync_dir(self.path)

        self.prune()
        return published

    def adopt(self, version: Path):
        """Makes a version of the earlier layout (a plain txtai folder) a segment of the same name
        (hard links). Needs the lock."""
        work = self.workdir() / version.name
        work.mkdir()
        for entry in version.iterdir():
            if entry.is_file() and entry.name != MANIFEST:
                link(entry, work / entry.name)
        Manifest.read(version).write(work, BASE_MANIFEST)
        (self.path / SEGMENTS).mkdir(exist_ok=True)
        fsync_tree(work)
        os.rename(work, self.path / SEGMENTS / version.name)
        fsync_dir(self.path / SEGMENTS)

    def cleanup(self):
        """Removes what a killed writer left: work folders, versions being pruned, a pointer being
        written, segments no version names. Needs the lock."""
        for leftover in [*self.path.glob(f"{WORK_PREFIX}*"), *(self.path / VERSIONS).glob(f"{TRASH_PREFIX}*"), *(self.path / SEGMENTS).glob(f"{TRASH_PREFIX}*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        (self.path / f"{POINTER}.tmp").unlink(missing_ok=True)
        self.collect()

    def prune(self):
        """Keeps the newest `keep` versions; readers of an older one keep their open files. A version
        is renamed aside before it is deleted, so a writer killed mid-delete leaves no half version.
        Then deletes the segments no kept version names."""
        current = self.current()
        for version in self.versions()[: -self.keep]:
            if version != current:
                trash = version.with_name(f"{TRASH_PREFIX}{version.name}")
                os.rename(version, trash)
                shutil.rmtree(trash, ignore_errors=True)
        self.collect()

    def collect(self):
        """Deletes the segment folders that no version names (renamed aside first, as versions)."""
        folder = self.path / SEGMENTS
        if not folder.is_dir():
            return
        versions = self.versions()
        if not versions and (self.path / POINTER).exists():
            return  # never delete segments when no version can be read
        named = {part.name for version in versions for part in self.layout(version).parts}
        for segment in folder.iterdir():
            if segment.is_dir() and not segment.name.startswith(TRASH_PREFIX) and segment.name not in named:
                trash = segment.with_name(f"{TRASH_PREFIX}{segment.name}")
                os.rename(segment, trash)
                shutil.rmtree(trash, ignore_errors=True)


class Snapshot:
    """One published version, open for search: its segments searched as one index (rag.segments).
    Thread-safe: searches run in parallel (each segment's content database takes turns). Closing
    waits for no one: the caller closes a snapshot no search is using (rag.search.Searcher)."""

    def __init__(self, stamp: str, manifest: Manifest, segments: list[Segment], layout: Layout):
        self.stamp, self.manifest, self.segments, self.layout = stamp, manifest, segments, layout
        with SHARING:
            for segment in segments:
                segment.users += 1
        self.collection = Collection(segments, layout.parts)
        self.closed = False

    @classmethod
    def open(cls, store: Store, version: Path, settings: dict, previous: "Snapshot | None" = None) -> "Snapshot":
        layout = store.layout(version)
        reusable = {segment.path: segment for segment in (previous.segments if previous is not None and not previous.closed else [])}
        segments = []
        try:
            for part in layout.parts:
                path = store.segment_path(version, part.name)
                segments.append(reusable.get(path) or Segment(path, settings))
            manifest = Manifest.read(version)
        except BaseException:
            for segment in segments:
                if segment.users == 0 and segment.path not in reusable:
                    segment.close()
            raise
        return cls(version.name, manifest, segments, layout)

    @property
    def embeddings(self):
        """The base segment's txtai Embeddings (the whole index when the version has one segment)."""
        return self.segments[0].embeddings if self.segments else None

    def search(self, sql: str, parameters: dict) -> list[dict]:
        """Rows of one txtai SQL query (dense and keyword modes run only their own index)."""
        return self.collection.search(sql, parameters)

    def close(self):
        if self.closed:
            return
        self.closed = True
        with SHARING:
            unused = []
            for segment in self.segments:
                segment.users -= 1
                if segment.users <= 0:
                    unused.append(segment)
        for segment in unused:
            segment.close()


class VersionWrite:
    """One write: changes to the live version, published as a new version or dropped.

    A small index (one segment below `rewrite_below` chunks) is rewritten: its segment is copied
    and changed by txtai. Otherwise `add` indexes the rows into one new segment and tombstones the
    ids they replace; `delete` tombstones ids in older segments; `publish` merges when due."""

    def __init__(self, store: Store, settings: dict, rebuild: bool):
        self.store = store
        self.settings = store.searching(settings)
        self.work = store.workdir()
        self.live = None if rebuild else store.current()
        self.layout = store.layout(self.live)
        self.base_manifest = None
        self.added: list[Part] = []
        self.pending: dict[str, set[int]] = {part.name: set() for part in self.layout.parts}
        self.embeddings = None
        parts = self.layout.parts
        self.rewrite = len(parts) == 1 and not parts[0].tombstones and parts[0].rows < store.policy.rewrite_below
        if not self.rewrite and self.live is not None and not (self.live / LAYOUT).exists() and parts:
            store.adopt(self.live)  # an index of the earlier layout: its folder becomes a segment
        if self.rewrite:
            self.folder = self.work / f"s-{newstamp()}"
            shutil.copytree(self.path(parts[0]), self.folder, ignore=shutil.ignore_patterns(BASE_MANIFEST, LAYOUT, MANIFEST))
            self.embeddings = open_embeddings(self.folder, self.settings)

    def path(self, part: Part) -> Path:
        if (self.work / part.name).is_dir():
            return self.work / part.name
        return self.store.segment_path(self.live, part.name)

    def delete(self, ids: list[str]) -> int:
        """Deletes chunks by id; returns how many were there."""
        if not ids:
            return 0
        if self.rewrite:
            return len(self.embeddings.delete(ids))
        found = set()
        for part in self.layout.parts:
            located = locate(self.path(part), list(ids), set(part.tombstones) | self.pending[part.name])
            for uid, indexids in located.items():
                found.add(uid)
                self.pending[part.name].update(indexids)
        return len(found)

    def add(self, rows) -> int:
        """Upserts (id, data) rows; returns how many texts the model encoded (the rest came from the
        vector cache)."""
        if self.rewrite:
            model = self.embeddings.model
            before = model.encoded if isinstance(model, CachedVectors) else 0
            rows = Counted(rows)
            self.embeddings.upsert(rows)
            model = self.embeddings.model
            return model.encoded - before if isinstance(model, CachedVectors) else rows.count

        name = f"s-{newstamp()}"
        count, encoded = build(self.work / name, self.settings, rows)
        if count:
            for batch in ids_of(self.work / name):  # replaced: the ids now in the new segment
                for part in self.layout.parts:
                    located = locate(self.path(part), batch, set(part.tombstones) | self.pending[part.name])
                    self.pending[part.name].update(i for indexids in located.values() for i in indexids)
            part = Part(name, count)
            self.layout.parts.append(part)
            self.pending[name] = set()
            self.added.append(part)
        return encoded

    def publish(self, manifest: Manifest) -> str:
        """Publishes the new version with manifest; returns its stamp."""
        if self.rewrite:
            save_embeddings(self.embeddings, self.folder)
            self.close()
            count = count_rows(self.folder) if has_index(self.folder) else 0
            self.layout = Layout([Part(self.folder.name, count)] if count else [])
            new = [self.folder] if count else []
        else:
            self.tombstone()
            new = self.compact()
        base, base_manifest = self.layout.base, None
        if base is not None and (self.work / base.name).is_dir():  # a new base: its manifest is whole
            manifest.write(self.work / base.name, BASE_MANIFEST)
            base_manifest = manifest
        elif base is not None and (self.path(base) / BASE_MANIFEST).exists():
            base_manifest = Manifest.read(self.path(base), BASE_MANIFEST)
        published = self.store.publish(self.work, new, self.layout, manifest, base_manifest)
        shutil.rmtree(self.work, ignore_errors=True)
        return published.name

    def tombstone(self):
        """Adds the pending tombstones to the layout, with the BM25 statistics of the rows they hide."""
        tokenize = None
        for part in self.layout.parts:
            fresh = sorted(self.pending.get(part.name, set()) - set(part.tombstones))
            if not fresh:
                continue
            tokenize = tokenize or tokenizer(self.settings)
            part.removed = Stats.from_json(part.removed.to_json()).add(Stats.of_texts(tokenize, texts(self.path(part), fresh)))
            part.tombstones = sorted(set(part.tombstones) | set(fresh))

    def compact(self) -> list[Path]:
        """Merges segments when due (see the class docstring); returns the folders of new segments."""
        parts, policy = [p for p in self.layout.parts if p.live > 0], self.store.policy
        self.layout = Layout(parts)
        if parts:
            base = parts[0]
            small = self.layout.live < policy.rewrite_below and (len(parts) > 1 or base.tombstones)
            if small or self.layout.delta() > policy.merge_ratio * base.rows:
                self.layout = Layout(self.merge(parts))
            else:
                start = plan_deltas([p.rows for p in parts[1:]], policy.max_deltas)
                if start is not None:
                    self.layout = Layout(parts[: start + 1] + self.merge(parts[start + 1 :]))
        return [self.work / p.name for p in self.layout.parts if (self.work / p.name).is_dir()]

    def merge(self, parts: list[Part]) -> list[Part]:
        """One new segment of the live rows of parts (vectors from the vector cache)."""
        name = f"s-{newstamp()}"
        rows = (row for part in parts for row in live_rows(self.path(part), part.tombstones))
        count, _ = build(self.work / name, self.settings, rows)
        return [Part(name, count)] if count else []

    def close(self):
        if self.embeddings is not None:
            self.embeddings.close()
            self.embeddings = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()  # an unpublished work folder is removed by the next writer


def open_store(config):
    """The store config.yml declares (`index.store`): local folders, or PostgreSQL (rag.pgstore)."""
    if getattr(config.index, "store", "local") == "postgres":
        from .pgstore import PostgresStore

        return PostgresStore(config)
    return Store(config.index_dir, config.index.keep_versions, config.index)


def count_rows(folder: Path) -> int:
    """Rows of a txtai index folder's content database."""
    if not (Path(folder) / "documents").exists():
        return 0
    with read_content(folder) as connection:
        return connection.execute("SELECT count(*) FROM sections").fetchone()[0]


def link(source: Path, target: Path):
    """Hard-links source at target (a copy where the filesystem has no hard links)."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target)


def unwritable(error: Exception) -> str | None:
    """The reason, for an error of a folder that cannot take the write (not of the data written)."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.strerror if error.errno in UNWRITABLE else None
    return next((words for words in UNWRITABLE_WORDS if words in str(error)), None)


def newstamp() -> str:
    """Sortable, unique version stamp."""
    return f"{time.time_ns():020d}-{os.getpid()}"


def replace_json(path: Path, data, **options):
    """Replaces a small JSON file atomically: readers see the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temp.write_text(json.dumps(data, default=str, **options), encoding="utf-8")
    os.replace(temp, path)


def fsync_tree(path: Path):
    """fsyncs every file and folder under path."""
    for folder, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

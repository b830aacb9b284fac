"""Where an index lives: the store interface, and the local store of versioned, crash-safe folders.

Every store (this local one; rag.pgstore on PostgreSQL, chosen by `index.store`) offers:

    store = open_store(config)
    with store.lock():                          # the one writer; IndexLocked, IndexUnwritable
        with store.begin(settings, rebuild) as write:
            write.delete(ids); write.add(rows)   # rows: (id, data) of whole documents
            write.publish(manifest)             # atomically: readers see all of it or none
    store.stamp(); store.manifest(); store.writer(); store.size()
    snapshot = store.snapshot(settings)         # what a Searcher serves: search(sql, parameters)
    store.cache_keys(settings)                  # vector cache keys of everything kept


Layout of indexes/<name>/:

    CURRENT             name of the live version, replaced atomically (write aside, fsync, rename)
    versions/v-<stamp>/ complete, immutable index versions (txtai files + manifest.json)
    .work-<stamp>/      a version being written; never read, removed by the next writer
    .lock               held (flock) by the one writer

Readers only ever open a complete version named by CURRENT, so a writer killed at any moment
leaves the previous version live. Writers never modify a published version: they copy it aside,
change the copy and publish it as a new version.
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
from .index import OwnIndexSearch, folder_size, has_index, open_embeddings, save_embeddings
from .manifest import FILE as MANIFEST
from .manifest import Manifest
from .vectorcache import CachedVectors, version_keys

POINTER = "CURRENT"
VERSIONS = "versions"
LOCK = ".lock"
WORK_PREFIX = ".work-"
TRASH_PREFIX = ".trash-"


class IndexLocked(Exception):
    """Another writer holds the index lock."""


class IndexUnwritable(Exception):
    """The index folder cannot be written: read-only, full, or not ours. The live version is untouched."""


HELD: set[Path] = set()  # index folders whose write lock this process holds

# Errors of a folder that cannot take the write: errno numbers, and the words that SQLite and FAISS
# (which raise their own exception types) use for them
UNWRITABLE = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM}
UNWRITABLE_WORDS = ("disk is full", "readonly database", "unable to open database", *(os.strerror(code) for code in UNWRITABLE))


class Store:
    """Directory of index versions with an atomic CURRENT pointer."""

    def __init__(self, path: Path, keep: int = 2):
        self.path = Path(path)
        self.keep = keep

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

    def manifest(self) -> Manifest:
        """The manifest of the live version (empty when nothing is published)."""
        return Manifest.read(self.current())

    def size(self) -> int:
        """Bytes on disk of the live version."""
        current = self.current()
        return folder_size(current) if current else 0

    def snapshot(self, settings: dict, previous: "Snapshot | None" = None) -> "Snapshot | None":
        """The live version opened for search (None when nothing is published); `previous` is the
        snapshot the caller serves, returned as it is when the version did not change."""
        current = self.current()
        if current is None:
            return None
        if previous is not None and previous.stamp == current.name:
            return previous
        embeddings = open_embeddings(current, settings) if has_index(current) else None
        return Snapshot(current.name, Manifest.read(current), embeddings)

    def cache_keys(self, settings: dict):
        """Vector cache keys of the passages of every kept version."""
        return (key for version in self.versions() for key in version_keys(version, settings))

    def begin(self, settings: dict, rebuild: bool = False) -> "VersionWrite":
        """A write of a new version: a private copy of the live one (or, with rebuild, nothing).
        Needs the lock."""
        return VersionWrite(self, settings, rebuild)

    # ---- writing -------------------------------------------------------

    @contextmanager
    def lock(self):
        """Holds the single-writer lock; raises IndexLocked at once if another writer has it, and
        IndexUnwritable when the folder cannot take a write (then, as after any failed write, the
        live version is the previous one)."""
        try:
            with self.locked():
                yield self
        except (OSError, sqlite3.OperationalError, RuntimeError) as error:
            reason = unwritable(error)
            if not reason:
                raise
            raise IndexUnwritable(f"cannot write the index at {self.path}: {reason}") from error

    @contextmanager
    def locked(self):
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK, "a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
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
            HELD.add(self.path.resolve())
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
        if self.path.resolve() in HELD:
            return None
        try:
            handle = open(self.path / LOCK, encoding="utf-8")
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "unknown"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    def workdir(self, copy_current: bool = True) -> Path:
        """Creates a private working copy of the live version (or an empty folder). Needs the lock."""
        work = self.path / f"{WORK_PREFIX}{newstamp()}"
        current = self.current()
        if copy_current and current:
            shutil.copytree(current, work)
        else:
            work.mkdir(parents=True)
        return work

    def publish(self, work: Path, manifest) -> Path:
        """Writes the manifest (rag.manifest.Manifest), fsyncs the work folder and makes it the
        live version atomically."""
        manifest.write(work)
        fsync_tree(work)

        versions = self.path / VERSIONS
        versions.mkdir(exist_ok=True)
        version = versions / f"v-{newstamp()}"
        os.rename(work, version)
        fsync_dir(versions)

        pointer = self.path / f"{POINTER}.tmp"
        with open(pointer, "w", encoding="utf-8") as handle:
            handle.write(version.name)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(pointer, self.path / POINTER)
        fsync_dir(self.path)

        self.prune()
        return version

    def cleanup(self):
        """Removes what a killed writer left: work folders, versions being pruned, a pointer being
        written. Needs the lock."""
        for leftover in [*self.path.glob(f"{WORK_PREFIX}*"), *(self.path / VERSIONS).glob(f"{TRASH_PREFIX}*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        (self.path / f"{POINTER}.tmp").unlink(missing_ok=True)

    def prune(self):
        """Keeps the newest `keep` versions; readers of an older one keep their open files. A version
        is renamed aside before it is deleted, so a writer killed mid-delete leaves no half version."""
        current = self.current()
        for version in self.versions()[: -self.keep]:
            if version != current:
                trash = version.with_name(f"{TRASH_PREFIX}{version.name}")
                os.rename(version, trash)
                shutil.rmtree(trash, ignore_errors=True)


class Snapshot:
    """One published version, open for search. Not thread-safe: txtai's content database has one
    cursor, so callers take turns."""

    def __init__(self, stamp: str, manifest: Manifest, embeddings):
        self.stamp, self.manifest, self.embeddings = stamp, manifest, embeddings

    def search(self, sql: str, parameters: dict) -> list[dict]:
        """Rows of one txtai SQL query (dense and keyword modes run only their own index)."""
        return OwnIndexSearch(self.embeddings)([sql], parameters=[parameters])[0] if self.embeddings else []

    def close(self):
        if self.embeddings is not None:
            self.embeddings.close()


class VersionWrite:
    """Changes to a private copy of the live version, published as a new version or dropped."""

    def __init__(self, store: Store, settings: dict, rebuild: bool):
        self.store = store
        self.work = store.workdir(copy_current=not rebuild)
        self.embeddings = open_embeddings(self.work, settings)

    def delete(self, ids: list[str]) -> int:
        """Deletes chunks by id; returns how many were there."""
        return len(self.embeddings.delete(ids)) if ids else 0

    def add(self, rows) -> int:
        """Upserts (id, data) rows; returns how many texts the model encoded (the rest came from the
        vector cache)."""
        model = self.embeddings.model
        before = model.encoded if isinstance(model, CachedVectors) else 0
        counted = [0]

        def count(rows):
            for row in rows:
                counted[0] += 1
                yield row

        self.embeddings.upsert(count(rows))
        model = self.embeddings.model
        return model.encoded - before if isinstance(model, CachedVectors) else counted[0]

    def publish(self, manifest: Manifest) -> str:
        """Saves and publishes the new version with manifest; returns its stamp."""
        save_embeddings(self.embeddings, self.work)
        self.close()
        return self.store.publish(self.work, manifest).name

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
    return Store(config.index_dir, config.index.keep_versions)


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

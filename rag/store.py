"""Versioned, crash-safe storage of an index directory with a single-writer lock.

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
from .manifest import FILE as MANIFEST

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

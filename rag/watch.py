"""Keeps the index in sync with the source folders while it runs: `rag watch`, or `ingest.watch: true`
in `rag serve`.

    watcher = Watcher(rag).start()     # a full sync first, then the files that change
    ...
    watcher.stop()

File system events (watchdog) on every source folder and the uploads folder are collected; once
no event came for `ingest.watch_debounce` seconds, the changed paths are synced in one incremental
ingest (`LocalRAG.ingest(paths)`): a created or modified file is embedded, a deleted one removed, a
renamed one removed under its old id and added under the new one (a folder likewise). A burst of
saves is one sync.

A file is not read half-way: it waits until its size and modification time stay the same for a
debounce window and, where the system reports it (inotify), until the writer closed it. Hidden
files and folders, unsupported types (editors' `~`, `.swp`, `.part`, ...) and Office's `~$` owner
files are ignored. Sources on network mounts (NFS, SMB, sshfs, ...), whose remote changes raise
no events, are polled every debounce window, as every source is with `ingest.watch_polling: true`.

A sync that finds the index locked by another writer is retried after the next window; a failed
one is retried with a growing delay; no change is dropped. One watcher per index: another process
that starts one waits until the first stops (`.watch.lock` in the index folder).
"""

import fcntl
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from .loaders import SUPPORTED_TYPES
from .store import IndexLocked

logger = logging.getLogger("rag.watch")

# What a sync needs to hear of: folder "modified" events (a file inside changed) and open/read
# events (our own ingest reads files) are left out
EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
# File systems whose remote changes raise no local events: polled
NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "ceph", "glusterfs", "lustre", "gpfs", "9p", "davfs",
    "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.davfs2", "fuse.gvfsd-fuse", "fuse.glusterfs",
    "fuse.ceph-fuse", "fuse.juicefs", "fuse.smbnetfs",
}  # fmt: skip
WATCH_LOCK = ".watch.lock"
MAX_RETRY_DELAY = 60.0  # seconds between retries of a sync that keeps failing
OPEN_TIMEOUT = 30.0  # a file written to but never closed is synced after this many quiet seconds
MAX_PATHS = 100  # more changed paths than this (a checkout, a copied tree): their whole sources are synced


@dataclass
class Change:
    """A path with a change not synced yet."""

    seen: float  # monotonic time of its last event
    signature: tuple | None  # (size, mtime_ns) then; None when missing
    writing: bool = False  # written to and not closed yet (known where the observer reports closes)
    folder: bool = False  # a folder: its files report their own changes, so its signature is not watched


class Watcher:
    """Watches the sources of a LocalRAG and syncs what changes (see the module docstring)."""

    def __init__(self, rag, debounce: float | None = None, polling: bool | None = None, on_sync=None, initial_sync: bool = True):
        """on_sync(report, paths) is called after each sync (paths None: a full sync)."""
        settings = rag.config.ingest
        self.rag = rag
        self.debounce = settings.watch_debounce if debounce is None else debounce
        self.polling = settings.watch_polling if polling is None else polling
        self.on_sync = on_sync
        self.max_wait = max(10 * self.debounce, 5.0)  # a steady stream of events still syncs what settled
        self.open_timeout = max(OPEN_TIMEOUT, 3 * self.debounce)
        self.index_dir = Path(os.path.abspath(rag.config.index_dir))
        self.roots: list[Path] = []
        self.observers = []
        self.pending: dict[Path, Change] = {}
        self.full = initial_sync  # a full sync is due
        self.first = self.last = time.monotonic()  # first and last event of the pending changes
        self.retry_at = 0.0
        self.failures = 0
        self.syncs = 0
        self.condition = threading.Condition()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock_file = None

    # ---- life cycle -------------------------------------------------------

    def start(self) -> "Watcher":
        """Starts watching in a background thread (after the watch lock is free)."""
        self.thread = threading.Thread(target=self.run, name="rag-watch", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float | None = None):
        """Stops watching; a sync in progress is finished first (up to timeout seconds)."""
        self.stopping.set()
        with self.condition:
            self.condition.notify_all()
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self):
        try:
            if not self.claim():
                return
            self.observe()
            while not self.stopping.is_set():
                batch = self.next_batch()
                if batch is not None:
                    self.sync(batch)
        except Exception:
            logger.exception("the watcher stopped")
        finally:
            for observer in self.observers:
                observer.stop()
            for observer in self.observers:
                observer.join(5)
            if self.lock_file is not None:
                self.lock_file.close()

    def claim(self) -> bool:
        """Takes the index's watch lock, waiting while another process holds it; False when stopped first."""
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self.lock_file = open(self.index_dir / WATCH_LOCK, "a+", encoding="utf-8")
        except OSError as error:
            logger.warning("no watch lock (%s); watching anyway", error)
            return True
        told = False
        while not self.stopping.is_set():
            try:
                fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not told:
                    self.lock_file.seek(0)
                    holder = self.lock_file.read().strip() or "unknown"
                    logger.warning("another process watches %s (%s); waiting for it to stop", self.index_dir, holder)
                    told = True
                self.stopping.wait(max(self.debounce, 1.0))
                continue
            self.lock_file.seek(0)
            self.lock_file.truncate()
            self.lock_file.write(f"pid {os.getpid()}")
            self.lock_file.flush()
            return True
        return False

    def observe(self):
        """Schedules every existing source folder on an event observer, or a polling one."""
        native, polled = Observer(), PollingObserver(timeout=self.debounce)
        closes = type(native).__name__ == "InotifyObserver"  # inotify reports when a writer closes a file
        for source in self.rag.sources():
            root = Path(os.path.abspath(source.root))
            if not root.is_dir():
                logger.warning("source %s: %s is not a folder; not watched", source.name, root)
                continue
            self.roots.append(root)
            poll = self.polling or network_filesystem(root)
            if not poll:
                try:
                    native.schedule(Handler(self, closes), str(root), recursive=True, event_filter=EVENTS)
                except OSError as error:  # e.g. the inotify watch limit
                    logger.warning("source %s: no file system events (%s); polling instead", source.name, error)
                    poll = True
            if poll:
                polled.schedule(Handler(self, False), str(root), recursive=True, event_filter=EVENTS)
            logger.info("watching %s (%s) %s", source.name, root, "by polling" if poll else "by events")
        if not self.roots:
            logger.warning("no source folder to watch (ingest.sources)")
        for observer in (native, polled):
            if observer.emitters:
                observer.start()
                self.observers.append(observer)

    # ---- changes ------------------------------------------------------------

    def ignored(self, path: Path, directory: bool) -> bool:
        """Hidden, temporary, unsupported and index files; what the scan would not ingest."""
        if path == self.index_dir or self.index_dir in path.parents:
            return True
        root = next((r for r in self.roots if r in path.parents or r == path), None)
        parts = path.relative_to(root).parts if root else path.parts[-1:]
        if any(part.startswith(".") for part in parts) or path.name.startswith("~$"):
            return True
        return not directory and path.suffix.lower() not in SUPPORTED_TYPES

    def note(self, path: Path, writing: bool | None, folder: bool = False):
        """Records a change of path (writing: True written to, False closed or replaced, None unknown)."""
        signature = None if folder else stat_signature(path)
        now = time.monotonic()
        with self.condition:
            change = self.pending.get(path)
            if change is None:
                if not self.pending:
                    self.first = now
                change = self.pending[path] = Change(now, signature, folder=folder)
            change.seen, change.signature = now, signature
            if writing is not None:
                change.writing = writing
            self.last = now
            self.condition.notify_all()

    def next_batch(self) -> list[Path] | None:
        """Waits until changes are due; the settled paths, [] for a full sync, None when stopping."""
        with self.condition:
            while not self.stopping.is_set():
                now = time.monotonic()
                if not self.pending and not self.full:
                    self.condition.wait()
                    continue
                due = max(min(self.last + self.debounce, self.first + self.max_wait), self.retry_at)
                if self.full and not self.pending:
                    due = self.retry_at
                if now < due:
                    self.condition.wait(due - now)
                    continue
                if self.full:
                    self.full = False
                    self.pending.clear()  # a full sync covers them
                    return []
                ready = self.settled(now)
                if ready:
                    return ready
                self.retry_at = now + self.debounce  # all still being written: look again later
        return None

    def settled(self, now: float) -> list[Path]:
        """Takes the pending paths that are quiet, closed and unchanged for a debounce window."""
        ready = []
        for path, change in list(self.pending.items()):
            if now - change.seen < self.debounce:
                continue
            if change.writing and now - change.seen < self.open_timeout:
                continue
            signature = None if change.folder else stat_signature(path)
            if signature != change.signature:  # changed without an event (yet): wait one more window
                change.seen, change.signature = now, signature
                continue
            ready.append(path)
            del self.pending[path]
        if self.pending:
            self.first = min(change.seen for change in self.pending.values())
        return sorted(ready)

    # ---- syncing --------------------------------------------------------------

    def sync(self, paths: list[Path]):
        """One incremental ingest of paths ([]: every source); failures put them back for a retry."""
        try:
            report = self.rag.ingest(self.targets(paths) or None)
        except IndexLocked:
            logger.info("the index is locked by another writer; syncing again in %.1fs", self.debounce)
            self.retry(paths, self.debounce)
            return
        except Exception as error:
            self.failures += 1
            delay = min(self.debounce * 2**self.failures, MAX_RETRY_DELAY)
            logger.error("sync failed (%s: %s); retrying in %.1fs", type(error).__name__, error, delay)
            self.retry(paths, delay)
            return
        self.failures = 0
        self.syncs += 1
        counts = report.counts()
        logger.info(
            "synced %s: added %d, updated %d, removed %d, failed %d · %d chunks embedded, %d deleted · %.1fs",
            f"{len(paths)} path(s)" if paths else "every source",
            *(counts[name] for name in ("added", "updated", "removed", "failed")),
            report.chunks_added,
            report.chunks_removed,
            report.seconds,
        )
        for item in report.failed:
            logger.warning("failed %s:%s: %s", item["source"], item["path"], item["reason"])
        if self.on_sync is not None:
            self.on_sync(report, paths or None)

    def targets(self, paths: list[Path]) -> list[Path]:
        """What to ingest for the changed paths: themselves, or when there are many, their source folders
        (one scan of each beats matching every document against thousands of paths)."""
        if len(paths) <= MAX_PATHS:
            return paths
        return sorted({next((root for root in self.roots if root in path.parents), path) for path in paths})

    def retry(self, paths: list[Path], delay: float):
        now = time.monotonic()
        with self.condition:
            if not paths:
                self.full = True
            for path in paths:
                if path not in self.pending:  # a newer event keeps its own entry
                    folder = path.is_dir()
                    self.pending[path] = Change(now - self.debounce, None if folder else stat_signature(path), folder=folder)
            self.first = min(self.first, now) if self.pending else now
            self.retry_at = now + delay
            self.condition.notify_all()


class Handler(FileSystemEventHandler):
    """Turns watchdog events into Watcher.note calls."""

    def __init__(self, watcher: Watcher, closes: bool):
        self.watcher = watcher
        self.closes = closes  # the observer reports closes: a modified file is open until closed

    def on_any_event(self, event: FileSystemEvent):
        directory = event.is_directory
        if event.event_type == "moved":
            changes = [(event.src_path, False), (event.dest_path, False)]
        elif event.event_type == "modified":
            changes = [(event.src_path, True if self.closes else None)]
        else:  # created, deleted, closed
            changes = [(event.src_path, False)]
        for raw, writing in changes:
            path = Path(os.fsdecode(raw))
            if not self.watcher.ignored(path, directory):
                self.watcher.note(path, None if directory else writing, folder=directory)


def stat_signature(path: Path) -> tuple | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def network_filesystem(path: Path) -> bool:
    """True when path lies on a network file system (Linux: /proc/self/mounts), whose remote changes raise no events."""
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    real, best, kind = path.resolve(), None, ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))  # \040 is a space
        if (mount == real or mount in real.parents) and (best is None or len(mount.parts) >= len(best.parts)):
            best, kind = mount, fields[2]
    return kind in NETWORK_FILESYSTEMS

"""Ingest jobs of files that queue up behind one another, run as one ingest.

A burst of uploads (or of ingest requests naming files) queues one job per request while the
first runs. The next of them to run takes the files of every queued one and ingests them all in
one run, which publishes one index version; the jobs whose files it took finish at once with the
same report. Jobs run one at a time (rag.jobs), so a job that was taken finds its batch ended.

    batches = Batches()
    key = batches.add(paths, uploaded)          # when the job is queued
    batch = batches.take(key)                   # when it runs: the batch it is part of
    if batch.owner == key: ... batch.end(report, error)   # the owner ingests batch.paths
    else: batch.result()                        # the owner's report (or its error)
"""

import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Batch:
    """The files of queued jobs ingested together, and how that ingest ended."""

    owner: str
    paths: list[Path]
    uploaded: bool
    report: dict | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def end(self, report: dict | None, error: BaseException | None = None):
        self.report, self.error = report, error
        self.done.set()

    def result(self, timeout: float | None = None) -> dict:
        """The batch's report (raises its error) once it has ended."""
        if not self.done.wait(timeout):
            raise TimeoutError("the ingest this job was batched into has not ended")
        if self.error is not None:
            raise self.error
        return self.report


class Batches:
    """Files of queued ingest jobs, by job key, until a job takes them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.waiting: dict[str, tuple[list[Path], bool]] = {}
        self.taken: dict[str, Batch] = {}

    def add(self, paths: list[Path], uploaded: bool) -> str:
        key = uuid.uuid4().hex
        with self.lock:
            self.waiting[key] = (list(paths), uploaded)
        return key

    def take(self, key: str) -> Batch:
        """The batch of the job `key`: one an earlier job took it into, or a new one of every waiting
        job of the same kind (uploads or not) with `key` as its owner."""
        with self.lock:
            if key in self.taken:
                return self.taken.pop(key)
            uploaded = self.waiting[key][1]
            keys = [other for other, (_, kind) in self.waiting.items() if kind == uploaded]
            paths = list(dict.fromkeys(path for other in keys for path in self.waiting[other][0]))
            batch = Batch(key, paths, uploaded)
            for other in keys:
                del self.waiting[other]
                if other != key:
                    self.taken[other] = batch
            return batch

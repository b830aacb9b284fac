"""Background jobs (ingestion runs) with their state kept in files, so every server worker sees them.

A job's record is served to read keys (GET /jobs): it holds no traceback (that goes to the log) and
no absolute server path (paths under the config folder are made relative to it, others cut to their
file name). A job whose process died before it ended is reported `interrupted`.
"""

import json
import logging
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

from .clock import now
from .progress import Progress
from .store import replace_json
from .workflows.records import alive

logger = logging.getLogger("rag.jobs")

STATES = ("queued", "running", "succeeded", "failed", "interrupted")
ENDED = ("succeeded", "failed", "interrupted")
ABSOLUTE_PATH = re.compile(r"(?<![\w/:.~-])/[^\s'\"]*[^\s'\".,:;)\]]")  # /a/b.txt, not the /b of a URL or a relative a/b


class JobProgress(Progress):
    """Records ingestion progress into the job's state."""

    def __init__(self, job: "Jobs", uid: str):
        self.jobs, self.uid = job, uid
        self.state = {"files_total": 0, "files_done": 0, "chunks_total": 0, "chunks_done": 0}
        self.saved = 0.0

    def files(self, total):
        self.state["files_total"] = total
        self.save(force=True)

    def file(self, path):
        self.state["files_done"] += 1
        self.state["current"] = path
        self.save()

    def embedding(self, total):
        self.state["chunks_total"] = total
        self.save(force=True)

    def chunks(self, count):
        self.state["chunks_done"] += count
        self.save()

    def save(self, force=False):
        now = time.monotonic()
        if force or now - self.saved > 0.5:
            self.saved = now
            self.jobs.update(self.uid, progress=dict(self.state))


class Jobs:
    """Runs jobs one at a time in a background thread; state in <folder>/<id>.json.
    root: the config folder, which paths in job records are made relative to."""

    def __init__(self, folder: Path, keep: int = 200, root: Path | None = None):
        self.folder = Path(folder)
        self.keep = keep
        self.root = root
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-job")
        self.lock = threading.Lock()

    def submit(self, kind: str, function, **params) -> dict:
        """Queues function(progress) and returns the new job's state."""
        uid = uuid.uuid4().hex[:16]
        job = {"id": uid, "kind": kind, "state": "queued", "params": self.relative(params), "created_at": stamp(), "progress": {}, "pid": os.getpid()}
        self.write(job)
        self.executor.submit(self.run, uid, function)
        self.prune()
        return job

    def run(self, uid: str, function):
        self.update(uid, state="running", started_at=stamp())
        try:
            progress = JobProgress(self, uid)
            result = function(progress)
            self.update(uid, state="succeeded", result=result, progress=dict(progress.state), finished_at=stamp())
        except Exception as error:  # recorded for GET /jobs/{id}; the traceback only in the log
            logger.exception("job %s failed", uid)
            self.update(uid, state="failed", error=self.relative(f"{type(error).__name__}: {error}"), finished_at=stamp())

    def get(self, uid: str) -> dict | None:
        """The job as clients see it: without its owner's pid; `interrupted` when that process is gone."""
        job = self.read(uid)
        if job is None:
            return None
        pid = job.pop("pid", None)
        if job["state"] in ("queued", "running") and pid and pid != os.getpid() and not alive(pid):
            job["state"] = "interrupted"
            job["error"] = f"the server process that ran this job (pid {pid}) stopped before it ended"
        return job

    def read(self, uid: str) -> dict | None:
        if not uid.isalnum():
            return None
        try:
            return json.loads((self.folder / f"{uid}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def list(self) -> list[dict]:
        jobs = [self.get(p.stem) for p in self.folder.glob("*.json")] if self.folder.exists() else []
        return sorted((j for j in jobs if j), key=lambda j: j["created_at"], reverse=True)

    def update(self, uid: str, **changes):
        with self.lock:
            job = self.read(uid) or {"id": uid}
            job.update(changes)
            self.write(job)

    def write(self, job: dict):
        replace_json(self.folder / f"{job['id']}.json", job)

    def prune(self):
        for job in self.list()[self.keep :]:
            (self.folder / f"{job['id']}.json").unlink(missing_ok=True)

    def wait(self, uid: str, timeout: float = 600) -> dict:
        """Blocks until the job ends (for tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(uid)
            if job and job["state"] in ENDED:
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {uid} still running after {timeout}s")

    def relative(self, value):
        """value (a string, or the strings in a list or dict) with absolute paths made relative to
        the config folder, and those outside it cut to their file name."""
        if isinstance(value, dict):
            return {key: self.relative(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.relative(item) for item in value]
        if not isinstance(value, str):
            return value
        if self.root is not None:
            value = value.replace(f"{str(self.root).rstrip('/')}/", "")
        return ABSOLUTE_PATH.sub(lambda match: f".../{PurePath(match.group()).name}", value)

    def shutdown(self):
        self.executor.shutdown(wait=False, cancel_futures=True)


def stamp() -> str:
    """Microseconds, so jobs created within a second still sort."""
    return now("microseconds")

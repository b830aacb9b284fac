"""Background jobs (ingestion runs) with their state kept in files, so every server worker sees them."""

import json
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from .ingest import Progress
from .store import replace_json

STATES = ("queued", "running", "succeeded", "failed")


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
    """Runs jobs one at a time in a background thread; state in <folder>/<id>.json."""

    def __init__(self, folder: Path, keep: int = 200):
        self.folder = Path(folder)
        self.keep = keep
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-job")
        self.lock = threading.Lock()

    def submit(self, kind: str, function, **params) -> dict:
        """Queues function(progress) and returns the new job's state."""
        uid = uuid.uuid4().hex[:16]
        job = {"id": uid, "kind": kind, "state": "queued", "params": params, "created_at": stamp(), "progress": {}}
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
        except Exception as error:  # recorded for GET /jobs/{id}
            self.update(uid, state="failed", error=f"{type(error).__name__}: {error}", trace=traceback.format_exc(limit=3), finished_at=stamp())

    def get(self, uid: str) -> dict | None:
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
            job = self.get(uid) or {"id": uid}
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
            if job and job["state"] in ("succeeded", "failed"):
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {uid} still running after {timeout}s")

    def shutdown(self):
        self.executor.shutdown(wait=False, cancel_futures=True)


def stamp() -> str:
    """ISO time with microseconds, so jobs created within a second still sort."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")

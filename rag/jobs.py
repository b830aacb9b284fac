"""Background jobs (ingestion runs, workflow runs) with their records where every server worker sees them.

    jobs = Jobs.open(config)                    # files, or a table with index.store: postgres
    job = jobs.submit("ingest", function, paths=[...])   # function(progress) runs in a background thread
    jobs.get(job["id"]); jobs.list(); jobs.wait(job["id"])

Records live in files under <index>/jobs/ (JobFiles: every uvicorn worker on the machine), or in
the table `jobs` of the index's PostgreSQL schema (JobTable: every replica on any machine).

A job's record is served to read keys (GET /jobs): it holds no traceback (that goes to the log) and
no absolute server path (paths under the config folder are made relative to it, others cut to their
file name). A job whose owner died before it ended is reported `interrupted`: for files, its process
is gone; for the table, its owner stopped stamping the heartbeat (a dead process or machine).
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

from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, delete, func, insert, select, update

from . import pgtables
from .clock import now
from .progress import Progress
from .store import replace_json
from .workflows.records import alive

logger = logging.getLogger("rag.jobs")

STATES = ("queued", "running", "succeeded", "failed", "interrupted")
ENDED = ("succeeded", "failed", "interrupted")
ABSOLUTE_PATH = re.compile(r"(?<![\w/:.~-])/[^\s'\"]*[^\s'\".,:;)\]]")  # /a/b.txt, not the /b of a URL or a relative a/b
KEEP = 200  # job records kept

METADATA = MetaData()
TABLE = Table(
    "jobs",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("created_at", String(40), nullable=False, index=True),  # ISO stamp with microseconds: sorts
    Column("state", String(16), nullable=False),
    Column("record", Text, nullable=False),  # the job as clients see it, JSON
    Column("beat", DateTime(timezone=True), nullable=False, server_default=func.now()),  # owner's heartbeat
)


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
            try:
                self.jobs.update(self.uid, progress=dict(self.state))
            except Exception:  # progress is for show: a lost update must not fail the job
                logger.warning("job %s: progress not recorded", self.uid, exc_info=True)


class JobFiles:
    """Job records as <folder>/<id>.json; the owner is a process id on this machine."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.lock = threading.Lock()

    def add(self, job: dict):
        replace_json(self.folder / f"{job['id']}.json", dict(job, pid=os.getpid()))

    def read(self, uid: str) -> dict | None:
        try:
            return json.loads((self.folder / f"{uid}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def update(self, uid: str, changes: dict):
        with self.lock:
            job = self.read(uid) or {"id": uid}
            job.update(changes)
            replace_json(self.folder / f"{uid}.json", job)

    def all(self) -> list[dict]:
        return [job for job in map(self.read, (p.stem for p in self.folder.glob("*.json"))) if job] if self.folder.exists() else []

    def remove(self, uids: list[str]):
        for uid in uids:
            (self.folder / f"{uid}.json").unlink(missing_ok=True)

    def orphaned(self, job: dict) -> str | None:
        pid = job.pop("pid", None)
        if pid and pid != os.getpid() and not alive(pid):
            return f"the server process that ran this job (pid {pid}) stopped before it ended"
        return None

    def release(self, uid: str):
        """The job ended here (its record says so)."""

    def close(self):
        pass


class JobTable:
    """Job records as rows of the table `jobs`; the owner stamps `beat` while the job is queued or
    running, and a job unstamped for `stale` seconds (by the database's clock) lost its owner."""

    def __init__(self, engine, stale: float = pgtables.STALE, beat: float = pgtables.BEAT):
        self.engine, self.stale = engine, stale
        self.heartbeat = pgtables.Heartbeat(engine, TABLE, beat)
        self.ready = False

    def connection(self):
        if not self.ready:
            pgtables.create(self.engine, METADATA)
            self.ready = True
        return self.engine.begin()

    def add(self, job: dict):
        with self.connection() as db:
            db.execute(insert(TABLE).values(id=job["id"], created_at=job["created_at"], state=job["state"], record=dumps(job)))
        self.heartbeat.add(job["id"])

    def read(self, uid: str) -> dict | None:
        with self.connection() as db:
            row = db.execute(select(TABLE.c.record, age()).where(TABLE.c.id == uid)).first()
        return loads(row) if row else None

    def update(self, uid: str, changes: dict):
        with self.connection() as db:
            row = db.execute(select(TABLE.c.record).where(TABLE.c.id == uid).with_for_update()).first()
            if row is None:
                return
            job = json.loads(row.record) | changes
            db.execute(update(TABLE).where(TABLE.c.id == uid).values(state=job["state"], record=dumps(job), beat=func.now()))

    def all(self) -> list[dict]:
        with self.connection() as db:
            return [loads(row) for row in db.execute(select(TABLE.c.record, age()))]

    def remove(self, uids: list[str]):
        if uids:
            with self.connection() as db:
                db.execute(delete(TABLE).where(TABLE.c.id.in_(uids)))

    def orphaned(self, job: dict) -> str | None:
        seconds = job.pop("beat_age", 0)
        if seconds > self.stale:
            return f"the server that ran this job stopped before it ended (no heartbeat for {seconds:.0f} s)"
        return None

    def release(self, uid: str):
        self.heartbeat.discard(uid)

    def close(self):
        self.heartbeat.stop()


def age():
    """Seconds since the row's last heartbeat, by the database's clock."""
    return func.extract("epoch", func.now() - TABLE.c.beat).label("beat_age")


def dumps(job: dict) -> str:
    return json.dumps(job, ensure_ascii=False, default=str)


def loads(row) -> dict:
    return json.loads(row.record) | {"beat_age": float(row.beat_age or 0)}


class Jobs:
    """Runs jobs one at a time in a background thread; their records in `records` (JobFiles or
    JobTable; a folder means JobFiles). root: the config folder, which paths in records are made
    relative to."""

    def __init__(self, records: "JobFiles | JobTable | Path | str", keep: int = KEEP, root: Path | None = None):
        self.records = records if isinstance(records, (JobFiles, JobTable)) else JobFiles(Path(records))
        self.keep = keep
        self.root = root
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-job")

    @classmethod
    def open(cls, config) -> "Jobs":
        """The jobs of config's index: in its PostgreSQL schema with index.store postgres, else in files."""
        if config.index.store == "postgres":
            return cls(JobTable(pgtables.connect(config)), root=config.root)
        return cls(config.index_dir / "jobs", root=config.root)

    def submit(self, kind: str, function, **params) -> dict:
        """Queues function(progress) and returns the new job's state."""
        uid = uuid.uuid4().hex[:16]
        job = {"id": uid, "kind": kind, "state": "queued", "params": self.relative(params), "created_at": stamp(), "progress": {}}
        self.records.add(job)
        self.executor.submit(self.run, uid, function)
        self.prune()
        return job

    def run(self, uid: str, function):
        try:
            self.update(uid, state="running", started_at=stamp())
            try:
                progress = JobProgress(self, uid)
                result = function(progress)
                self.update(uid, state="succeeded", result=result, progress=dict(progress.state), finished_at=stamp())
            except Exception as error:  # recorded for GET /jobs/{id}; the traceback only in the log
                logger.exception("job %s failed", uid)
                self.update(uid, state="failed", error=self.relative(f"{type(error).__name__}: {error}"), finished_at=stamp())
        finally:
            self.records.release(uid)

    def get(self, uid: str) -> dict | None:
        """The job as clients see it: `interrupted` when its owner is gone."""
        return self.public(self.records.read(uid)) if uid.isalnum() else None

    def public(self, job: dict | None) -> dict | None:
        if job is None:
            return None
        reason = self.records.orphaned(job)
        if job["state"] in ("queued", "running") and reason:
            job["state"] = "interrupted"
            job["error"] = reason
        return job

    def list(self) -> list[dict]:
        jobs = [self.public(job) for job in self.records.all()]
        return sorted(jobs, key=lambda j: j["created_at"], reverse=True)

    def update(self, uid: str, **changes):
        self.records.update(uid, changes)

    def prune(self):
        self.records.remove([job["id"] for job in self.list()[self.keep :]])

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
        self.records.close()


def stamp() -> str:
    """Microseconds, so jobs created within a second still sort."""
    return now("microseconds")

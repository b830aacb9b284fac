"""The record of workflow runs: when, what triggered them, how they ended.

    records = Records.open(config)      # files, or a table with index.store: postgres
    run = records.start("summarize", "api", inputs=3); records.finish(run, "succeeded", results=3)
    records.history("summarize"); records.last("summarize")

Records: one JSON file per workflow under <index>/workflows/, so the CLI, every server worker and
the scheduler on the machine see the same history. RunTable: rows of the table `workflow_runs` in
the index's PostgreSQL schema, seen by every replica. A run whose owner died is reported
`interrupted` (its process is gone; on the table, its heartbeat stopped).
"""

import json
import os
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import Column, DateTime, Float, Index, MetaData, String, Table, Text, delete, func, insert, select, update

from .. import pgtables
from ..clock import now as stamp
from ..store import replace_json

KEEP = 20  # runs kept per workflow

METADATA = MetaData()
TABLE = Table(
    "workflow_runs",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("workflow", Text, nullable=False),
    Column("began", Float, nullable=False),
    Column("record", Text, nullable=False),  # the run, JSON
    Column("beat", DateTime(timezone=True), nullable=False, server_default=func.now()),  # owner's heartbeat
    Index("workflow_runs_workflow", "workflow", "began"),
)


class Records:
    """Run history of the workflows of one index, in files."""

    def __init__(self, folder: Path, keep: int = KEEP):
        self.folder = Path(folder)
        self.keep = keep
        self.lock = threading.Lock()

    @classmethod
    def open(cls, config) -> "Records | RunTable":
        """The run records of config's index: in its PostgreSQL schema with index.store postgres,
        else in files. `folder` stays local (the scheduler's lock)."""
        folder = config.index_dir / "workflows"
        if config.index.store == "postgres":
            return RunTable(pgtables.connect(config), folder)
        return cls(folder)

    def start(self, workflow: str, trigger: str, inputs: int) -> dict:
        run = new_run(workflow, trigger, inputs)
        self.save(run)
        return run

    def finish(self, run: dict, status: str, **fields) -> dict:
        self.save(finished(run, status, fields))
        return run

    def history(self, workflow: str) -> list[dict]:
        """Runs, newest first; a run whose process is gone is reported as interrupted."""
        try:
            runs = json.loads((self.folder / f"{workflow}.json").read_text(encoding="utf-8"))["runs"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return []
        for run in runs:
            if run["status"] == "running" and run.get("pid") != os.getpid() and not alive(run.get("pid")):
                run["status"] = "interrupted"
        return [public(run) for run in runs]

    def last(self, workflow: str) -> dict | None:
        runs = self.history(workflow)
        return runs[0] if runs else None

    def save(self, run: dict):
        with self.lock:
            path = self.folder / f"{run['workflow']}.json"
            try:
                runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                runs = []
            runs = sorted([run] + [r for r in runs if r["id"] != run["id"]], key=lambda r: r.get("began", 0), reverse=True)
            replace_json(path, {"runs": runs[: self.keep]}, indent=1)


class RunTable:
    """Run history in the table `workflow_runs`; the owner stamps `beat` while a run goes on, and a
    running run unstamped for `stale` seconds (database clock) lost its owner."""

    def __init__(self, engine, folder: Path, keep: int = KEEP, stale: float = pgtables.STALE, beat: float = pgtables.BEAT):
        self.engine, self.folder, self.keep, self.stale = engine, Path(folder), keep, stale
        self.heartbeat = pgtables.Heartbeat(engine, TABLE, beat)
        self.ready = False

    def connect(self):
        if not self.ready:
            pgtables.create(self.engine, METADATA)
            self.ready = True
        return self.engine.begin()

    def start(self, workflow: str, trigger: str, inputs: int) -> dict:
        run = new_run(workflow, trigger, inputs)
        with self.connect() as db:
            db.execute(insert(TABLE).values(id=run["id"], workflow=workflow, began=run["began"], record=json.dumps(run, default=str)))
            older = select(TABLE.c.id).where(TABLE.c.workflow == workflow).order_by(TABLE.c.began.desc()).offset(self.keep)
            db.execute(delete(TABLE).where(TABLE.c.id.in_(older.scalar_subquery())))
        self.heartbeat.add(run["id"])
        return run

    def finish(self, run: dict, status: str, **fields) -> dict:
        finished(run, status, fields)
        self.heartbeat.discard(run["id"])
        with self.connect() as db:
            db.execute(update(TABLE).where(TABLE.c.id == run["id"]).values(record=json.dumps(run, default=str), beat=func.now()))
        return run

    def history(self, workflow: str) -> list[dict]:
        """Runs, newest first; a running run without a recent heartbeat is reported as interrupted."""
        age = func.extract("epoch", func.now() - TABLE.c.beat).label("age")
        query = select(TABLE.c.record, age).where(TABLE.c.workflow == workflow).order_by(TABLE.c.began.desc()).limit(self.keep)
        with self.connect() as db:
            rows = db.execute(query).all()
        runs = []
        for row in rows:
            run = json.loads(row.record)
            if run["status"] == "running" and float(row.age or 0) > self.stale:
                run["status"] = "interrupted"
            runs.append(public(run))
        return runs

    def last(self, workflow: str) -> dict | None:
        runs = self.history(workflow)
        return runs[0] if runs else None


def new_run(workflow: str, trigger: str, inputs: int) -> dict:
    return {
        "id": uuid.uuid4().hex[:12],
        "workflow": workflow,
        "trigger": trigger,
        "status": "running",
        "started_at": stamp(),
        "inputs": inputs,
        "pid": os.getpid(),
        "began": time.time(),
    }


def finished(run: dict, status: str, fields: dict) -> dict:
    run.update(fields, status=status, finished_at=stamp(), seconds=round(time.time() - run["began"], 3))
    return run


def public(run: dict) -> dict:
    return {key: value for key, value in run.items() if key not in ("pid", "began")}


def alive(pid) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

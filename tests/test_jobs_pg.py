"""Jobs and workflow runs with `index.store: postgres`: their records are rows of the index's schema,
so every replica (here: separate Config objects, and separate processes) sees every job; a job
whose owner was SIGKILLed is reported interrupted once its heartbeat stops."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from rag.config import Config
from rag.jobs import JobFiles, Jobs, JobTable
from rag.pgtables import connect, create_all
from rag.workflows.records import Records, RunTable
from tests.pgserver import query

ROOT = Path(__file__).resolve().parent.parent


def replica(url: str, name: str = "team") -> Config:
    """The config one API replica loads: the index (and its records) in PostgreSQL at url."""
    return Config.model_validate({"index": {"name": name, "store": "postgres", "postgres": {"url": url}}})


def test_every_replica_sees_every_job_with_its_progress_and_outcome(postgres_database):
    first, second = Jobs.open(replica(postgres_database)), Jobs.open(replica(postgres_database))
    assert isinstance(first.records, JobTable)
    release = threading.Event()

    def ingest(progress):
        progress.files(2)
        progress.file("/srv/private/docs/a.md")
        release.wait(60)
        return {"added": 2}

    job = first.submit("ingest", ingest, paths=["/srv/private/docs"])
    try:
        seen = second.get(job["id"])
        assert seen["kind"] == "ingest" and seen["state"] in ("queued", "running") and seen["params"] == {"paths": [".../docs"]}
        release.set()
        done = second.wait(job["id"], timeout=60)
        assert done["state"] == "succeeded" and done["result"] == {"added": 2} and done["progress"]["files_done"] == 1
        failed = second.wait(second.submit("ingest", lambda progress: 1 / 0)["id"], timeout=60)
        assert failed["state"] == "failed" and failed["error"].startswith("ZeroDivisionError")
        assert [j["id"] for j in first.list()] == [failed["id"], job["id"]]  # newest first, from either replica
        assert all("pid" not in j and "beat_age" not in j for j in first.list())
    finally:
        release.set()
        first.shutdown()
        second.shutdown()
    assert query(postgres_database, "SELECT count(*) FROM localrag_team.jobs") == [(2,)]


def test_job_records_are_bounded(postgres_database):
    jobs = Jobs(JobTable(connect(replica(postgres_database))), keep=3)
    try:
        uids = [jobs.wait(jobs.submit("ingest", lambda progress: None)["id"])["id"] for _ in range(5)]
        assert [j["id"] for j in jobs.list()] == uids[::-1][:3]
    finally:
        jobs.shutdown()


def test_a_job_whose_owner_was_killed_is_reported_interrupted_by_another_replica(postgres_database):
    owner = (
        "import os, sys, time; from rag.config import Config; from rag.jobs import Jobs, JobTable; from rag.pgtables import connect;"
        "config = Config.model_validate({'index': {'name': 'team', 'store': 'postgres', 'postgres': {'url': sys.argv[1]}}});"
        "jobs = Jobs(JobTable(connect(config), beat=0.2)); job = jobs.submit('ingest', lambda progress: time.sleep(120));"
        "print(job['id'], flush=True); sys.stdin.readline(); os.kill(os.getpid(), 9)"
    )
    process = subprocess.Popen([sys.executable, "-c", owner, postgres_database], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        uid = process.stdout.readline().strip()
        watcher = Jobs(JobTable(connect(replica(postgres_database)), stale=2.0))
        assert watcher.get(uid)["state"] in ("queued", "running")
        time.sleep(3.0)  # longer than `stale`: the living owner's heartbeat keeps it running
        assert watcher.get(uid)["state"] == "running"
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.wait(timeout=60) == -9
        job = watcher.wait(uid, timeout=60)
        assert job["state"] == "interrupted" and "stopped before it ended" in job["error"]
        assert [j["state"] for j in watcher.list() if j["id"] == uid] == ["interrupted"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    watcher.shutdown()


def test_workflow_runs_are_shared_and_bounded_and_a_dead_run_is_interrupted(postgres_database):
    config = replica(postgres_database)
    first, second = Records.open(config), Records.open(replica(postgres_database))
    assert isinstance(first, RunTable) and first.folder == config.index_dir / "workflows"
    run = first.start("summarize", "api", inputs=3)
    assert second.last("summarize")["status"] == "running"
    first.finish(run, "succeeded", results=3)
    last = second.last("summarize")
    assert last["status"] == "succeeded" and last["results"] == 3 and last["trigger"] == "api" and "pid" not in last
    orphan = RunTable(connect(config), config.index_dir, keep=4, stale=0.0)  # an owner that never beats
    orphan.start("summarize", "schedule", inputs=1)
    assert orphan.history("summarize")[0]["status"] == "interrupted"
    for _ in range(5):
        orphan.finish(orphan.start("summarize", "cli", inputs=0), "succeeded")
    assert len(orphan.history("summarize")) == 4


def test_create_all_makes_every_table_in_the_index_schema_and_is_idempotent(postgres_database):
    config = replica(postgres_database, name="Docs.v2")
    create_all(config)
    create_all(config)
    tables = query(postgres_database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'localrag_docs_v2' ORDER BY 1")
    assert tables == [("conversations",), ("jobs",), ("turns",), ("workflow_runs",)]


def test_the_local_store_keeps_job_records_in_files(tmp_path):
    config = Config.model_validate({"index": {"path": str(tmp_path / "indexes")}})
    jobs = Jobs.open(config)
    try:
        assert isinstance(jobs.records, JobFiles) and isinstance(Records.open(config), Records)
        uid = jobs.wait(jobs.submit("ingest", lambda progress: {"pid": os.getpid()})["id"])["id"]
        assert (config.index_dir / "jobs" / f"{uid}.json").is_file()
    finally:
        jobs.shutdown()


def test_one_replica_runs_the_schedules(postgres_database):
    """The scheduler lock of a Postgres index is the database's: a second replica (its own engine,
    as on another machine) does not take it until the first stops, and the first's pooled
    connection does not keep it after stop."""
    from types import SimpleNamespace

    from sqlalchemy import create_engine

    from rag.workflows.scheduler import Scheduler

    mine = connect(replica(postgres_database))
    other = create_engine(mine.url).execution_options(schema_translate_map={None: "localrag_team"})
    first = Scheduler(None, SimpleNamespace(records=SimpleNamespace(engine=mine)))
    second = Scheduler(None, SimpleNamespace(records=SimpleNamespace(engine=other)))
    try:
        assert first.acquire() and not second.acquire()
        first.stop()
        assert second.acquire() and not first.acquire()
    finally:
        first.stop(), second.stop()
        other.dispose()

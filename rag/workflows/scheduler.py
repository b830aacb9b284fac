"""Runs scheduled workflows inside `rag serve`, in one background thread.

    scheduler = Scheduler(service)
    scheduler.start()     # in the app's lifespan; False when nothing is scheduled
    ...
    scheduler.stop()

txtai's Workflow.schedule loops forever without a way to stop it or to record runs; this loop
uses the same croniter schedule (local time, missed runs skipped) and records each run like any
other (trigger "schedule"). With several server workers only the one holding
<index>/workflows/.scheduler.lock runs schedules, so a workflow does not run once per worker; on
PostgreSQL (index.store: postgres) the lock is an advisory lock of the index's schema, so replicas
on other machines do not run them again.
"""

import fcntl
import logging
import threading
import time

from sqlalchemy import text

from .runner import Busy

logger = logging.getLogger("rag.workflows")
LOCK = ".scheduler.lock"


class Scheduler:
    """Fires the workflows whose `schedule:` is enabled."""

    def __init__(self, service, workflows=None):
        self.workflows = workflows or service.workflows
        self.stopping = threading.Event()
        self.thread = None
        self.handle = None
        self.fired: dict[str, int] = {}

    def scheduled(self) -> list:
        return [spec for spec in self.workflows.section.workflows.values() if spec.schedule and spec.schedule.enabled]

    def start(self) -> bool:
        """Starts the thread; False if no schedule is enabled or another process runs them."""
        specs = self.scheduled()
        if not specs or self.thread:
            return bool(self.thread)
        if not self.acquire():
            logger.info("scheduler: another process runs the workflow schedules")
            return False
        self.stopping.clear()
        self.thread = threading.Thread(target=self.loop, args=(specs,), name="rag-scheduler", daemon=True)
        self.thread.start()
        for spec in specs:
            logger.info("scheduler: %s on %s", spec.name, spec.schedule.cron or f"every {spec.schedule.every:g}s")
        return True

    def stop(self, timeout: float = 30.0):
        """Stops the loop; a run in progress is given `timeout` seconds to end."""
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout)
            self.thread = None
        if self.handle:
            self.handle.close()
            self.handle = None

    def loop(self, specs):
        due = {spec.name: spec.schedule.next() for spec in specs}
        left = {spec.name: spec.schedule.iterations for spec in specs}
        specs = {spec.name: spec for spec in specs}
        while due and not self.stopping.is_set():
            name = min(due, key=due.get)
            if self.stopping.wait(max(0.0, due[name] - time.time())):
                break
            self.fire(specs[name])
            if left[name] is not None:
                left[name] -= 1
                if left[name] <= 0:
                    del due[name]
                    logger.info("scheduler: %s reached its %d iteration(s)", name, specs[name].schedule.iterations)
                    continue
            due[name] = specs[name].schedule.next(max(time.time(), due[name]))

    def fire(self, spec):
        schedule = spec.schedule
        self.fired[spec.name] = self.fired.get(spec.name, 0) + 1
        try:
            self.workflows.execute(spec.name, schedule.elements, trigger="schedule", wait=False)
        except Busy:
            logger.warning("scheduler: %s skipped: the previous run has not finished", spec.name)
        except Exception:  # recorded and logged by execute; the schedule goes on
            pass

    def acquire(self) -> bool:
        engine = getattr(self.workflows.records, "engine", None)
        if engine is not None:
            return self.acquire_advisory(engine)
        folder = self.workflows.records.folder
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self.handle = handle
        return True

    def acquire_advisory(self, engine) -> bool:
        """The scheduler lock of a PostgreSQL index: a session-level advisory lock held by a
        connection kept until stop (or until this process dies and its session ends)."""
        lock = AdvisoryLock(engine, "localrag-scheduler")
        if not lock.acquire():
            return False
        self.handle = lock
        return True


class AdvisoryLock:
    """A session-level PostgreSQL advisory lock named by key and the engine's schema, held by one
    connection of the engine's pool until close (which unlocks it before the connection goes back)."""

    def __init__(self, engine, key: str):
        self.connection = engine.connect()
        schema = self.connection.get_execution_options().get("schema_translate_map", {}).get(None)
        self.key = f"{key}:{schema}"

    def acquire(self) -> bool:
        held = self.connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": self.key}).scalar()
        self.connection.commit()
        if not held:
            self.connection.close()
        return bool(held)

    def close(self):
        try:
            self.connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": self.key})
            self.connection.commit()
        finally:
            self.connection.close()

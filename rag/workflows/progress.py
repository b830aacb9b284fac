"""Progress of a workflow run, and the run that the actions of the current thread belong to.

A progress object may implement any of these methods; missing ones are skipped, so the ingest
progress bars and job recorders of rag.ingest.Progress work unchanged:

    start(workflow, inputs)    a run begins with this many input elements
    action(name, count)        an action starts on a batch of `count` elements
    advance(count)             elements of the current action are done
    finish(results)            the run ended with this many results
    files / file / embedding / chunks    ingestion progress (rag.ingest.Progress), from `ingest` and `upsert`
"""

import threading
from dataclasses import dataclass, field

from ..ingest import Progress

METHODS = ("start", "action", "advance", "finish", "files", "file", "embedding", "chunks")


class WorkflowProgress(Progress):
    """Receives workflow progress (a superset of rag.ingest.Progress). Does nothing by default."""

    def start(self, workflow: str, inputs: int):
        pass

    def action(self, name: str, count: int):
        pass

    def advance(self, count: int = 1):
        pass

    def finish(self, results: int):
        pass


class Relay(WorkflowProgress):
    """Forwards to a progress object the methods it has; the others do nothing."""

    def __init__(self, target=None):
        self.target = target
        for name in METHODS:
            method = getattr(target, name, None)
            if callable(method):
                setattr(self, name, method)


@dataclass
class Run:
    """What the actions need to know about the run they are part of."""

    workflow: str
    trigger: str
    progress: WorkflowProgress = field(default_factory=Relay)
    outputs: list[str] = field(default_factory=list)  # files written by jsonl / markdown
    confined: bool = False  # started over HTTP: inputs may only name files under the sources


LOCAL = threading.local()
CONFINED = {"runs": 0}  # confined runs in progress in the process
CONFINED_LOCK = threading.Lock()


def current() -> Run:
    """The run of this thread. A thread outside any run (e.g. of a txtai thread pool) gets a
    detached run, confined while any confined run is in progress, so confinement cannot be lost."""
    run = getattr(LOCAL, "run", None)
    return run if run is not None else Run(workflow="", trigger="", confined=CONFINED["runs"] > 0)


def enter(run: Run):
    LOCAL.run = run
    if run.confined:
        with CONFINED_LOCK:
            CONFINED["runs"] += 1


def leave():
    run, LOCAL.run = getattr(LOCAL, "run", None), None
    if run is not None and run.confined:
        with CONFINED_LOCK:
            CONFINED["runs"] -= 1

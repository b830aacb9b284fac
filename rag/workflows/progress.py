"""The run that the actions of the current thread belong to: its progress receiver, its outputs,
and whether it was requested over HTTP (confined to the sources).

Progress goes through rag.progress.Progress: a run calls start, action, advance, finish, and the
`ingest` and `upsert` actions add ingestion's files, file, embedding and chunks.
"""

import threading
from dataclasses import dataclass, field

from ..progress import Progress


@dataclass
class Run:
    """What the actions need to know about the run they are part of."""

    workflow: str
    trigger: str
    progress: Progress = field(default_factory=Progress)
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

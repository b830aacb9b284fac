"""The record of workflow runs: when, what triggered them, how they ended. One JSON file per workflow
under <index>/workflows/, so the CLI, every server worker and the scheduler see the same history."""

import json
import os
import threading
import time
import uuid
from pathlib import Path

from ..clock import now as stamp
from ..store import replace_json

KEEP = 20  # runs kept per workflow


class Records:
    """Run history of the workflows of one index."""

    def __init__(self, folder: Path, keep: int = KEEP):
        self.folder = Path(folder)
        self.keep = keep
        self.lock = threading.Lock()

    def start(self, workflow: str, trigger: str, inputs: int) -> dict:
        run = {
            "id": uuid.uuid4().hex[:12],
            "workflow": workflow,
            "trigger": trigger,
            "status": "running",
            "started_at": stamp(),
            "inputs": inputs,
            "pid": os.getpid(),
            "began": time.time(),
        }
        self.save(run)
        return run

    def finish(self, run: dict, status: str, **fields) -> dict:
        run.update(fields, status=status, finished_at=stamp(), seconds=round(time.time() - run["began"], 3))
        self.save(run)
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

"""Runs the workflows of a config, from the CLI, the API (inline or as a job) and the scheduler.
Every run is logged and recorded (rag.workflows.records) with its trigger and outcome."""

import json
import logging
import threading

from ..progress import Progress
from ..clock import iso
from .progress import Run, enter, leave
from .records import Records, public
from .errors import WorkflowError
from .spec import WorkflowSpec

logger = logging.getLogger("rag.workflows")


class UnknownWorkflow(KeyError):
    """No workflow of that name in config.yml."""

    def __str__(self):
        return self.args[0]


class MissingInput(WorkflowError):
    """A run without inputs of a workflow that has no default `elements`."""


class Busy(RuntimeError):
    """The workflow is already running in this process."""


class Workflows:
    """The workflows of a LocalRAG service (the section was checked with config.yml); txtai
    pipelines and workflows are built on the first run."""

    def __init__(self, service):
        self.service = service
        self.section = service.config.workflow
        self.records = Records.open(service.config)
        self.app = None
        self.lock = threading.Lock()
        self.running = {name: threading.Lock() for name in self.section.workflows}

    # ---- what there is ------------------------------------------------------

    def names(self) -> list[str]:
        return list(self.section.workflows)

    def spec(self, name: str) -> WorkflowSpec:
        try:
            return self.section.workflows[name]
        except KeyError:
            known = ", ".join(self.names()) or "none defined"
            raise UnknownWorkflow(f"no workflow {name!r} in config.yml (workflows: {known})") from None

    def describe(self, name: str) -> dict:
        """Name, description, tasks, schedule (with next run when enabled), last run."""
        spec = self.spec(name)
        data = spec.to_dict()
        if spec.schedule and spec.schedule.enabled:
            data["schedule"]["next_run"] = iso(spec.schedule.next())
        data["running"] = self.running[name].locked()
        data["last_run"] = self.records.last(name)
        return data

    def listing(self) -> list[dict]:
        return [self.describe(name) for name in self.names()]

    def history(self, name: str) -> list[dict]:
        self.spec(name)
        return self.records.history(name)

    def application(self):
        """The txtai Application of the section, built once."""
        with self.lock:
            if self.app is None:
                from .application import WorkflowApplication

                self.app = WorkflowApplication(self.section, self.service)
            return self.app

    # ---- running ---------------------------------------------------------------

    def inputs(self, name: str, inputs=None) -> list:
        """The run's elements: the given inputs, else the workflow's default `elements`."""
        spec = self.spec(name)
        elements = list(inputs) if inputs else list(spec.elements or [])
        if not elements:
            raise MissingInput("needs inputs (this workflow has no default `elements:`)", name)
        return elements

    def execute(self, name: str, inputs=None, progress=None, trigger: str = "cli", wait: bool = True, confined: bool = False) -> dict:
        """Runs a workflow: {"workflow", "run" (the record), "results"}. Runs of one workflow take
        turns (wait=False raises Busy instead). A failure is recorded, logged and raised.
        confined: inputs may only name files under the sources (runs requested over HTTP)."""
        elements = self.inputs(name, inputs)
        gate = self.running[name]
        if not gate.acquire(blocking=wait):
            raise Busy(f"workflow {name!r} is already running")
        try:
            return self.perform(name, elements, Run(name, trigger, progress or Progress(), confined=confined))
        finally:
            gate.release()

    def perform(self, name: str, elements: list, run) -> dict:
        """One recorded, logged run."""
        record = self.records.start(name, run.trigger, len(elements))
        logger.info("workflow %s: started (%s, %d input(s), run %s)", name, run.trigger, len(elements), record["id"])
        enter(run)
        try:
            workflow = self.application().workflows[name]
            run.progress.start(name, len(elements))
            results = jsonable(list(workflow(elements)))
            run.progress.finish(len(results))
        except BaseException as error:
            self.records.finish(record, "failed", error=f"{type(error).__name__}: {error}", outputs=run.outputs)
            logger.error("workflow %s: failed after %.1fs: %s: %s", name, record["seconds"], type(error).__name__, error, exc_info=not isinstance(error, (WorkflowError, KeyboardInterrupt)))
            raise
        finally:
            leave()

        errors = sum(1 for r in results if isinstance(r, dict) and r.get("error"))
        self.records.finish(record, "succeeded", results=len(results), errors=errors, outputs=run.outputs)
        logger.info("workflow %s: succeeded in %.1fs: %d result(s), %d with errors", name, record["seconds"], len(results), errors)
        return {"workflow": name, "run": public(record), "results": results}

    def run(self, name: str, inputs=None, progress=None, trigger: str = "cli") -> list:
        """Runs a workflow and returns its results (JSON-ready)."""
        return self.execute(name, inputs, progress, trigger)["results"]

    def submit(self, name: str, inputs=None, trigger: str = "api", confined: bool = True) -> dict:
        """Runs a workflow as a background job (rag.jobs); returns the job (poll service.jobs.get)."""
        elements = self.inputs(name, inputs)
        return self.service.jobs.submit(
            "workflow",
            lambda progress: self.execute(name, elements, progress, trigger, confined=confined),
            workflow=name,
            inputs=len(elements),
        )


def jsonable(value):
    """Results as plain JSON data (numpy values, tuples, paths and dataclasses converted)."""
    return json.loads(json.dumps(value, default=convert, ensure_ascii=False))


def convert(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def list_workflows(service) -> list[dict]:
    """`rag workflow list` and GET /workflows: name, description, tasks, schedule, last run."""
    return service.workflows.listing()


def run_workflow(service, name: str, inputs=None, progress=None, trigger: str = "cli") -> list:
    """`rag workflow run NAME [INPUT...]`: the results (JSON-ready)."""
    return service.workflows.run(name, inputs, progress, trigger)

"""The `workflow:` section of config.yml, parsed and checked before anything runs.

    workflow:
      pipelines:                 # txtai pipelines the workflows may use as actions (optional)
        llm: {method: rag.llm.LocalRAGGeneration}
      NAME:
        description: ...
        elements: [...]          # default inputs when a run is given none
        background: false        # POST /workflows/NAME answers with a job id instead of waiting
        schedule: {cron: "*/30 * * * *", enabled: false}    # or {every: 30m}
        tasks:                   # txtai tasks: action, task, args, select, batch options...
          - action: load

Every problem raises WorkflowError naming the workflow and the task (1-based), e.g.
"workflow 'digest', task 2: unknown action 'summarise'; ...". Nothing heavy is imported here
unless the section names a txtai pipeline or a Python path.
"""

import importlib
import inspect
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .actions import ACTIONS
from .errors import WorkflowError

PIPELINES = "pipelines"  # reserved key of the section: txtai pipeline settings, not a workflow
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Workflow keys: txtai's own, and localrag's (not passed to txtai)
TXTAI_KEYS = {"tasks", "batch", "workers", "stream"}
LOCAL_KEYS = {"description", "elements", "schedule", "background"}
SCHEDULE_KEYS = {"cron", "every", "elements", "iterations", "enabled"}

# txtai task types in txtai.workflow.task (a dotted path names a custom Task class)
TASK_TYPES = {"console", "export", "file", "image", "retrieve", "service", "storage", "stream", "template", "url", "workflow"}

# txtai's built-in actions that work on an Application's own embeddings index; localrag's index is
# written with `upsert` (project action) and read with `search`
TXTAI_INDEX_ACTIONS = {"index", "transform"}

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)[a-z]*\s*$", re.IGNORECASE)
TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0", ""}


@dataclass
class Schedule:
    """When a workflow runs by itself inside `rag serve`: a cron expression or a fixed interval."""

    cron: str | None = None  # 5 fields, or 6 with seconds last ("*/2 * * * * *" = every 2 seconds)
    every: float | None = None  # seconds
    elements: list | None = None
    iterations: int | None = None  # stop after this many runs; None: forever
    enabled: bool = True

    def next(self, after: float | None = None) -> float:
        """Unix time of the next run after `after` (now by default), in local time like txtai."""
        after = time.time() if after is None else after
        if self.every:
            return after + self.every
        from croniter import croniter

        start = datetime.fromtimestamp(after).astimezone()
        return croniter(self.cron, start).get_next(datetime).timestamp()

    def to_dict(self) -> dict:
        data = {"cron": self.cron, "every": self.every, "enabled": self.enabled, "iterations": self.iterations}
        if self.elements is not None:
            data["elements"] = self.elements
        return data


@dataclass
class WorkflowSpec:
    """One checked workflow: its tasks in txtai syntax plus localrag's settings."""

    name: str
    tasks: list[dict]
    description: str = ""
    elements: list | None = None
    background: bool = False
    schedule: Schedule | None = None
    options: dict = field(default_factory=dict)  # batch, workers, stream: passed to txtai

    @property
    def actions(self) -> list[str]:
        names = []
        for task in self.tasks:
            action = task.get("action")
            names.extend(action if isinstance(action, list) else [action] if action else [])
        return names

    def txtai(self) -> dict:
        """The txtai workflow config (tasks are copied: txtai's factories change them)."""
        return {"tasks": [dict(task) for task in self.tasks], **self.options}

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "tasks": self.tasks,
            "elements": self.elements,
            "background": self.background,
            "schedule": self.schedule.to_dict() if self.schedule else None,
            **self.options,
        }


@dataclass
class Section:
    """The whole `workflow:` section."""

    workflows: dict[str, WorkflowSpec]
    pipelines: dict[str, dict]


def parse(section: dict | None) -> Section:
    """Checks the `workflow:` section; raises WorkflowError naming the workflow and task."""
    section = dict(section or {})
    if not isinstance(section, dict):
        raise WorkflowError("the workflow section must map workflow names to workflows")
    pipelines = parse_pipelines(section.pop(PIPELINES, None) or {})
    workflows = {}
    for name, body in section.items():
        name = str(name)
        if not NAME.match(name):
            raise WorkflowError("invalid name: use letters, digits, '_', '-' and '.'", name)
        workflows[name] = parse_workflow(name, body)

    names = set(workflows)
    for spec in workflows.values():
        for number, task in enumerate(spec.tasks, 1):
            check_task(spec.name, number, task, pipelines, names)
    check_cycles(workflows)
    return Section(workflows, pipelines)


def parse_pipelines(pipelines) -> dict[str, dict]:
    if not isinstance(pipelines, dict):
        raise WorkflowError(f"{PIPELINES} must map txtai pipeline names to their settings")
    checked = {}
    for name, settings in pipelines.items():
        if settings is not None and not isinstance(settings, dict):
            raise WorkflowError(f"{PIPELINES}.{name}: settings must be a mapping (or empty)")
        if name in ACTIONS:
            raise WorkflowError(f"{PIPELINES}.{name}: {name!r} is a localrag action; a pipeline cannot take its name")
        if "." in name:
            importable(name, f"{PIPELINES}.{name}")
        elif name not in txtai_pipelines():
            raise WorkflowError(
                f"{PIPELINES}.{name}: not a txtai pipeline; use one of {', '.join(sorted(txtai_pipelines()))} or a class path"
            )
        checked[name] = dict(settings or {})
    return checked


def parse_workflow(name: str, body) -> WorkflowSpec:
    if not isinstance(body, dict):
        raise WorkflowError("expected a mapping with `tasks:`", name)
    unknown = set(body) - TXTAI_KEYS - LOCAL_KEYS
    if unknown:
        raise WorkflowError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(TXTAI_KEYS | LOCAL_KEYS))}", name)
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise WorkflowError("`tasks:` must be a non-empty list", name)
    tasks = [normalize_task(name, number, task) for number, task in enumerate(tasks, 1)]

    options = {key: body[key] for key in ("batch", "workers") if body.get(key) is not None}
    for key, value in options.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise WorkflowError(f"{key} must be a positive integer (got {value!r})", name)
    if "stream" in body:
        options["stream"] = normalize_task(name, "stream", body["stream"])

    elements = body.get("elements")
    if elements is not None and not isinstance(elements, list):
        elements = [elements]
    return WorkflowSpec(
        name=name,
        tasks=tasks,
        description=str(body.get("description") or "").strip(),
        elements=elements,
        background=boolean(body.get("background", False), name, "background"),
        schedule=parse_schedule(name, body["schedule"]) if body.get("schedule") is not None else None,
        options=options,
    )


def normalize_task(workflow: str, number, task) -> dict:
    """txtai's shorthand (`- load`, `- [a, b]`) to a task mapping."""
    if isinstance(task, (str, list)):
        task = {"action": task}
    if not isinstance(task, dict):
        raise WorkflowError("a task is an action name or a mapping with `action:`", workflow, number)
    task = dict(task)
    action = task.get("action")
    if action is not None and not (isinstance(action, str) or (isinstance(action, list) and all(isinstance(a, str) for a in action))):
        raise WorkflowError("action must be a name or a list of names", workflow, number)
    return task


def parse_schedule(workflow: str, body) -> Schedule:
    if not isinstance(body, dict):
        raise WorkflowError("schedule must be a mapping with `cron:` or `every:`", workflow)
    unknown = set(body) - SCHEDULE_KEYS
    if unknown:
        raise WorkflowError(f"unknown schedule key(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(SCHEDULE_KEYS))}", workflow)
    cron, every = body.get("cron"), body.get("every")
    if (cron is None) == (every is None):
        raise WorkflowError("schedule needs exactly one of `cron:` (e.g. \"*/30 * * * *\") or `every:` (e.g. 30m)", workflow)
    if cron is not None:
        cron = str(cron).strip()
        check_cron(workflow, cron)
    else:
        every = interval(workflow, every)
    iterations = body.get("iterations")
    if iterations is not None and (not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1):
        raise WorkflowError(f"schedule iterations must be a positive integer (got {iterations!r})", workflow)
    elements = body.get("elements")
    if elements is not None and not isinstance(elements, list):
        elements = [elements]
    return Schedule(cron, every, elements, iterations, boolean(body.get("enabled", True), workflow, "schedule.enabled"))


def check_cron(workflow: str, cron: str):
    from croniter import croniter

    fields = len(cron.split())
    if fields not in (5, 6) or not croniter.is_valid(cron):
        raise WorkflowError(
            f"invalid cron expression {cron!r}: expected 5 fields (minute hour day month weekday), "
            "or 6 with seconds last, e.g. \"*/30 * * * *\"",
            workflow,
        )


def interval(workflow: str, value) -> float:
    """Seconds from 90, "90s", "5m", "2h", "1d"."""
    match = INTERVAL.match(str(value))
    if isinstance(value, bool) or not match:
        raise WorkflowError(f"invalid schedule interval {value!r}: expected seconds or e.g. 30s, 5m, 2h, 1d", workflow)
    seconds = float(match.group(1)) * UNITS[(match.group(2) or "s").lower()]
    if seconds < 1:
        raise WorkflowError(f"schedule interval {value!r} is below one second", workflow)
    return seconds


def boolean(value, workflow: str, key: str) -> bool:
    """A YAML boolean, or its text after ${VAR:-false} interpolation."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise WorkflowError(f"{key} must be true or false (got {value!r})", workflow)


def check_task(workflow: str, number: int, task: dict, pipelines: dict, workflows: set):
    """Task type, actions, their arguments and the initialize/finalize functions resolve."""
    kind = task.get("task")
    if kind is not None:
        if "." in str(kind):
            importable(str(kind), f"task type {kind!r}", workflow, number)
        elif str(kind).lower() not in TASK_TYPES:
            raise WorkflowError(f"unknown task type {kind!r}; txtai task types: {', '.join(sorted(TASK_TYPES))}", workflow, number)

    action = task.get("action")
    names = action if isinstance(action, list) else [action] if action else []
    args = task.get("args")
    if len(names) > 1 and args is not None and not (isinstance(args, list) and len(args) == len(names)):
        raise WorkflowError("with several actions, args must be a list with one entry per action", workflow, number)
    for index, name in enumerate(names):
        check_action(workflow, number, name, pipelines, workflows)
        given = args[index] if len(names) > 1 and args is not None else args
        if name in ACTIONS:
            check_arguments(workflow, number, name, given)
        elif given is not None and not isinstance(given, (dict, list)):
            raise WorkflowError(f"args of {name!r} must be a mapping or a list", workflow, number)

    for hook in ("initialize", "finalize"):
        if isinstance(task.get(hook), str):
            check_action(workflow, number, task[hook], pipelines, workflows, what=hook)


def check_action(workflow: str, number: int, name: str, pipelines: dict, workflows: set, what: str = "action"):
    """A localrag action, a declared pipeline, another workflow or an importable Python path."""
    if name in ACTIONS or name in pipelines:
        return
    if name in workflows:
        if name == workflow:
            raise WorkflowError(f"{what} {name!r} is this workflow itself", workflow, number)
        return
    if "." in name:
        importable(name, f"{what} {name!r}", workflow, number)
        return
    if name in TXTAI_INDEX_ACTIONS:
        raise WorkflowError(
            f"{what} {name!r} works on a txtai application index, which localrag does not use; use `upsert` to write the index",
            workflow,
            number,
        )
    if name in txtai_pipelines():
        raise WorkflowError(
            f"{what} {name!r} is a txtai pipeline that is not declared: add it under workflow.{PIPELINES} "
            f"(e.g. `{PIPELINES}: {{{name}: {{path: ...}}}}`)",
            workflow,
            number,
        )
    available = sorted(ACTIONS) + sorted(pipelines) + sorted(workflows - {workflow})
    raise WorkflowError(f"unknown {what} {name!r}; available: {', '.join(available)} (or a txtai pipeline / Python path)", workflow, number)


def check_arguments(workflow: str, number: int, name: str, args):
    """Arguments of a localrag action against its signature: unknown and missing ones."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise WorkflowError(f"args of action {name!r} must be a mapping", workflow, number)
    parameters = dict(list(inspect.signature(ACTIONS[name].__init__).parameters.items())[2:])  # after self, service
    unknown = set(args) - set(parameters)
    if unknown:
        accepted = ", ".join(parameters) or "none"
        raise WorkflowError(f"unknown argument(s) {', '.join(sorted(unknown))} for action {name!r}; accepted: {accepted}", workflow, number)
    missing = [key for key, p in parameters.items() if p.default is inspect.Parameter.empty and key not in args]
    if missing:
        raise WorkflowError(f"action {name!r} needs argument(s) {', '.join(missing)} (under `args:`)", workflow, number)


def importable(path: str, what: str, workflow: str | None = None, number: int | None = None) -> Any:
    """Imports module.attribute; a WorkflowError names what could not be found."""
    module, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise WorkflowError(f"{what}: cannot import {path!r} ({error})", workflow, number) from None


def txtai_pipelines() -> set[str]:
    from txtai.pipeline import PipelineFactory

    return set(PipelineFactory.list())


def check_cycles(workflows: dict[str, WorkflowSpec]):
    """A workflow may run another as an action, but not itself through others."""

    def visit(name, path):
        if name in path:
            raise WorkflowError(f"workflows call each other in a loop: {' -> '.join(path + [name])}", path[0])
        for action in workflows[name].actions:
            if action in workflows and action not in ACTIONS:
                visit(action, path + [name])

    for name in workflows:
        visit(name, [])


def dependencies(spec: WorkflowSpec, names) -> list[str]:
    """Other workflows this one uses as actions."""
    return [action for action in spec.actions if action in names and action not in ACTIONS]

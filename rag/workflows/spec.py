"""The `workflow:` section of config.yml as pydantic models, checked when config.yml loads.

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

A mistake is a config error like any other, naming the key (list items count from 0):

    config.yml: workflow.digest.tasks.1.action: unknown action 'summarise'; available: ask, chunk, ...

Checking a section imports localrag's actions; txtai only when it names a txtai pipeline or a
Python path that does not resolve otherwise.
"""

import importlib
import inspect
import re
import time
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StringConstraints, field_validator, model_validator

from ..strict import Strict, invalid

PIPELINES = "pipelines"  # reserved key of the section: txtai pipeline settings, not a workflow

# txtai task types in txtai.workflow.task (a dotted path names a custom Task class)
TASK_TYPES = {"console", "export", "file", "image", "retrieve", "service", "storage", "stream", "template", "url", "workflow"}

# txtai's built-in actions that work on an Application's own embeddings index; localrag's index is
# written with `upsert` (project action) and read with `search`
TXTAI_INDEX_ACTIONS = {"index", "transform"}

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)[a-z]*\s*$", re.IGNORECASE)


def listed(value):
    """One element or a list of them, as a list."""
    return value if value is None or isinstance(value, list) else [value]


def blank_is_false(value):
    """'' (an unset ${VAR}) is false; other text as pydantic reads booleans: true, no, on, 0, ..."""
    return (value.strip() or False) if isinstance(value, str) else value


def action_names(value):
    """An action name or a list of them (one error instead of one per form)."""
    if value is None or isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        return value
    raise ValueError("must be an action name or a list of them")


def seconds(value) -> float:
    """Seconds from 90, "90s", "5m", "2h", "1d"."""
    match = INTERVAL.match(str(value))
    if isinstance(value, bool) or not match:
        raise ValueError(f"invalid schedule interval {value!r}: expected seconds or e.g. 30s, 5m, 2h, 1d")
    interval = float(match.group(1)) * UNITS[(match.group(2) or "s").lower()]
    if interval < 1:
        raise ValueError(f"schedule interval {value!r} is below one second")
    return interval


Actions = Annotated[str | list[str] | None, BeforeValidator(action_names)]
Elements = Annotated[list | None, BeforeValidator(listed)]
Flag = Annotated[bool, BeforeValidator(blank_is_false)]
Interval = Annotated[float, BeforeValidator(seconds)]
Mapping = BeforeValidator(lambda value: {} if value is None else value)  # `key:` left empty


class Schedule(Strict):
    """When a workflow runs by itself inside `rag serve`: a cron expression or a fixed interval."""

    cron: str | None = None  # 5 fields, or 6 with seconds last ("*/2 * * * * *" = every 2 seconds)
    every: Interval | None = None  # seconds
    elements: Elements = None
    iterations: int | None = Field(None, ge=1)  # stop after this many runs; None: forever
    enabled: Flag = True

    @field_validator("cron")
    @classmethod
    def cron_expression(cls, value):
        from croniter import croniter

        if value is None:
            return value
        value = value.strip()
        if len(value.split()) not in (5, 6) or not croniter.is_valid(value):
            raise ValueError(
                f"invalid cron expression {value!r}: expected 5 fields (minute hour day month weekday), "
                'or 6 with seconds last, e.g. "*/30 * * * *"'
            )
        return value

    @model_validator(mode="after")
    def one_kind(self):
        if (self.cron is None) == (self.every is None):
            raise ValueError('schedule needs exactly one of `cron:` (e.g. "*/30 * * * *") or `every:` (e.g. 30m)')
        return self

    def next(self, after: float | None = None) -> float:
        """Unix time of the next run after `after` (now by default), in local time like txtai."""
        after = time.time() if after is None else after
        if self.every:
            return after + self.every
        from croniter import croniter

        start = datetime.fromtimestamp(after).astimezone()
        return croniter(self.cron, start).get_next(datetime).timestamp()

    def to_dict(self) -> dict:
        return self.model_dump(exclude={"elements"} if self.elements is None else set())


class Task(BaseModel):
    """One txtai task. localrag checks action, task, args, initialize and finalize; txtai's other
    keys (select, unpack, column, merge, concurrency, onetomany, ...) pass through."""

    model_config = ConfigDict(extra="allow")

    action: Actions = None
    task: str | None = None  # a txtai task type, or the path of a Task class
    args: dict | list | None = None  # with several actions: one entry per action
    initialize: str | None = None
    finalize: str | None = None

    @model_validator(mode="before")
    @classmethod
    def shorthand(cls, data):
        """txtai's `- load` and `- [a, b]`: a task with only that action."""
        return {"action": data} if isinstance(data, (str, list)) else data

    @field_validator("task")
    @classmethod
    def task_type(cls, kind):
        if kind is not None and "." in kind and (problem := import_problem(kind)):
            raise ValueError(f"task type {kind!r}: {problem}")
        if kind is not None and "." not in kind and kind.lower() not in TASK_TYPES:
            raise ValueError(f"unknown task type {kind!r}; txtai task types: {', '.join(sorted(TASK_TYPES))}")
        return kind

    @property
    def actions(self) -> list[str]:
        return self.action if isinstance(self.action, list) else [self.action] if self.action else []

    def txtai(self) -> dict:
        """The task as txtai reads it (a new dict each time: txtai's factories change it)."""
        return self.model_dump(exclude_none=True)


class WorkflowSpec(Strict):
    """One workflow: its tasks in txtai syntax plus localrag's settings."""

    tasks: list[Task] = Field(min_length=1)
    description: Annotated[str, StringConstraints(strip_whitespace=True)] = ""
    elements: Elements = None  # default inputs when a run is given none
    background: Flag = False  # POST /workflows/NAME answers with a job id
    schedule: Schedule | None = None
    batch: int | None = Field(None, ge=1)  # batch, workers and stream are txtai's Workflow options
    workers: int | None = Field(None, ge=1)
    stream: Task | None = None

    _name: str = PrivateAttr("")  # its key in the section, set by the section

    @property
    def name(self) -> str:
        return self._name

    @property
    def actions(self) -> list[str]:
        return [name for task in self.tasks for name in task.actions]

    @property
    def options(self) -> dict:
        return self.model_dump(include={"batch", "workers", "stream"}, exclude_none=True)

    def txtai(self) -> dict:
        """The txtai workflow config."""
        return {"tasks": [task.txtai() for task in self.tasks], **self.options}

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "tasks": [task.txtai() for task in self.tasks],
            "elements": self.elements,
            "background": self.background,
            "schedule": self.schedule.to_dict() if self.schedule else None,
            **self.options,
        }


class WorkflowSection(BaseModel):
    """The whole `workflow:` section: txtai pipelines under `pipelines`, every other key a workflow."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")], WorkflowSpec]

    pipelines: Annotated[dict[str, Annotated[dict[str, Any], Mapping]], Mapping] = {}

    @model_validator(mode="before")
    @classmethod
    def empty(cls, data):
        return {} if data is None else data  # `workflow:` with every workflow commented out

    @property
    def workflows(self) -> dict[str, WorkflowSpec]:
        return self.__pydantic_extra__

    def __bool__(self) -> bool:
        return bool(self.workflows)

    @model_validator(mode="after")
    def references(self):
        """Pipelines, actions, hooks and arguments resolve, and no workflow runs itself through others."""
        for name, spec in self.workflows.items():
            spec._name = name
        if self.workflows or self.pipelines:
            problems = [*self.pipeline_problems(), *self.task_problems()] or first_loop(self.workflows)
            if problems:
                raise invalid("workflow", problems)
        return self

    def pipeline_problems(self):
        for name in self.pipelines:
            if name in local_actions():
                yield (PIPELINES, name), f"{name!r} is a localrag action; a pipeline cannot take its name", name
            elif "." in name and (problem := import_problem(name)):
                yield (PIPELINES, name), problem, name
            elif "." not in name and name not in txtai_pipelines():
                yield (PIPELINES, name), f"not a txtai pipeline; use one of {', '.join(sorted(txtai_pipelines()))} or a class path", name

    def task_problems(self):
        for workflow, spec in self.workflows.items():
            for number, task in enumerate(spec.tasks):
                for key, message, value in check_task(task, workflow, self.pipelines, set(self.workflows)):
                    yield (workflow, "tasks", number, *key), message, value


def check_task(task: Task, workflow: str, pipelines: dict, workflows: set):
    """(key, message, value) of each action, argument and hook of a task that does not resolve."""
    names, args = task.actions, task.args
    several = isinstance(task.action, list)
    if several and args is not None and not (isinstance(args, list) and len(args) == len(names)):
        yield ("args",), "with several actions, args must be a list with one entry per action", args
        return
    for index, name in enumerate(names):
        where = (index,) if several else ()
        if problem := action_problem(name, workflow, pipelines, workflows):
            yield ("action", *where), problem, name
        given = args[index] if several and args is not None else args
        if name in local_actions() and (problem := argument_problem(name, given)):
            yield ("args", *where), problem, given
        elif name not in local_actions() and given is not None and not isinstance(given, (dict, list)):
            yield ("args", *where), f"args of {name!r} must be a mapping or a list", given

    for hook in ("initialize", "finalize"):
        name = getattr(task, hook)
        if name and (problem := action_problem(name, workflow, pipelines, workflows, what=hook)):
            yield (hook,), problem, name


def action_problem(name: str, workflow: str, pipelines: dict, workflows: set, what: str = "action") -> str | None:
    """Why name is not a localrag action, a declared pipeline, another workflow or an importable Python path."""
    if name in local_actions() or name in pipelines:
        return None
    if name in workflows:
        return f"{what} {name!r} is this workflow itself" if name == workflow else None
    if "." in name:
        problem = import_problem(name)
        return f"{what} {name!r}: {problem}" if problem else None
    if name in TXTAI_INDEX_ACTIONS:
        return f"{what} {name!r} works on a txtai application index, which localrag does not use; use `upsert` to write the index"
    if name in txtai_pipelines():
        return (
            f"{what} {name!r} is a txtai pipeline that is not declared: add it under workflow.{PIPELINES} "
            f"(e.g. `{PIPELINES}: {{{name}: {{path: ...}}}}`)"
        )
    available = sorted(local_actions()) + sorted(pipelines) + sorted(workflows - {workflow})
    return f"unknown {what} {name!r}; available: {', '.join(available)} (or a txtai pipeline / Python path)"


def argument_problem(name: str, args) -> str | None:
    """Arguments of a localrag action against its signature: unknown and missing ones."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return f"args of action {name!r} must be a mapping"
    parameters = dict(list(inspect.signature(local_actions()[name].__init__).parameters.items())[2:])  # after self, service
    unknown = set(args) - set(parameters)
    if unknown:
        return f"unknown argument(s) {', '.join(sorted(unknown))} for action {name!r}; accepted: {', '.join(parameters) or 'none'}"
    missing = [key for key, parameter in parameters.items() if parameter.default is inspect.Parameter.empty and key not in args]
    if missing:
        return f"action {name!r} needs argument(s) {', '.join(missing)} (under `args:`)"
    return None


def first_loop(workflows: dict[str, WorkflowSpec]) -> list:
    """A workflow may run another as an action, but not itself through others: the first loop found."""

    def visit(name, path):
        if name in path:
            return [((path[0],), f"workflows call each other in a loop: {' -> '.join(path + [name])}", path[0])]
        for dependency in dependencies(workflows[name], workflows):
            if found := visit(dependency, path + [name]):
                return found
        return []

    for name in workflows:
        if found := visit(name, []):
            return found
    return []


def dependencies(spec: WorkflowSpec, names) -> list[str]:
    """Other workflows this one uses as actions."""
    return [action for action in spec.actions if action in names and action not in local_actions()]


def import_problem(path: str) -> str | None:
    """Why module.attribute cannot be imported, or None."""
    module, _, attribute = path.rpartition(".")
    try:
        getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        return f"cannot import {path!r} ({error})"
    return None


def local_actions() -> dict:
    """localrag's actions by name (imported when first needed: they import the ingest code, which imports rag.config)."""
    from .actions import ACTIONS

    return ACTIONS


def txtai_pipelines() -> set[str]:
    from txtai.pipeline import PipelineFactory

    return set(PipelineFactory.list())

"""YAML-defined workflows: named txtai workflows in the `workflow:` section of config.yml.

    from rag.workflows import list_workflows, run_workflow, Scheduler
    list_workflows(service)                                   # names, tasks, schedule, last run
    run_workflow(service, "ask", ["questions.txt"])           # results (JSON-ready list)
    scheduler = Scheduler(service); scheduler.start() ... scheduler.stop()   # inside `rag serve`

localrag's steps are actions by name (see rag.workflows.actions): load, chunk, upsert, delete,
ingest, search, questions, ask, prompt, jsonl, markdown; any txtai pipeline declared under
`workflow.pipelines`, another workflow, or a Python path can be an action too.
"""

from .actions import ACTIONS
from .progress import WorkflowProgress
from .runner import Busy, MissingInput, UnknownWorkflow, Workflows, list_workflows, run_workflow, workflows_of
from .scheduler import Scheduler
from .spec import WorkflowError, parse

__all__ = [
    "ACTIONS",
    "Busy",
    "MissingInput",
    "Scheduler",
    "UnknownWorkflow",
    "WorkflowError",
    "WorkflowProgress",
    "Workflows",
    "list_workflows",
    "parse",
    "run_workflow",
    "validate",
    "workflows_of",
]


def validate(section: dict | None) -> dict | None:
    """Checks a `workflow:` section (raises WorkflowError naming workflow and task); returns it.
    Usable as a pydantic field validator of Config.workflow."""
    parse(section)
    return section

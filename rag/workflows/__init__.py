"""YAML-defined workflows: named txtai workflows in the `workflow:` section of config.yml.

    from rag.workflows import list_workflows, run_workflow, Scheduler
    list_workflows(service)                                   # names, tasks, schedule, last run
    run_workflow(service, "ask", ["questions.txt"])           # results (JSON-ready list)
    scheduler = Scheduler(service); scheduler.start() ... scheduler.stop()   # inside `rag serve`

The section is checked with the rest of config.yml (rag.workflows.spec, the `workflow` field of
rag.config.Config). localrag's steps are actions by name (see rag.workflows.actions): load, chunk,
upsert, delete, ingest, search, questions, ask, prompt, jsonl, markdown; any txtai pipeline
declared under `workflow.pipelines`, another workflow, or a Python path can be an action too.
"""

import importlib

# Imported when first asked for: rag.config loads rag.workflows.spec, and the runner and actions
# import rag.config in turn
MODULES = {
    "ACTIONS": "actions",
    "Busy": "runner",
    "MissingInput": "runner",
    "UnknownWorkflow": "runner",
    "Workflows": "runner",
    "list_workflows": "runner",
    "run_workflow": "runner",
    "Scheduler": "scheduler",
    "WorkflowError": "errors",
    "WorkflowSection": "spec",
}

__all__ = sorted(MODULES)


def __getattr__(name):
    if name in MODULES:
        return getattr(importlib.import_module(f".{MODULES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

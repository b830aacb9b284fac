"""txtai's Application built from the `workflow:` section, with localrag's steps as actions.

txtai resolves an action name to a pipeline, a workflow or a Python path. This subclass resolves
localrag's actions first (load, chunk, upsert, ask, ...; each task gets its own instance, wired to
the task's initialize/finalize hooks when it has start/finish), leaves scheduling to
rag.workflows.Scheduler (which records every run), and lets `rag.llm.LocalRAGGeneration`
pipelines without a `path` use the configured LLM.
"""

from txtai.app import Application
from txtai.workflow import Workflow
from txtai.workflow.task import TaskFactory
from txtai.workflow.task.factory import Partial

from .actions import ACTIONS
from .errors import WorkflowError
from .spec import WorkflowSection, dependencies

GENERATION = ("rag.llm.LocalRAGGeneration", "rag.llm.generation.LocalRAGGeneration")


class WorkflowApplication(Application):
    """The txtai pipelines and workflows of one config, bound to a LocalRAG service."""

    def __init__(self, section: WorkflowSection, service):
        self.section, self.service = section, service
        config = {name: dict(settings) for name, settings in section.pipelines.items()}
        super().__init__({**config, "workflow": {}}, loaddata=False)

    def createpipelines(self):
        for name, settings in self.config.items():
            if name != "workflow" and settings.get("method") in GENERATION and "path" not in settings:
                settings["path"] = str(self.service.config.file)
                settings.setdefault("llm", self.service.llm)
        try:
            super().createpipelines()
        except Exception as error:
            names = ", ".join(name for name in self.config if name != "workflow")
            raise WorkflowError(f"cannot create the txtai pipelines ({names}): {type(error).__name__}: {error}") from error

    def createworkflows(self):
        self.workflows = {}
        for name in self.section.workflows:
            self.create(name)

    def create(self, name: str) -> Workflow:
        """Creates a workflow after the workflows it uses as actions."""
        if name in self.workflows:
            return self.workflows[name]
        spec = self.section.workflows[name]
        for dependency in dependencies(spec, self.section.workflows):
            self.create(dependency)

        config = spec.txtai()
        tasks = []
        for number, task in enumerate(config.pop("tasks"), 1):
            try:
                task = self.resolvetask(task)
                tasks.append(TaskFactory.create(task, task.pop("task", "") or ""))
            except WorkflowError:
                raise
            except Exception as error:
                raise WorkflowError(f"{type(error).__name__}: {error}", name, number) from error
        if "stream" in config:
            stream = self.resolvetask(config.pop("stream"))
            config["stream"] = TaskFactory.create(stream, stream.pop("task", "stream"))
        self.workflows[name] = Workflow(tasks, **config, name=name)
        return self.workflows[name]

    def resolvetask(self, task: dict) -> dict:
        """Actions to callables (args bound), hooks of localrag actions added to the task's own."""
        task = dict(task)
        args = task.pop("args", None)
        hooks = {"initialize": [], "finalize": []}
        action = task.get("action")
        if action is not None:
            names = action if isinstance(action, list) else [action]
            given = (args if args is not None else [None] * len(names)) if isinstance(action, list) else [args]
            resolved = []
            for name, arguments in zip(names, given):
                if name in ACTIONS:
                    instance = ACTIONS[name](self.service, **(arguments or {}))
                    hooks["initialize"] += [instance.start] if hasattr(instance, "start") else []
                    hooks["finalize"] += [instance.finish] if hasattr(instance, "finish") else []
                    resolved.append(instance)
                else:
                    function = self.function(name)
                    resolved.append(Partial.create(function, arguments) if arguments is not None else function)
            task["action"] = resolved if isinstance(action, list) else resolved[0]

        for hook, calls in hooks.items():
            own = task.get(hook)
            calls = calls + ([self.function(own) if isinstance(own, str) else own] if own else [])
            if calls:
                task[hook] = calls[0] if len(calls) == 1 else chain(calls)

        if task.get("task") == "retrieve":
            task.setdefault("safeopen", True)
        return task

    def function(self, function):
        if function in ACTIONS:
            return ACTIONS[function](self.service)
        return super().function(function)


def chain(calls):
    def run():
        for call in calls:
            call()

    return run

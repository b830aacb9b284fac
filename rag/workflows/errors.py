"""The error of an invalid workflow run request (a mistake in the section itself is a ConfigError)."""


class WorkflowError(ValueError):
    """An invalid workflow run request or a workflow that cannot be built; the message names the workflow and task."""

    def __init__(self, message: str, workflow: str | None = None, task: int | None = None):
        where = f"workflow {workflow!r}" if workflow else ""
        where += f", task {task}" if task else ""
        super().__init__(f"{where}: {message}" if where else message)
        self.workflow, self.task = workflow, task

"""Progress bars for `rag workflow run` on a terminal."""

from ..progress import IngestBar


class WorkflowBar(IngestBar):
    """Rich progress bars for `rag workflow run`: one per action, plus ingestion's files/chunks."""

    def __init__(self, console, enabled: bool = True):
        super().__init__(console, enabled)
        self.actions: dict[str, int] = {}
        self.active = None

    def start(self, workflow, inputs):
        if self.enabled:
            self.bar.console.print(f"workflow {workflow}: {inputs} input(s)", highlight=False)

    def action(self, name, count):
        if name in self.actions:
            task = self.actions[name]
            self.bar.update(task, total=(self.bar.tasks[task].total or 0) + count)
        else:
            self.actions[name] = self.bar.add_task(f"{name:<9}", total=count, rate="")
        self.active = self.actions[name]

    def advance(self, count=1):
        if self.active is not None:
            self.bar.advance(self.active, count)

    def finish(self, results):
        pass

"""Terminal progress bars (rich) for the rag.progress.Progress protocol: ingestion, workflow runs,
Ollama model pulls."""

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress as Bars,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..progress import Progress


class IngestBar(Progress):
    """Files loaded and chunks embedded, with chunks/s and the time left; silent when disabled."""

    def __init__(self, console, enabled: bool = True):
        self.enabled = enabled
        self.bar = Bars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self.loading = self.embedding_task = None

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *args):
        self.bar.__exit__(*args)

    def files(self, total):
        self.loading = self.bar.add_task("files ", total=total, rate="")

    def file(self, path):
        self.bar.advance(self.loading)

    def embedding(self, total):
        if self.embedding_task is None:
            self.embedding_task = self.bar.add_task("chunks", total=total, rate="")
        else:
            self.bar.update(self.embedding_task, total=total)

    def chunks(self, count):
        self.bar.advance(self.embedding_task, count)
        task = self.bar.tasks[self.embedding_task]
        if task.speed:
            self.bar.update(self.embedding_task, rate=f"{task.speed:.1f} chunks/s")


class WorkflowBar(IngestBar):
    """`rag workflow run`: one bar per action, plus ingestion's files and chunks."""

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


class PullBar(Progress):
    """`ollama pull` progress: one bar per layer, status lines as they come."""

    def __init__(self, console=None):
        self.bar = Bars(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=False)
        self.tasks = {}
        self.started = False

    def pull(self, status: str, completed: int | None = None, total: int | None = None):
        if not self.started:
            self.bar.start()
            self.started = True
        if total:
            if status not in self.tasks:
                self.tasks[status] = self.bar.add_task(status, total=total)
            self.bar.update(self.tasks[status], completed=completed or 0)
        elif status:
            self.bar.console.print(f"ollama: {status}")
        if status == "success":
            self.close()

    def close(self):
        if self.started:
            self.bar.stop()
            self.started = False

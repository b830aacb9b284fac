"""Rich progress bar for ingestion: files loaded, chunks embedded, chunks/s."""

from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

from .ingest import Progress


class IngestBar(Progress):
    """Shows ingestion progress on an interactive terminal; silent otherwise."""

    def __init__(self, console, enabled: bool = True):
        self.enabled = enabled
        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
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
        self.embedding_task = self.bar.add_task("chunks", total=total, rate="")

    def chunks(self, count):
        self.bar.advance(self.embedding_task, count)
        task = self.bar.tasks[self.embedding_task]
        if task.speed:
            self.bar.update(self.embedding_task, rate=f"{task.speed:.1f} chunks/s")

"""A rich progress bar for Ollama model pulls: pass `PullBar(console)` as `progress=` to create_llm."""

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn


class PullBar:
    """Shows `ollama pull` progress: one bar per layer, status lines as they come."""

    def __init__(self, console=None):
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=False
        )
        self.tasks = {}
        self.started = False

    def __call__(self, status: str, completed: int | None, total: int | None):
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

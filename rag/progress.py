"""The one progress protocol: ingestion, workflow runs and Ollama model pulls report through it.

Every method does nothing by default; a receiver overrides what it shows. The CLI draws terminal
bars from these calls (rag.cli.progress), background jobs record them (rag.jobs).
"""


class Progress:
    """Receives progress. Does nothing by default."""

    # ---- ingestion ---------------------------------------------------------

    def files(self, total: int):
        """Loading and chunking `total` files starts."""

    def file(self, path: str):
        """One file was loaded and chunked."""

    def embedding(self, total: int):
        """`total` chunks are to be embedded: files are chunked as they are embedded, so this is
        called again, with a larger total, as more files are chunked."""

    def chunks(self, count: int):
        """`count` more chunks were embedded."""

    # ---- workflow runs -------------------------------------------------------

    def start(self, workflow: str, inputs: int):
        """A run begins with this many input elements."""

    def action(self, name: str, count: int):
        """An action starts on a batch of `count` elements."""

    def advance(self, count: int = 1):
        """Elements of the current action are done."""

    def finish(self, results: int):
        """The run ended with this many results."""

    # ---- model pulls -----------------------------------------------------------

    def pull(self, status: str, completed: int | None = None, total: int | None = None):
        """Ollama pull progress, e.g. ("pulling 6a0746a1ec1a", 1024, 4096), then ("success", None, None)."""

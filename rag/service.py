"""One object that does everything localrag offers: search, answer, ingest, documents, jobs.

The CLI, the HTTP API and the workflows all go through it, so there is one implementation of
each operation.
"""

import re
import threading
from pathlib import Path

from .config import Config
from .ingest import UPLOADS, Ingestor, Progress, Report
from .jobs import Jobs
from .loaders import SUPPORTED_TYPES
from .search import Searcher, status
from .types import Hit

UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class DocumentNotFound(KeyError):
    """No document with that id in the index."""


class LocalRAG:
    """The library facade over one config.yml."""

    def __init__(self, config: Config, pull_progress=None):
        """pull_progress(status, completed, total) shows an Ollama model pull (llm.ollama.auto_pull)."""
        self.config = config
        self.pull_progress = pull_progress
        self.searcher = Searcher(config)
        self.jobs = Jobs(config.index_dir / "jobs")
        self.lock = threading.Lock()
        self._llm = None
        self._answerer = None

    # ---- search and answers ---------------------------------------------

    def search(self, query: str, limit: int | None = None, mode: str | None = None, where: str | None = None) -> list[Hit]:
        return self.searcher.search(query, limit=limit, mode=mode, where=where)

    def refresh(self, force: bool = False) -> bool:
        """Swaps in a newly published index version (True if it did)."""
        return self.searcher.refresh(force=force)

    @property
    def llm(self):
        """The configured LLM backend, created on first use (Ollama probing happens here)."""
        if self._llm is None:
            from .llm.factory import shared_llm

            with self.lock:
                if self._llm is None:
                    self._llm = shared_llm(self.config.llm, self.config.root, self.pull_progress)
        return self._llm

    @property
    def answerer(self):
        if self._answerer is None:
            from .answer import Answerer

            mode = self.config.answer.mode
            self._answerer = Answerer(self.llm, lambda q, k, w: self.search(q, limit=k, mode=mode, where=w), self.config.answer)
        return self._answerer

    def ask(self, question: str, top_k: int | None = None, where: str | None = None):
        return self.answerer.ask(question, top_k=top_k, where=where)

    def stream(self, question: str, top_k: int | None = None, where: str | None = None):
        return self.answerer.stream(question, top_k=top_k, where=where)

    # ---- ingestion --------------------------------------------------------

    def ingest(self, paths: list[Path] | None = None, rebuild: bool = False, progress: Progress | None = None) -> Report:
        report = Ingestor(self.config, progress).run(paths, rebuild=rebuild)
        self.refresh(force=True)
        return report

    def ingest_job(self, paths: list[Path] | None = None, rebuild: bool = False) -> dict:
        """Starts an ingest in the background; returns the job (poll it with jobs.get)."""

        def run(progress):
            return self.ingest(paths, rebuild=rebuild, progress=progress).to_dict()

        return self.jobs.submit("ingest", run, paths=[str(p) for p in paths or []], rebuild=rebuild)

    @property
    def uploads(self) -> Path:
        return self.config.resolve(self.config.ingest.uploads)

    def save_upload(self, filename: str, stream, max_bytes: int) -> Path:
        """Saves an uploaded file into the uploads folder under a safe, unique name.

        Raises ValueError for an unsupported type and OverflowError past max_bytes (nothing is kept).
        """
        name = safe_name(filename)
        if Path(name).suffix.lower() not in SUPPORTED_TYPES:
            raise ValueError(f"unsupported file type {Path(name).suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_TYPES))}")
        self.uploads.mkdir(parents=True, exist_ok=True)
        target = self.uploads / name
        temp = self.uploads / f".{name}.part"
        size = 0
        try:
            with open(temp, "wb") as handle:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise OverflowError(f"{filename}: larger than the upload limit of {max_bytes} bytes")
                    handle.write(chunk)
            temp.replace(target)
        finally:
            temp.unlink(missing_ok=True)
        return target

    # ---- documents ----------------------------------------------------------

    def documents(self) -> list[dict]:
        self.refresh(force=True)
        return [{"id": uid, **info} for uid, info in sorted(self.searcher.manifest.get("documents", {}).items())]

    def document(self, uid: str) -> dict:
        self.refresh(force=True)
        info = self.searcher.manifest.get("documents", {}).get(uid)
        if info is None:
            raise DocumentNotFound(uid)
        return {"id": uid, **info}

    def delete(self, uid: str) -> dict:
        """Removes a document's chunks (no rebuild) and, for uploads, its file."""
        document = self.document(uid)
        report = Ingestor(self.config).remove([uid])
        removed_file = False
        if document["collection"] == UPLOADS:
            path = self.uploads / document["source"]
            if path.is_file():
                path.unlink()
                removed_file = True
        self.refresh(force=True)
        return {"id": uid, "chunks_removed": report.chunks_removed, "file_removed": removed_file}

    def status(self) -> dict:
        return status(self.config)

    def close(self):
        self.jobs.shutdown()


def safe_name(filename: str) -> str:
    """A plain file name: no folders, no traversal, no hidden files, no odd characters."""
    name = Path(str(filename).replace("\\", "/")).name
    name = UNSAFE.sub("_", name).strip(" .")
    if not name:
        raise ValueError(f"invalid file name {filename!r}")
    return name


"""One object that does everything localrag offers: search, answer, ingest, documents, jobs, workflows.

    rag = LocalRAG(load_config())
    rag.ingest()                                    # sync the sources (a Report)
    rag.search("backup", limit=3)                   # ranked Hits
    rag.ask("How do I back up the index?")          # an Answer with citations
    rag.documents(); rag.delete("uploads:report.pdf")
    rag.workflows.run("summarize")

The CLI, the HTTP API, the web page, MCP and the workflow actions all call this object and nothing
below it, so each operation has one implementation.
"""

import os
import tempfile
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from .batches import Batches
from .clock import now
from .config import Config
from .conversations import LOCAL, Conversations, Turn
from .ingest import UPLOADS, Ingestor, Report, chunk_rows, configured_sources, file_hash, make_chunker
from .jobs import Jobs
from .loaders import SUPPORTED_TYPES, LoadedDocument, load_file, read_file
from .manifest import Document, DocumentRecord
from .progress import Progress
from .search import IndexInfo, Searcher, checked_filter
from .sources import SourceFile, scan
from .store import IndexLocked
from .types import Hit

NAME_MAX = 255  # bytes of a file name on common filesystems


class DocumentNotFound(KeyError):
    """No document with that id in the index."""


class LocalRAG:
    """The service over one config.yml."""

    def __init__(self, config: Config, progress: Progress | None = None):
        """progress receives Ollama model pulls (llm.ollama.auto_pull) when the LLM is first used."""
        self.config = config
        self.progress = progress
        self.searcher = Searcher(config)
        self.jobs = Jobs.open(config)
        self.batches = Batches()  # files of queued ingest jobs, ingested together
        self.lock = threading.Lock()
        self._llm = None
        self._answerer = None
        self._workflows = None
        self._chunker = None
        self._conversations = None

    # ---- search and answers ---------------------------------------------

    def search(self, query: str, limit: int | None = None, mode: str | None = None, where: str | None = None, filters: dict | None = None) -> list[Hit]:
        """Ranked passages; `where` in the filter language of rag.filters, `filters` {column: value(s)}."""
        return self.searcher.search(query, limit=limit, mode=mode, where=where, filters=filters)

    def passage(self, uid: str) -> Hit:
        """One chunk by id (`<document>#<nnnn>`), with its full text; raises PassageNotFound."""
        return self.searcher.passage(uid)

    def refresh(self, force: bool = False) -> bool:
        """Swaps in a newly published index version (True if it did)."""
        return self.searcher.refresh(force=force)

    def index(self) -> IndexInfo:
        """The index version this process serves (after a look for a newer one)."""
        self.refresh()
        return self.searcher.info()

    @property
    def llm(self):
        """The configured LLM backend, created on first use (Ollama probing happens here)."""
        if self._llm is None:
            from .llm.factory import shared_llm

            with self.lock:
                if self._llm is None:
                    self._llm = shared_llm(self.config.llm, self.config.root, self.progress)
        return self._llm

    def llm_choice(self) -> dict:
        """Which LLM backend is in use and why (probes Ollama when provider is auto); never raises."""
        from .llm.errors import LLMError

        try:
            llm = self.llm
        except LLMError as error:
            return {"backend": None, "error": str(error)}
        return {"backend": llm.name, "model": llm.model, "reason": llm.reason}

    @property
    def answerer(self):
        if self._answerer is None:
            from .answer import Answerer

            mode = self.config.answer.mode
            self._answerer = Answerer(self.llm, lambda q, k, w: self.search(q, limit=k, mode=mode, where=w), self.config.answer)
        return self._answerer

    def ask(self, question: str, **options):
        """A grounded Answer with citations (options as for stream); raises SearchError,
        ConversationNotFound, and LLMError if the LLM fails before any text."""
        from .answer import final

        return final(self.stream(question, **options))

    def stream(
        self,
        question: str,
        top_k: int | None = None,
        where: str | None = None,
        filters: dict | None = None,
        history: list[dict] | None = None,
        conversation: str | None = None,
        remember: bool = False,
        owner: str = LOCAL,
        **sampling,
    ) -> Iterator:
        """Token events, then the answer event (rag.answer.Event).

        history: earlier turns ({role, content}); conversation: the id of a stored conversation of
        `owner` to continue (its turns come before history); remember: store this exchange, in a new
        conversation unless one is given. The answer carries `conversation_id` when stored.
        sampling: max_tokens, temperature, top_p, stop, seed for the LLM (clamped to config.llm)."""
        condition = checked_filter(where, filters)
        earlier = self.conversations.get(conversation, owner).history() if conversation else []
        return self.converse(question, top_k, condition, earlier + list(history or []), conversation, remember, owner, sampling)

    def converse(self, question, top_k, condition, history, conversation, remember, owner, sampling) -> Iterator:
        for event in self.answerer.stream(question, top_k, condition, history, **self.config.llm.clamp(sampling)):
            if event.type == "answer" and (conversation or remember):
                answer = event.answer
                conversation = conversation or self.conversations.create(owner, question)
                cited = [{"id": c.id, "label": c.label, "number": c.number} for c in answer.citations]
                self.conversations.append(
                    conversation, owner, [Turn("user", question), Turn("assistant", answer.answer, answer.query, cited)]
                )
                answer.conversation_id = conversation
            yield event

    @property
    def conversations(self) -> Conversations:
        """The stored conversations of this index."""
        if self._conversations is None:
            self._conversations = Conversations.open(self.config)
        return self._conversations

    # ---- ingestion --------------------------------------------------------

    def ingest(self, paths: list[Path] | None = None, rebuild: bool = False, strict: bool = False, progress: Progress | None = None) -> Report:
        """Syncs the sources (or `paths`) into the index; raises IndexLocked, StrictFailure."""
        report = Ingestor(self.config, progress).run(paths, rebuild=rebuild, strict=strict)
        self.refresh(force=True)
        return report

    def ingest_job(self, paths: list[Path] | None = None, rebuild: bool = False, uploaded: bool = False, observer=None) -> dict:
        """Starts an ingest in the background; returns the job (poll it with jobs.get). Jobs of
        paths queued behind a running one are ingested together by the first of them to run, as
        one version (rag.batches): a burst of uploads is one ingest, not one per request.

        uploaded: the paths are new uploads, and those that fail to ingest are not kept.
        observer(report, error) is told how the run ended (metrics)."""

        key = self.batches.add(paths, uploaded) if paths and not rebuild else None

        def run(progress):
            batch = self.batches.take(key) if key else None
            if batch is not None and batch.owner != key:
                return batch.result()  # ingested by the job that took this one's files into its batch
            files = batch.paths if batch else paths
            try:
                report = self.ingest(files, rebuild=rebuild, progress=progress).to_dict()
            except Exception as error:
                if batch is not None:
                    batch.end(None, error)
                if observer:
                    observer(None, error)
                if uploaded:  # nothing of a failed upload job is kept
                    for path in files or []:
                        Path(path).unlink(missing_ok=True)
                raise
            if batch is not None:
                batch.end(report)
            if observer:
                observer(report, None)
            if uploaded:
                for failure in report["failed"]:
                    if failure.get("source") == UPLOADS:
                        (self.uploads / failure["path"]).unlink(missing_ok=True)
            return report

        return self.jobs.submit("ingest", run, paths=[str(p) for p in paths or []], rebuild=rebuild)

    def sources(self):
        """The configured sources, and the uploads folder when it exists."""
        return configured_sources(self.config)

    def scan(self, paths: list[Path] | None = None, sources=None) -> tuple[list[SourceFile], list[tuple[str, str]]]:
        """Files of `sources` (default: all), or under `paths`: (files, skipped as (path, reason))."""
        files, skipped, _ = scan(sources or self.sources(), paths)
        return files, skipped

    def load(self, entry: SourceFile) -> tuple[LoadedDocument, str]:
        """A file loaded as text sections, and the SHA-256 of the bytes loaded; raises LoadError."""
        limit = self.config.ingest.max_file_size
        data = read_file(entry.path, limit)
        return load_file(entry.path, limit, data=data), file_hash(data)

    def chunk(self, document: str, record: DocumentRecord, title: str, sections) -> list[tuple[str, dict]]:
        """Chunk rows (id, data) of a document's sections, exactly as ingestion makes them."""
        if self._chunker is None:
            self._chunker = make_chunker(self.config)
        record.ingested_at = record.ingested_at or now()
        return chunk_rows(document, record, self._chunker(title, sections))

    def upsert(self, rows: list, progress: Progress | None = None) -> Report:
        """Writes ready-made chunk rows of whole documents as one new version, replacing their old chunks.
        The collection `uploads` is reserved for uploaded files (ValueError)."""
        if any(data.get("collection") == UPLOADS for _, data in rows):
            raise ValueError(f"the collection {UPLOADS!r} is reserved for files uploaded over the API")
        report = Ingestor(self.config, progress).upsert(rows)
        self.refresh(force=True)
        return report

    @property
    def uploads(self) -> Path:
        return self.config.resolve(self.config.ingest.uploads)

    def save_upload(self, filename: str, stream, max_bytes: int) -> Path:
        """Saves an uploaded file into the uploads folder under its own name (see safe_name); a file
        of the same name is replaced atomically, so concurrent uploads never mix.

        Raises ValueError for a bad name or type and OverflowError past max_bytes (nothing is kept).
        """
        name = safe_name(filename)
        self.check_writable()
        if Path(name).suffix.lower() not in SUPPORTED_TYPES:
            raise ValueError(f"unsupported file type {Path(name).suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_TYPES))}")
        self.uploads.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=self.uploads, prefix=".upload-", suffix=".part", delete=False)
        temp = Path(handle.name)
        try:
            with handle:
                size = 0
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise OverflowError(f"{filename}: larger than the upload limit of {max_bytes} bytes")
                    handle.write(chunk)
            target = self.upload_path(name)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return target

    def check_writable(self):
        """IndexLocked at once when another process (e.g. `rag ingest`) is writing the index."""
        holder = self.searcher.store.writer()
        if holder:
            raise IndexLocked(f"the index is being written by another process ({holder}); wait for it to finish and try again")

    def upload_path(self, name: str) -> Path:
        """The path of an uploaded file; ValueError when name would lead outside the uploads folder."""
        folder = self.uploads.resolve()
        path = folder / name
        if path.parent != folder or not path.name or path.is_symlink():
            raise ValueError(f"{name!r} is not a file of the uploads folder")
        return path

    # ---- documents ----------------------------------------------------------

    def documents(self) -> list[Document]:
        self.refresh(force=True)
        return self.searcher.manifest.listing()

    def document(self, uid: str) -> Document:
        self.refresh(force=True)
        document = self.searcher.manifest.get(uid)
        if document is None:
            raise DocumentNotFound(uid)
        return document

    def delete(self, uid: str) -> dict:
        """Removes a document's chunks (no rebuild) and, for uploads, its file."""
        document = self.document(uid)
        report = Ingestor(self.config).remove([uid])
        removed_file = False
        if document.collection == UPLOADS:
            path = self.upload_path(document.source)
            if path.is_file():
                path.unlink()
                removed_file = True
        self.refresh(force=True)
        return {"id": uid, "chunks_removed": report.chunks_removed, "file_removed": removed_file}

    def status(self) -> dict:
        """Index name, model, documents, chunks, size on disk, last ingest (without loading the index)."""
        store = self.searcher.store
        manifest = store.manifest()
        return {
            "index": self.config.index.name,
            "path": str(store.path),
            "model": self.config.index.embeddings["path"],
            "version": store.stamp(),
            "documents": len(manifest.documents),
            "chunks": manifest.chunks,
            "size_bytes": store.size(),
            "last_ingest": manifest.updated_at,
        }

    # ---- workflows ------------------------------------------------------------

    @property
    def workflows(self):
        """The workflows of config.yml (rag.workflows.Workflows), built on first use."""
        if self._workflows is None:
            from .workflows import Workflows

            with self.lock:
                if self._workflows is None:
                    self._workflows = Workflows(self)
        return self._workflows

    def close(self):
        self.jobs.shutdown()

    def passages(self, uid: str) -> list[Hit]:
        """The chunks of a document in order, with their full text; raises DocumentNotFound."""
        from .manifest import chunk_id

        return [self.passage(chunk_id(uid, number)) for number in range(self.document(uid).chunks)]


def safe_name(filename: str) -> str:
    """The name an upload is saved under: the last part of the path the client sent, as NFC Unicode.
    ValueError for names the filesystem cannot hold or that would hide the file: empty, dot-files,
    control characters, longer than NAME_MAX bytes."""
    name = unicodedata.normalize("NFC", str(filename).replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if not name or name.startswith(".") or any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in name):
        raise ValueError(f"invalid file name {filename!r}: empty, hidden or with control characters")
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        raise ValueError(f"file name longer than {NAME_MAX} bytes")
    return name

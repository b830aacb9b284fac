"""Incremental ingestion: sync the configured sources into the index.

A manifest (document id -> content hash -> chunk count) is stored inside every index version.
A run re-embeds only new and changed files, deletes the chunks of changed, renamed and removed
files, and publishes a new version atomically; a run that finds nothing to change writes nothing.
"""

import hashlib
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .chunker import Chunker
from .config import Config
from .index import open_embeddings, save_embeddings
from .loaders import LoadError, check_size, load_file
from .sources import Source, SourceFile, scan
from .store import Store, read_json

MANIFEST_VERSION = 1
UPLOADS = "uploads"


class StrictFailure(Exception):
    """--strict: some files failed, so nothing was written."""

    def __init__(self, report):
        super().__init__(f"{len(report.failed)} file(s) failed; --strict: index left unchanged")
        self.report = report


class Progress:
    """Receives ingestion progress; the CLI shows it as a progress bar. Does nothing by default."""

    def files(self, total: int):
        pass

    def file(self, path: str):
        pass

    def embedding(self, total: int):
        pass

    def chunks(self, count: int):
        pass


@dataclass
class Report:
    """What an ingest run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    documents: int = 0
    chunks: int = 0
    rebuilt: bool = False
    version: str | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def counts(self) -> dict:
        return {name: len(getattr(self, name)) for name in ("added", "updated", "removed", "unchanged", "failed", "skipped")}

    def to_dict(self) -> dict:
        return {**asdict(self), "counts": self.counts()}


def chunk_id(document: str, index: int) -> str:
    return f"{document}#{index:04d}"


def read(path: Path, limit: int) -> bytes:
    """The file's bytes; LoadError when too large (checked before reading) or unreadable."""
    try:
        check_size(path.stat().st_size, limit)
        return path.read_bytes()
    except PermissionError:
        raise LoadError("permission denied") from None
    except OSError as error:
        raise LoadError(error.strerror or str(error)) from None


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Ingestor:
    """Syncs sources into the index of a Config."""

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress or Progress()
        self.store = Store(config.index_dir, config.index.keep_versions)
        self.settings = config.embeddings_settings()
        self.chunking = config.ingest.chunking

    def sources(self) -> list[Source]:
        """Configured sources plus the uploads folder (source "uploads") when it exists."""
        sources = [
            Source(s.name, self.config.resolve(s.path), tuple(s.include), tuple(s.exclude)) for s in self.config.ingest.sources
        ]
        uploads = self.config.resolve(self.config.ingest.uploads)
        if uploads.is_dir() and all(s.name != UPLOADS for s in sources):
            sources.append(Source(UPLOADS, uploads))
        return sources

    def remove(self, documents: list[str]) -> Report:
        """Deletes documents' chunks from the index without re-embedding anything."""
        report = Report()
        with self.store.lock():
            current = self.store.current()
            manifest = read_json(current / "manifest.json") if current else {"documents": {}}
            known = manifest["documents"]
            report.removed = [d for d in documents if d in known]
            if report.removed:
                stale = [chunk_id(d, i) for d in report.removed for i in range(known.pop(d)["chunks"])]
                report.chunks_removed = self.apply(manifest, stale, [])
            report.documents = len(known)
            report.chunks = sum(d["chunks"] for d in known.values())
            report.version = self.store.stamp()
        return report

    def fingerprint(self) -> dict:
        """Settings that change every vector or chunk: a change forces a rebuild."""
        return {"model": self.config.index.embeddings["path"], "chunking": self.chunking.model_dump()}

    def run(self, paths: list[Path] | None = None, rebuild: bool = False, strict: bool = False) -> Report:
        """Ingests the configured sources (or only `paths`).

        Raises IndexLocked if another writer runs; with strict, raises StrictFailure and writes
        nothing when any file fails.
        """
        started = time.perf_counter()
        report = Report()
        with self.store.lock():
            current = self.store.current()
            manifest = read_json(current / "manifest.json") if current else {}
            if manifest and manifest.get("fingerprint") != self.fingerprint():
                rebuild = True
            report.rebuilt = rebuild and bool(manifest)
            documents = {} if rebuild else dict(manifest.get("documents", {}))

            files, skipped, scopes = scan(self.sources(), paths)
            report.skipped = [{"path": p, "reason": r} for p, r in skipped]
            pending = self.classify(files, documents, scopes, report)

            if pending or report.removed or rebuild or not current:
                self.write(pending, documents, report, rebuild, strict)
            elif strict and report.failed:
                raise StrictFailure(report)
            report.documents = len(documents)
            report.chunks = sum(d["chunks"] for d in documents.values())
            report.version = self.store.stamp()
        report.seconds = time.perf_counter() - started
        return report

    def classify(self, files: list[SourceFile], documents: dict, scopes, report: Report) -> list:
        """Hashes files and sorts them into unchanged / pending (new or changed) / removed."""
        pending, seen = [], set()
        limit = self.config.ingest.max_file_size
        for entry in files:
            seen.add(entry.document)
            try:
                data = read(entry.path, limit)
            except LoadError as error:
                report.failed.append({"path": entry.relpath, "source": entry.source.name, "reason": error.reason})
                continue
            digest = file_hash(data)
            known = documents.get(entry.document)
            if known and known["hash"] == digest:
                report.unchanged.append(entry.document)
            else:
                pending.append((entry, digest))

        for document, info in list(documents.items()):
            if document not in seen and any(scope.covers(info["collection"], info["source"]) for scope in scopes):
                report.removed.append(document)
        return pending

    def write(self, pending: list, documents: dict, report: Report, rebuild: bool, strict: bool = False):
        """Loads and chunks pending files, applies deletes and upserts on a copy, publishes it."""
        self.progress.files(len(pending))
        chunker = Chunker(self.settings["path"], self.chunking.max_tokens, self.chunking.overlap, self.chunking.context_prefix)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        rows, stale = [], []
        for entry, digest in pending:
            self.progress.file(entry.relpath)
            try:
                data = read(entry.path, self.config.ingest.max_file_size)
                digest = file_hash(data)
                loaded = load_file(entry.path, self.config.ingest.max_file_size, data=data)
                chunks = chunker(loaded.title, loaded.sections)
                if not chunks:
                    raise LoadError("no text")
            except LoadError as error:
                report.failed.append({"path": entry.relpath, "source": entry.source.name, "reason": error.reason})
                continue
            except Exception as error:  # a loader bug must not lose the rest of the run
                report.failed.append({"path": entry.relpath, "source": entry.source.name, "reason": f"{type(error).__name__}: {error}"})
                continue

            known = documents.get(entry.document)
            (report.updated if known else report.added).append(entry.document)
            if known:
                stale.extend(chunk_id(entry.document, i) for i in range(known["chunks"]))
            for number, chunk in enumerate(chunks):
                rows.append(self.row(entry, digest, loaded, number, chunk, now))
            documents[entry.document] = {
                "collection": entry.source.name,
                "source": entry.relpath,
                "hash": digest,
                "title": loaded.title,
                "filetype": loaded.filetype,
                "chunks": len(chunks),
                "ingested_at": now,
            }

        if strict and report.failed:
            raise StrictFailure(report)
        for document in report.removed:
            stale.extend(chunk_id(document, i) for i in range(documents.pop(document)["chunks"]))

        manifest = {"version": MANIFEST_VERSION, "fingerprint": self.fingerprint(), "documents": documents}
        report.chunks_removed = self.apply(manifest, stale, rows, rebuild)
        report.chunks_added = len(rows)

    def apply(self, manifest: dict, stale: list[str], rows: list, rebuild: bool = False) -> int:
        """Publishes one new version: the live one (or nothing, with rebuild) minus the stale
        chunk ids plus the upserted rows, with manifest. Needs the lock. Returns chunks deleted."""
        work = self.store.workdir(copy_current=not rebuild)
        embeddings = open_embeddings(work, self.settings)
        removed = len(embeddings.delete(stale)) if stale else 0
        if rows:
            self.progress.embedding(len(rows))
            embeddings.upsert(self.stream(rows))
        save_embeddings(embeddings, work)
        embeddings.close()
        manifest["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.store.publish(work, manifest)
        return removed

    def upsert(self, rows: list) -> Report:
        """Writes ready-made chunk rows (id, data) of whole documents, replacing their old chunks."""
        report = Report()
        documents = {}
        for _, data in rows:
            info = documents.setdefault(data["document"], {"collection": data["collection"], "source": data["source"], "chunks": 0})
            info.update(hash=data.get("hash"), title=data.get("title"), filetype=data.get("filetype"), ingested_at=data.get("ingested_at"))
            info["chunks"] = max(info["chunks"], int(data.get("chunk", 0)) + 1)
        with self.store.lock():
            current = self.store.current()
            manifest = read_json(current / "manifest.json") if current else {}
            if manifest and manifest.get("fingerprint") != self.fingerprint():
                raise ValueError("the index was built with other model or chunking settings: run `rag ingest --rebuild` first")
            manifest = {"version": MANIFEST_VERSION, "fingerprint": self.fingerprint(), "documents": {}, **manifest}
            known = manifest["documents"]
            for document in documents:
                (report.updated if document in known else report.added).append(document)
            stale = [chunk_id(d, i) for d in documents if d in known for i in range(known[d]["chunks"])]
            known.update(documents)
            report.chunks_removed = self.apply(manifest, stale, rows)
            report.chunks_added = len(rows)
            report.documents, report.chunks = len(known), sum(d["chunks"] for d in known.values())
            report.version = self.store.stamp()
        return report

    def row(self, entry: SourceFile, digest: str, loaded, number: int, chunk, now: str):
        """(id, data) for txtai: the indexed text plus queryable metadata."""
        return (
            chunk_id(entry.document, number),
            {
                "text": chunk.indexed,
                "prefix": len(chunk.prefix),
                "source": entry.relpath,
                "collection": entry.source.name,
                "document": entry.document,
                "title": loaded.title,
                "heading": " > ".join(chunk.heading),
                "page": chunk.page,
                "chunk": number,
                "filetype": loaded.filetype,
                "char_start": chunk.start,
                "char_end": chunk.end,
                "hash": digest,
                "tokens": chunk.tokens,
                "ingested_at": now,
            },
        )

    def stream(self, rows):
        for row in rows:
            yield row
            self.progress.chunks(1)

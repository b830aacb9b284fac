"""Incremental ingestion: sync the configured sources into the index.

    report = Ingestor(config, progress).run()          # every source; or run([paths]), run(rebuild=True)
    Ingestor(config).remove(["uploads:report.pdf"])    # delete documents without re-embedding
    Ingestor(config).upsert(rows)                      # ready-made chunk rows (workflows)

The manifest of the live version (rag.manifest) records every document's hash, size and chunk count.
A run reads only files whose size or modification time changed, re-embeds only files whose content
changed, deletes the chunks of changed, renamed and removed files, and publishes a new version
atomically (rag.store); a run that finds nothing to change writes nothing.
"""

import hashlib
import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .chunker import Chunker
from .clock import now
from .config import Config
from .index import cached_settings
from .loaders import LoadError, load_file, read_file
from .manifest import FORMAT, DocumentRecord, Manifest, chunk_id
from .progress import Progress
from .sources import Source, SourceFile, scan
from .store import open_store
from .vectorcache import FILE, VectorCache

UPLOADS = "uploads"
# A file modified this recently may change again within the same mtime tick: its mtime is not
# trusted to mean "unchanged" (it is re-read next run), as git does with "racily clean" entries
RACY_NS = 2_000_000_000


class StrictFailure(Exception):
    """--strict: some files failed, so nothing was written."""

    def __init__(self, report):
        super().__init__(f"{len(report.failed)} file(s) failed; --strict: index left unchanged")
        self.report = report


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
    chunks_embedded: int = 0  # chunk texts the model encoded; the other added chunks came from the vector cache
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

    def fail(self, entry: SourceFile, reason: str):
        self.failed.append({"path": entry.relpath, "source": entry.source.name, "reason": reason})

    def to_dict(self) -> dict:
        return {**asdict(self), "counts": self.counts()}


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settled(stat) -> int | None:
    """The file's mtime, or None while it is too recent to prove later that the file is unchanged."""
    return stat.st_mtime_ns if time.time_ns() - stat.st_mtime_ns > RACY_NS else None


def configured_sources(config: Config) -> list[Source]:
    """Configured sources plus the uploads folder (source "uploads") when it exists."""
    sources = [Source(s.name, config.resolve(s.path), tuple(s.include), tuple(s.exclude)) for s in config.ingest.sources]
    uploads = config.resolve(config.ingest.uploads)
    if uploads.is_dir() and all(s.name != UPLOADS for s in sources):
        sources.append(Source(UPLOADS, uploads))
    return sources


def make_chunker(config: Config) -> Chunker:
    """The chunker of `ingest.chunking`, measuring tokens with the embedding model's tokenizer."""
    chunking = config.ingest.chunking
    return Chunker(config.embeddings_settings()["path"], chunking.max_tokens, chunking.overlap, chunking.context_prefix)


def fingerprint(config: Config) -> dict:
    """Settings that change every vector or chunk: a change forces a rebuild."""
    return {"model": config.index.embeddings["path"], "chunking": config.ingest.chunking.model_dump()}


def chunk_rows(document: str, record: DocumentRecord, chunks) -> list[tuple[str, dict]]:
    """(id, data) rows for txtai: each chunk's indexed text plus queryable metadata."""
    return [
        (
            chunk_id(document, number),
            {
                "text": chunk.indexed,
                "prefix": len(chunk.prefix),
                "source": record.source,
                "collection": record.collection,
                "document": document,
                "title": record.title,
                "heading": " > ".join(chunk.heading),
                "page": chunk.page,
                "chunk": number,
                "filetype": record.filetype,
                "char_start": chunk.start,
                "char_end": chunk.end,
                "hash": record.hash,
                "tokens": chunk.tokens,
                "ingested_at": record.ingested_at,
            },
        )
        for number, chunk in enumerate(chunks)
    ]


class Ingestor:
    """Syncs sources into the index of a Config; every change is published by `apply`."""

    def __init__(self, config: Config, progress: Progress | None = None):
        self.config = config
        self.progress = progress or Progress()
        self.store = open_store(config)
        self.settings = config.embeddings_settings()
        if config.index.vector_cache.enabled:
            self.settings = cached_settings(self.settings, self.vectors_dir, config.index.embeddings["path"])
        self.embedded = 0

    @property
    def vectors_dir(self):
        """The vector cache of the index: beside its versions, never copied with them."""
        return self.config.index_dir / "vectors"

    def run(self, paths: list[Path] | None = None, rebuild: bool = False, strict: bool = False) -> Report:
        """Ingests the configured sources (or only `paths`).

        Raises IndexLocked if another writer runs; with strict, raises StrictFailure and writes
        nothing when any file fails.
        """
        started = time.perf_counter()
        report = Report()
        with self.store.lock():
            manifest = self.store.manifest()
            published = self.store.stamp() is not None
            if manifest.documents and manifest.fingerprint != fingerprint(self.config):
                rebuild = True
            report.rebuilt = rebuild and bool(manifest.documents)
            if rebuild:
                manifest = Manifest()
            manifest.fingerprint = fingerprint(self.config)

            files, skipped, scopes = scan(configured_sources(self.config), paths)
            report.skipped = [{"path": p, "reason": r} for p, r in skipped]
            candidates = self.classify(files, manifest, scopes, report)
            stale: list[str] = []
            rows = self.changes(candidates, manifest, report, stale, strict)
            first = next(rows, None)  # loads files up to the first change: no change, no write
            for document in report.removed:
                report.chunks_removed += len(ids := manifest.remove(document))
                stale.extend(ids)
            if first or stale or rebuild or not published:
                self.apply(manifest, stale, itertools.chain([first], rows) if first else None, rebuild)
                report.chunks_embedded = self.embedded
            report.documents, report.chunks = len(manifest.documents), manifest.chunks
            report.version = self.store.stamp()
        report.seconds = time.perf_counter() - started
        return report

    def classify(self, files: list[SourceFile], manifest: Manifest, scopes, report: Report) -> list[SourceFile]:
        """Files that may have changed (size or mtime differ from the manifest's); the rest are
        unchanged. Documents under the scanned scopes whose file is gone are marked removed."""
        candidates, seen = [], set()
        for entry in files:
            seen.add(entry.document)
            known = manifest.documents.get(entry.document)
            try:
                stat = entry.path.stat()
            except OSError:
                stat = None
            if known and stat and known.mtime_ns == stat.st_mtime_ns and known.size == stat.st_size:
                report.unchanged.append(entry.document)
            else:
                candidates.append(entry)
        for document, record in manifest.documents.items():
            if document not in seen and any(scope.covers(record.collection, record.source) for scope in scopes):
                report.removed.append(document)
        return candidates

    def changes(self, candidates: list[SourceFile], manifest: Manifest, report: Report, stale: list[str], strict: bool = False):
        """Rows of the new and changed candidates, loaded and chunked one file at a time as they are
        consumed (memory holds one batch, not the run). Each file is read once: unchanged content
        is left alone. Records go into manifest and report; the ids of chunks a changed document no
        longer has into stale. With strict, a failed file stops the rows and raises StrictFailure
        once every file was tried."""
        self.progress.files(len(candidates))
        chunker = None
        for entry in candidates:
            self.progress.file(entry.relpath)
            known = manifest.documents.get(entry.document)
            try:
                data, stat = read_file(entry.path, self.config.ingest.max_file_size), entry.path.stat()
                digest = file_hash(data)
                if known and known.hash == digest:  # touched, not changed: remember the new mtime
                    known.mtime_ns, known.size = settled(stat), stat.st_size
                    report.unchanged.append(entry.document)
                    continue
                loaded = load_file(entry.path, self.config.ingest.max_file_size, data=data)
                del data
                chunker = chunker or make_chunker(self.config)
                chunks = chunker(loaded.title, loaded.sections)
                if not chunks:
                    raise LoadError("no text")
            except LoadError as error:
                report.fail(entry, error.reason)
                continue
            except OSError as error:
                report.fail(entry, (error.strerror or str(error)).lower())
                continue
            except Exception as error:  # a loader bug must not lose the rest of the run
                report.fail(entry, f"{type(error).__name__}: {error}")
                continue
            if strict and report.failed:
                continue

            (report.updated if known else report.added).append(entry.document)
            if known:
                report.chunks_removed += known.chunks
                stale.extend(manifest.chunk_ids(entry.document)[len(chunks) :])
            record = DocumentRecord(
                collection=entry.source.name,
                source=entry.relpath,
                hash=digest,
                title=loaded.title,
                filetype=loaded.filetype,
                chunks=len(chunks),
                size=stat.st_size,
                mtime_ns=settled(stat),
                ingested_at=now(),
            )
            manifest.documents[entry.document] = record
            report.chunks_added += len(chunks)
            self.progress.embedding(report.chunks_added)
            yield from chunk_rows(entry.document, record, chunks)
        if strict and report.failed:
            raise StrictFailure(report)

    def remove(self, documents: list[str]) -> Report:
        """Deletes documents' chunks from the index without re-embedding anything."""
        report = Report()
        with self.store.lock():
            manifest = self.store.manifest(documents)
            report.removed = [d for d in documents if d in manifest.documents]
            if report.removed:
                stale = [uid for d in report.removed for uid in manifest.remove(d)]
                report.chunks_removed = len(stale)
                self.apply(manifest, stale, None)
            report.documents, report.chunks = manifest.count, manifest.chunks
            report.version = self.store.stamp()
        return report

    def upsert(self, rows: list) -> Report:
        """Writes ready-made chunk rows (id, data) of whole documents, replacing their old chunks."""
        report = Report()
        records: dict[str, DocumentRecord] = {}
        for _, data in rows:
            record = records.setdefault(data["document"], DocumentRecord(collection=data["collection"], source=data["source"], chunks=0))
            record.hash, record.title, record.filetype = data.get("hash"), data.get("title") or "", data.get("filetype") or ""
            record.ingested_at = data.get("ingested_at")
            record.chunks = max(record.chunks, int(data.get("chunk", 0)) + 1)
        with self.store.lock():
            manifest = self.store.manifest(list(records))
            if manifest.count and manifest.fingerprint != fingerprint(self.config):
                raise ValueError("the index was built with other model or chunking settings: run `rag ingest --rebuild` first")
            manifest.fingerprint = fingerprint(self.config)
            stale = []
            for document, record in records.items():
                (report.updated if document in manifest.documents else report.added).append(document)
                stale.extend(manifest.chunk_ids(document))
                manifest.documents[document] = record
            added = {uid for uid, _ in rows}
            report.chunks_removed = len(stale)
            self.progress.embedding(len(rows))
            self.apply(manifest, [uid for uid in stale if uid not in added], rows or None)
            report.chunks_added, report.chunks_embedded = len(rows), self.embedded
            report.documents, report.chunks = manifest.count, manifest.chunks
            report.version = self.store.stamp()
        return report

    def apply(self, manifest: Manifest, stale: list[str], rows, rebuild: bool = False):
        """Publishes one write: the live index (or nothing, with rebuild) plus the upserted rows
        (an iterable, consumed once; None: none) minus the stale chunk ids, with manifest. Stale
        ids are deleted after the rows are in, so rows may add to stale as they stream; they never
        name a row's id. Needs the lock."""
        with self.store.begin(self.settings, rebuild) as write:
            if rows is not None:
                self.embedded += write.add(self.stream(rows))
            write.delete(stale)
            manifest.version, manifest.updated_at = FORMAT, now()
            write.publish(manifest)
        self.collect(manifest.chunks * self.config.index.keep_versions)

    def collect(self, live: int, force: bool = False):
        """Deletes cached vectors no kept version holds (rag.vectorcache) when the cache holds more
        than twice `live` (the chunks of the kept versions), or with force. Needs the lock."""
        if not self.config.index.vector_cache.enabled or not (self.vectors_dir / FILE).exists():
            return
        cache = VectorCache(self.vectors_dir, self.settings["vectorcache"]["model"])
        try:
            if force or cache.due(live):
                cache.collect(self.store.cache_keys(self.settings), self.config.index.vector_cache.keep_unused_hours * 3600)
        finally:
            cache.close()

    def stream(self, rows):
        for row in rows:
            yield row
            self.progress.chunks(1)

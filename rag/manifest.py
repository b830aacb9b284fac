"""The manifest of an index version: the documents it holds, their content hash and chunk count.

    manifest = Manifest.read(version_folder)      # an empty manifest for None or a fresh index
    manifest.chunks                               # chunks in the index
    manifest.chunk_ids("docs:guide/install.md")   # ["docs:guide/install.md#0000", ...]
    manifest.write(work_folder)
    manifest.write_delta(work_folder, "manifest-base.json", base)   # the records that differ from base

Chunk ids are deterministic (`<document>#<nnnn>`), so a document's chunks are known from its count.
A version of the local store keeps a base manifest (written when its base segment is) and, per
write, only the records that changed since (`base` + `documents` + `removed` in manifest.json), so a
one-document write does not rewrite every record. Parsed bases are kept per process (they never change).
"""

import json
import os
import threading
from pathlib import Path

from pydantic import BaseModel, Field

FILE = "manifest.json"
FORMAT = 1
BASES: dict = {}  # (inode, device, mtime, size) -> the JSON of a large manifest file, parsed once per process
BASES_LOCK = threading.Lock()


def chunk_id(document: str, number: int) -> str:
    """The id of chunk `number` of a document."""
    return f"{document}#{number:04d}"


class DocumentRecord(BaseModel):
    """What the index knows about one document."""

    collection: str = Field(description="The source it came from; `uploads` for uploaded files.", examples=["docs"])
    source: str = Field(description="Path relative to the source folder.", examples=["guide/install.md"])
    hash: str | None = Field(None, description="SHA-256 of the file's bytes.")
    title: str = ""
    filetype: str = ""
    chunks: int = Field(ge=0)
    size: int | None = Field(None, description="File size in bytes.")
    mtime_ns: int | None = Field(None, exclude=True, description="Modification time seen at ingest (skips re-reading unchanged files).")
    ingested_at: str | None = None


class Document(DocumentRecord):
    """A document with its id `<source>:<path>`."""

    id: str = Field(examples=["docs:guide/install.md"])


class Manifest(BaseModel):
    """Documents of one index version, and the settings its vectors were made with."""

    version: int = FORMAT
    fingerprint: dict = {}
    documents: dict[str, DocumentRecord] = {}
    updated_at: str | None = None
    # A partial manifest (rag.pgstore) holds only the records of `scope`, and counts the documents and
    # chunks of the rest in `outside`; a write publishing it changes only the records of its scope
    scope: frozenset[str] | None = Field(None, exclude=True)
    outside: tuple[int, int] = Field((0, 0), exclude=True)

    @classmethod
    def read(cls, folder: Path | None, name: str = FILE) -> "Manifest":
        """The manifest in folder (a base plus changes, or whole); empty when folder is None."""
        if folder is None:
            return cls()
        data = parsed(Path(folder) / name)
        records = data["documents"]
        if "base" in data:
            records = dict(parsed(Path(folder) / data["base"])["documents"])
            records.update(data["documents"])
            for uid in data.get("removed", []):
                records.pop(uid, None)
        documents = {uid: DocumentRecord.model_construct(**record) for uid, record in records.items()}
        return cls.model_construct(version=data.get("version", FORMAT), fingerprint=data.get("fingerprint", {}), documents=documents, updated_at=data.get("updated_at"))

    def dump(self, documents: dict | None = None) -> dict:
        data = self.model_dump(mode="json", exclude={"documents"})
        chosen = self.documents if documents is None else documents
        data["documents"] = {uid: {**record.model_dump(mode="json"), "mtime_ns": record.mtime_ns} for uid, record in chosen.items()}
        return data  # mtime_ns is excluded from API output, kept on disk

    def write(self, folder: Path, name: str = FILE):
        """Writes and fsyncs the whole manifest into folder (a version being prepared)."""
        write_json(Path(folder) / name, self.dump())

    def write_delta(self, folder: Path, base_name: str, base: "Manifest"):
        """Writes manifest.json into folder as the records that differ from base (the file base_name
        in the same folder), and those base has that this manifest dropped."""
        changed = {uid: record for uid, record in self.documents.items() if not same(base.documents.get(uid), record)}
        data = self.dump(changed)
        data["base"] = base_name
        data["removed"] = sorted(set(base.documents) - set(self.documents))
        write_json(Path(folder) / FILE, data)

    @property
    def count(self) -> int:
        """Documents in the index."""
        return self.outside[0] + len(self.documents)

    @property
    def chunks(self) -> int:
        return self.outside[1] + sum(record.chunks for record in self.documents.values())

    def chunk_ids(self, document: str) -> list[str]:
        record = self.documents.get(document)
        return [chunk_id(document, n) for n in range(record.chunks)] if record else []

    def remove(self, document: str) -> list[str]:
        """Drops a document; returns the ids of its chunks."""
        ids = self.chunk_ids(document)
        self.documents.pop(document, None)
        return ids

    def get(self, document: str) -> Document | None:
        record = self.documents.get(document)
        return Document(id=document, **record.model_dump()) if record else None

    def listing(self) -> list[Document]:
        return [self.get(uid) for uid in sorted(self.documents)]


def same(one: DocumentRecord | None, other: DocumentRecord) -> bool:
    return one is not None and one.__dict__ == other.__dict__


def parsed(path: Path) -> dict:
    """The JSON of a manifest file; large ones are parsed once per process (published files never change)."""
    stat = path.stat()
    if stat.st_size < 1_000_000:
        return json.loads(path.read_bytes())
    key = (stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_size)
    with BASES_LOCK:
        if key in BASES:
            return BASES[key]
    data = json.loads(path.read_bytes())
    with BASES_LOCK:
        if len(BASES) > 4:
            BASES.clear()
        BASES[key] = data
    return data


def write_json(path: Path, data: dict):
    """Writes and fsyncs a JSON file (compact: large manifests parse faster)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"), sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())

"""The manifest of an index version: the documents it holds, their content hash and chunk count.

    manifest = Manifest.read(version_folder)      # an empty manifest for None or a fresh index
    manifest.chunks                               # chunks in the index
    manifest.chunk_ids("docs:guide/install.md")   # ["docs:guide/install.md#0000", ...]
    manifest.write(work_folder)

Chunk ids are deterministic (`<document>#<nnnn>`), so a document's chunks are known from its count.
"""

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

FILE = "manifest.json"
FORMAT = 1


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

    @classmethod
    def read(cls, folder: Path | None) -> "Manifest":
        """The manifest in folder; empty when folder is None."""
        if folder is None:
            return cls()
        return cls.model_validate_json((Path(folder) / FILE).read_bytes())

    def write(self, folder: Path):
        """Writes and fsyncs manifest.json into folder (a version being prepared)."""
        data = self.model_dump(mode="json")
        for uid, record in self.documents.items():  # mtime_ns is excluded from API output, kept on disk
            data["documents"][uid]["mtime_ns"] = record.mtime_ns
        with open(Path(folder) / FILE, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())

    @property
    def chunks(self) -> int:
        return sum(record.chunks for record in self.documents.values())

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

"""Plain data types shared across the library."""

from dataclasses import asdict, dataclass, field
from typing import Annotated

from pydantic import Field


@dataclass
class Hit:
    """One retrieved passage (a chunk) with the metadata needed to cite it."""

    id: Annotated[str, Field(examples=["docs:guide/backup.md#0001"])]
    score: float
    text: str
    source: Annotated[str, Field(examples=["guide/backup.md"])] = ""
    document: Annotated[str, Field(examples=["docs:guide/backup.md"])] = ""
    title: str = ""
    heading: Annotated[str, Field(examples=["Backups > Restore"])] = ""
    page: int | None = None
    chunk: int = 0
    filetype: str = ""
    start: int = 0
    end: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short human-readable source label: path, page and heading."""
        parts = [self.source or self.document]
        if self.page:
            parts.append(f"p. {self.page}")
        if self.heading:
            parts.append(self.heading)
        return ", ".join(parts)

    def snippet(self, size: int = 240) -> str:
        """The passage text shortened to about `size` characters."""
        text = " ".join(self.text.split())
        return text if len(text) <= size else text[: size - 1].rsplit(" ", 1)[0] + "…"

    def to_dict(self) -> dict:
        return asdict(self)

"""Shared types of the loaders: a loaded document, its sections and the load error."""

from dataclasses import dataclass, field


@dataclass
class Section:
    """A structural unit of a document: a Markdown/HTML/DOCX heading section or a PDF page.

    `start` is the character offset of `text` within the document's full text: the decoded file
    for .md/.txt, else the section texts joined by blank lines ("\\n\\n").
    """

    text: str
    heading: list[str] = field(default_factory=list)
    page: int | None = None
    start: int = 0


@dataclass
class LoadedDocument:
    """A file converted to plain-text sections plus the metadata the chunker and index need."""

    title: str
    filetype: str
    sections: list[Section]
    encoding: str | None = None


class LoadError(Exception):
    """A file that cannot be loaded; `reason` is short and human-readable ("encrypted PDF")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Headings in one document at most: each costs ~300 bytes here and a section later (a 19 MB
# Markdown file of 4.75 million setext headings took 21 s and 1.5 GB).
MAX_HEADINGS = 100_000


class Outline:
    """Tracks the heading path while a document is read top to bottom."""

    def __init__(self):
        self.levels: list[tuple[int, str]] = []
        self.headings: list[tuple[str, list[str]]] = []

    def enter(self, level: int, text: str):
        if len(self.headings) >= MAX_HEADINGS:
            raise LoadError(f"more than {MAX_HEADINGS:,} headings")
        while self.levels and self.levels[-1][0] >= level:
            self.levels.pop()
        self.levels.append((level, text))
        self.headings.append((text, self.path))

    @property
    def path(self) -> list[str]:
        return [text for _, text in self.levels]


def joined(parts: list[tuple[str, list[str], int | None]], outline: Outline | None = None) -> list[Section]:
    """Sections from (text, heading, page) parts with offsets into the parts joined by blank lines.

    Empty parts are dropped. A document that has headings but no body text keeps its headings
    as sections, so a headings-only file is indexed rather than reported empty.
    """
    parts = [(text, heading, page) for text, heading, page in parts if text.strip()]
    if not parts and outline is not None:
        parts = [(text, heading, None) for text, heading in outline.headings if text.strip()]
    sections, offset = [], 0
    for text, heading, page in parts:
        sections.append(Section(text, list(heading), page, offset))
        offset += len(text) + 2
    return sections


def first_line(text: str, limit: int = 100) -> str | None:
    """The first non-empty line of text when short enough to serve as a title."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else None
    return None


def human_size(size: float) -> str:
    """1536 -> "1.5 KB" (binary units, as config sizes are)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            break
        size /= 1024
    if unit == "bytes":
        return f"{int(size)} bytes"
    return f"{size:.1f}".removesuffix(".0") + f" {unit}"

"""Plain text: one section, title from the first line."""

from pathlib import Path

from .base import LoadedDocument, LoadError, Section, first_line
from .encoding import decode


def load(data: bytes, path: Path) -> LoadedDocument:
    text, encoding = decode(data)
    section = trimmed(text, 0, len(text))
    if not section:
        raise LoadError("empty file")
    return LoadedDocument(first_line(text) or path.stem, "txt", [section], encoding)


def trimmed(text: str, start: int, end: int, heading: list[str] | None = None) -> Section | None:
    """The section text[start:end] without blank lines around it (the first line's indent kept)."""
    body = text[start:end]
    stripped = body.lstrip()
    if not stripped:
        return None
    first = len(body) - len(stripped)
    first = body.rfind("\n", 0, first) + 1
    return Section(body[first:].rstrip(), list(heading or []), None, start + first)

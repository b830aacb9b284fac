"""Markdown: sections at ATX and setext headings with their heading path; code fences respected.

Section text is the Markdown source between headings, unchanged; the heading line itself is
carried in `heading`, not repeated in the text. Offsets index the decoded file.
"""

import re
from pathlib import Path

from .base import LoadedDocument, LoadError, Outline, first_line
from .encoding import decode
from .text import trimmed

# No pattern below may try two ways to match the same run of characters (say, spaces that a lazy
# group or a trailing [ \t]* could take): on a long line that backtracking is quadratic.
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
NOT_PARAGRAPH = re.compile(r"^\s*(?:[-+*>|]|\d+[.)]\s|#|`{3}|~{3}|<)")
LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()]*\)")
EMPHASIS = re.compile(r"`|\*\*|__")
FRONT_TITLE = re.compile(r"^title:\s*(\S.*)$", re.MULTILINE)
YAML_KEY = re.compile(r"^[A-Za-z_][\w-]*\s*:", re.MULTILINE)


def load(data: bytes, path: Path) -> LoadedDocument:
    text, encoding = decode(data)
    if not text.strip():
        raise LoadError("empty file")

    begin, meta_title = front_matter(text)
    outline, sections, h1 = Outline(), [], None
    start = begin
    for heading_start, body_start, level, title in headings(text, begin):
        section = trimmed(text, start, heading_start, outline.path)
        if section:
            sections.append(section)
        outline.enter(level, title)
        h1 = h1 or (title if level == 1 else None)
        start = body_start
    section = trimmed(text, start, len(text), outline.path)
    if section:
        sections.append(section)
    if not sections:
        section = trimmed(text, begin, len(text))
        sections = [section] if section else []
    if not sections:
        raise LoadError("no text")

    title = meta_title or h1 or clean(first_line(text[begin:]) or "").lstrip("#").strip() or path.stem
    return LoadedDocument(title, "md", sections, encoding)


def headings(text: str, begin: int = 0):
    """Yields (heading start, body start, level, title) in document order, skipping code fences."""
    fence, previous = None, None  # previous: (start, line) of a one-line paragraph
    offset, blank = begin, True
    for line in text[begin:].splitlines(keepends=True):
        start, offset = offset, offset + len(line)
        line = line.rstrip("\n")
        if fence:
            match = FENCE.match(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not match.group(2).strip():
                fence = None
            blank, previous = True, None
            continue
        match = FENCE.match(line)
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence, blank, previous = match.group(1), True, None
            continue
        match = ATX.match(line)
        if match:
            title = clean(unclosed((match.group(2) or "").rstrip(" \t")))
            if title:
                yield start, offset, len(match.group(1)), title
            blank, previous = True, None
            continue
        match = SETEXT.match(line)
        if match and previous:
            title = clean(previous[1])
            if title:
                yield previous[0], offset, 1 if match.group(1)[0] == "=" else 2, title
                blank, previous = True, None
                continue
        paragraph = line.strip() and blank and not NOT_PARAGRAPH.match(line) and not line.startswith(("    ", "\t"))
        previous = (start, line) if paragraph else None
        blank = not line.strip()


def front_matter(text: str) -> tuple[int, str | None]:
    """(offset where the body starts, title) of a leading YAML front matter block."""
    if not text.startswith("---\n"):
        return 0, None
    match = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE).search(text, 4)
    if not match or not YAML_KEY.search(text, 4, match.start()):
        return 0, None
    block = text[4 : match.start()]
    title = FRONT_TITLE.search(block)
    title = title.group(1).strip().strip("\"'").strip() if title else None
    return match.end(), title or None


def unclosed(title: str) -> str:
    """An ATX heading's text without its optional closing sequence ("# Title ##" -> "Title")."""
    stripped = title.rstrip("#")
    if stripped != title and (not stripped or stripped[-1] in " \t"):
        return stripped.rstrip(" \t")
    return title


def clean(title: str) -> str:
    """Heading text without link targets, code ticks and strong markers."""
    title = LINK.sub(r"\1", title)
    return " ".join(EMPHASIS.sub("", title).split())

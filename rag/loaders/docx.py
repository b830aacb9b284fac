"""DOCX with python-docx: paragraphs and tables in document order, sections at Title/Heading N."""

import io
import re
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from .base import LoadedDocument, LoadError, Outline, first_line, joined

HEADING = re.compile(r"heading ?([1-9])")
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def load(data: bytes, path: Path) -> LoadedDocument:
    if data.startswith(OLE):
        raise LoadError("corrupt DOCX: OLE container (a password-protected file, or a .doc renamed .docx)")
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as error:
        raise LoadError(f"corrupt DOCX: {short(error)}") from None

    outline, parts, blocks, named = Outline(), [], [], {}
    levels = {}  # style id -> heading level: resolving a paragraph's style is slow in python-docx
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            blocks.append(table_text(block))
            continue
        text = block.text.strip()
        style = block._p.style
        if style not in levels:
            levels[style] = heading_level(block)
        level = levels[style]
        if level is None or not text:
            blocks.append(text)
            continue
        parts.append(("\n\n".join(b for b in blocks if b), outline.path, None))
        blocks = []
        outline.enter(level, " ".join(text.split()))
        named.setdefault(level, " ".join(text.split()))
    parts.append(("\n\n".join(b for b in blocks if b), outline.path, None))

    sections = joined(parts, outline)
    if not sections:
        raise LoadError("no text")
    core = (document.core_properties.title or "").strip()
    title = core or named.get(0) or named.get(1) or first_line(sections[0].text) or path.stem
    return LoadedDocument(title, "docx", sections)


def heading_level(paragraph: Paragraph) -> int | None:
    """0 for Title, N for Heading N (also for styles based on them), else None."""
    style = paragraph.style
    while style is not None:
        name = (style.name or "").lower()
        if name == "title":
            return 0
        match = HEADING.fullmatch(name)
        if match:
            return int(match.group(1))
        style = style.base_style
    return None


def table_text(table: Table) -> str:
    """One line per row, cells separated by " | "; merged cells once; nested tables inline."""
    rows = []
    for row in table.rows:
        cells, previous = [], None
        for cell in row.cells:
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            parts = [b.text if isinstance(b, Paragraph) else table_inline(b) for b in cell.iter_inner_content()]
            cells.append(" ".join(" ".join(parts).split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def table_inline(nested: Table) -> str:
    return "; ".join(table_text(nested).splitlines())


def short(error: Exception) -> str:
    text = str(error).strip().strip("\"'") or type(error).__name__
    return text.splitlines()[0][:120]

"""DOCX with python-docx: paragraphs and tables in document order, sections at Title/Heading N.

A DOCX is a zip archive, so a small file can unpack to gigabytes (decompression bombs). Before
python-docx sees it, its parts are checked by declared size and compression ratio, then read
with a bound and their XML elements counted, and python-docx is given them repacked without
compression: it cannot be made to unpack more than was checked, whatever the zip headers claim.
"""

import io
import re
import zipfile
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from .base import LoadedDocument, LoadError, Outline, first_line, human_size, joined

HEADING = re.compile(r"heading ?([1-9])")
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
XML_START = re.compile(rb"(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff)?[\s\x00]*<")  # UTF-8 or UTF-16 XML

MAX_EXPANDED = 128 * 1024**2  # all parts, unpacked: held in memory (here, and by python-docx)
MAX_XML = 64 * 1024**2  # XML parts, unpacked: parsed by lxml
MAX_ELEMENTS = 1_000_000  # XML elements in all parts: ~4 s of python-docx for a ~2000-page text, 13 s at worst
MAX_RATIO = 200  # unpacked / packed size of a part over RATIO_GRACE: Word XML packs ~10x, repetitive text ~70x
RATIO_GRACE = 1024**2


def load(data: bytes, path: Path) -> LoadedDocument:
    if data.startswith(OLE):
        raise LoadError("corrupt DOCX: OLE container (a password-protected file, or a .doc renamed .docx)")
    try:
        document = docx.Document(io.BytesIO(unpacked(data)))
    except LoadError:
        raise
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


def unpacked(data: bytes) -> bytes:
    """The archive repacked without compression, once its parts passed the limits; else LoadError.

    zipfile stops a part at its declared size and checks its CRC there; but its read() of a whole
    part first inflates all of the part's data, however much that is: python-docx must not read
    the original archive.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = archive.infolist()
        if sum(part.file_size for part in parts) > MAX_EXPANDED:
            raise LoadError(f"DOCX: unpacks to more than {human_size(MAX_EXPANDED)}")
        for part in parts:
            if part.file_size > RATIO_GRACE and part.file_size > MAX_RATIO * max(part.compress_size, 1):
                ratio = part.file_size // max(part.compress_size, 1)
                raise LoadError(f"DOCX: {part.filename} unpacks {ratio} times its size (more than {MAX_RATIO})")
        repacked, xml, elements = io.BytesIO(), 0, 0
        with zipfile.ZipFile(repacked, "w") as target:
            for part in parts:
                with archive.open(part) as handle:
                    content = handle.read(part.file_size + 1)  # a bounded read inflates at most this much
                if XML_START.match(content[:64]):
                    xml += len(content)
                    if xml > MAX_XML:
                        raise LoadError(f"DOCX: {part.filename} unpacks to more than {human_size(MAX_XML)} of XML")
                    elements += content.count(b"<") - content.count(b"</")  # start and empty tags (comments too)
                    if elements > MAX_ELEMENTS:
                        raise LoadError(f"DOCX: more than {MAX_ELEMENTS:,} XML elements (at {part.filename})")
                target.writestr(part.filename, content)
    return repacked.getvalue()


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

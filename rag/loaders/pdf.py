"""PDF with pypdf (pure Python): one section per page, 1-based page numbers kept."""

import io
import logging
import re
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from .base import LoadedDocument, LoadError, first_line, joined

# pypdf logs a warning for every recoverable defect of a file; the loader reports what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)

BLANK_LINES = re.compile(r"\n{3,}")
TRAILING_SPACE = re.compile(r"[ \t]+\n")
CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def load(data: bytes, path: Path) -> LoadedDocument:
    if b"%PDF-" not in data[:1024]:
        raise LoadError("corrupt PDF: no %PDF header")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
    except Exception as error:
        raise corrupt(error, data) from None
    if encrypted:
        decrypt(reader)

    parts, failure = [], None
    try:
        pages = list(reader.pages)
    except Exception as error:
        raise corrupt(error, data) from None
    if not pages:
        raise LoadError("corrupt PDF: no pages")
    for number, page in enumerate(pages, 1):
        try:
            parts.append((clean(page.extract_text()), [], number))
        except FileNotDecryptedError:
            raise LoadError("encrypted PDF") from None
        except Exception as error:  # one broken page does not lose the others
            failure = failure or error
    sections = joined(parts)
    if not sections:
        if failure:
            raise corrupt(failure, data)
        raise LoadError("no extractable text (scanned PDF?)")
    return LoadedDocument(title(reader) or first_line(sections[0].text) or path.stem, "pdf", sections)


def decrypt(reader: PdfReader):
    """Opens a PDF encrypted with an empty user password (permissions only); else LoadError."""
    try:
        opened = reader.decrypt("")
    except DependencyError:
        raise LoadError("encrypted PDF (AES: install the cryptography package)") from None
    except Exception:
        opened = 0
    if not opened:
        raise LoadError("encrypted PDF")


def clean(text: str) -> str:
    text = CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return BLANK_LINES.sub("\n\n", TRAILING_SPACE.sub("\n", text)).strip()


def title(reader: PdfReader) -> str | None:
    try:
        value = reader.metadata.title if reader.metadata else None
    except Exception:
        return None
    return " ".join(str(value or "").split()) or None


def corrupt(error: Exception, data: bytes) -> LoadError:
    message = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
    if b"%%EOF" not in data[-1024:]:
        message = f"truncated ({message})"
    return LoadError(f"corrupt PDF: {message}")

"""PDF with pypdf (pure Python): one section per page, 1-based page numbers kept.

PDF streams are compressed, so a small file can hold content that takes pypdf hours to parse or
gigabytes of text: a huge run of spaces, one content stream drawn by thousands of pages, a form
drawn thousands of times per page, a font that maps one character code to 200 characters. What
a file may cost is bounded by an `Allowance` (see the limits below); a file that needs more is
refused with the reason.
"""

import io
import logging
import re
from pathlib import Path

from pypdf import PdfReader, apply_configuration
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError
from pypdf.generic import ArrayObject, DictionaryObject, StreamObject

from .base import LoadedDocument, LoadError, first_line, human_size, joined

# pypdf logs a warning for every recoverable defect of a file; the loader reports what matters.
logging.getLogger("pypdf").setLevel(logging.ERROR)

BLANK_LINES = re.compile(r"\n{3,}")
TRAILING_SPACE = re.compile(r"[ \t]+\n")
CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

MAX_PAGES = 10_000
MAX_TEXT = 32 * 1024**2  # characters of extracted text
# Decoded content that pypdf may parse, counted each time it is parsed (per page drawing it, per
# form drawn): CONTENT_RATIO times the file size, within [MIN_CONTENT, MAX_CONTENT]. pypdf parses
# 0.4 (dense text) to 15 (blank) MB/s of it; PDFs hold about their own size in content.
MIN_CONTENT, MAX_CONTENT, CONTENT_RATIO = 2 * 1024**2, 32 * 1024**2, 100
MAX_FORMS = 1000  # form XObjects a page may reach
# pypdf's decoding limits per stream (75 MB by default), lowered to the content allowance
STREAM_LIMITS = (
    "zlib_maximum_output_length", "lzw_maximum_output_length", "run_length_maximum_output_length",
    "brotli_maximum_output_length", "jbig2_maximum_output_length", "array_based_stream_maximum_output_length",
)  # fmt: skip
TEXT_OPERATORS = {b"Tj", b"TJ", b"'", b'"'}
HEX_STRING = re.compile(rb"<([0-9A-Fa-f\s]*)>")


def load(data: bytes, path: Path) -> LoadedDocument:
    if b"%PDF-" not in data[:1024]:
        raise LoadError("corrupt PDF: no %PDF header")
    allowance = Allowance(min(MAX_CONTENT, max(MIN_CONTENT, CONTENT_RATIO * len(data))))
    limits = dict.fromkeys(STREAM_LIMITS, allowance.limit)
    with apply_configuration(page_tree_maximum_entries=2 * MAX_PAGES, **limits):  # pages and /Pages nodes
        return read(data, path, allowance)


def read(data: bytes, path: Path, allowance: "Allowance") -> LoadedDocument:
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
    except LimitReachedError as error:
        raise LoadError(f"PDF: more than {MAX_PAGES:,} pages" if "page tree" in str(error) else f"PDF: {error}") from None
    except Exception as error:
        raise corrupt(error, data) from None
    if not pages:
        raise LoadError("corrupt PDF: no pages")
    if len(pages) > MAX_PAGES:
        raise LoadError(f"PDF: more than {MAX_PAGES:,} pages")
    for number, page in enumerate(pages, 1):
        try:
            parts.append((clean(allowance.extract(page, number)), [], number))
        except LoadError:
            raise
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


class Allowance:
    """What reading one PDF may still cost; LoadError once a page needs more.

    Content: decoded bytes pypdf parses, charged for a page's content streams before its text is
    extracted and for every form drawn while it is. Text: characters, charged for every
    text-showing operator before pypdf decodes it (string bytes times the widest character
    mapping of the page's fonts), then set to the text actually extracted.
    """

    def __init__(self, content: int, text: int = MAX_TEXT):
        self.limit, self.content = content, content
        self.text_limit, self.text = text, text
        self.refusal: LoadError | None = None
        self.widths: dict[int, int] = {}  # id(font) -> characters per code byte

    def extract(self, page, number: int) -> str:
        self.charge(sum(len(decoded(stream, f"page {number} content", self.limit)) for stream in contents(page)))
        forms, fonts = resources(page, number)
        widest = max((self.width(font) for font in fonts), default=1)
        estimate = 0

        def visit(operator, operands, *_):
            nonlocal estimate
            if self.refusal:  # pypdf swallows errors raised inside a form: raise again outside it
                raise self.refusal
            if operator in TEXT_OPERATORS:
                estimate += widest * shown(operands) + 1
                if estimate > self.text:
                    self.refuse_text()
            elif operator == b"Do" and operands:
                drawn = forms.get(operands[0], ())
                self.charge(sum(len(decoded(form, f"page {number}: form {operands[0]}", self.limit)) for form in drawn))

        text = page.extract_text(visitor_operand_before=visit)
        if self.refusal:
            raise self.refusal
        if len(text) > self.text:
            self.refuse_text()
        self.text -= len(text)
        return text

    def charge(self, size: int):
        self.content -= size
        if self.content < 0:
            self.refuse(f"PDF: content unpacks to more than {human_size(self.limit)}")

    def refuse_text(self):
        self.refuse(f"PDF: text is longer than {self.text_limit / 1024**2:g}M characters")

    def refuse(self, reason: str):
        self.refusal = LoadError(reason)
        raise self.refusal

    def width(self, font: DictionaryObject) -> int:
        """Characters one code byte may become: from the font's ToUnicode map (<0041> is one)."""
        if id(font) not in self.widths:
            widest = 1
            mapping = font.get("/ToUnicode")
            mapping = mapping.get_object() if mapping is not None else None
            if isinstance(mapping, StreamObject):
                strings = HEX_STRING.findall(decoded(mapping, "a font's ToUnicode map", self.limit))
                digits = max((len(string.translate(None, b" \t\r\n\f")) for string in strings), default=0)
                widest = max(1, digits // 4)
            self.widths[id(font)] = widest
        return self.widths[id(font)]


def contents(page) -> list:
    """The page's content streams."""
    value = page.get("/Contents")
    value = value.get_object() if value is not None else None
    items = value if isinstance(value, ArrayObject) else [value]
    return [item.get_object() for item in items if item is not None and isinstance(item.get_object(), StreamObject)]


def resources(page, number: int) -> tuple[dict, list]:
    """(form XObjects by name, fonts) that the page and the forms it draws can use."""
    forms, fonts, seen, count = {}, [], set(), 0
    pending = [page.get("/Resources")]
    while pending:
        value = pending.pop()
        value = value.get_object() if value is not None else None
        if not isinstance(value, DictionaryObject) or id(value) in seen:
            continue
        seen.add(id(value))
        font_dict = value.get("/Font")
        font_dict = font_dict.get_object() if font_dict is not None else None
        if isinstance(font_dict, DictionaryObject):
            fonts.extend(font.get_object() for font in font_dict.values() if isinstance(font.get_object(), DictionaryObject))
        objects = value.get("/XObject")
        objects = objects.get_object() if objects is not None else None
        for name, form in (objects.items() if isinstance(objects, DictionaryObject) else ()):
            form = form.get_object()
            if isinstance(form, StreamObject) and form.get("/Subtype") == "/Form" and id(form) not in seen:
                seen.add(id(form))
                forms.setdefault(name, []).append(form)
                pending.append(form.get("/Resources"))
                count += 1
                if count > MAX_FORMS:
                    raise LoadError(f"PDF: page {number} uses more than {MAX_FORMS:,} forms")
    return forms, fonts


def decoded(stream: StreamObject, what: str, limit: int) -> bytes:
    """The stream's decoded data (cached by pypdf); refused beyond pypdf's decoding limit."""
    try:
        return stream.get_data()
    except LimitReachedError:
        raise LoadError(f"PDF: {what} unpacks to more than {human_size(limit)}") from None
    except Exception:
        return b""  # a broken stream: text extraction reports it as it does without this check


def shown(operands) -> int:
    """Bytes of the strings a text operator shows."""
    strings = operands[0] if operands and isinstance(operands[0], ArrayObject) else operands
    return sum(len(getattr(value, "original_bytes", value)) for value in strings if isinstance(value, (str, bytes)))


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

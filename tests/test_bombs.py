"""Decompression bombs: small DOCX and PDF files that unpack to huge content are refused quickly,
with a reason, before the parser spends minutes and gigabytes on them; ordinary files still load.

The files are built here: DOCX with zipfile around a python-docx template, PDF written by hand
with zlib-compressed (FlateDecode) streams.
"""

import io
import os
import struct
import time
import zipfile
import zlib
from pathlib import Path

import docx
import pytest

from rag.loaders import LoadError, load_file

W = b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'


def refusal(path: Path, seconds: float = 5.0) -> str:
    """The LoadError reason for path; fails when loading takes longer than `seconds`."""
    started = time.process_time()
    with pytest.raises(LoadError) as error:
        load_file(path, max_bytes=20 * 1024**2)
    spent = time.process_time() - started
    assert spent < seconds, f"refused only after {spent:.1f} s of CPU"
    return error.value.reason


# --- DOCX ----------------------------------------------------------------------------------------


def template() -> dict[str, bytes]:
    """The parts of python-docx's default document but word/document.xml."""
    package = io.BytesIO()
    docx.Document().save(package)
    with zipfile.ZipFile(package) as source:
        return {info.filename: source.read(info) for info in source.infolist() if info.filename != "word/document.xml"}


def docx_with(folder: Path, name: str, *body: bytes, level: int = 9) -> Path:
    """A valid DOCX whose word/document.xml body is the given pieces."""
    path = folder / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as target:
        for part, content in template().items():
            target.writestr(part, content)
        with target.open("word/document.xml", "w", force_zip64=True) as handle:
            handle.write(W)
            for piece in body:
                handle.write(piece)
            handle.write(b"</w:body></w:document>")
    return path


def test_docx_of_50_mb_empty_paragraphs_is_refused_at_once(tmp_path):
    # the file: ~100 KB holding 50 MB of <w:p/> took 122 s and 1.95 GB, then "no text"
    path = docx_with(tmp_path, "paragraphs.docx", b"<w:p/>" * (50 * 10**6 // 6))
    assert path.stat().st_size < 200 * 1024
    reason = refusal(path, seconds=1)
    assert reason.startswith("DOCX: word/document.xml unpacks ") and reason.endswith("times its size (more than 200)")


def test_docx_with_a_huge_comment_is_refused_without_unpacking_it(tmp_path):
    # like the "comment filler" file, which reached 2.1 GB before lxml refused it
    filler = b"x" * 2**20
    path = docx_with(tmp_path, "comment.docx", b"<w:p><w:r><w:t>hello</w:t></w:r></w:p><!--", *[filler] * 130, b"-->")
    assert path.stat().st_size < 1024**2
    assert refusal(path, seconds=1) == "DOCX: unpacks to more than 128 MB"


def test_docx_over_the_xml_size_limit_is_refused(tmp_path):
    # 66 MB of XML that packs only ~10 times: not a ratio bomb, but more than lxml should parse
    # (blocks longer than deflate's 32 KB window, so a repeated block does not pack to nothing)
    block = b"<w:p><w:r><w:t>" + os.urandom(4096).hex().encode() + b"</w:t></w:r></w:p>" + b" " * 32_000
    path = docx_with(tmp_path, "large.docx", *[block] * (66 * 2**20 // len(block)), level=1)
    assert refusal(path, seconds=2) == "DOCX: word/document.xml unpacks to more than 64 MB of XML"


def test_docx_with_too_many_elements_is_refused(tmp_path):
    # a million paragraphs that pack only ~10 times (random ids): python-docx would need ~15 s
    ids = os.urandom(1_050_000).hex().encode()
    paragraphs = [b'<w:p w:rsidR="%s"/>' % ids[i : i + 2] for i in range(0, len(ids), 2)]
    path = docx_with(tmp_path, "elements.docx", b"".join(paragraphs), level=1)
    assert refusal(path, seconds=2) == "DOCX: more than 1,000,000 XML elements (at word/document.xml)"


def zip_lying_about(name: str, chunk: bytes, copies: int, declared: int, others: dict[str, bytes]) -> bytes:
    """A zip whose part `name` inflates to `copies` times `chunk` while its headers declare
    `declared` bytes, with the CRC of those first bytes: zipfile stops there and finds it valid."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes each time
    entries = {part: (zlib.compress(content, 9)[2:-4], zlib.crc32(content), len(content)) for part, content in others.items()}
    entries[name] = (block * copies + b"\x03\x00", zlib.crc32((chunk * (declared // len(chunk) + 1))[:declared]), declared)
    out, directory = bytearray(), bytearray()
    for part, (packed, crc, size) in entries.items():
        header = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, crc, len(packed), size)
        position = struct.pack("<HHHHHII", len(part), 0, 0, 0, 0, 0, len(out))
        directory += struct.pack("<IH", 0x02014B50, 20) + header + position + part.encode()
        out += struct.pack("<I", 0x04034B50) + header + struct.pack("<HH", len(part), 0) + part.encode() + packed
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(directory), len(out), 0)
    return bytes(out + directory + end)


def test_docx_whose_zip_headers_understate_a_part_is_not_unpacked(tmp_path):
    # document.xml declares 5000 bytes (with their CRC) but inflates to 2 GB: zipfile's read() of
    # the whole part, as python-docx does it, inflated all 2 GB before cutting it to 5000 bytes
    chunk = W + b"<w:p/>" * (2**20 // 6)
    path = tmp_path / "lying.docx"
    path.write_bytes(zip_lying_about("word/document.xml", chunk, 2048, 5000, template()))
    assert path.stat().st_size < 5 * 1024**2
    assert refusal(path, seconds=1).startswith("corrupt DOCX: ")  # the 5000 bytes end mid-document


def test_a_long_ordinary_docx_still_loads(tmp_path):
    document = docx.Document()
    for number in range(2000):
        if number % 100 == 0:
            document.add_heading(f"Chapter {number}", level=1)
        else:
            document.add_paragraph(f"Paragraph {number} of the manual. " * 5)
    document.save(tmp_path / "manual.docx")
    loaded = load_file(tmp_path / "manual.docx", max_bytes=20 * 1024**2)
    assert len(loaded.sections) == 20 and "Paragraph 1999 of the manual." in loaded.sections[-1].text


# --- PDF -----------------------------------------------------------------------------------------

HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def stream(data: bytes, entries: bytes = b"") -> bytes:
    packed = zlib.compress(data, 9)
    return b"<< /Length %d /Filter /FlateDecode %s >>\nstream\n%s\nendstream" % (len(packed), entries, packed)


def pdf_with(folder: Path, name: str, contents: list[bytes], pages: int = 0, resources: bytes = b"/Font << /F1 3 0 R >>", extra=()) -> Path:
    """A PDF whose pages draw the given content streams, or with `pages`, that many pages all
    drawing contents[0]. Objects: 1 catalog, 2 page tree, 3 Helvetica, 4... the `extra` ones."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", HELVETICA, *extra]
    streams, kids = [], []
    for content in contents:
        objects.append(stream(content))
        streams.append(len(objects))
    for number in range(pages or len(contents)):
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << %s >> /Contents %d 0 R >>"
        objects.append(page % (resources, streams[0 if pages else number]))
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path = folder / name
    path.write_bytes(bytes(out))
    return path


HELLO = b"BT /F1 12 Tf 72 720 Td (hello) Tj ET "


def test_pdf_page_of_70_mb_spaces_is_refused(tmp_path):
    # a 67 KB file: pypdf spent 4.5 s on each such page (45 s for ten) and kept them all in memory
    path = pdf_with(tmp_path, "spaces.pdf", [HELLO + b" " * 70 * 10**6])
    assert refusal(path, seconds=1).startswith("PDF: page 1 content unpacks to more than ")


def test_pdf_content_drawn_by_many_pages_counts_once_per_page(tmp_path):
    # 100 pages drawing one 1 MB content stream: pypdf parses it 100 times
    path = pdf_with(tmp_path, "shared.pdf", [HELLO + b" " * 10**6], pages=100)
    assert refusal(path, seconds=1) == "PDF: content unpacks to more than 2 MB"


def test_pdf_form_drawn_many_times_is_refused(tmp_path):
    # a 2 KB file: a 1 MB form drawn 200 times (pypdf allows 5000 per page: a 10 MB form took hours)
    form = stream(HELLO + b" " * 10**6, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>")
    path = pdf_with(tmp_path, "forms.pdf", [b"/Fm0 Do " * 200], resources=b"/Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R >>", extra=[form])
    assert refusal(path, seconds=1) == "PDF: content unpacks to more than 2 MB"


def test_pdf_font_mapping_one_code_to_many_characters_is_refused(tmp_path):
    # a 2 KB file whose ToUnicode map turns each of a million codes into 200 characters
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Bomb def "
        b"1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfchar <01> <%s> endbfchar "
        b"endcmap CMapName currentdict /CMap defineresource pop end end" % (b"0041" * 200)
    )
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 4 0 R >>"
    content = b"BT /F1 12 Tf (" + b"\x01" * 10**6 + b") Tj ET"
    path = pdf_with(tmp_path, "cmap.pdf", [content], resources=b"/Font << /F1 5 0 R >>", extra=[stream(cmap), font])
    assert refusal(path, seconds=1) == "PDF: text is longer than 32M characters"


def test_pdf_with_too_many_pages_is_refused(tmp_path):
    path = pdf_with(tmp_path, "pages.pdf", [b"BT ET"], pages=10_001)
    assert refusal(path) == "PDF: more than 10,000 pages"


def test_a_long_ordinary_pdf_still_loads(tmp_path):
    lines = [[b"(Page %d, line %d of the manual.) Tj" % (page, line) for line in range(45)] for page in range(1, 201)]
    pages = [b"BT /F1 11 Tf 14 TL 72 720 Td " + b" T* ".join(page) + b" ET" for page in lines]
    loaded = load_file(pdf_with(tmp_path, "manual.pdf", pages), max_bytes=20 * 1024**2)
    assert len(loaded.sections) == 200 and loaded.sections[-1].page == 200
    assert "Page 200, line 44 of the manual." in loaded.sections[-1].text

"""Document loaders on real files: text, headings, pages, titles, encodings and every LoadError."""

import io
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from rag.loaders import SUPPORTED_TYPES, LoadError, load_file, read_file
from rag.sources import Source, scan

ROOT = Path(__file__).resolve().parent.parent


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def reason(path: Path, **kwargs) -> str:
    with pytest.raises(LoadError) as error:
        load_file(path, **kwargs)
    return error.value.reason


def within(seconds: float, call, *args):
    """call(*args), failing the test (instead of hanging the suite) when it blocks longer."""
    outcome = queue.Queue()

    def run():
        try:
            outcome.put((True, call(*args)))
        except BaseException as error:
            outcome.put((False, error))

    threading.Thread(target=run, daemon=True).start()
    try:
        ok, value = outcome.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"still blocked after {seconds} s")
    if not ok:
        raise value
    return value


def joined_offsets_hold(document) -> bool:
    """For HTML/PDF/DOCX, offsets index the section texts joined by blank lines."""
    full = "\n\n".join(section.text for section in document.sections)
    return all(full[s.start : s.start + len(s.text)] == s.text for s in document.sections)


def make_pdf(pages: list[list[str] | None], title: str | None = None) -> bytes:
    """A minimal valid PDF written by hand: one page per entry, lines of Helvetica text or None
    for a blank page, with a correct cross-reference table."""

    def escape(text):
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        ops = ("BT /F1 12 Tf 14 TL 72 720 Td " + " T* ".join(f"({escape(line)}) Tj" for line in lines) + " ET") if lines else ""
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops.encode("latin-1")))
        page = f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>"
        objects.append(page.encode())
        kids.append(f"{len(objects)} 0 R")
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    info = ""
    if title:
        objects.append(f"<< /Title ({escape(title)}) >>".encode("latin-1"))
        info = f" /Info {len(objects)} 0 R"

    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypt(pdf: bytes, user: str, owner: str | None = None, algorithm: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user, owner, algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --- Markdown and plain text -------------------------------------------------------------------

GUIDE = """\
Written for version 1.

# User guide

Welcome to localrag.

## Installation

```bash
# this comment is not a heading
make demo
```

### Docker ###

Run docker compose up.

Upgrading
---------

Pull the new image.

# Reference
Every command is listed here.
"""


def test_markdown_sections_follow_heading_paths_and_skip_code_fences(tmp_path):
    path = write(tmp_path, "guide.md", GUIDE)
    document = load_file(path)
    assert (document.title, document.filetype, document.encoding) == ("User guide", "md", "utf-8")
    assert [(s.heading, s.text) for s in document.sections] == [
        ([], "Written for version 1."),
        (["User guide"], "Welcome to localrag."),
        (["User guide", "Installation"], "```bash\n# this comment is not a heading\nmake demo\n```"),
        (["User guide", "Installation", "Docker"], "Run docker compose up."),
        (["User guide", "Upgrading"], "Pull the new image."),
        (["Reference"], "Every command is listed here."),
    ]
    assert all(s.page is None for s in document.sections)
    assert all(GUIDE[s.start : s.start + len(s.text)] == s.text for s in document.sections)


@pytest.mark.parametrize(
    "heading, title",
    [
        ("# a" + " " * 100_000 + "b", "a b"),  # each of these took minutes in backtracking regexes
        ("# a" + " " * 100_000 + "b #", "a b"),
        ("# " + "[" * 100_000, "[" * 100_000),
        ("# " + "[a](" * 30_000, "[a](" * 30_000),
    ],
)
def test_pathological_markdown_headings_load_at_once(tmp_path, heading, title):
    document = within(10, load_file, write(tmp_path, "heading.md", heading + "\n\nbody\n"))
    assert document.title == title and document.sections[0].text == "body"


def test_pathological_front_matter_title_loads_at_once(tmp_path):
    path = write(tmp_path, "post.md", "---\ntitle: a" + " " * 100_000 + "b\ntags: [ops]\n---\nbody\n")
    assert within(10, load_file, path).title == "a" + " " * 100_000 + "b"


def test_markdown_with_too_many_headings_is_refused(tmp_path):
    # 19 MB of "a\n-\n" (4.75 million setext headings) took 21 s and 1.5 GB
    started = time.process_time()
    assert reason(write(tmp_path, "setext.md", "a\n-\n" * 100_001)) == "more than 100,000 headings"
    assert reason(write(tmp_path, "atx.md", "## h\n\ntext\n" * 100_001)) == "more than 100,000 headings"
    assert time.process_time() - started < 3


def test_markdown_front_matter_gives_the_title_and_is_not_text(tmp_path):
    path = write(tmp_path, "post.md", '---\ntitle: "Backups and restores"\ntags: [ops]\n---\nCopy the indexes folder.\n')
    document = load_file(path)
    assert document.title == "Backups and restores"
    assert [s.text for s in document.sections] == ["Copy the indexes folder."]


def test_markdown_title_falls_back_to_first_line_then_file_stem(tmp_path):
    assert load_file(write(tmp_path, "a.md", "## Searching\n\nUse rag search.\n")).title == "Searching"
    long_line = "This opening paragraph is far too long to be a title, " * 3
    assert load_file(write(tmp_path, "release-notes.md", long_line + "\n")).title == "release-notes"


def test_headings_only_markdown_is_kept_not_reported_empty(tmp_path):
    document = load_file(write(tmp_path, "todo.md", "# TODO\n\n## Write the guide\n"))
    assert document.title == "TODO" and "Write the guide" in document.sections[0].text


def test_text_file_is_one_section_with_crlf_normalized(tmp_path):
    path = write(tmp_path, "notes.txt", b"\r\n  The giraffe is tall.\r\n\r\nIt eats leaves.\r\n\r\n")
    document = load_file(path)
    assert (document.title, document.filetype) == ("The giraffe is tall.", "txt")
    [section] = document.sections
    assert section.text == "  The giraffe is tall.\n\nIt eats leaves."
    assert (section.heading, section.page, section.start) == ([], None, 1)


@pytest.mark.parametrize(
    "text, encoding",
    [
        ("Le café de la gare ouvre à sept heures précises.", "cp1252"),
        ("café", "cp1252"),  # too short for charset-normalizer alone, which says cp1006
        ("Grüße aus München — „Zitat“ für 5 €.", "cp1252"),
        ("Naïve résumé: 5 € déjà vu", "iso8859_15"),
        ("Praha je hlavní město České republiky. Řeka Vltava protéká středem, široký Karlův most.", "cp1250"),
        ("Привет мир, это тест кодировки текста.", "cp1251"),
    ],
)
def test_legacy_encodings_decode_correctly(tmp_path, text, encoding):
    document = load_file(write(tmp_path, "legacy.txt", text.encode(encoding)))
    assert document.sections[0].text == text
    assert document.encoding == encoding


def test_byte_order_marks_and_bomless_utf16(tmp_path):
    for name, data, encoding in [
        ("utf8.md", "\ufeff# Café\n\nbody".encode("utf-8"), "utf-8-sig"),
        ("utf16.txt", "hello wörld".encode("utf-16"), "utf-16-le"),
        ("utf16be.txt", "\ufeffhello wörld".encode("utf-16-be"), "utf-16-be"),
        ("bomless.txt", "hello wörld, plain text".encode("utf-16-le"), "utf-16-le"),
    ]:
        document = load_file(write(tmp_path, name, data))
        assert document.encoding == encoding
        assert document.sections[0].text in ("body", "hello wörld", "hello wörld, plain text")
    assert load_file(tmp_path / "utf8.md").title == "Café"


def test_binary_content_behind_a_text_extension(tmp_path):
    assert reason(write(tmp_path, "binary.txt", bytes(range(256)) * 40)) == "binary content"
    assert reason(write(tmp_path, "nul.md", b"# Title\n\nsome text\x00 with a NUL")) == "binary content"
    assert reason(write(tmp_path, "controls.txt", b"\x01\x02\x03\x04data" * 50)) == "binary content"
    assert reason(write(tmp_path, "page.html", b"<p>\x00\x01\x02</p>" * 20)) == "binary content"


def test_undecodable_text(tmp_path):
    assert reason(write(tmp_path, "mojibake.txt", bytes(range(128, 256)) * 8)) == "undecodable text"


def test_empty_files(tmp_path):
    assert reason(write(tmp_path, "empty.md", b"")) == "empty file"
    assert reason(write(tmp_path, "blank.txt", b" \n\t\n  ")) == "empty file"
    assert reason(write(tmp_path, "blank16.txt", " \n ".encode("utf-16"))) == "empty file"
    assert reason(write(tmp_path, "empty.pdf", b"")) == "empty file"
    assert reason(write(tmp_path, "scripts.html", "<script>var x = 1;</script><p> </p>")) == "no text"


# --- file-level checks ---------------------------------------------------------------------------


def test_supported_types():
    assert SUPPORTED_TYPES == {
        ".md": "md", ".markdown": "md", ".txt": "txt", ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx"
    }  # fmt: skip


def test_unsupported_missing_and_non_regular_files(tmp_path):
    assert reason(write(tmp_path, "data.xyz", "text")) == "unsupported file type .xyz"
    assert reason(write(tmp_path, "README", "text")) == "unsupported file type (no extension)"
    assert reason(tmp_path / "missing.md") == "file not found"
    (tmp_path / "folder.md").mkdir()
    assert reason(tmp_path / "folder.md") == "not a regular file"
    assert load_file(write(tmp_path, "UPPER.MD", "# Shout\n\ntext")).filetype == "md"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")
def test_fifo_socket_and_device_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.md")
    assert within(10, reason, tmp_path / "pipe.md") == "not a regular file (fifo)"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "socket.md"))
        assert within(10, reason, tmp_path / "socket.md") == "not a regular file (socket)"
    with pytest.raises(LoadError) as error:
        within(10, read_file, Path(os.devnull))
    assert error.value.reason == "not a regular file (character device)"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")
def test_a_file_swapped_for_a_fifo_after_the_scan_is_refused_without_blocking(tmp_path):
    path = write(tmp_path, "notes.md", "# Notes\n\nSome text.")
    [entry], skipped, _ = scan([Source("docs", tmp_path)])
    assert not skipped
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(LoadError) as error:
        within(10, read_file, entry.path, 1024)
    assert error.value.reason == "not a regular file (fifo)"


def test_read_file_returns_the_bytes_and_checks_the_limit(tmp_path):
    path = write(tmp_path, "notes.md", "# Notes\n\nSome text.")
    assert read_file(path) == read_file(path, 19) == b"# Notes\n\nSome text."
    with pytest.raises(LoadError) as error:
        read_file(path, 18)
    assert error.value.reason == "file too large (19 bytes > 18 bytes)"


def test_oversized_file_is_refused_before_it_is_read(tmp_path):
    assert reason(write(tmp_path, "big.md", "# Big\n\n" + "word " * 6000), max_bytes=10 * 1024) == "file too large (29.3 KB > 10 KB)"
    # binary content that would fail differently if read: the size check comes first
    assert reason(write(tmp_path, "big.txt", bytes(range(256)) * 200), max_bytes=1000).startswith("file too large")
    # a 10 GB sparse file: reading it would take minutes and the memory of the machine
    huge = tmp_path / "huge.pdf"
    with open(huge, "wb") as handle:
        handle.truncate(10 * 1024**3)
    assert reason(huge, max_bytes=20 * 1024**2) == "file too large (10 GB > 20 MB)"
    assert load_file(tmp_path / "big.md", max_bytes=1024**2).title == "Big"


def test_bytes_already_read_can_be_passed_in(tmp_path):
    path = tmp_path / "never-written.md"
    assert load_file(path, data=b"# Passed in\n\nfrom memory").sections[0].text == "from memory"
    assert reason(path, data=b"x" * 2000, max_bytes=1000).startswith("file too large")


UNREADABLE = """
import os, sys
from pathlib import Path
from rag.loaders import LoadError, load_file
os.setgid(65534); os.setuid(65534)  # nobody: root reads every file whatever its mode
try:
    load_file(Path(sys.argv[1]))
    print("loaded")
except LoadError as error:
    print(error.reason)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unreadable_file_is_permission_denied():
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = write(Path(folder), "locked.md", "# Locked\n\nsecret")
        path.chmod(0)
        if os.geteuid() != 0:
            assert reason(path) == "permission denied"
            return
        # as root: load in a child process that has dropped to the unprivileged user nobody
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run([sys.executable, "-c", UNREADABLE, str(path)], capture_output=True, text=True, env=env, cwd=ROOT)
        assert result.stdout.strip() == "permission denied", result.stderr


def test_importing_the_loaders_does_not_import_parsers():
    code = "import sys, rag.loaders; print(sorted(m for m in ('bs4', 'pypdf', 'docx', 'charset_normalizer') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


# --- HTML ----------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><title> Localrag   manual </title><style>.menu { color: red }</style>
<script>var tracking = "SCRIPTTEXT";</script></head>
<body>
<header><a href="/">SITEBANNER</a><nav>Home | NAVLINKS</nav></header>
<main><article>
  <header><h1>Getting started</h1></header>
  <p>Localrag answers <b>questions</b> about&nbsp;your documents.</p>
  <p>It runs offline.<br>No data leaves the machine.</p>
  <h2>Install</h2>
  <ul><li>Clone the repository</li><li>Run <code>make demo</code><ul><li>it ingests data/</li></ul></li></ul>
  <h3>Ports</h3>
  <table><tr><th>Service</th><th>Port</th></tr><tr><td>API</td><td>8080</td></tr></table>
  <pre>rag serve
  --port 8080</pre>
  <div hidden>HIDDENTEXT</div><noscript>NOSCRIPTTEXT</noscript><!-- COMMENTTEXT -->
  <h2>Search</h2><p>Use hybrid search.</p>
</article></main>
<footer>FOOTERTEXT</footer>
</body></html>"""


def test_html_sections_headings_and_readable_text(tmp_path):
    document = load_file(write(tmp_path, "manual.html", PAGE))
    assert (document.title, document.filetype, document.encoding) == ("Localrag manual", "html", "utf-8")
    assert [(s.heading, s.text) for s in document.sections] == [
        (["Getting started"], "Localrag answers questions about your documents.\n\nIt runs offline.\nNo data leaves the machine."),
        (["Getting started", "Install"], "- Clone the repository\n- Run make demo\n- it ingests data/"),
        (["Getting started", "Install", "Ports"], "Service | Port\nAPI | 8080\n\nrag serve\n  --port 8080"),
        (["Getting started", "Search"], "Use hybrid search."),
    ]
    everything = " ".join(s.text for s in document.sections)
    for chrome in ("SCRIPTTEXT", "SITEBANNER", "NAVLINKS", "FOOTERTEXT", "HIDDENTEXT", "NOSCRIPTTEXT", "COMMENTTEXT", "color"):
        assert chrome not in everything
    assert joined_offsets_hold(document)


SPHINX_PAGE = """<html><head><title>glob — Unix style pathname pattern expansion</title></head><body>
<div class="related" role="navigation"><h3>Navigation</h3><ul><li><a href="genindex.html">index</a></li><li>modules |</li></ul></div>
<div class="document"><div class="body" role="main">
<section id="glob"><h1>glob — Unix style pathname pattern expansion<a class="headerlink" href="#glob">¶</a></h1>
<p>The glob module finds all the pathnames matching a specified pattern.</p></section>
</div></div>
<div class="sphinxsidebar" role="navigation"><h3>Previous topic</h3><p>os.path</p><h3>This Page</h3><ul><li>Report a Bug</li></ul>
<div id="searchbox" role="search"><h3>Quick search</h3><form><input type="text" name="q"></form></div></div>
<div class="footer">© Copyright 2001-2026, Python Software Foundation.</div>
</body></html>"""


def test_html_documentation_chrome_is_left_out(tmp_path):
    """Sphinx-like pages: sidebars, navigation bars, search boxes, footer and "¶" permalinks are
    not text of the page (they were 9% of the Python manual's text, and whole chunks of it)."""
    document = load_file(write(tmp_path, "glob.html", SPHINX_PAGE))
    assert [(s.heading, s.text) for s in document.sections] == [
        (["glob — Unix style pathname pattern expansion"], "The glob module finds all the pathnames matching a specified pattern.")
    ]


def test_html_with_too_many_elements_is_refused_at_once(tmp_path):
    # 600,000 paragraphs in 4.8 MB: html.parser and the walk took ~12 s and ~800 MB (19 MB: 33 s, 2 GB)
    started = time.process_time()
    assert reason(write(tmp_path, "flat.html", b"<p>word</p>" * 600_000)) == "HTML: more than 500,000 elements"
    assert time.process_time() - started < 2


def test_html_title_from_first_h1_and_declared_charset(tmp_path):
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Intro</p><h1>Café crème €</h1><p>Body</p></body></html>'
    document = load_file(write(tmp_path, "menu.htm", page.encode("cp1252")))
    assert document.title == "Café crème €"
    assert document.encoding == "cp1252"
    assert [(s.heading, s.text) for s in document.sections] == [([], "Intro"), (["Café crème €"], "Body")]


# --- PDF -----------------------------------------------------------------------------------------


def test_pdf_one_section_per_page_with_page_numbers(tmp_path):
    pdf = make_pdf([["Localrag manual", "Install with make demo."], None, ["Page three: search (hybrid)."]], title="The Manual")
    document = load_file(write(tmp_path, "manual.pdf", pdf))
    assert (document.title, document.filetype, document.encoding) == ("The Manual", "pdf", None)
    assert [(s.page, s.heading, s.text) for s in document.sections] == [
        (1, [], "Localrag manual\nInstall with make demo."),
        (3, [], "Page three: search (hybrid)."),
    ]
    assert joined_offsets_hold(document)


def test_pdf_title_falls_back_to_first_line(tmp_path):
    assert load_file(write(tmp_path, "untitled.pdf", make_pdf([None, ["Quarterly report", "Numbers"]]))).title == "Quarterly report"


def test_encrypted_pdf(tmp_path):
    pdf = make_pdf([["Top secret plans"]])
    assert reason(write(tmp_path, "locked.pdf", encrypt(pdf, "secret"))) == "encrypted PDF"
    # permissions-only encryption (empty user password) opens, with RC4 and with AES-256
    for algorithm in ("RC4-128", "AES-256"):
        document = load_file(write(tmp_path, f"{algorithm}.pdf", encrypt(pdf, "", "owner", algorithm)))
        assert document.sections[0].text == "Top secret plans"


def test_corrupt_pdfs(tmp_path, caplog):
    pdf = make_pdf([["Some text"], ["More text"]])
    assert reason(write(tmp_path, "half.pdf", pdf[: len(pdf) // 2])).startswith("corrupt PDF: truncated")
    garbage = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage truncated"
    assert reason(write(tmp_path, "garbage.pdf", garbage)).startswith("corrupt PDF: ")
    assert reason(write(tmp_path, "text.pdf", "just some text, not a PDF")) == "corrupt PDF: no %PDF header"
    assert not [record for record in caplog.records if record.name.startswith("pypdf")], "pypdf log noise"


def test_pdf_without_text(tmp_path):
    assert reason(write(tmp_path, "scan.pdf", make_pdf([None, None]))) == "no extractable text (scanned PDF?)"


# --- DOCX ----------------------------------------------------------------------------------------


def make_docx(path: Path, core_title: str = "") -> Path:
    document = docx.Document()
    document.core_properties.title = core_title
    document.add_paragraph("Operations handbook", style="Title")
    document.add_paragraph("How we run localrag.")
    document.add_heading("Backups", level=1)
    paragraph = document.add_paragraph("Copy the indexes folder.")
    paragraph.add_run().add_break()
    paragraph.add_run("Nightly.")
    document.add_heading("Schedule", level=2)
    table = document.add_table(rows=3, cols=2)
    for row, (key, value) in enumerate([("Job", "Time"), ("backup", "02:00"), ("merged", "")]):
        table.cell(row, 0).text, table.cell(row, 1).text = key, value
    table.cell(2, 0).merge(table.cell(2, 1))
    document.add_paragraph("")
    document.add_heading("Restores", level=1)
    document.add_paragraph("Copy it back.", style="List Bullet")
    document.save(path)
    return path


def test_docx_headings_tables_and_title(tmp_path):
    document = load_file(make_docx(tmp_path / "handbook.docx", core_title="Ops Handbook"))
    assert (document.title, document.filetype, document.encoding) == ("Ops Handbook", "docx", None)
    assert [(s.heading, s.text) for s in document.sections] == [
        (["Operations handbook"], "How we run localrag."),
        (["Operations handbook", "Backups"], "Copy the indexes folder.\nNightly."),
        (["Operations handbook", "Backups", "Schedule"], "Job | Time\nbackup | 02:00\nmerged"),
        (["Operations handbook", "Restores"], "Copy it back."),
    ]
    assert all(s.page is None for s in document.sections)
    assert joined_offsets_hold(document)


def test_docx_title_falls_back_to_title_paragraph(tmp_path):
    assert load_file(make_docx(tmp_path / "handbook.docx")).title == "Operations handbook"


def test_corrupt_docx(tmp_path):
    assert reason(write(tmp_path, "plain.docx", "not a zip at all")) == "corrupt DOCX: File is not a zip file"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("hello.txt", "a zip, but not a Word document")
    assert reason(write(tmp_path, "zip.docx", archive.getvalue())).startswith("corrupt DOCX: ")
    good = (make_docx(tmp_path / "good.docx")).read_bytes()
    assert reason(write(tmp_path, "cut.docx", good[: len(good) // 2])).startswith("corrupt DOCX: ")
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    assert reason(write(tmp_path, "old.docx", ole)).startswith("corrupt DOCX: OLE container")

"""Generates the binary sample documents: reference/faq.pdf and reference/security.docx.

A development tool, not a runtime dependency: needs fpdf2 (PDF) and python-docx (DOCX).
Output is byte-for-byte reproducible (fixed dates), so re-running it does not make
`rag ingest` see changed files.

    python data/_build/make_binaries.py
"""

import io
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from docx import Document
from fpdf import FPDF

DATA = Path(__file__).resolve().parents[1]
FIXED = datetime(2025, 1, 1, tzinfo=timezone.utc)

# One page each: (heading, paragraphs). Every page holds facts stated nowhere else in data/.
FAQ_PAGES = [
    (
        "Hardware and privacy",
        [
            "Does localrag need a GPU? No. localrag runs on the CPU and no GPU is required.",
            "How much memory does it need? A laptop with 4 GB of RAM is enough to ingest and query "
            "the sample documents.",
            "Does localrag send telemetry? No. localrag sends no telemetry and works offline once it is installed.",
        ],
    ),
    (
        "Limits of the HTTP API",
        [
            "What is the maximum upload size? The maximum upload size through the HTTP API defaults to 25 MB. "
            "It is set by the api.max_upload_size setting. A larger upload is refused with status 413.",
            "How long can a question be? A question may be at most 2000 characters long. "
            "A longer question is refused with status 422.",
            "Which files can be uploaded? Only the supported document types can be uploaded. "
            "Any other type is refused with status 415.",
        ],
    ),
    (
        "Documents in other languages",
        [
            "Can localrag search documents that are not in English? The default embedding model is trained "
            "on English text. For documents in other languages, use a multilingual model such as "
            "paraphrase-multilingual-MiniLM-L12-v2.",
            "Can I ask in another language? Yes. Answers are best when the question uses the same language "
            "as the documents.",
        ],
    ),
]

# (style, text) in document order.
SECURITY = [
    ("Title", "localrag security guide"),
    ("Normal", "This guide explains how the HTTP API of localrag is protected with API keys and scopes."),
    ("Heading 1", "API keys"),
    ("Normal", "When API keys are configured, every request to the HTTP API must carry a valid key."),
    ("Heading 2", "Sending a key"),
    ("Normal", "Send the key in the Authorization header as a Bearer token."),
    ("Normal", "Besides Authorization, the header that can carry an API key is X-API-Key."),
    ("Heading 2", "Storing keys"),
    (
        "Normal",
        "Keys are declared in the api.api_keys setting of config.yml. Read each key from an environment "
        "variable instead of writing it into the file. Keys are compared in constant time.",
    ),
    ("Heading 1", "Scopes"),
    ("Normal", "Each key has one or both of two scopes: read and write."),
    ("Heading 2", "The read scope"),
    ("Normal", "The read scope allows searching, asking questions and listing documents."),
    ("Heading 2", "The write scope"),
    ("Normal", "The write scope allows uploading documents, deleting documents and starting ingestion jobs."),
    ("Heading 1", "Open endpoints"),
    ("Normal", "The /health and /ready endpoints never need a key, so that health checks keep working."),
    ("Heading 1", "Error responses"),
    (
        "Normal",
        "A request without a valid key gets status 401. A request whose key lacks the needed scope gets status 403.",
    ),
    ("Heading 1", "Cross-origin requests"),
    ("Normal", "Browsers may call the API from another origin only if that origin is listed in api.cors_origins."),
]


def make_pdf(path: Path):
    pdf = FPDF(format="A4")
    pdf.set_title("localrag FAQ")
    pdf.set_author("localrag")
    pdf.set_creation_date(FIXED)
    pdf.set_auto_page_break(auto=False)
    for number, (heading, paragraphs) in enumerate(FAQ_PAGES, 1):
        pdf.add_page()
        if number == 1:
            pdf.set_font("Helvetica", "B", 20)
            pdf.multi_cell(0, 12, "localrag FAQ", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", "", 11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(path))


def make_docx(path: Path):
    document = Document()
    properties = document.core_properties
    properties.title = "localrag security guide"
    properties.author = "localrag"
    properties.created = properties.modified = properties.last_printed = FIXED.replace(tzinfo=None)
    properties.revision = 1
    for style, text in SECURITY:
        document.add_paragraph(text, style=style)
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(fixed_zip_dates(buffer.getvalue()))


def fixed_zip_dates(data: bytes) -> bytes:
    """Rewrites a zip with a fixed timestamp on every member (python-docx stamps the current time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=(2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, source.read(item.filename))
    return out.getvalue()


def main():
    reference = DATA / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    make_pdf(reference / "faq.pdf")
    make_docx(reference / "security.docx")
    print(f"wrote {reference / 'faq.pdf'} and {reference / 'security.docx'}")


if __name__ == "__main__":
    main()

"""The bad-input matrix: each bad file is reported with its reason and skipped; the rest is ingested."""

import json
import os
import sys

import pytest
from pypdf import PdfWriter
from typer.testing import CliRunner

from rag.cli import app
from rag.config import load_config
from rag.ingest import Ingestor
from rag.search import Searcher
from tests.test_loaders import within


@pytest.fixture
def messy(workspace, tmp_path_factory):
    docs = workspace / "docs"
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage truncated")
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    with open(docs / "encrypted.pdf", "wb") as handle:
        writer.write(handle)
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (docs / "empty.md").write_text("")
    (docs / "huge.md").write_text("# Big\n\n" + "word " * 5000)
    (docs / "latin1.txt").write_bytes("Le café de la gare ouvre à sept heures précises.".encode("cp1252"))
    outside = tmp_path_factory.mktemp("outside") / "secret.md"
    outside.write_text("# Secret\n\nThis file lives outside the source root.\n")
    os.symlink(outside, docs / "escape.md")
    text = (workspace / "config.yml").read_text().replace("  chunking:", "  max_file_size: 10KiB\n  chunking:")
    (workspace / "config.yml").write_text(text)
    return workspace


def test_each_bad_file_is_reported_and_the_rest_ingested(messy):
    result = CliRunner().invoke(app, ["--config", str(messy / "config.yml"), "ingest", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    reasons = {item["path"]: item["reason"] for item in report["failed"]}
    assert reasons["corrupt.pdf"].startswith("corrupt PDF")
    assert reasons["encrypted.pdf"] == "encrypted PDF"
    assert reasons["binary.txt"] == "binary content"
    assert reasons["empty.md"] == "empty file"
    assert reasons["huge.md"].startswith("file too large")
    assert len(reasons) == 5
    skipped = {os.path.basename(item["path"]): item["reason"] for item in report["skipped"]}
    assert "symlink leaves the source root" in skipped["escape.md"]
    assert sorted(report["added"]) == ["docs:backup.md", "docs:install.md", "docs:latin1.txt", "docs:notes.txt"]

    hits = Searcher(load_config(messy / "config.yml")).search("café gare sept heures", mode="keyword")
    assert hits and hits[0].source == "latin1.txt" and "café" in hits[0].text
    hits = Searcher(load_config(messy / "config.yml")).search("file lives outside the source root", limit=20)
    assert hits and not any("outside the source root" in hit.text for hit in hits)


def test_failed_files_are_retried_and_a_broken_update_keeps_the_old_version(messy):
    runner = CliRunner()
    runner.invoke(app, ["--config", str(messy / "config.yml"), "ingest"])
    (messy / "docs" / "install.md").write_bytes(b"\x00\x01\x02 binary now")
    result = runner.invoke(app, ["--config", str(messy / "config.yml"), "ingest", "--json"])
    report = json.loads(result.stdout)
    assert {"path": "install.md", "source": "docs", "reason": "binary content"} in report["failed"]
    hits = Searcher(load_config(messy / "config.yml")).search("make demo fresh machine", mode="keyword")
    assert hits and hits[0].source == "install.md", "the last good version of a broken file was lost"


def test_strict_writes_nothing(messy):
    result = CliRunner().invoke(app, ["--config", str(messy / "config.yml"), "ingest", "--strict"])
    assert result.exit_code == 1 and "--strict" in result.output
    assert not (messy / "indexes" / "test" / "CURRENT").exists()


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(workspace):
    secret = workspace / "docs" / "locked.md"
    secret.write_text("# Locked\n")
    secret.chmod(0)
    result = CliRunner().invoke(app, ["--config", str(workspace / "config.yml"), "ingest", "--json"])
    assert {"path": "locked.md", "source": "docs", "reason": "permission denied"} in json.loads(result.stdout)["failed"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")
def test_a_fifo_in_a_source_folder_is_skipped_and_ingest_finishes(workspace):
    os.mkfifo(workspace / "docs" / "pipe.md")
    config = load_config(workspace / "config.yml")
    report = within(120, Ingestor(config).run)
    assert {"path": str(workspace / "docs" / "pipe.md"), "reason": "not a regular file (fifo)"} in report.skipped
    assert sorted(report.added) == ["docs:backup.md", "docs:install.md", "docs:notes.txt"] and not report.failed
    hits = Searcher(config).search("giraffe tallest animal", mode="keyword")
    assert hits and hits[0].source == "notes.txt"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX byte file names")
def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_ingested(workspace):
    with open(os.path.join(os.fsencode(workspace / "docs"), b"latin1-\xff-name.md"), "wb") as handle:
        handle.write(b"# Latin\n\nThe zebra has black and white stripes.\n")
    config = load_config(workspace / "config.yml")
    report = Ingestor(config).run()
    skipped = {os.path.basename(item["path"]): item["reason"] for item in report.skipped}
    assert skipped == {"latin1-\\xff-name.md": "file name is not valid UTF-8"}
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")  # the report prints and serves as JSON
    assert sorted(report.added) == ["docs:backup.md", "docs:install.md", "docs:notes.txt"] and not report.failed
    hits = Searcher(config).search("giraffe tallest animal", mode="keyword")
    assert hits and hits[0].source == "notes.txt"
    assert not Searcher(config).search("zebra stripes", mode="keyword")
    again = Ingestor(config).run()  # later runs are not poisoned by it
    assert not again.changed and again.documents == 3 and again.skipped == report.skipped


def test_strict_keeps_the_live_index_when_a_late_file_fails(workspace):
    """Files are embedded as they are read: a failure after good files were streamed in still
    leaves the published index as it was."""
    config = load_config(workspace / "config.yml")
    Ingestor(config).run()
    before = (workspace / "indexes" / "test" / "CURRENT").read_text()
    (workspace / "docs" / "aaa-new.md").write_text("# Zebras\n\nZebras have black and white stripes.\n")
    (workspace / "docs" / "zzz-broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")
    result = CliRunner().invoke(app, ["--config", str(workspace / "config.yml"), "ingest", "--strict"])
    assert result.exit_code == 1 and "zzz-broken.pdf" in result.output
    assert (workspace / "indexes" / "test" / "CURRENT").read_text() == before
    assert all(hit.source != "aaa-new.md" for hit in Searcher(config).search("zebra stripes", mode="keyword"))

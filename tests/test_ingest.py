"""Incremental sync on real files with the real model and a real FAISS index."""

import os
import sqlite3

from rag.config import load_config
from rag.ingest import Ingestor
from rag.search import Searcher
from rag.service import LocalRAG
from rag.store import Store


def ingest(workspace, **kwargs):
    return Ingestor(load_config(workspace / "config.yml")).run(**kwargs)


def chunk_rows(workspace):
    """(id, document) of every chunk in the live version's content store."""
    config = load_config(workspace / "config.yml")
    current = Store(config.index_dir).current()
    with sqlite3.connect(current / "documents") as db:
        return db.execute("select s.id, json_extract(d.data, '$.document') from sections s join documents d on d.id = s.id").fetchall()


def test_first_ingest_adds_every_file(workspace):
    report = ingest(workspace)
    assert sorted(report.added) == ["docs:backup.md", "docs:install.md", "docs:notes.txt"]
    assert not report.failed and report.chunks_added == report.chunks > 0
    ids = [row[0] for row in chunk_rows(workspace)]
    assert len(ids) == len(set(ids)) == report.chunks


def test_second_run_changes_nothing(workspace):
    ingest(workspace)
    before = Store(load_config(workspace / "config.yml").index_dir).current()
    report = ingest(workspace)
    assert report.counts() == {"added": 0, "updated": 0, "removed": 0, "unchanged": 3, "failed": 0, "skipped": 0}
    assert not report.changed and report.chunks_added == 0
    assert Store(load_config(workspace / "config.yml").index_dir).current() == before


def test_add_modify_rename_delete(workspace):
    ingest(workspace)
    docs = workspace / "docs"
    (docs / "new.md").write_text("# Upgrades\n\nUpgrade by pulling the new image and restarting.\n")
    (docs / "install.md").write_text("# Installation\n\nInstall with pipx install localrag instead.\n")
    os.rename(docs / "backup.md", docs / "backups.md")
    (docs / "notes.txt").unlink()

    report = ingest(workspace)
    assert sorted(report.added) == ["docs:backups.md", "docs:new.md"]
    assert report.updated == ["docs:install.md"]
    assert sorted(report.removed) == ["docs:backup.md", "docs:notes.txt"]

    rows = chunk_rows(workspace)
    assert len(rows) == len({r[0] for r in rows}), "duplicate chunk ids"
    assert {r[1] for r in rows} == {"docs:backups.md", "docs:install.md", "docs:new.md"}

    searcher = Searcher(load_config(workspace / "config.yml"))
    texts = " ".join(h.text for h in searcher.search("how to install", limit=10))
    assert "pipx" in texts and "make demo" not in texts
    assert not searcher.search("giraffe tallest animal", mode="keyword")

    again = ingest(workspace)
    assert not again.changed and len(chunk_rows(workspace)) == len(rows)


def test_changed_chunk_count_leaves_no_stale_chunks(workspace):
    docs = workspace / "docs"
    (docs / "long.md").write_text("# Long\n\n" + "\n\n".join(f"Paragraph {i} talks about topic {i} at length." * 6 for i in range(30)))
    first = ingest(workspace)
    many = [r for r in chunk_rows(workspace) if r[1] == "docs:long.md"]
    assert len(many) > 3
    (docs / "long.md").write_text("# Long\n\nNow it is short.\n")
    ingest(workspace)
    left = [r for r in chunk_rows(workspace) if r[1] == "docs:long.md"]
    assert len(left) == 1
    assert first.chunks - len(many) + 1 == LocalRAG(load_config(workspace / "config.yml")).status()["chunks"]


def test_rebuild_starts_from_scratch(workspace):
    ingest(workspace)
    report = ingest(workspace, rebuild=True)
    assert len(report.added) == 3 and report.rebuilt
    assert len(chunk_rows(workspace)) == report.chunks


def test_path_argument_limits_scope(workspace):
    ingest(workspace)
    (workspace / "docs" / "notes.txt").unlink()
    (workspace / "docs" / "install.md").write_text("# Installation\n\nChanged text.\n")
    report = ingest(workspace, paths=[workspace / "docs" / "install.md"])
    assert report.updated == ["docs:install.md"] and report.removed == []
    assert "docs:notes.txt" in {r[1] for r in chunk_rows(workspace)}


def test_status_reports_index(workspace):
    report = ingest(workspace)
    info = LocalRAG(load_config(workspace / "config.yml")).status()
    assert info["documents"] == 3 and info["chunks"] == report.chunks
    assert info["size_bytes"] > 0 and info["last_ingest"]

"""One contract, both stores (rag.store's local folders, rag.pgstore's PostgreSQL): what the service
does with an index must not depend on where the index lives."""

import pytest

from rag.config import load_config
from rag.search import SearchError
from rag.service import LocalRAG
from rag.store import open_store
from tests.helpers import make_workspace
from tests.pgserver import plain


@pytest.fixture(params=["local", "postgres"])
def rag(request, tmp_path):
    """A LocalRAG over make_workspace's documents (not ingested yet), in each store."""
    config = make_workspace(tmp_path, ingest=False)
    if request.param == "postgres":
        pytest.importorskip("pgvector", reason="the postgres extra is not installed")
        url = plain(request.getfixturevalue("postgres_database"))
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("index:\n  name: api\n", f'index:\n  name: api\n  store: postgres\n  postgres:\n    url: "{url}"\n', 1))
    service = LocalRAG(load_config(config))
    yield service
    service.close()


def documents(hits) -> list[str]:
    return [hit.document for hit in hits]


def test_empty_index_then_ingest_search_modes_and_filters(rag):
    assert rag.status()["version"] is None and rag.status()["documents"] == 0
    with pytest.raises(SearchError, match="run `rag ingest` first"):
        rag.search("giraffe")
    report = rag.ingest()
    assert len(report.added) == 5 and report.chunks_embedded == report.chunks_added == report.chunks

    for mode in ("hybrid", "dense", "keyword"):
        assert documents(rag.search("giraffe tallest animal", mode=mode, limit=2))[0] == "docs:notes.txt", mode
    hits = rag.search("install localrag on a machine", where="filetype = 'md' and source != 'install.md'")
    assert hits and all(hit.filetype == "md" and hit.source != "install.md" for hit in hits)
    assert documents(rag.search("port", filters={"document": "docs:guide/http-api.md"})) == ["docs:guide/http-api.md"]
    assert rag.passage("docs:notes.txt#0000").text.startswith("The giraffe")
    assert rag.search("qwxz vbnm plkj", mode="keyword") == []


def test_upsert_remove_and_the_manifest_status_and_stamp(rag):
    rag.ingest()
    store = open_store(rag.config)
    first = store.stamp()
    record = rag.document("docs:backup.md")
    text = "Zebras have black and white stripes."
    rows = [("notes:zebra#0000", {"text": text, "document": "notes:zebra", "collection": "notes", "source": "zebra.md", "chunk": 0, "filetype": "md"})]
    before = rag.status()
    report = rag.upsert(rows)
    assert report.added == ["notes:zebra"] and store.stamp() != first
    assert (report.documents, report.chunks) == (before["documents"] + 1, before["chunks"] + 1)
    assert documents(rag.search("striped animals", limit=1)) == ["notes:zebra"]

    removed = rag.delete("docs:backup.md")
    assert removed["chunks_removed"] == record.chunks
    assert "docs:backup.md" not in {d.id for d in rag.documents()}
    assert "docs:backup.md" not in documents(rag.search("back up the indexes folder", limit=5))

    manifest = store.manifest()
    status = rag.status()
    assert set(manifest.documents) == {d.id for d in rag.documents()} and "notes:zebra" in manifest.documents
    assert (status["documents"], status["chunks"]) == (len(manifest.documents), manifest.chunks)
    assert status["version"] == store.stamp() and status["size_bytes"] > 0 and status["last_ingest"] == manifest.updated_at
    assert manifest.fingerprint["model"] and store.writer() is None
    with store.lock():
        assert store.manifest() == manifest
    partial = store.manifest(["notes:zebra", "docs:never-ingested.md"])  # what a one-document write reads
    assert (partial.count, partial.chunks) == (len(manifest.documents), manifest.chunks)
    assert partial.documents["notes:zebra"] == manifest.documents["notes:zebra"] and "docs:never-ingested.md" not in partial.documents


def test_rag_migrate_is_ready_and_idempotent_on_both_stores(rag):
    from typer.testing import CliRunner

    from rag.cli import app

    for _ in range(2):  # compose runs it on every start
        result = CliRunner().invoke(app, ["--config", str(rag.config.file), "migrate"])
        assert result.exit_code == 0, result.output
        assert "schema ready" in result.output
    assert rag.ingest().added and rag.search("giraffe tallest animal", limit=1)


def test_searches_from_many_threads_match_one_thread(rag):
    from concurrent.futures import ThreadPoolExecutor

    rag.ingest()
    queries = ["giraffe tallest animal", "install localrag on a machine", "port of the HTTP API", "back up the indexes folder"]
    keys = [(query, mode) for query in queries for mode in ("hybrid", "dense", "keyword")]
    found = lambda key: [(hit.id, round(hit.score, 5)) for hit in rag.search(key[0], mode=key[1], limit=5)]
    expected = {key: found(key) for key in keys}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda key: (key, found(key)), keys * 6))
    assert all(hits == expected[key] for key, hits in results)
    assert all(expected[key] for key in keys if key[1] != "keyword")

"""The PostgreSQL store (rag.pgstore) on a real PostgreSQL with pgvector, through the service, the CLI
and HTTP: ingest and search, incremental re-ingest, uploads, status, the single writer, a read-only
database, a rebuild under a searching reader, and (slow) two `rag serve` processes on one
database, two ingests at once, and SIGKILL of an ingest."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("pgvector", reason="the postgres extra is not installed: pip install -e '.[postgres]'")

from rag.config import load_config
from rag.ingest import Ingestor
from rag.manifest import chunk_id
from rag.search import Searcher
from rag.service import LocalRAG
from rag.store import IndexLocked, IndexUnwritable, open_store
from tests.helpers import ADMIN_KEY, ApiServer, make_workspace, tiny_beir
from tests.pgserver import plain, query

RAG = [sys.executable, "-m", "rag.cli"]
SCHEMA = "localrag_api"  # make_workspace's index is named api
PASSWORD = "not-a-real-secret"


def pg_workspace(folder: Path, url: str, ingest: bool = True, **options) -> Path:
    """make_workspace's documents and config, with the index in PostgreSQL at url (given as a plain
    postgresql:// URL with a password, as DATABASE_URL would be; the test server trusts it)."""
    config = make_workspace(folder, ingest=False, **options)
    database = plain(url).replace("postgresql://postgres:@", f"postgresql://postgres:{PASSWORD}@", 1)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("index:\n  name: api\n", f'index:\n  name: api\n  store: postgres\n  postgres:\n    url: "{database}"\n', 1))
    if ingest:
        Ingestor(load_config(config)).run()
    return config


def run_rag(config: Path, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(RAG + ["--config", str(config), *args], check=False, capture_output=True, text=True, **kwargs)


def live(url: str) -> str:
    """The schema of the live generation."""
    return f"{SCHEMA}__g{query(url, f'SELECT generation FROM {SCHEMA}.index_state')[0][0]}"


def assert_whole_documents(url: str) -> int:
    """Every manifest record has all its chunks (text, vector, keyword postings), no chunk lacks a
    record, and no chunk is there twice. Returns the number of chunks."""
    generation = live(url)
    ids = [uid for (uid,) in query(url, f"SELECT id FROM {generation}.sections")]
    assert len(ids) == len(set(ids)), "duplicate chunks"
    records = query(url, f"SELECT id, chunks FROM {SCHEMA}.index_documents")
    assert set(ids) == {chunk_id(document, n) for document, chunks in records for n in range(chunks)}
    for table in ("vectors", "bm25"):
        assert query(url, f"SELECT count(*) FROM {generation}.{table}") == [(len(ids),)], table
    return len(ids)


def top(hits) -> list[str]:
    return [hit.document for hit in hits]


# ---- through the service and HTTP ---------------------------------------------------------


def test_http_search_every_mode_with_filters_and_citations_then_upload_and_delete(postgres_database, tmp_path):
    server = ApiServer(pg_workspace(tmp_path, postgres_database)).start()
    try:
        with server.client(ADMIN_KEY) as api:
            for mode in ("hybrid", "dense", "keyword"):
                hits = api.post("/search", json={"query": "giraffe tallest animal", "mode": mode, "limit": 3}).json()["hits"]
                assert hits[0]["document"] == "docs:notes.txt", mode
                assert hits[0]["source"] == "notes.txt" and "giraffe" in hits[0]["text"].lower()
            filtered = api.post("/search", json={"query": "install localrag", "where": "filetype = 'md' and source != 'install.md'"}).json()
            assert filtered["hits"] and all(hit["source"] != "install.md" and hit["filetype"] == "md" for hit in filtered["hits"])
            equal = api.post("/search", json={"query": "port", "filters": {"document": "docs:guide/http-api.md"}}).json()["hits"]
            assert [hit["document"] for hit in equal] == ["docs:guide/http-api.md"]

            answer = api.post("/ask", json={"question": "What is the tallest living terrestrial animal?"}).json()
            assert answer["found"] and "docs:notes.txt" in {p["document"] for p in answer["citations"] + answer["context"]}

            text = b"# Zeppelins\n\nThe airship hangar holds three zeppelins filled with helium.\n"
            uploaded = api.post("/documents", params={"wait": "true"}, files=[("files", ("airships.md", text, "text/markdown"))])
            assert uploaded.status_code in (200, 201), uploaded.text
            hits = api.post("/search", json={"query": "zeppelins in the airship hangar"}).json()["hits"]
            assert hits[0]["document"] == "uploads:airships.md"
            assert [d["id"] for d in api.get("/documents", params={"collection": "uploads"}).json()["documents"]] == ["uploads:airships.md"]

            deleted = api.delete("/documents/uploads:airships.md").json()
            assert deleted["chunks_removed"] >= 1 and deleted["file_removed"] is True
            hits = api.post("/search", json={"query": "zeppelins in the airship hangar"}).json()["hits"]
            assert "uploads:airships.md" not in {hit["document"] for hit in hits}
            assert api.get("/documents/uploads:airships.md").status_code == 404
    finally:
        server.stop()
    assert_whole_documents(postgres_database)


def test_incremental_reingest_embeds_only_what_changed(postgres_database, tmp_path):
    rag = LocalRAG(load_config(pg_workspace(tmp_path, postgres_database)))
    before = rag.status()
    assert (before["documents"], before["chunks"]) == (5, assert_whole_documents(postgres_database))

    again = rag.ingest()
    assert again.chunks_embedded == 0 and len(again.unchanged) == 5 and not again.changed
    assert rag.status()["version"] == before["version"], "a run that changes nothing writes nothing"

    docs = tmp_path / "docs"
    (docs / "notes.txt").write_text("Zebras have black and white stripes. Giraffes eat acacia leaves.\n", encoding="utf-8")
    (docs / "guide" / "obsolete.md").unlink()
    (docs / "faq.md").write_text("# FAQ\n\nThe lighthouse keeper polishes the lens every morning.\n", encoding="utf-8")
    report = rag.ingest()
    assert (report.added, report.updated, report.removed) == (["docs:faq.md"], ["docs:notes.txt"], ["docs:guide/obsolete.md"])
    assert report.chunks_embedded == 2 and len(report.unchanged) == 3, "only the new and the edited chunk were embedded"
    assert top(rag.search("striped animals", limit=1)) == ["docs:notes.txt"]
    assert top(rag.search("lighthouse keeper lens", limit=1)) == ["docs:faq.md"]
    assert "docs:guide/obsolete.md" not in top(rag.search("teleporter module removed", limit=5))
    assert "docs:guide/obsolete.md" not in {d.id for d in rag.documents()}
    assert rag.status()["chunks"] == assert_whole_documents(postgres_database)
    assert rag.status()["version"] != before["version"]


def test_rows_written_in_many_blocks_make_whole_documents(postgres_database, tmp_path, monkeypatch):
    """Chunk texts, metadata and vectors go to PostgreSQL BLOCK rows at a time: with blocks of four
    rows (whole blocks, then a remainder), every document is still whole and searchable with its
    citation metadata."""
    from rag import pgshared

    monkeypatch.setattr(pgshared.Content, "BLOCK", 4)
    monkeypatch.setattr(pgshared.Vectors, "BLOCK", 4)
    rag = LocalRAG(load_config(pg_workspace(tmp_path, postgres_database, ingest=False)))
    report = rag.ingest()
    chunks = assert_whole_documents(postgres_database)
    assert chunks == report.chunks_embedded > 4 and chunks % 4, "whole blocks and a remainder"
    assert query(postgres_database, f"SELECT count(*) FROM {live(postgres_database)}.documents") == [(chunks,)]
    hit = rag.search("giraffe tallest animal", limit=1)[0]
    assert (hit.document, hit.source, hit.filetype) == ("docs:notes.txt", "notes.txt", "txt") and "giraffe" in hit.text.lower()

def test_status_and_migrate_from_the_cli_never_show_the_password(postgres_database, tmp_path):
    config = pg_workspace(tmp_path, postgres_database, ingest=False)
    for _ in range(2):  # idempotent: every replica may run it on start
        migrated = run_rag(config, "migrate")
        assert migrated.returncode == 0, migrated.stderr
    tables = {name for (name,) in query(postgres_database, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (SCHEMA,))}
    assert {"index_state", "index_documents", "index_generations"} <= tables
    assert run_rag(config, "ingest").returncode == 0
    status = run_rag(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert (info["documents"], info["chunks"]) == (5, assert_whole_documents(postgres_database))
    assert info["size_bytes"] > 0 and info["version"] and info["last_ingest"]
    assert info["path"].startswith("postgresql://postgres@") and SCHEMA in info["path"]
    assert PASSWORD not in status.stdout + status.stderr + migrated.stderr


def test_a_second_writer_is_refused_naming_the_holder_and_readers_continue(postgres_database, tmp_path):
    config = pg_workspace(tmp_path, postgres_database)
    store = open_store(load_config(config))
    with store.lock():
        other = LocalRAG(load_config(config))
        assert other.searcher.store.writer() is None, "held by this process: no need to wait"
        assert store.holder().startswith(f"pid {os.getpid()} since ")
        result = run_rag(config, "ingest", timeout=300)
        assert result.returncode == 3, result.stderr
        assert "being written by another process" in result.stderr and f"pid {os.getpid()}" in result.stderr
        with pytest.raises(IndexLocked):
            other.ingest()
        assert top(other.search("giraffe", limit=1)) == ["docs:notes.txt"], "readers do not wait for the writer"
    assert open_store(load_config(config)).writer() is None
    assert run_rag(config, "ingest").returncode == 0


def test_a_read_only_database_is_reported_as_unwritable_and_left_unchanged(postgres_server, postgres_database, tmp_path):
    config = load_config(pg_workspace(tmp_path, postgres_database))
    (tmp_path / "docs" / "more.md").write_text("# More\n\nA new page about lighthouses.\n", encoding="utf-8")
    database = query(postgres_database, "SELECT current_database()")[0][0]
    postgres_server.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    try:
        with pytest.raises(IndexUnwritable, match="read-only"):
            Ingestor(config).run()
    finally:
        postgres_server.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
    assert "docs:more.md" not in {d.id for d in LocalRAG(config).documents()}
    assert Ingestor(config).run().added == ["docs:more.md"]


def test_rebuild_switches_generation_while_a_reader_searches(postgres_database, tmp_path):
    config = load_config(pg_workspace(tmp_path, postgres_database))
    reader = Searcher(config)
    first = live(postgres_database)
    errors, empty, searches = [], [], [0]
    stop = threading.Event()

    def search():
        while not stop.is_set():
            try:
                hits = reader.search("giraffe tallest animal", limit=3)
                searches[0] += 1
                if not hits:
                    empty.append(reader.version)
            except Exception as error:
                errors.append(repr(error))

    thread = threading.Thread(target=search)
    thread.start()
    try:
        for _ in range(2):
            report = Ingestor(config).run(rebuild=True)
            assert report.rebuilt and report.chunks_embedded == 0, "the vector cache holds every chunk"
    finally:
        stop.set()
        thread.join()
    assert not errors and not empty and searches[0] > 0
    assert live(postgres_database) != first
    schemas = {name for (name,) in query(postgres_database, "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{SCHEMA}__g%",))}
    assert schemas == {live(postgres_database)}, "old generations are dropped"
    assert top(reader.search("giraffe tallest animal", limit=1)) == ["docs:notes.txt"]
    assert_whole_documents(postgres_database)


def test_the_old_generation_is_dropped_even_after_a_deadlock_with_a_search_in_flight(postgres_database, tmp_path):
    """A search still running on the old generation takes its tables' locks one by one, as the
    rebuild's DROP SCHEMA does: the two can deadlock, and PostgreSQL cancels the drop. The drop runs
    again once the search has ended, rather than leaving the old tables for the next writer."""
    import psycopg2

    config = load_config(pg_workspace(tmp_path, postgres_database))
    old = live(postgres_database)
    search = psycopg2.connect(plain(postgres_database))
    cursor = search.cursor()
    cursor.execute("SET deadlock_timeout = '20s'")  # the drop, not this search, detects the deadlock
    cursor.execute(f"SELECT count(*) FROM {old}.sections")  # a search in flight holds this table
    rebuild = threading.Thread(target=lambda: Ingestor(config).run(rebuild=True))
    rebuild.start()
    try:
        held = []
        for _ in range(600):  # wait until the drop holds some of the old tables and waits for sections
            held = query(
                postgres_database,
                "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE n.nspname = %s AND l.granted AND l.mode = 'AccessExclusiveLock' "
                "AND c.relkind = 'r' AND a.query LIKE 'DROP SCHEMA%%'",
                (old,),
            )
            if held:
                break
            time.sleep(0.1)
        assert held, "the rebuild's drop never took a lock on the old generation"
        cursor.execute(f'SELECT count(*) FROM {old}."{held[0][0]}"')  # the search goes on: a deadlock
        search.rollback()  # the search ends
    finally:
        rebuild.join()
        search.close()
    assert query(postgres_database, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (old,)) == [(0,)]
    assert top(Searcher(config).search("giraffe tallest animal", limit=1)) == ["docs:notes.txt"]


def test_rag_eval_on_postgres_scores_a_tiny_beir_set(postgres_database, tmp_path):
    from typer.testing import CliRunner

    from rag.cli import app

    data = tiny_beir(tmp_path / "beir")
    config = tmp_path / "config.yml"
    config.write_text(f"index: {{name: t, path: {tmp_path / 'indexes'}, store: postgres, postgres: {{url: '{postgres_database}'}}}}\n")
    result = CliRunner().invoke(app, ["--config", str(config), "eval", str(data), "--json"])
    assert result.exit_code == 0, result.output
    modes = json.loads(result.stdout)["retrieval"]["modes"]
    assert {mode: modes[mode]["ndcg@10"] for mode in ("hybrid", "dense", "keyword")} == {"hybrid": 1.0, "dense": 1.0, "keyword": 1.0}


# ---- whole processes ------------------------------------------------------------------------


def many_documents(folder: Path, count: int, tag: str):
    for i in range(count):
        (folder / "docs" / f"bulk-{i:03d}.md").write_text(
            f"# Report {i}\n\n" + " ".join(f"Finding {tag} {i}.{j} concerns subject number {j}." for j in range(60)), encoding="utf-8"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(config: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(RAG + ["--config", str(config), "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen, url: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


def documents_found(url: str, query: str) -> list[str]:
    response = httpx.post(f"{url}/search", json={"query": query, "limit": 5}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)
    assert response.status_code == 200, response.text
    return [hit["document"] for hit in response.json()["hits"]]


@pytest.mark.slow
def test_two_serve_processes_on_one_database_see_each_others_writes(postgres_database, tmp_path):
    config = pg_workspace(tmp_path, postgres_database)
    servers = [start_serve(config) for _ in range(2)]
    try:
        for process, url in servers:
            wait_ready(process, url)
        (_, one), (_, two) = servers
        assert documents_found(two, "giraffe")[0] == "docs:notes.txt"
        text = b"# Zeppelins\n\nThe airship hangar holds three zeppelins filled with helium.\n"
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        uploaded = httpx.post(f"{one}/documents", params={"wait": "true"}, files=[("files", ("airships.md", text, "text/markdown"))], headers=headers, timeout=120)
        assert uploaded.status_code in (200, 201), uploaded.text
        committed = time.monotonic()
        while documents_found(two, "zeppelins in the airship hangar")[:1] != ["uploads:airships.md"]:
            assert time.monotonic() - committed < 1.0, "the upload through one replica is not searchable through the other"
            time.sleep(0.05)

        assert httpx.delete(f"{one}/documents/uploads:airships.md", headers=headers, timeout=60).status_code == 200
        committed = time.monotonic()
        while "uploads:airships.md" in documents_found(two, "zeppelins in the airship hangar"):
            assert time.monotonic() - committed < 1.0, "the delete through one replica is still found through the other"
            time.sleep(0.05)
        assert httpx.get(f"{two}/documents/uploads:airships.md", headers=headers, timeout=60).status_code == 404
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=30)
    assert_whole_documents(postgres_database)


@pytest.mark.slow
def test_two_concurrent_ingests_one_refused_no_duplicate_chunks(postgres_database, tmp_path):
    config = pg_workspace(tmp_path, postgres_database, ingest=False)
    many_documents(tmp_path, 40, "gamma")
    assert run_rag(config, "migrate").returncode == 0
    processes = [subprocess.Popen(RAG + ["--config", str(config), "ingest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(process.wait(timeout=600), process.stderr.read()) for process in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 3], results
    refused = next(stderr for code, stderr in results if code == 3)
    assert "being written by another process" in refused and "pid " in refused
    assert assert_whole_documents(postgres_database) == LocalRAG(load_config(config)).status()["chunks"]
    assert query(postgres_database, f"SELECT count(*) FROM {SCHEMA}.index_documents") == [(45,)]


@pytest.mark.slow
def test_sigkill_mid_ingest_leaves_only_whole_documents_and_the_next_run_completes(postgres_database, tmp_path):
    config = pg_workspace(tmp_path, postgres_database)
    many_documents(tmp_path, 120, "alpha")
    store = open_store(load_config(config))
    before = store.stamp()
    killed_while_writing = 0
    for delay in (0.0, 1.0, 3.0, 6.0):
        process = subprocess.Popen(RAG + ["--config", str(config), "ingest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while store.writer() is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        killed_while_writing += process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        while store.writer() is not None and time.monotonic() < deadline:  # the server ends the dead session
            time.sleep(0.01)
        assert_whole_documents(postgres_database)
        assert store.stamp() == before, "a killed run commits nothing"
        assert top(Searcher(load_config(config)).search("giraffe tallest", limit=1)) == ["docs:notes.txt"]
    assert killed_while_writing >= 3, "the kills never landed during a write"

    finished = run_rag(config, "ingest", "--json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["counts"]["added"] == 120
    assert assert_whole_documents(postgres_database) == store.manifest().chunks
    generations = query(postgres_database, f"SELECT count(*) FROM {SCHEMA}.index_generations")
    assert generations == [(1,)], "a killed writer's leftovers are dropped"
    hits = Searcher(load_config(config)).search("Finding alpha 7.3", mode="keyword", limit=5)
    assert any(hit.source == "bulk-007.md" for hit in hits)

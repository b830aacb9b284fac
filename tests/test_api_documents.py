"""Documents and ingestion over HTTP: uploads (good, corrupt, oversize, wrong type, traversal names),
listing, deleting, ingest jobs, concurrent searches during an ingest, and an ingest run by the CLI
in another process while the server runs."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ADMIN_KEY, assert_error, wait_job

ROOT = Path(__file__).resolve().parent.parent
PDF = ROOT / "data" / "reference" / "faq.pdf"


@pytest.fixture(scope="module")
def server(serve):
    return serve()


@pytest.fixture
def api(server):
    with server.client(ADMIN_KEY) as client:
        yield client


def top_documents(api, query: str, limit: int = 5) -> list[str]:
    response = api.post("/search", json={"query": query, "limit": limit})
    assert response.status_code == 200, response.text
    return [hit["document"] for hit in response.json()["hits"]]


def test_upload_is_ingested_in_a_job_then_searchable_listed_and_deletable(api, server):
    text = b"# Zeppelins\n\nThe airship hangar holds three zeppelins filled with helium.\n"
    response = api.post("/documents", files=[("files", ("airships.md", text, "text/markdown"))])
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["files"] == [{"filename": "airships.md", "name": "airships.md", "document": "uploads:airships.md", "size": len(text)}]
    assert response.headers["location"] == f"/jobs/{body['job']['id']}"
    job = wait_job(api, body["job"]["id"])
    assert job["state"] == "succeeded" and job["result"]["added"] == ["uploads:airships.md"]
    assert job["progress"]["files_done"] == 1

    assert top_documents(api, "zeppelins in the airship hangar")[0] == "uploads:airships.md"
    listed = api.get("/documents", params={"collection": "uploads"}).json()
    assert [document["id"] for document in listed["documents"]] == ["uploads:airships.md"]
    shown = api.get("/documents/uploads:airships.md").json()
    assert shown["chunks"] >= 1 and shown["hash"] and shown["ingested_at"] and shown["source"] == "airships.md"

    deleted = api.delete("/documents/uploads:airships.md")
    assert deleted.status_code == 200 and deleted.json()["chunks_removed"] >= 1 and deleted.json()["file_removed"] is True
    assert not (server.rag.uploads / "airships.md").exists()
    assert "uploads:airships.md" not in top_documents(api, "zeppelins in the airship hangar")
    assert_error(api.get("/documents/uploads:airships.md"), 404, "not_found")
    assert_error(api.delete("/documents/uploads:airships.md"), 404, "not_found")


def test_delete_a_document_whose_id_has_slashes(api, server):
    assert api.get("/documents/docs:guide/obsolete.md").json()["source"] == "guide/obsolete.md"
    assert top_documents(api, "teleporter module removed")[0] == "docs:guide/obsolete.md"
    deleted = api.delete("/documents/docs:guide/obsolete.md").json()
    assert deleted == {"id": "docs:guide/obsolete.md", "chunks_removed": 1, "file_removed": False}
    assert "docs:guide/obsolete.md" not in top_documents(api, "teleporter module removed")
    (server.rag.config.root / "docs" / "guide" / "obsolete.md").unlink()  # else the next ingest brings it back


def test_upload_several_files_waiting_a_corrupt_pdf_is_reported_and_the_rest_ingested(api, server):
    files = [
        ("files", ("broken.pdf", b"%PDF-1.7\n1 0 obj garbage without end", "application/pdf")),
        ("files", ("faq.pdf", PDF.read_bytes(), "application/pdf")),
        ("files", ("lighthouse.txt", b"The lighthouse keeper trims the lamp wick every night.", "text/plain")),
    ]
    response = api.post("/documents", params={"wait": "true"}, files=files)
    assert response.status_code == 200, response.text
    job = response.json()["job"]
    assert job["state"] == "succeeded"
    assert sorted(job["result"]["added"]) == ["uploads:faq.pdf", "uploads:lighthouse.txt"]
    assert [item["path"] for item in job["result"]["failed"]] == ["broken.pdf"] and job["result"]["failed"][0]["reason"]
    assert not (server.rag.uploads / "broken.pdf").exists() and (server.rag.uploads / "faq.pdf").is_file()
    assert top_documents(api, "lighthouse keeper lamp wick")[0] == "uploads:lighthouse.txt"
    pdf_hits = api.post("/search", json={"query": "question", "filters": {"document": "uploads:faq.pdf"}}).json()["hits"]
    assert pdf_hits and pdf_hits[0]["page"] >= 1


def test_upload_rejects_oversize_and_wrong_types_and_keeps_nothing(api, server):
    before = set(p.name for p in server.rag.uploads.iterdir()) if server.rag.uploads.exists() else set()
    big = b"# Big\n\n" + b"word " * 20_000  # 100 KB > api.max_upload_size (64KB)
    error = assert_error(
        api.post("/documents", files=[("files", ("ok.md", b"# fine", "text/markdown")), ("files", ("big.md", big, "text/markdown"))]), 413
    )
    assert "big.md" in error["message"] and error["details"]["limit"] == 64 * 1024
    error = assert_error(
        api.post("/documents", files=[("files", ("tool.exe", b"MZ\x90\x00", "application/octet-stream"))]), 415, "unsupported_media_type"
    )
    assert ".md" in error["details"]["supported"]
    assert_error(api.post("/documents", files=[("files", ("noextension", b"text", "text/plain"))]), 415)
    huge = b"x" * (2 << 20)  # past the whole-request limit: refused while reading
    assert_error(api.post("/documents", files=[("files", ("huge.md", huge, "text/markdown"))]), 413, "payload_too_large")
    assert_error(api.post("/documents", files=[("files", ("...", b"text", "text/plain"))]), 422)
    many = [("files", (f"note-{i}.md", b"# Note", "text/markdown")) for i in range(21)]  # 20 per request
    assert "Too many files" in assert_error(api.post("/documents", files=many), 400)["message"]
    assert_error(api.post("/documents", data={"note": "no files"}), 422, "validation_error")
    assert_error(api.post("/documents", json={"files": []}), 422, "validation_error")
    after = set(p.name for p in server.rag.uploads.iterdir()) if server.rag.uploads.exists() else set()
    assert after == before


def test_traversal_names_stay_inside_the_uploads_folder(api, server, tmp_path):
    response = api.post(
        "/documents", params={"wait": "true"}, files=[("files", ("../../etc/passwd.md", b"# Not passwd\n\nharmless", "text/markdown"))]
    )
    assert response.status_code == 200, response.text
    saved = response.json()["files"][0]
    assert saved["name"] == "passwd.md" and saved["document"] == "uploads:passwd.md"
    assert (server.rag.uploads / "passwd.md").is_file()
    root = server.rag.config.root
    assert not (root.parent / "etc" / "passwd.md").exists() and not (root / "etc").exists()
    backslash = api.post("/documents", params={"wait": "true"}, files=[("files", ("..\\..\\win.md", b"# Win", "text/markdown"))]).json()
    assert backslash["files"][0]["name"] == "win.md"


def test_ingest_job_and_its_errors(api, server):
    (server.rag.config.root / "docs" / "volcano.md").write_text("# Volcanoes\n\nMagma chambers feed the caldera.\n")
    started = api.post("/ingest")
    assert started.status_code == 202 and started.headers["location"] == f"/jobs/{started.json()['id']}"
    job = wait_job(api, started.json()["id"])
    assert job["state"] == "succeeded" and job["result"]["added"] == ["docs:volcano.md"]
    assert job["id"] in [listed["id"] for listed in api.get("/jobs").json()["jobs"]]
    scoped = api.post("/ingest", params={"wait": "true"}, json={"paths": ["docs/volcano.md"]})
    assert scoped.status_code == 200 and scoped.json()["result"]["unchanged"] == ["docs:volcano.md"]

    error = assert_error(api.post("/ingest", json={"paths": ["/etc"]}), 422)
    assert "not inside a configured source" in error["message"]
    assert_error(api.post("/ingest", json={"paths": ["../../"]}), 422)
    assert_error(api.post("/ingest", json={"rebuild": "maybe"}), 422, "validation_error")
    assert_error(api.get("/jobs/0123456789abcdef"), 404, "not_found")
    assert_error(api.get("/jobs/../../etc"), 404)


def test_searches_keep_answering_consistently_during_an_ingest(api, server):
    docs = server.rag.config.root / "docs" / "bulk"
    docs.mkdir()
    for i in range(40):
        (docs / f"report-{i:02d}.md").write_text(
            f"# Report {i}\n\n" + " ".join(f"Survey {i} counted {j} herons near the estuary." for j in range(30))
        )
    before = server.rag.searcher.version
    job = api.post("/ingest").json()
    results, failures, stop = [], [], threading.Event()

    def searcher():
        with server.client(ADMIN_KEY) as client:
            while not stop.is_set():
                response = client.post("/search", json={"query": "Copy the indexes folder to back up every index", "limit": 3})
                if response.status_code != 200:
                    failures.append(response.text)
                    continue
                results.append((response.json(), client.get(f"/jobs/{job['id']}").json()["state"]))

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    finished = wait_job(api, job["id"], timeout=300)
    time.sleep(1.0)  # a few searches on the new version too
    stop.set()
    for thread in threads:
        thread.join()

    assert finished["state"] == "succeeded" and len(finished["result"]["added"]) == 40
    assert not failures
    assert any(state == "running" for _, state in results), "no search ran during the ingest"
    for body, _ in results:
        ids = [hit["id"] for hit in body["hits"]]
        assert body["hits"][0]["document"] == "docs:backup.md" and len(ids) == len(set(ids)) <= 3
    versions = {body["version"] for body, _ in results}
    assert before in versions or len(versions) > 1
    assert server.rag.searcher.version in versions and server.rag.searcher.version != before


def test_an_ingest_by_the_cli_in_another_process_is_picked_up_without_restart(api, server):
    config = server.rag.config
    (config.root / "docs" / "cli-added.md").write_text("# Quasars\n\nA quasar outshines its whole galaxy.\n")
    before = api.get("/ready").json()["index"]["version"]
    run = subprocess.run(
        [sys.executable, "-m", "rag.cli", "--config", str(config.file), "ingest"], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    deadline = time.monotonic() + 10
    while "docs:cli-added.md" not in top_documents(api, "quasar outshines its galaxy", 3):
        assert time.monotonic() < deadline, "the server did not pick up the CLI's ingest"
        time.sleep(0.2)
    assert api.get("/ready").json()["index"]["version"] != before
    assert api.get("/documents/docs:cli-added.md").status_code == 200

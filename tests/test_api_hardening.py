"""The API against an attacker (issue 11), over real HTTP: request bounds, DNS rebinding and
cross-origin writes, HEAD and the OpenAPI limits, and job records read with a read key."""

import http.client
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ADMIN_KEY, READ_KEY, ApiServer, assert_error, make_workspace, wait_job

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The keyed test workspace, with JSON bodies limited to 32 KiB (uploads keep 20 × 64 KiB)."""
    config = make_workspace(tmp_path_factory.mktemp("hardening"))
    config.write_text(config.read_text(encoding="utf-8") + "  max_body_size: 32KiB\n", encoding="utf-8")
    server = ApiServer(config).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """The default open configuration: no API keys, bound to 127.0.0.1."""
    server = ApiServer(make_workspace(tmp_path_factory.mktemp("open"), keys=False)).start()
    yield server
    server.stop()


def raw(server: ApiServer, head: str, chunks=(), timeout: float = 10) -> tuple[int, dict, float, int]:
    """Sends a hand-written request (head, then body chunks until the server stops taking them);
    returns (status, JSON body, seconds until the answer, body bytes sent)."""
    host, port = server.url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        started = time.monotonic()
        connection.sendall(head.encode())
        for chunk in chunks:
            try:
                connection.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        response = http.client.HTTPResponse(connection)
        response.begin()
        return response.status, json.loads(response.read()), time.monotonic() - started, sent


def head(path: str, key: str, **headers) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


# ---- item 2: every request is bounded -------------------------------------------------------


def test_a_declared_100_mb_body_is_refused_before_it_is_sent(server):
    status, body, seconds, _ = raw(server, head("/search", READ_KEY, content_length=100_000_000), [b'{"query": "'])
    assert status == 413 and body["error"]["type"] == "payload_too_large", body
    assert seconds < 2


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    # 100 MB offered in 64 KiB chunks, never terminated: the server answers once it has read 32 KiB
    status, body, seconds, sent = raw(server, head("/search", READ_KEY, transfer_encoding="chunked"), (chunk for _ in range(1600)))
    assert status == 413 and body["error"]["type"] == "payload_too_large", body
    assert sent < 100_000_000 / 4 and seconds < 10, (sent, seconds)


def test_uploads_have_their_own_limit_above_the_json_one(server):
    with server.client(ADMIN_KEY) as client:
        text = b"# Forty kilobytes\n\n" + b"giraffe acacia savanna " * 1800  # 40 KB: over the JSON limit, under max_upload_size
        accepted = client.post("/documents?wait=true", files=[("files", ("forty.md", text, "text/markdown"))])
        assert accepted.status_code == 200 and accepted.json()["job"]["state"] == "succeeded", accepted.text
        assert_error(client.post("/search", json={"query": "giraffe", "where": "x" * 40_000}), 413, "payload_too_large")


@pytest.mark.parametrize(
    "path, body, where",
    [
        ("/search", {"query": "giraffe", "filters": {"source": [f"s{i}" for i in range(101)]}}, "filters"),
        ("/search", {"query": "giraffe", "filters": {"source": "x" * 1001}}, "filters"),
        ("/search", {"query": "giraffe", "where": "x" * 2001}, "where"),
        ("/search", {"query": "giraffe", "limit": 21}, "limit"),
        ("/ask", {"question": "giraffe", "top_k": 0}, "top_k"),
        ("/ingest", {"paths": [f"docs/{i}.md" for i in range(101)]}, "paths"),
        ("/ingest", {"paths": ["docs/" + "x" * 4100]}, "paths"),
        ("/workflows/any", {"elements": list(range(1001))}, "elements"),
        ("/v1/chat/completions", {"messages": [{"role": "user"}] * 1001}, "messages"),
        ("/api/chat", {"model": "localrag", "messages": [{"role": "user"}] * 1001}, "messages"),
        ("/api/generate", {"model": "m" * 201, "prompt": "giraffe"}, "model"),
    ],
)
def test_lists_strings_and_counts_are_bounded(server, path, body, where):
    with server.client(ADMIN_KEY) as client:
        error = assert_error(client.post(path, json=body), 422)
    assert any(where in problem["loc"] for problem in error["details"] or []), error


# ---- item 7: DNS rebinding and cross-origin writes --------------------------------------------


def test_a_foreign_host_header_is_refused_when_bound_to_loopback(open_server):
    with open_server.client(None) as client:
        assert client.get("/documents", headers={"host": "evil.example:8080"}).status_code == 400
        assert client.get("/documents", headers={"host": f"localhost:{client.base_url.port}"}).status_code == 200
        assert client.get("/").status_code == 200  # the web page, same origin


def test_a_cross_origin_upload_is_refused_and_nothing_is_kept(open_server):
    uploads = open_server.rag.uploads
    with open_server.client(None) as client:
        planted = [("files", ("planted.md", b"# Planted\n\nThe moon is made of cheese.", "text/markdown"))]
        error = assert_error(client.post("/documents", files=planted, headers={"origin": "http://evil.example"}), 403, "cross_origin")
        assert "evil.example" in error["message"]
        assert_error(client.post("/ingest", json={}, headers={"origin": "null"}), 403, "cross_origin")
        assert_error(client.delete("/documents/docs:notes.txt", headers={"origin": "http://evil.example"}), 403)
    assert not (uploads / "planted.md").exists()
    assert "docs:notes.txt" in [document.id for document in open_server.rag.documents()]


def test_same_origin_and_allowed_origins_may_write(server):
    with server.client(READ_KEY) as client:
        same = client.post("/search", json={"query": "giraffe"}, headers={"origin": server.url})
        assert same.status_code == 200, same.text
        allowed = client.post("/search", json={"query": "giraffe"}, headers={"origin": "http://app.example"})
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.example"
        assert_error(client.post("/search", json={"query": "giraffe"}, headers={"origin": "http://app.example.evil"}), 403)


def test_json_routes_refuse_form_and_text_bodies(open_server):
    with open_server.client(None) as client:
        before = len(client.get("/jobs").json()["jobs"])
        error = assert_error(client.post("/ingest", content=b"{}", headers={"content-type": "text/plain"}), 415, "unsupported_media_type")
        assert "application/json" in error["message"]
        assert_error(client.post("/ingest", headers={"content-type": "text/plain"}), 415)
        assert_error(client.post("/search", data={"query": "giraffe"}), 415)  # a urlencoded form
        assert len(client.get("/jobs").json()["jobs"]) == before  # nothing started
        bare = client.post("/ingest")  # `curl -X POST /ingest`: no body, no type
        assert bare.status_code == 202, bare.text


# ---- item 8: HEAD and the OpenAPI schema -------------------------------------------------------


def test_head_answers_on_health_and_ready(server):
    with server.client(None) as client:
        for path in ("/health", "/ready"):
            response = client.head(path)
            assert response.status_code == 200 and response.content == b"", path


def test_openapi_states_the_upload_limit_and_the_workflow_404(server):
    with server.client(None) as client:
        schema = client.get("/openapi.json").json()
    form = schema["paths"]["/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    form = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]] if "$ref" in form else form
    assert form["properties"]["files"]["maxItems"] == 20
    for method in ("get", "post"):
        assert "404" in schema["paths"]["/workflows/{name}"][method]["responses"], method
    with server.client(ADMIN_KEY) as client:
        many = [("files", (f"f{i}.md", b"# f", "text/markdown")) for i in range(21)]
        assert_error(client.post("/documents", files=many), 400)
        error = assert_error(client.get("/workflows/nope"), 404, "not_found")
        assert "nope" in error["message"]
        assert_error(client.post("/workflows/nope", json={}), 404, "not_found")


# ---- item 9 (jobs): no traceback, no server path, dead owners -------------------------------------


def hold_lock(index: Path) -> subprocess.Popen:
    """Another process (as `rag ingest` would) holding the index's write lock."""
    code = (
        "import fcntl, os, sys, time; handle = open(sys.argv[1], 'a+'); fcntl.flock(handle, fcntl.LOCK_EX);"
        "handle.write(f'pid {os.getpid()} since now'); handle.flush(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(index / ".lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_failed_job_shows_no_traceback_or_server_path_to_a_read_key(server):
    holder = hold_lock(server.rag.config.index_dir)
    try:
        with server.client(ADMIN_KEY) as client:
            started = client.post("/ingest", json={"paths": ["docs/guide"]}).json()
        with server.client(READ_KEY) as client:
            job = wait_job(client, started["id"])
            listed = client.get("/jobs").text
    finally:
        holder.kill()
        holder.wait()
    assert job["state"] == "failed" and job["error"].startswith("IndexLocked") and "indexes/api" in job["error"], job
    root = str(server.rag.config.root)
    for text in (json.dumps(job), listed):
        assert "Traceback" not in text and '"trace"' not in text and root not in text and '"pid"' not in text


def test_a_job_whose_server_was_killed_is_reported_interrupted(server):
    jobs = server.rag.config.index_dir / "jobs"
    code = (
        "import os, sys, time; from rag.jobs import Jobs; jobs = Jobs(sys.argv[1]);"
        "job = jobs.submit('ingest', lambda progress: time.sleep(60)); print(job['id'], flush=True);"
        "time.sleep(0.5); os.kill(os.getpid(), 9)"
    )
    killed = subprocess.run([sys.executable, "-c", code, str(jobs)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert killed.returncode == -9, killed.stderr
    uid = killed.stdout.strip()
    with server.client(READ_KEY) as client:
        job = client.get(f"/jobs/{uid}").json()
        assert job["state"] == "interrupted" and "stopped" in job["error"], job
        assert wait_job(client, uid, timeout=5)["state"] == "interrupted"
        assert uid in [item["id"] for item in client.get("/jobs").json()["jobs"] if item["state"] == "interrupted"]


def test_an_upload_during_a_cli_ingest_answers_409_and_keeps_nothing(server):
    holder = hold_lock(server.rag.config.index_dir)
    try:
        with server.client(ADMIN_KEY) as client:
            response = client.post("/documents?wait=true", files=[("files", ("during.md", b"# During\n\nlocked", "text/markdown"))])
    finally:
        holder.kill()
        holder.wait()
    assert_error(response, 409, "index_locked")
    assert not (server.rag.uploads / "during.md").exists()

"""Shared pieces of the tests: a workspace with documents and API keys (make_workspace), the real
app on a real uvicorn server at 127.0.0.1:<random port> in a background thread (ApiServer), and
checks of the API's answers. tests/conftest.py builds its fixtures from these."""

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from api.app import create_app
from rag.config import load_config
from rag.ingest import Ingestor

READ_KEY = "read-key-for-tests"  # given to the config through ${LOCALRAG_TEST_READ_KEY}
ADMIN_KEY = "admin-key-for-tests"  # given as its SHA-256 digest

DOCS = {
    "install.md": "# Installation\n\nRun make demo to install localrag on a fresh machine.\n\n"
    "## Requirements\n\nPython 3.11 or newer is required.\n",
    "backup.md": "# Backups\n\nCopy the indexes folder to back up every index. Restores are a copy back.\n",
    "notes.txt": "The giraffe is the tallest living terrestrial animal. Giraffes eat acacia leaves.\n",
    "guide/http-api.md": "# HTTP API\n\nThe server listens on port 8080. Start it with rag serve.\n",
    "guide/obsolete.md": "# Obsolete\n\nThe teleporter module was removed in version 0.0.1.\n",
}

CONFIG = """\
index:
  name: api
  path: indexes
ingest:
  sources:
    - name: docs
      path: docs
  uploads: uploads
  chunking:
    max_tokens: 120
    overlap: 16
search:
  max_limit: 20
llm:
  provider: {provider}
  max_tokens: 12
  temperature: 0.0                 # greedy: the same answer every run
  ollama:
    base_url: {ollama_url}
    timeout: 5
answer:
  top_k: 2
api:
  max_upload_size: 64KiB
  max_question_length: 300
  cors_origins: [http://app.example]
{keys}"""

KEYS = f"""\
  api_keys:
    reader:
      key: ${{LOCALRAG_TEST_READ_KEY}}
      scopes: [read]
    admin:
      key_sha256: {hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}
      scopes: [read, write]
"""


def make_workspace(
    folder: Path, keys: bool = True, provider: str = "embedded", ollama_url: str = "http://127.0.0.1:9", ingest: bool = True
) -> Path:
    """docs/ with DOCS, config.yml (keys: a read key from the environment, an admin key as SHA-256), an index."""
    for name, text in DOCS.items():
        path = folder / "docs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if keys:  # the read key reaches config.yml as ${LOCALRAG_TEST_READ_KEY}, as a deployment's would
        os.environ["LOCALRAG_TEST_READ_KEY"] = READ_KEY
    config = folder / "config.yml"
    config.write_text(CONFIG.format(provider=provider, ollama_url=ollama_url, keys=KEYS if keys else ""), encoding="utf-8")
    if ingest:
        Ingestor(load_config(config)).run()
    return config


class ApiServer:
    """create_app(config) served by uvicorn on 127.0.0.1 (random port) in a daemon thread."""

    def __init__(self, config, rag=None):
        self.app = create_app(config, rag=rag)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
        self.thread = None

    @property
    def rag(self):
        return self.app.state.rag

    def start(self) -> "ApiServer":
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.05)
        return self

    def stop(self):
        self.server.should_exit = True
        if self.thread:
            self.thread.join(timeout=15)
        self.socket.close()

    def client(self, key: str | None = ADMIN_KEY, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kwargs)


def wait_job(client: httpx.Client, uid: str, timeout: float = 120) -> dict:
    """Polls GET /jobs/{id} until the job ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{uid}").json()
        if job["state"] in ("succeeded", "failed", "interrupted"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {uid} still running")


def assert_error(response: httpx.Response, status: int, type: str | None = None) -> dict:
    """The response has `status` and the API's JSON error shape; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    error = body["error"]
    if response.request.url.path.startswith("/api/"):
        assert isinstance(error, str) and error and body["type"]
        error = {"type": body["type"], "message": error, "details": body.get("details")}
    else:
        assert set(error) == {"type", "message", "details"} and error["message"]
    if type:
        assert error["type"] == type, error
    return error


def sse_events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event, data) pairs of a Server-Sent Events body, parsed line by line as the spec says."""
    events, name, data = [], None, []
    for line in response.iter_lines():
        if line == "":
            if data or name:
                events.append((name, "\n".join(data)))
            name, data = None, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data or name:
        events.append((name, "\n".join(data)))
    return events


def tiny_beir(data: Path) -> Path:
    """A BEIR dataset of two documents and one query (q1: koalas -> d2) in data."""
    (data / "qrels").mkdir(parents=True)
    docs = {"d1": "Giraffes are the tallest living terrestrial animals.", "d2": "Koalas eat eucalyptus leaves."}
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "What do koalas eat?"}) + "\n")
    (data / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    return data

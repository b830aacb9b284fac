"""Several uvicorn workers (`serve(..., workers=2)` in a subprocess): each has its own LocalRAG over
the same index folder; a job started on one worker is reported by every worker, an ingest made by
one worker is seen by the other, and /metrics sums the counters of all workers."""

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.ollama_server import free_port
from tests.helpers import ADMIN_KEY, make_workspace

pytestmark = pytest.mark.slow  # whole processes: run by `make test`, left out by `make test-fast`

ROOT = Path(__file__).resolve().parent.parent


ANSWERED = Counter()  # (method, path, status) of every response the servers gave


def fresh(url: str, method: str, path: str, **kwargs) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to either worker."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60) as client:
        response = client.request(method, path, **kwargs)
    ANSWERED[method, path, response.status_code] += 1
    return response


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    config = make_workspace(tmp_path_factory.mktemp("workers"))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics"))}
    code = "import sys; from api.server import serve; serve(sys.argv[1], port=int(sys.argv[2]), workers=2)"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(config), str(port)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        seen = set()
        while len(seen) < 2:  # both workers up and answering
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "two workers did not come up"
            try:
                seen.add(fresh(url, "GET", "/ready").json()["worker"])
            except (httpx.HTTPError, KeyError):
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_jobs_and_new_versions_are_seen_by_every_worker(workers):
    started = fresh(
        workers,
        "POST",
        "/documents",
        files=[("files", ("comet.md", b"# Comets\n\nA comet's tail points away from the sun.", "text/markdown"))],
    )
    assert started.status_code == 202
    uid, states, answered_by = started.json()["job"]["id"], [], set()
    deadline = time.monotonic() + 120
    while not states or states[-1] not in ("succeeded", "failed") or len(answered_by) < 2:
        assert time.monotonic() < deadline
        job = fresh(workers, "GET", f"/jobs/{uid}")
        assert job.status_code == 200, job.text  # never "no such job", whichever worker answers
        states.append(job.json()["state"])
        answered_by.add(fresh(workers, "GET", "/ready").json()["worker"])
    assert states[-1] == "succeeded"

    # the other worker swaps the new version in on its next look (at most every 0.5 s): soon, every
    # worker answers with it
    streak, deadline = 0, time.monotonic() + 10
    while streak < 12:
        assert time.monotonic() < deadline, "a worker kept answering from the old version"
        hits = fresh(workers, "POST", "/search", json={"query": "comet tail points away from the sun", "limit": 1}).json()["hits"]
        streak = streak + 1 if hits[0]["document"] == "uploads:comet.md" else 0


def test_metrics_sum_the_counters_of_all_workers(workers):
    # both workers have answered /ready (the fixture waits for two distinct worker ids)
    for _ in range(8):
        fresh(workers, "GET", "/ready")
    text = fresh(workers, "GET", "/metrics").text
    count = re.search(r'localrag_http_requests_total\{method="GET",route="/ready",status="200"\} ([\d.]+)', text)
    assert count and float(count.group(1)) == ANSWERED["GET", "/ready", 200]

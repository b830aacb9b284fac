"""Crash safety (SIGKILL mid-ingest) and the single-writer lock, with real subprocesses."""

import os
import signal
import subprocess
import sys
import time

import pytest

from rag.config import load_config
from rag.search import Searcher
from rag.store import Store

pytestmark = pytest.mark.slow  # whole processes: run by `make test`, left out by `make test-fast`

RAG = [sys.executable, "-m", "rag.cli"]


def run_rag(workspace, *args, **kwargs):
    return subprocess.run(RAG + ["--config", str(workspace / "config.yml"), *args], capture_output=True, text=True, **kwargs)


def start_ingest(workspace):
    return subprocess.Popen(RAG + ["--config", str(workspace / "config.yml"), "ingest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def many_documents(workspace, count, tag):
    for i in range(count):
        (workspace / "docs" / f"bulk-{i:03d}.md").write_text(
            f"# Report {i}\n\n" + " ".join(f"Finding {tag} {i}.{j} concerns subject number {j}." for j in range(60))
        )


def searchable(workspace) -> list:
    """Loads the live version in a fresh reader and searches it."""
    return Searcher(load_config(workspace / "config.yml")).search("installation requirements python", limit=3)


def test_sigkill_mid_ingest_leaves_a_usable_index(workspace):
    assert run_rag(workspace, "ingest").returncode == 0
    baseline = searchable(workspace)
    assert baseline

    many_documents(workspace, 120, "alpha")
    store = Store(load_config(workspace / "config.yml").index_dir)
    before = store.current()
    # Kill at increasing depths of the write: while copying, loading, embedding, saving
    killed_mid_write = 0
    for delay in (0.0, 0.5, 1.5, 3.0, 6.0):
        process = start_ingest(workspace)
        deadline = time.monotonic() + 60
        while not list(store.path.glob(".work-*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        if process.poll() is None:
            killed_mid_write += 1
        process.send_signal(signal.SIGKILL)
        process.wait()

        hits = searchable(workspace)
        assert hits, f"index unusable after SIGKILL at +{delay}s"
        assert store.current() in (before, *store.versions())

    assert killed_mid_write >= 3, "the kills never landed during a write"
    finished = run_rag(workspace, "ingest", "--json")
    assert finished.returncode == 0, finished.stderr
    assert not list(store.path.glob(".work-*")), "leftover work folders were not cleaned"
    hits = Searcher(load_config(workspace / "config.yml")).search("Finding alpha 7.3", mode="keyword", limit=5)
    assert any(hit.source == "bulk-007.md" for hit in hits)


def test_second_writer_is_refused_at_once_and_readers_continue(workspace):
    assert run_rag(workspace, "ingest").returncode == 0
    store = Store(load_config(workspace / "config.yml").index_dir)
    with store.lock():
        started = time.monotonic()
        result = run_rag(workspace, "ingest", timeout=120)
        assert result.returncode == 3
        assert "being written by another process" in result.stderr and f"pid {os.getpid()}" in result.stderr
        assert searchable(workspace), "a reader was blocked by the writer lock"
    assert time.monotonic() - started < 60
    assert run_rag(workspace, "ingest").returncode == 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_writer_releases_the_lock(workspace):
    many_documents(workspace, 60, "beta")
    process = start_ingest(workspace)
    store = Store(load_config(workspace / "config.yml").index_dir)
    deadline = time.monotonic() + 60
    while not list(store.path.glob(".work-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = run_rag(workspace, "ingest")
    assert result.returncode == 0, result.stderr

"""The folder watcher with real file operations on a temp workspace, real file system events
(inotify) and the polling fallback, the real model and a real FAISS index."""

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.config import load_config
from rag.service import LocalRAG
from rag.store import Store
from rag.watch import Watcher
from tests.helpers import ApiServer, make_workspace

DEBOUNCE = 0.5
WAIT = 60  # seconds at most for any one change to show (a shared machine)


class Syncs:
    """Records each sync the watcher reports: (report, paths)."""

    def __init__(self):
        self.items = []

    def __call__(self, report, paths):
        self.items.append((report, paths))

    def __len__(self):
        return len(self.items)

    def touching(self, document: str) -> list[str]:
        """How each sync treated a document: added, updated or removed."""
        return [kind for report, _ in self.items for kind in ("added", "updated", "removed") if document in getattr(report, kind)]


def wait_for(condition, what: str, timeout: float = WAIT) -> float:
    """Polls condition until it is true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def documents(rag: LocalRAG) -> set[str]:
    return {document.id for document in rag.documents()}


def finds(rag: LocalRAG, word: str) -> set[str]:
    """Documents whose passages contain word (keyword search)."""
    try:
        return {hit.document for hit in rag.search(word, mode="keyword", limit=10) if word in hit.text.lower()}
    except Exception:  # no index yet
        return set()


def chunk_ids(config: Path) -> list[str]:
    """Every chunk id of the live version's content store (duplicates included)."""
    current = Store(load_config(config).index_dir).current()
    with sqlite3.connect(current / "documents") as db:
        return [row[0] for row in db.execute("select id from sections")]


def assert_no_duplicates(config: Path, rag: LocalRAG):
    ids = chunk_ids(config)
    assert len(ids) == len(set(ids)), "duplicate chunk ids"
    assert len(ids) == sum(document.chunks for document in rag.documents())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def watched(workspace):
    """A running watcher (file system events) over the workspace, after its first full sync."""
    yield from watching(workspace)


@pytest.fixture
def polled(workspace):
    """A running watcher that polls, after its first full sync."""
    yield from watching(workspace, polling=True)


def watching(workspace: Path, polling: bool = False):
    config = workspace / "config.yml"
    syncs = Syncs()
    watcher = Watcher(LocalRAG(load_config(config)), debounce=DEBOUNCE, polling=polling, on_sync=syncs).start()
    reader = LocalRAG(load_config(config))
    wait_for(lambda: len(syncs) >= 1, "the first full sync")
    assert documents(reader) == {"docs:install.md", "docs:backup.md", "docs:notes.txt"}
    try:
        yield watcher, syncs, reader, config
    finally:
        watcher.stop()
        assert not watcher.thread.is_alive()


def test_create_modify_rename_delete_with_file_system_events(watched):
    watcher, syncs, reader, config = watched
    docs = config.parent / "docs"
    assert [type(observer).__name__ for observer in watcher.observers] == ["InotifyObserver"]

    (docs / "upgrade.md").write_text("# Upgrades\n\nUpgrade by pulling the zeppelin image.\n")
    wait_for(lambda: finds(reader, "zeppelin") == {"docs:upgrade.md"}, "a created file is searchable")

    (docs / "install.md").write_text("# Installation\n\nInstall with pipx install localrag instead.\n")
    wait_for(lambda: finds(reader, "pipx") == {"docs:install.md"}, "a modified file is searchable")
    assert not finds(reader, "demo")  # the old text is gone

    os.rename(docs / "backup.md", docs / "backups.md")
    wait_for(lambda: "docs:backups.md" in documents(reader) and "docs:backup.md" not in documents(reader), "a renamed file moves")
    assert finds(reader, "restores") == {"docs:backups.md"}

    (docs / "notes.txt").unlink()
    wait_for(lambda: "docs:notes.txt" not in documents(reader), "a deleted file disappears")
    assert not finds(reader, "giraffe")

    (docs / "team").mkdir()
    (docs / "team" / "oncall.md").write_text("# On call\n\nThe pager rotates every monday.\n")
    wait_for(lambda: "docs:team/oncall.md" in documents(reader), "a file in a new folder is searchable")
    os.rename(docs / "team", docs / "staff")  # a folder renamed: its files move with it
    wait_for(lambda: "docs:staff/oncall.md" in documents(reader) and "docs:team/oncall.md" not in documents(reader), "a renamed folder moves")

    assert documents(reader) == {"docs:upgrade.md", "docs:install.md", "docs:backups.md", "docs:staff/oncall.md"}
    assert finds(reader, "pager") == {"docs:staff/oncall.md"}
    assert_no_duplicates(config, reader)
    assert not any(report.failed for report, _ in syncs.items)


def test_polling_fallback_sees_create_and_delete(polled):
    watcher, syncs, reader, config = polled
    docs = config.parent / "docs"
    assert [type(observer).__name__ for observer in watcher.observers] == ["PollingObserver"]

    (docs / "upgrade.md").write_text("# Upgrades\n\nUpgrade by pulling the zeppelin image.\n")
    wait_for(lambda: finds(reader, "zeppelin") == {"docs:upgrade.md"}, "a created file is searchable (polling)")
    (docs / "upgrade.md").unlink()
    wait_for(lambda: "docs:upgrade.md" not in documents(reader), "a deleted file disappears (polling)")
    assert not finds(reader, "zeppelin")
    assert_no_duplicates(config, reader)


def test_a_burst_of_200_saves_is_one_or_two_syncs_of_the_last_content(watched):
    watcher, syncs, reader, config = watched
    path = config.parent / "docs" / "draft.md"
    before = len(syncs)
    for number in range(200):
        path.write_text(f"# Draft\n\nThis is save number {number} of the draft.\n" + ("Final words: quokka.\n" if number == 199 else ""))
    final = digest(path)
    wait_for(lambda: "docs:draft.md" in documents(reader) and reader.document("docs:draft.md").hash == final, "the last save is indexed")
    time.sleep(4 * DEBOUNCE)  # nothing left to sync
    assert 1 <= len(syncs) - before <= 2, [paths for _, paths in syncs.items[before:]]
    assert finds(reader, "quokka") == {"docs:draft.md"}
    assert syncs.touching("docs:draft.md")[0] == "added"
    assert_no_duplicates(config, reader)


def test_a_file_copied_slowly_is_never_read_half_way(watched):
    """Written in pieces over ~3 s, with pauses longer than the debounce window: only the whole file is ingested."""
    watcher, syncs, reader, config = watched
    path = config.parent / "docs" / "big.md"
    parts = [f"## Part {part}\n\n" + " ".join(f"Line {n} of part {part} is about topic {part * 100 + n}." for n in range(120)) for part in range(4)]
    data = ("# Big\n\n" + "\n\n".join(parts) + "\n\nThe end: wombat.\n").encode()
    size = len(data) // 4
    pieces = [data[number * size : (number + 1) * size] for number in range(3)] + [data[3 * size :]]  # cut mid-sentence
    with open(path, "wb") as handle:
        for piece in pieces:
            handle.write(piece)
            handle.flush()
            time.sleep(3 * DEBOUNCE / 2 + 0.05)
            assert "docs:big.md" not in documents(reader), "ingested while still being written"
    wait_for(lambda: "docs:big.md" in documents(reader), "the copied file is indexed")
    assert reader.document("docs:big.md").hash == digest(path) and reader.document("docs:big.md").size == path.stat().st_size
    assert finds(reader, "wombat") == {"docs:big.md"}
    assert syncs.touching("docs:big.md") == ["added"]  # once, whole
    assert_no_duplicates(config, reader)


def test_a_copied_tree_of_150_files_is_synced_whole(watched, tmp_path_factory):
    watcher, syncs, reader, config = watched
    tree = tmp_path_factory.mktemp("outside") / "tree"
    for number in range(150):
        path = tree / f"part{number % 3}" / f"page{number}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Page {number}\n\nPage {number} mentions the marmot.\n")
    shutil.copytree(tree, config.parent / "docs" / "tree")
    expected = {f"docs:tree/part{number % 3}/page{number}.md" for number in range(150)}
    wait_for(lambda: expected <= documents(reader), "every copied file is indexed")
    assert len(documents(reader)) == 153
    assert_no_duplicates(config, reader)


def test_hidden_and_temporary_files_are_ignored_and_atomic_saves_are_seen(watched):
    watcher, syncs, reader, config = watched
    docs = config.parent / "docs"
    before = len(syncs)
    for name in (".draft.md", "install.md~", ".install.md.swp", "report.md.part", "~$report.docx", "#notes.md#", "image.png"):
        (docs / name).write_text("# Ignored\n\nThe ocelot hides here.\n")
    (docs / ".git").mkdir()
    (docs / ".git" / "HEAD.md").write_text("# Git\n\nThe ocelot hides here too.\n")
    time.sleep(4 * DEBOUNCE)
    assert len(syncs) == before, "a sync for ignored files"

    temp = docs / ".saved.md.tmp-1234"  # an editor's atomic save: write aside, rename over
    temp.write_text("# Saved\n\nThe capybara is saved atomically.\n")
    os.replace(temp, docs / "saved.md")
    wait_for(lambda: finds(reader, "capybara") == {"docs:saved.md"}, "an atomically saved file is searchable")
    assert not finds(reader, "ocelot")
    assert documents(reader) == {"docs:install.md", "docs:backup.md", "docs:notes.txt", "docs:saved.md"}


def test_a_change_made_while_another_writer_holds_the_lock_is_synced_after(watched):
    watcher, syncs, reader, config = watched
    store = Store(load_config(config).index_dir)
    with store.lock():  # another ingest runs
        (config.parent / "docs" / "locked.md").write_text("# Locked\n\nThe narwhal waited for the lock.\n")
        time.sleep(6 * DEBOUNCE)  # the watcher tried and was refused
        assert "docs:locked.md" not in documents(reader)
    wait_for(lambda: finds(reader, "narwhal") == {"docs:locked.md"}, "the change is synced once the lock is free")


def test_one_watcher_per_index(watched):
    first, syncs, reader, config = watched
    second = Watcher(LocalRAG(load_config(config)), debounce=DEBOUNCE).start()
    try:
        time.sleep(4 * DEBOUNCE)
        assert second.observers == [] and second.thread.is_alive()  # waiting for the first to stop
        first.stop()
        wait_for(lambda: second.observers, "the second watcher takes over")
        (config.parent / "docs" / "relay.md").write_text("# Relay\n\nThe baton passed to the second watcher.\n")
        wait_for(lambda: finds(reader, "baton") == {"docs:relay.md"}, "the second watcher syncs")
    finally:
        second.stop()


@pytest.mark.slow
def test_rag_watch_logs_each_sync_and_stops_on_sigterm(workspace):
    config = workspace / "config.yml"
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "--config", str(config), "watch", "--debounce", str(DEBOUNCE)],
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    reader_thread = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader_thread.start()
    try:
        wait_for(lambda: any("synced every source: added 3" in line for line in lines), "the first sync is logged", timeout=120)
        (workspace / "docs" / "cli.md").write_text("# CLI\n\nThe axolotl came through rag watch.\n")
        reader = LocalRAG(load_config(config))
        wait_for(lambda: finds(reader, "axolotl") == {"docs:cli.md"}, "a file created under rag watch is searchable")
        wait_for(lambda: any("synced 1 path(s): added 1, updated 0, removed 0" in line for line in lines), "the sync is logged")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
    reader_thread.join(5)
    assert any("stopping" in line for line in lines)


def test_rag_serve_watches_with_ingest_watch_true(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_INGEST__WATCH", "true")
    monkeypatch.setenv("RAG_INGEST__WATCH_DEBOUNCE", str(DEBOUNCE))
    config = make_workspace(tmp_path, keys=False)
    server = ApiServer(config).start()
    try:
        (tmp_path / "docs" / "served.md").write_text("# Served\n\nThe pangolin arrived while the server ran.\n")

        def found() -> bool:
            hits = httpx.post(f"{server.url}/search", json={"query": "pangolin", "mode": "keyword"}, timeout=30).json()["hits"]
            return any(hit["document"] == "docs:served.md" for hit in hits)

        wait_for(found, "a file added while rag serve runs is searchable over HTTP")
    finally:
        server.stop()
    assert not any(thread.name == "rag-watch" and thread.is_alive() for thread in threading.enumerate())

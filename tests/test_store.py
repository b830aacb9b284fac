"""The index folder when writing goes wrong: a read-only or full filesystem (real tmpfs mounts) and
leftovers of a writer killed while pruning. The live version always stays usable."""

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import load_config
from rag.service import LocalRAG
from rag.store import TRASH_PREFIX, VERSIONS, Store



def rag_cli(config: Path, *args):
    """`rag --config config ARGS...` in process: (exit code, what it printed)."""
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def mounted(workspace, request):
    """workspace whose indexes/ folder is a small tmpfs (96 KiB, or the size the test's `size`
    mark names; skipped where mounting is not allowed)."""
    folder = workspace / "indexes"
    folder.mkdir()
    size = request.node.get_closest_marker("size").args[0] if request.node.get_closest_marker("size") else "96k"
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    yield workspace
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_is_reported_with_its_own_exit_code_and_nothing_is_published(mounted):
    (mounted / "docs" / "big.md").write_text("# Big\n\n" + "Filler words about many things. " * 3000, encoding="utf-8")
    code, output = rag_cli(mounted / "config.yml", "ingest")
    assert code == 5, output
    assert "cannot write the index at" in output and ("No space left on device" in output or "disk is full" in output)
    assert Store(load_config(mounted / "config.yml").index_dir).current() is None


@pytest.mark.size("4m")
def test_a_read_only_index_keeps_serving_its_live_version(mounted):
    config = mounted / "config.yml"
    (mounted / "docs" / "notes.txt").unlink()  # small enough for the tmpfs
    assert rag_cli(config, "ingest")[0] == 0
    view = mounted / "read-only"  # a read-only view of the index folder, where the config now points
    view.mkdir()
    subprocess.run(["mount", "--bind", str(mounted / "indexes"), str(view)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    config.write_text(config.read_text().replace("path: indexes", "path: read-only"), encoding="utf-8")
    (mounted / "docs" / "new.md").write_text("# New\n\nA new file about volcanoes.\n", encoding="utf-8")
    code, output = rag_cli(config, "ingest")
    assert code == 5 and "Read-only file system" in output, output
    hits = LocalRAG(load_config(config)).search("back up the indexes folder", limit=2)
    subprocess.run(["umount", "-l", str(view)], capture_output=True)
    assert hits and hits[0].source == "backup.md"


def test_a_writer_killed_while_pruning_leaves_nothing_behind(workspace):
    rag = LocalRAG(load_config(workspace / "config.yml"))
    rag.ingest()
    store = Store(rag.config.index_dir, keep=2)
    live = store.current()
    # what a kill during prune leaves: a version renamed aside and half deleted
    trash = live.parent / f"{TRASH_PREFIX}v-00000000000000000001-1"
    shutil.copytree(live, trash)
    next(trash.rglob("*.json")).unlink()
    (workspace / "docs" / "more.md").write_text("# More\n\nAnother page.\n", encoding="utf-8")
    rag.ingest()
    names = sorted(path.name for path in (rag.config.index_dir / VERSIONS).iterdir())
    assert not [name for name in names if name.startswith(TRASH_PREFIX)]
    assert len(names) == 2 and store.current().name in names

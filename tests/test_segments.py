"""The local store's segments (rag.segments, rag.store): an index written in many small writes, with
deletes and replacements, searches as one index rebuilt from the same rows would (real SciFact
abstracts, real model, real FAISS/BM25/SQLite); crash safety mid-write; merges; segment GC."""

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.config import load_config
from rag.ingest import Ingestor
from rag.search import PassageNotFound, Searcher
from rag.segments import Layout
from rag.store import SEGMENTS, Store

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact-dev"
pytestmark = pytest.mark.skipif(not SCIFACT.exists(), reason="shared scifact-dev dataset not present")

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = 240
MODES = ("hybrid", "dense", "keyword")
FILTERS = (None, "page >= 2")


def configure(folder: Path, name: str, hnsw_above: int = 100_000, **segments) -> Path:
    """A config whose index keeps every write a segment (nothing rewritten or merged) unless told."""
    policy = {"rewrite_below": 0, "merge_ratio": 1000, "max_deltas": 1000, **segments}
    config = folder / f"{name}.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            index:
              name: {name}
              path: indexes
              segments:
                rewrite_below: {policy['rewrite_below']}
                merge_ratio: {policy['merge_ratio']}
                max_deltas: {policy['max_deltas']}
              ann:
                hnsw_above: {hnsw_above}
            ingest:
              sources: []
            """
        ),
        encoding="utf-8",
    )
    return config


def abstracts() -> list[dict]:
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as lines:
        return [json.loads(line) for line, _ in zip(lines, range(DOCUMENTS + 40))]


def rows_of(number: int, abstract: dict, chunks: int = 2) -> list:
    """Chunk rows of document `number`: its abstract split in `chunks` passages."""
    document = f"papers:{number:04d}.pdf"
    words = abstract["text"].split()
    size = max(1, len(words) // chunks)
    rows = []
    for chunk in range(chunks):
        text = f"{abstract['title']}\n" + " ".join(words[chunk * size : (chunk + 1) * size if chunk < chunks - 1 else None])
        rows.append(
            (
                f"{document}#{chunk:04d}",
                {"text": text, "prefix": 0, "source": f"{number:04d}.pdf", "collection": "papers", "document": document, "title": abstract["title"],
                 "heading": "", "page": chunk + 1, "chunk": chunk, "filetype": "pdf", "char_start": 0, "char_end": len(text), "hash": str(number),
                 "tokens": len(text) // 5, "ingested_at": "2026-01-01T00:00:00+00:00"},
            )
        )
    return rows


def claims(count: int) -> list[str]:
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line, _ in zip(lines, range(count))]


def results(config: Path, queries) -> dict:
    searcher = Searcher(load_config(config))
    return {
        (query, mode, where): [(hit.id, hit.score) for hit in searcher.search(query, limit=10, mode=mode, where=where)]
        for query in queries
        for mode in MODES
        for where in FILTERS
    }


def assert_same(got: dict, expected: dict):
    """Same ids in the same order, scores within 1e-5 (ids of scores tied within 1e-5 in any order)."""
    compared = 0
    for key, want in expected.items():
        have = got[key]
        assert len(have) == len(want), key
        for (_, a), (_, b) in zip(have, want):
            assert abs(a - b) < 1e-5, key
        group = lambda hits: sorted((round(score, 4), uid) for uid, score in hits)
        assert group(have) == group(want) or [u for u, _ in have] == [u for u, _ in want], key
        compared += bool(want)
    assert compared >= len(expected) // 2


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A segmented index written in 6 writes (adds, replacements, deletes) and the same final rows
    indexed at once in another index (vectors copied from the first one's cache: nothing re-embedded)."""
    folder = tmp_path_factory.mktemp("segments")
    papers = abstracts()
    segmented = configure(folder, "segmented")
    ingestor = lambda: Ingestor(load_config(segmented))
    final = {}
    for start, end in ((0, 100), (100, 180), (180, DOCUMENTS)):
        batch = [row for n in range(start, end) for row in rows_of(n, papers[n])]
        ingestor().upsert(batch)
        final.update({n: papers[n] for n in range(start, end)})
    # replace 10 documents with other abstracts (now 3 chunks), delete 15, then add 2 new ones
    replaced = {n: papers[DOCUMENTS + n % 40] for n in range(5, 105, 10)}
    ingestor().upsert([row for n, paper in replaced.items() for row in rows_of(n, paper, 3)])
    deleted = list(range(50, 200, 10))
    ingestor().remove([f"papers:{n:04d}.pdf" for n in deleted if n not in replaced])
    ingestor().upsert([row for n in (DOCUMENTS, DOCUMENTS + 1) for row in rows_of(n, papers[n])])
    final.update(replaced)
    final.update({DOCUMENTS: papers[DOCUMENTS], DOCUMENTS + 1: papers[DOCUMENTS + 1]})
    for n in deleted:
        if n not in replaced:
            final.pop(n)

    single = configure(folder, "single")
    shutil.copytree(load_config(segmented).index_dir / "vectors", load_config(single).index_dir / "vectors")
    report = Ingestor(load_config(single)).upsert([row for n in sorted(final) for row in rows_of(n, final[n], 3 if n in replaced else 2)])
    assert report.chunks_embedded == 0
    return {"segmented": segmented, "single": single, "replaced": replaced, "deleted": [n for n in deleted if n not in replaced], "papers": papers}


def test_segmented_index_ranks_as_one_rebuilt_index(corpus):
    layout = Layout.read(Store(load_config(corpus["segmented"]).index_dir).current())
    assert len(layout.parts) == 5 and sum(len(part.tombstones) for part in layout.parts) > 0
    queries = claims(25) + [corpus["papers"][n]["title"] for n in (5, 15, 60, 120)]
    assert_same(results(corpus["segmented"], queries), results(corpus["single"], queries))


def test_the_size_switch_makes_large_segments_hnsw_and_small_ones_exact(corpus, tmp_path):
    import faiss

    config = configure(tmp_path, "switch", hnsw_above=100)
    shutil.copytree(load_config(corpus["single"]).index_dir / "vectors", load_config(config).index_dir / "vectors")
    papers = corpus["papers"]
    Ingestor(load_config(config)).upsert([row for n in range(200) for row in rows_of(n, papers[n])])
    Ingestor(load_config(config)).upsert(rows_of(300, papers[200]))
    store = Store(load_config(config).index_dir)
    indexes = [faiss.read_index(str(store.path / SEGMENTS / part.name / "embeddings")) for part in Layout.read(store.current()).parts]
    kinds = [type(faiss.downcast_index(index.index)).__name__ for index in indexes]
    assert kinds == ["IndexHNSWFlat", "IndexFlatIP"]
    saved = json.loads((store.current() / "config.json").read_text())
    assert saved["backend"] == "faiss" and "annswitch" not in saved  # a plain txtai index
    exact = configure(tmp_path, "exact", hnsw_above=10_000)
    shutil.copytree(load_config(config).index_dir / "vectors", load_config(exact).index_dir / "vectors")
    Ingestor(load_config(exact)).upsert([row for n in range(200) for row in rows_of(n, papers[n])] + rows_of(300, papers[200]))
    searchers = [Searcher(load_config(c)) for c in (config, exact)]
    for query in claims(10):
        found = [[hit.id for hit in searcher.search(query, limit=10, mode="dense")] for searcher in searchers]
        assert found[0] == found[1], query  # ef_search 512 >= 400 vectors: HNSW finds the exact top 10


def test_deleted_and_replaced_chunks_never_resurface(corpus):
    searcher = Searcher(load_config(corpus["segmented"]))
    papers = corpus["papers"]
    for n in corpus["deleted"][:5]:
        for mode in MODES:
            hits = searcher.search(papers[n]["title"], limit=20, mode=mode)
            assert f"papers:{n:04d}.pdf" not in {hit.document for hit in hits}
        with pytest.raises(PassageNotFound):
            searcher.passage(f"papers:{n:04d}.pdf#0000")
    for n, paper in list(corpus["replaced"].items())[:5]:
        hits = searcher.search(papers[n]["title"], limit=20, mode="keyword")
        assert all(hit.title == paper["title"] for hit in hits if hit.document == f"papers:{n:04d}.pdf")
        assert searcher.passage(f"papers:{n:04d}.pdf#0002").title == paper["title"]  # the third chunk is new
        assert searcher.passage(f"papers:{n:04d}.pdf#0000").title == paper["title"]
    assert searcher.info().chunks == len(Store(load_config(corpus["segmented"]).index_dir).manifest().documents) * 2 + len(corpus["replaced"])


def test_a_reader_following_a_write_keeps_the_segments_it_has_open(corpus, tmp_path):
    config = tmp_path / "copy.yml"
    config.write_text(corpus["segmented"].read_text().replace("path: indexes", f"path: {tmp_path / 'indexes'}").replace("name: segmented", "name: copy"))
    shutil.copytree(load_config(corpus["segmented"]).index_dir, load_config(config).index_dir)
    searcher = Searcher(load_config(config))
    searcher.refresh(force=True)
    before = searcher.snapshot.segments
    Ingestor(load_config(config)).upsert(rows_of(900, corpus["papers"][0]))
    assert searcher.refresh(force=True)
    after = searcher.snapshot.segments
    assert after[: len(before)] == before and len(after) == len(before) + 1
    assert searcher.search("anything at all about papers", limit=3)


def test_searches_in_parallel_threads_match_one_thread_while_a_write_is_published(corpus, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    config = tmp_path / "threads.yml"
    config.write_text(corpus["segmented"].read_text().replace("path: indexes", f"path: {tmp_path / 'indexes'}").replace("name: segmented", "name: threads"))
    shutil.copytree(load_config(corpus["segmented"]).index_dir, load_config(config).index_dir)
    queries = claims(12)
    keys = [(query, mode, where) for query in queries for mode in MODES for where in FILTERS]
    rounded = lambda found: {key: [(uid, round(score, 4)) for uid, score in hits] for key, hits in found.items()}
    before = rounded(results(config, queries))
    Ingestor(load_config(config)).upsert([row for n in (10, 11) for row in rows_of(n, corpus["papers"][DOCUMENTS + 20 + n])])
    after = rounded(results(config, queries))
    assert before != after
    # the searches start on the version before the write
    shutil.rmtree(load_config(config).index_dir)
    shutil.copytree(load_config(corpus["segmented"]).index_dir, load_config(config).index_dir)

    searcher = Searcher(load_config(config))
    searcher.refresh(force=True)

    def search(key):
        query, mode, where = key
        return key, [(hit.id, round(hit.score, 4)) for hit in searcher.search(query, limit=10, mode=mode, where=where)]

    with ThreadPoolExecutor(8) as pool:
        running = pool.map(search, keys * 3)
        Ingestor(load_config(config)).upsert([row for n in (10, 11) for row in rows_of(n, corpus["papers"][DOCUMENTS + 20 + n])])
        searcher.refresh(force=True)
        found = list(running) + list(pool.map(search, keys))
    for key, hits in found:
        assert hits in (before[key], after[key]), key
    assert [hits for key, hits in found[-len(keys):]] == [after[key] for key in keys]  # the new version, once swapped in
    assert searcher.searching == {}, "every search let go of its snapshot"


def test_a_merge_keeps_results_and_unused_segments_are_removed(corpus, tmp_path):
    config = tmp_path / "merge.yml"
    config.write_text(corpus["segmented"].read_text().replace("path: indexes", f"path: {tmp_path / 'indexes'}").replace("name: segmented", "name: merge").replace("merge_ratio: 1000", "merge_ratio: 0.01"))
    shutil.copytree(load_config(corpus["segmented"]).index_dir, load_config(config).index_dir)
    store = Store(load_config(config).index_dir, 2, load_config(config).index)
    old = {part.name for part in Layout.read(store.current()).parts}
    ingestor = Ingestor(load_config(config))
    with store.lock(), store.begin(ingestor.settings) as write:  # an empty write: the merge is due
        write.publish(store.manifest())
    merged = Layout.read(store.current())
    assert len(merged.parts) == 1 and not merged.parts[0].tombstones and merged.parts[0].name not in old
    queries = claims(12)
    assert_same(results(config, queries), results(corpus["single"], queries))

    segments = lambda: {path.name for path in (store.path / SEGMENTS).iterdir()}
    assert old <= segments()  # the previous version (kept) still names them
    ingestor.upsert(rows_of(901, corpus["papers"][1]))
    ingestor.upsert(rows_of(902, corpus["papers"][2]))
    named = {part.name for version in store.versions() for part in Layout.read(version).parts}
    assert segments() == named and not old & segments()


WRITER = """
import sys
from rag.config import load_config
from rag.ingest import Ingestor
sys.path.insert(0, {tests!r})
from test_segments import abstracts, rows_of
papers = abstracts()
rows = [row for n in range(0, 200) for row in rows_of(5000 + n, papers[n])]
print("writing", flush=True)
Ingestor(load_config({config!r})).upsert(rows)
"""


def test_sigkill_mid_write_leaves_a_version_that_loads_and_searches(corpus, tmp_path):
    config = tmp_path / "crash.yml"
    config.write_text(corpus["segmented"].read_text().replace("path: indexes", f"path: {tmp_path / 'indexes'}").replace("name: segmented", "name: crash"))
    shutil.copytree(load_config(corpus["segmented"]).index_dir, load_config(config).index_dir)
    store = Store(load_config(config).index_dir)
    before, expected = store.current(), Searcher(load_config(config)).search("cancer cells", limit=5)
    killed = 0
    for delay in (0.0, 0.4, 1.0, 2.0, 3.5):
        process = subprocess.Popen([sys.executable, "-c", WRITER.format(tests=str(ROOT / "tests"), config=str(config))], stdout=subprocess.PIPE, cwd=ROOT)
        process.stdout.readline()
        time.sleep(delay)
        killed += process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        live = store.current()
        assert live in (before, *store.versions())
        hits = Searcher(load_config(config)).search("cancer cells", limit=5)
        assert hits and (live != before or [h.id for h in hits] == [h.id for h in expected])
    assert killed >= 3
    report = Ingestor(load_config(config)).upsert(rows_of(903, corpus["papers"][3]))  # the next writer cleans up
    assert report.version and not list(store.path.glob(".work-*"))
    named = {part.name for version in store.versions() for part in Layout.read(version).parts}
    assert {path.name for path in (store.path / SEGMENTS).iterdir()} == named


def test_an_index_of_the_earlier_layout_is_adopted_by_its_first_segmented_write(workspace):
    """A version folder written before segments (a plain txtai folder with a whole manifest.json)
    becomes the base segment of the next write, and stays searchable after it is pruned."""
    config = configure(workspace, "earlier")
    config.write_text(config.read_text().replace("sources: []", "sources:\n    - name: docs\n      path: docs"))
    Ingestor(load_config(config)).run()
    store = Store(load_config(config).index_dir)
    version = store.current()
    shutil.rmtree(store.path / SEGMENTS)
    whole = store.manifest()
    for name in ("segments.json", "manifest-base.json", "manifest.json"):
        (version / name).unlink()
    whole.write(version)
    assert [hit.source for hit in Searcher(load_config(config)).search("giraffe", mode="keyword")] == ["notes.txt"]
    for number in range(3):
        (workspace / "docs" / f"new-{number}.md").write_text(f"# Volcanoes {number}\n\nLava and ash of volcano number {number}.\n")
        Ingestor(load_config(config)).run()
    assert version not in store.versions() and len(Layout.read(store.current()).parts) == 4
    searcher = Searcher(load_config(config))
    assert searcher.search("giraffe", mode="keyword")[0].source == "notes.txt"
    assert searcher.search("volcano number 2 lava", mode="keyword")[0].source == "new-2.md"
    assert searcher.info().documents == 6

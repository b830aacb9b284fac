"""The vector cache: what is embedded once is never embedded again (real model, real FAISS,
real SQLite, a real SIGKILL)."""

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import faiss
import numpy as np
from txtai.models.pooling.base import Pooling

from rag.config import load_config
from rag.ingest import Ingestor
from rag.search import Searcher
from rag.store import Store
from rag.vectorcache import FILE, VectorCache, text_key

PARAGRAPHS = [
    f"Section {n} of the handbook explains how the {topic} works in practice. It lists the steps an operator "
    f"takes, the settings that matter and the mistakes people make most often with the {topic}. A short example "
    f"closes the part, with the expected output and what to check when the output differs from it."
    for n, topic in enumerate(
        ["backup job", "restore tool", "index builder", "search service", "upload form", "API gateway", "scheduler", "model cache", "log rotation", "metrics exporter"]
    )
]


def configure(folder, batch=1024, keep_versions=2, keep_unused_hours=168):
    (folder / "docs").mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text(
        textwrap.dedent(
            f"""\
            index:
              name: test
              path: indexes
              keep_versions: {keep_versions}
              vector_cache: {{keep_unused_hours: {keep_unused_hours}}}
              embeddings:
                path: sentence-transformers/all-MiniLM-L6-v2
                content: true
                hybrid: true
                backend: faiss
                faiss: {{components: "IDMap,Flat"}}
                scoring: {{method: bm25, terms: true, normalize: true}}
                batch: {batch}
                encodebatch: 32
            ingest:
              sources: [{{name: docs, path: docs}}]
              chunking: {{max_tokens: 120, overlap: 16}}
            """
        ),
        encoding="utf-8",
    )
    return load_config(folder / "config.yml")


def without_cache(config):
    cache = config.index.vector_cache.model_copy(update={"enabled": False})
    return config.model_copy(update={"index": config.index.model_copy(update={"vector_cache": cache})})


def handbook(paragraphs) -> str:
    return "# Handbook\n\n" + "\n\n".join(paragraphs) + "\n"


def live_texts(config) -> list[str]:
    with sqlite3.connect(Store(config.index_dir).current() / "documents") as db:
        return [text for (text,) in db.execute("select text from sections order by id")]


def live_vectors(config) -> dict:
    """id -> vector, read from the live version's FAISS index."""
    current = Store(config.index_dir).current()
    index = faiss.read_index(str(current / "embeddings"))  # IDMap,Flat: the vectors and their index ids
    vectors, indexids = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal), faiss.vector_to_array(index.id_map)
    with sqlite3.connect(current / "documents") as db:
        ids = dict(db.execute("select indexid, id from sections"))
    return {ids[int(n)]: vector for n, vector in zip(indexids, vectors) if int(n) in ids}


class ModelCalls:
    """Counts the texts the real embedding model (txtai's transformers pooling) is given to encode."""

    def __enter__(self):
        self.texts, encode = 0, Pooling.encode

        def counted(model, documents, *args, **kwargs):
            self.texts += len(documents)
            return encode(model, documents, *args, **kwargs)

        self.encode, Pooling.encode = encode, counted
        return self

    def __exit__(self, *_):
        Pooling.encode = self.encode


def test_a_rebuild_with_a_warm_cache_embeds_nothing_and_keeps_the_vectors(tmp_path):
    config = configure(tmp_path)
    (tmp_path / "docs" / "handbook.md").write_text(handbook(PARAGRAPHS))
    (tmp_path / "docs" / "notes.md").write_text("# Notes\n\nThe giraffe is the tallest living terrestrial animal.\n")
    cold = Ingestor(config).run()
    assert cold.chunks_embedded == cold.chunks >= 8
    before = live_vectors(config)

    with ModelCalls() as calls:
        warm = Ingestor(config).run(rebuild=True)
    assert warm.rebuilt and warm.chunks_added == cold.chunks
    assert warm.chunks_embedded == 0 and calls.texts == 0
    after = live_vectors(config)
    assert after.keys() == before.keys()
    assert all(np.array_equal(before[uid], after[uid]) for uid in before)
    assert Searcher(config).search("tallest animal", mode="dense")[0].source == "notes.md"


def test_the_cache_gives_the_vectors_the_model_gives(tmp_path):
    uncached, cached = without_cache(configure(tmp_path / "a")), configure(tmp_path / "b")
    for folder in (tmp_path / "a", tmp_path / "b"):
        (folder / "docs" / "handbook.md").write_text(handbook(PARAGRAPHS[:4]))
    Ingestor(uncached).run()
    Ingestor(cached).run()
    Ingestor(cached).run(rebuild=True)  # from the cache
    assert not (uncached.index_dir / "vectors").exists()
    plain, from_cache = live_vectors(uncached), live_vectors(cached)
    assert plain.keys() == from_cache.keys()
    assert all(np.allclose(plain[uid], from_cache[uid], atol=1e-6) for uid in plain)


def test_editing_one_paragraph_embeds_only_the_chunks_whose_text_changed(tmp_path):
    config = configure(tmp_path)
    document = tmp_path / "docs" / "handbook.md"
    document.write_text(handbook(PARAGRAPHS))
    first = Ingestor(config).run()
    before = live_texts(config)

    edited = list(PARAGRAPHS)
    edited[5] = edited[5].replace("the settings that matter", "the three settings that matter most")
    document.write_text(handbook(edited))
    with ModelCalls() as calls:
        second = Ingestor(config).run()
    changed = set(live_texts(config)) - set(before)
    assert second.updated == ["docs:handbook.md"] and second.chunks_added == first.chunks >= 8
    assert second.chunks_embedded == calls.texts == len(changed) == 1
    assert "three settings" in changed.pop()


def test_identical_chunks_in_several_files_are_embedded_once(tmp_path):
    config = configure(tmp_path)
    for name in ("a.md", "b.md", "c.md"):
        (tmp_path / "docs" / name).write_text(handbook(PARAGRAPHS[:3]))
    (tmp_path / "docs" / "d.md").write_text("# Other\n\nSomething else entirely.\n")
    with ModelCalls() as calls:
        report = Ingestor(config).run()
    texts = live_texts(config)
    assert report.chunks == len(texts) == 3 * len(set(texts)) - 2
    assert report.chunks_embedded == calls.texts == len(set(texts))


def test_a_killed_ingest_resumes_without_embedding_again_what_it_had_embedded(tmp_path):
    config = configure(tmp_path, batch=8)
    for n in range(40):
        (tmp_path / "docs" / f"report-{n:02d}.md").write_text(
            handbook([f"Report {n}, part {p}: " + paragraph for p, paragraph in enumerate(PARAGRAPHS[:4])])
        )
    cache = config.index_dir / "vectors" / FILE
    process = subprocess.Popen([sys.executable, "-m", "rag.cli", "--config", str(config.file), "ingest"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, cached = time.monotonic() + 300, 0
    while process.poll() is None and time.monotonic() < deadline and cached < 40:
        time.sleep(0.2)
        if cache.exists():
            with sqlite3.connect(cache) as db:
                cached = db.execute("select count(*) from vectors").fetchone()[0]
    assert process.poll() is None, "the ingest ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert Store(config.index_dir).current() is None, "killed before it published"
    with sqlite3.connect(cache) as db:
        kept = db.execute("select count(*) from vectors").fetchone()[0]
    assert kept >= 40

    with ModelCalls() as calls:
        report = Ingestor(config).run()
    distinct = len(set(live_texts(config)))
    assert report.chunks == distinct == 160
    assert report.chunks_embedded == calls.texts == distinct - kept


def test_vectors_no_kept_version_holds_are_collected(tmp_path):
    config = configure(tmp_path, keep_versions=1, keep_unused_hours=0)
    document = tmp_path / "docs" / "handbook.md"
    document.write_text(handbook(PARAGRAPHS[:3]))
    Ingestor(config).run()
    old = live_texts(config)
    document.write_text(handbook([p.replace("operator", "administrator") for p in PARAGRAPHS[:3]]))
    Ingestor(config).run()
    new = live_texts(config)
    ingestor = Ingestor(config)
    cache = VectorCache(ingestor.vectors_dir, ingestor.settings["vectorcache"]["model"])
    assert cache.count() == len(set(old) | set(new))

    with ingestor.store.lock():
        ingestor.collect(live=len(new), force=True)
    assert cache.count() == len(set(new))
    assert not cache.get([text_key(text) for text in set(old) - set(new)])
    assert len(cache.get([text_key(text) for text in new])) == len(set(new))
    assert Ingestor(config).run(rebuild=True).chunks_embedded == 0


def test_unused_vectors_younger_than_the_bound_are_kept_for_a_resume(tmp_path):
    config = configure(tmp_path, keep_versions=1, keep_unused_hours=1)
    document = tmp_path / "docs" / "handbook.md"
    document.write_text(handbook(PARAGRAPHS[:2]))
    Ingestor(config).run()
    document.write_text(handbook(PARAGRAPHS[2:4]))
    Ingestor(config).run()
    ingestor = Ingestor(config)
    with ingestor.store.lock():
        ingestor.collect(live=2, force=True)
    document.write_text(handbook(PARAGRAPHS[:2]))
    assert Ingestor(config).run().chunks_embedded == 0


def test_an_index_built_without_the_cache_is_not_rebuilt_and_stays_plain_txtai(tmp_path):
    config = configure(tmp_path)
    plain = without_cache(config)
    (tmp_path / "docs" / "a.md").write_text(handbook(PARAGRAPHS[:2]))
    Ingestor(plain).run()
    (tmp_path / "docs" / "b.md").write_text("# Other\n\nSomething else entirely.\n")
    report = Ingestor(config).run()
    assert not report.rebuilt and report.added == ["docs:b.md"] and report.chunks_embedded == 1
    saved = json.loads((Store(config.index_dir).current() / "config.json").read_text())
    assert "method" not in saved and "vectorcache" not in saved and saved["scoring"]["method"] == "bm25"
    assert Searcher(config).search("Something else", mode="keyword")[0].source == "b.md"

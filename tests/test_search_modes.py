"""`dense` and `keyword` search only their own index, with txtai's rankings, filters included
(real model, real FAISS and BM25, on the shipped sample documents)."""

import shutil
from pathlib import Path

import pytest

from rag.config import load_config
from rag.index import COLUMNS
from rag.ingest import Ingestor
from rag.search import Searcher, checked_filter, one_thread
from tests.conftest import write_config

DATA = Path(__file__).resolve().parent.parent / "data"
QUERIES = [
    "How do I back up the index?",
    "install with docker compose",
    "which embedding model is used",
    "upload a PDF over the HTTP API",
    "API keys and scopes",
    "what happens when a file is deleted",
    "chunk size and overlap",
    "evaluate retrieval quality nDCG",
    "run a workflow on a schedule",
    "Ollama is not reachable",
    "hybrid search weights",
    "security of uploaded files",
]
FILTERS = [None, "filetype = 'md'", "source like 'guide/%' and chunk >= 1"]


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modes")
    shutil.copytree(DATA, folder / "docs", ignore=shutil.ignore_patterns("_build"))
    write_config(folder)
    config = load_config(folder / "config.yml")
    assert Ingestor(config).run().chunks > 30
    searcher = Searcher(config)
    searcher.refresh(force=True)
    return searcher


def txtai_search(searcher, query, mode, where):
    """Today's query: txtai's own search of both indexes, the mode only setting the fusion weight."""
    condition = checked_filter(where)
    weights = {"hybrid": searcher.config.search.weights, "dense": 1.0, "keyword": 0.0}[mode]
    sql = (
        f"select id, text, score, {', '.join(COLUMNS)} from txtai where similar(:query, '50', '{weights}')"
        + (f" and ({condition.text})" if condition else "")
        + " limit 10"
    )
    with one_thread():  # as a Searcher encodes (the float sums of 1 and 2 torch threads differ in the 7th digit)
        rows = searcher.snapshot.embeddings.search(sql, parameters={"query": query, **(condition.parameters if condition else {})})
    return [(row["id"], round(row["score"], 6)) for row in rows if mode != "keyword" or row["score"] > 0]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_mode_ranks_as_txtai_did_with_and_without_filters(searcher, mode):
    compared = 0
    for query in QUERIES:
        for where in FILTERS:
            expected = txtai_search(searcher, query, mode, where)
            hits = searcher.search(query, limit=10, mode=mode, where=where)
            assert [(hit.id, round(hit.score, 6)) for hit in hits] == expected, (query, where)
            if where == "filetype = 'md'":
                assert all(hit.filetype == "md" for hit in hits)
            compared += bool(expected)
    assert compared >= len(QUERIES) * 2


class Counted:
    """Counts the calls of one method of a real object (which still does the work)."""

    def __init__(self, target, name):
        self.calls, self.method = 0, getattr(target, name)
        setattr(target, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.method(*args, **kwargs)


def test_each_mode_searches_only_the_indexes_it_needs(searcher):
    dense = Counted(searcher.snapshot.embeddings.ann, "search")
    keyword = Counted(searcher.snapshot.embeddings.scoring, "search")
    try:
        for mode, expected in {"dense": (1, 0), "keyword": (0, 1), "hybrid": (1, 1)}.items():
            before = dense.calls, keyword.calls
            assert searcher.search("How do I back up the index?", mode=mode, where="filetype = 'md'")
            assert (dense.calls - before[0], keyword.calls - before[1]) == expected, mode
    finally:
        del searcher.snapshot.embeddings.ann.search, searcher.snapshot.embeddings.scoring.search

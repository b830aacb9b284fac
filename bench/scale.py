"""The local index at 10k and 100k chunks (1M with --million): build, load, search, one-document writes.

Every index is written through the project's own write path (rag.ingest.Ingestor.upsert, as
workflows do: SQLite content, BM25 and FAISS all real) with realistic texts and metadata:
passages of 3-7 sentences of the SciFact abstracts (title + heading prefix, a sentence of another
abstract mixed in, so passages are distinct), 20 passages a document, PDF-like metadata.

Document vectors are simulated, so an index is built in minutes, not hours: `--sample` SciFact
passages are embedded for real (once; kept in the bench's vector cache), and each passage's vector
is one of those plus Gaussian noise (cosine ~0.85 to it), normalized. They are fed to the index
through the vector cache (rag.vectorcache): the write path looks them up instead of encoding.
Query encoding is real: ~50 SciFact claims.

Each phase runs in its own process (peak RSS per phase): build; search (load time, p50/p95 per
mode, this code beside txtai's own search of both indexes with txtai's BM25, dense recall@10 vs
exact, searcher RSS); write (upsert of one 3-chunk document, then its delete: seconds and bytes
written, from /proc/self/io); and at 100k approximate FAISS indexes (IVF, HNSW) on the same vectors.
Figures of today (issue 12) are printed beside.

    python bench/scale.py [--sizes 10000 100000] [--million] [--rounds 3] [--json]
"""

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rag.config import load_config  # noqa: E402
from rag.index import COLUMNS, folder_size, open_embeddings  # noqa: E402
from rag.ingest import Ingestor  # noqa: E402
from rag.manifest import chunk_id  # noqa: E402
from rag.vectorcache import VectorCache, embedded_text, text_key  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "scifact-dev"
CHUNKS_PER_DOCUMENT = 20
NOISE = 0.03  # per dimension: |noise| ~ 0.59, cosine to the base vector ~0.86
# Issue 12, measured with the code before it: hybrid p50, one-document write s, bytes written, on disk
TODAY = {
    10_000: {"hybrid_p50_ms": 28, "write_s": 0.34, "write_bytes": 79e6, "disk_bytes": 57e6},
    100_000: {"hybrid_p50_ms": 55, "dense_p50_ms": 55, "keyword_p50_ms": 55, "write_s": 1.75, "write_bytes": 758e6, "disk_bytes": 553e6},
    1_000_000: {"hybrid_p50_ms": 445, "hybrid_p95_ms": 1000, "write_s": 30.6, "delete_s": 25, "write_bytes": 8.0e9, "disk_bytes": 5.5e9},
}


# ---- corpus ---------------------------------------------------------------------


def abstracts(dataset: Path) -> list[tuple[str, list[str]]]:
    """(title, sentences) of every SciFact abstract."""
    rows = []
    with open(dataset / "corpus.jsonl", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            sentences = [s for s in re.split(r"(?<=[.!?])\s+", row["text"]) if s]
            if len(sentences) >= 3:
                rows.append((row["title"], sentences))
    return rows


def corpus(size: int, dataset: Path, seed: int = 0) -> list[tuple[str, dict]]:
    """`size` chunk rows (id, data) as rag.ingest.chunk_rows makes them, deterministic per seed."""
    rng = np.random.default_rng(seed)
    source = abstracts(dataset)
    rows = []
    for number in range(size):
        document, chunk = divmod(number, CHUNKS_PER_DOCUMENT)
        title, sentences = source[(document * 7919) % len(source)]
        start = int(rng.integers(0, max(1, len(sentences) - 2)))
        body = sentences[start : start + int(rng.integers(3, 8))]
        _, other = source[int(rng.integers(0, len(source)))]
        body.insert(int(rng.integers(0, len(body) + 1)), other[int(rng.integers(0, len(other)))])
        heading = f"Section {chunk // 4 + 1}"
        prefix = f"{title} > {heading}\n"
        text = " ".join(body)
        name = f"papers/{document:06d}.pdf"
        rows.append(
            (
                chunk_id(f"library:{name}", chunk),
                {
                    "text": prefix + text,
                    "prefix": len(prefix),
                    "source": name,
                    "collection": "library",
                    "document": f"library:{name}",
                    "title": title,
                    "heading": heading,
                    "page": chunk // 2 + 1,
                    "chunk": chunk,
                    "filetype": "pdf",
                    "char_start": chunk * 900,
                    "char_end": chunk * 900 + len(text),
                    "hash": hashlib.sha256(name.encode()).hexdigest(),
                    "tokens": len(text) // 5,
                    "ingested_at": "2026-01-01T00:00:00+00:00",
                },
            )
        )
    return rows


def queries(dataset: Path, count: int) -> list[str]:
    with open(dataset / "queries.jsonl", encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    return texts[:: max(1, len(texts) // count)][:count]


# ---- setup ------------------------------------------------------------------------


def bench_config(root: Path, size: int):
    """The project's config.yml with the index at root/indexes/scale-<size>."""
    config = load_config(ROOT / "config.yml", environ={})
    return config.model_copy(update={"index": config.index.model_copy(update={"path": root / "indexes", "name": f"scale-{size}"})})


def base_vectors(root: Path, dataset: Path, sample: int) -> np.ndarray:
    """Real vectors of `sample` passages, embedded once and kept in the bench's vector cache."""
    config = bench_config(root, 0)
    ingestor = Ingestor(config)
    texts = [data["text"] for _, data in corpus(sample, dataset, seed=1)]
    embeddings = open_embeddings(None, ingestor.settings)
    started = time.perf_counter()
    vectors = embeddings.batchtransform(((None, text, None) for text in texts), "data")
    encoded = embeddings.model.encoded
    embeddings.close()
    if encoded:
        print(f"embedded {encoded} sample passages in {time.perf_counter() - started:.0f}s (kept for the next run)", file=sys.stderr)
    return vectors


def simulate(size: int, base: np.ndarray, seed: int = 2) -> np.ndarray:
    """One base vector plus Gaussian noise per chunk, normalized."""
    rng = np.random.default_rng(seed)
    vectors = base[rng.integers(0, len(base), size)] + rng.normal(0, NOISE, (size, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def feed(config, rows: list, vectors: np.ndarray):
    """Puts the vectors of rows into the index's vector cache, keyed as the write path looks them up."""
    ingestor = Ingestor(config)
    cache = VectorCache(ingestor.vectors_dir, ingestor.settings["vectorcache"]["model"])
    keys = [text_key(embedded_text(data["text"], ingestor.settings)) for _, data in rows]
    for start in range(0, len(keys), 10_000):
        cache.put(keys[start : start + 10_000], vectors[start : start + 10_000])
    cache.close()


def written() -> int:
    """Bytes this process caused to be written to storage so far (/proc/self/io write_bytes)."""
    with open("/proc/self/io", encoding="ascii") as handle:
        return int(dict(line.split(": ") for line in handle.read().splitlines())["write_bytes"])


# ---- phases (each in its own process) ------------------------------------------------


def build(args) -> dict:
    config = bench_config(args.root, args.size)
    rows = corpus(args.size, args.dataset)
    before, started = written(), time.perf_counter()
    report = Ingestor(config).upsert(rows)
    seconds = time.perf_counter() - started
    return {"build_s": seconds, "embedded": report.chunks_embedded, "build_bytes": written() - before}


def timed(function, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) * 1000 / repeat


def txtai_search(embeddings, query: str, mode: str, weights: float):
    """Today's search: txtai runs both indexes, the mode only sets the fusion weight."""
    weight = {"hybrid": weights, "dense": 1.0, "keyword": 0.0}[mode]
    sql = f"select id, text, score, {', '.join(COLUMNS)} from txtai where similar(:query, '50', '{weight}') limit 5"
    return embeddings.search(sql, parameters={"query": query})


def search(args) -> dict:
    from txtai import Embeddings

    from rag.search import Searcher
    from rag.store import Store

    config = bench_config(args.root, args.size)
    texts = queries(args.dataset, args.queries)
    searcher = Searcher(config)
    started = time.perf_counter()
    searcher.refresh(force=True)
    load = time.perf_counter() - started
    current = Store(config.index_dir).current()
    # txtai as it was: its own BM25 and search, nothing of rag.index's
    today = Embeddings().load(str(current), config={"path": config.embeddings_settings()["path"]})
    for query in texts:  # warm-up: every query once on both paths (model, caches, mapped pages)
        searcher.search(query), txtai_search(today, query, "hybrid", config.search.weights)

    figures = {"load_s": load}
    for mode in ("hybrid", "dense", "keyword"):
        ours, theirs = [], []
        for _ in range(args.rounds):  # alternate, so both see the same machine load
            for query in texts:
                ours.append(timed(lambda: searcher.search(query, limit=5, mode=mode)))
                theirs.append(timed(lambda: txtai_search(today, query, mode, config.search.weights)))
        figures[f"{mode}_p50_ms"], figures[f"{mode}_p95_ms"] = percentile(ours, 50), percentile(ours, 95)
        figures[f"{mode}_txtai_p50_ms"], figures[f"{mode}_txtai_p95_ms"] = percentile(theirs, 50), percentile(theirs, 95)
    figures["recall@10"] = dense_recall(searcher, texts)
    figures["searcher_rss_mb"] = rss_mb()
    if args.ann:
        figures.update(approximate(searcher, texts, args.rounds))
    return figures


def index_vectors(embeddings):
    """(index ids, vectors) of an IDMap,Flat FAISS index."""
    import faiss

    backend = embeddings.ann.backend
    return faiss.vector_to_array(backend.id_map), faiss.downcast_index(backend.index).reconstruct_n(0, backend.ntotal)


def dense_recall(searcher, texts) -> float:
    """Top-10 ids of dense search vs exact inner product over every stored vector."""
    ids, vectors = index_vectors(searcher.snapshot.embeddings)
    found = 0
    for query in texts:
        vector = searcher.snapshot.embeddings.batchtransform([(None, query, None)], "query")[0]
        exact = set(ids[np.argsort(-(vectors @ vector))[:10]].tolist())
        got = {indexid for indexid, _ in searcher.snapshot.embeddings.ann.search(vector[np.newaxis], 10)[0]}
        found += len(exact & got)
    return found / (10 * len(texts))


def approximate(searcher, texts, rounds) -> dict:
    """Recall@10 vs exact and latency of IVF and HNSW indexes on the same vectors (faiss directly)."""
    import faiss

    _, vectors = index_vectors(searcher.snapshot.embeddings)
    queries_ = searcher.snapshot.embeddings.batchtransform([(None, query, None) for query in texts], "query").astype(np.float32)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    truth = [set(row.tolist()) for row in exact.search(queries_, 10)[1]]

    def measure(index, name):
        latencies, found = [], 0
        for _ in range(rounds):
            for n, query in enumerate(queries_):
                started = time.perf_counter()
                _, got = index.search(query[np.newaxis], 10)
                latencies.append((time.perf_counter() - started) * 1000)
                found += len(truth[n] & set(got[0].tolist()))
        flat = [timed(lambda: exact.search(query[np.newaxis], 10)) for query in queries_]
        return {f"{name}": {"recall@10": round(found / (10 * len(queries_) * rounds), 3), "p50_ms": round(percentile(latencies, 50), 2), "exact_p50_ms": round(percentile(flat, 50), 2)}}

    results = {}
    cells = max(1, round(4 * math.sqrt(len(vectors))))
    for storage in ("Flat", "SQ8"):
        started = time.perf_counter()
        ivf = faiss.index_factory(vectors.shape[1], f"IVF{cells},{storage}", faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors)
        ivf.add(vectors)
        built = time.perf_counter() - started
        for nprobe in (8, 16, 32, 64):
            ivf.nprobe = nprobe
            results.update(measure(ivf, f"IVF{cells},{storage} nprobe={nprobe}"))
        results[f"IVF{cells},{storage} build_s"] = round(built, 1)
    started = time.perf_counter()
    hnsw = faiss.index_factory(vectors.shape[1], "HNSW32", faiss.METRIC_INNER_PRODUCT)
    hnsw.add(vectors)
    results["HNSW32 build_s"] = round(time.perf_counter() - started, 1)
    for ef in (32, 64, 128):
        hnsw.hnsw.efSearch = ef
        results.update(measure(hnsw, f"HNSW32 efSearch={ef}"))
    return {"ann": results}


def write(args) -> dict:
    """Upserts one new 3-chunk document (vectors in the cache), then deletes it."""
    config = bench_config(args.root, args.size)
    rows = [(uid.replace("papers/", "new/"), {**data, "document": data["document"].replace("papers/", "new/"), "source": data["source"].replace("papers/", "new/")}) for uid, data in corpus(3, args.dataset, seed=3)]
    before, started = written(), time.perf_counter()
    Ingestor(config).upsert(rows)
    upsert = time.perf_counter() - started, written() - before
    before, started = written(), time.perf_counter()
    Ingestor(config).remove([rows[0][1]["document"]])
    delete = time.perf_counter() - started, written() - before
    return {"upsert_s": upsert[0], "upsert_bytes": upsert[1], "delete_s": delete[0], "delete_bytes": delete[1]}


def percentile(values, q) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024


PHASES = {"build": build, "search": search, "write": write}


def run_phase(args, phase: str, size: int, ann: bool = False) -> dict:
    """Runs a phase in a child process; adds its peak RSS."""
    command = [sys.executable, __file__, "--phase", phase, "--size", str(size), "--root", str(args.root), "--dataset", str(args.dataset)]
    command += ["--queries", str(args.queries), "--rounds", str(args.rounds)] + (["--ann"] if ann else [])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"phase {phase} at {size} failed")
    return {**json.loads(output.splitlines()[-1]), f"{phase}_peak_rss_mb": usage.ru_maxrss / 1024}


def measure_size(args, size: int, base: np.ndarray) -> dict:
    config = bench_config(args.root, size)
    shutil.rmtree(config.index_dir, ignore_errors=True)
    rows = corpus(size, args.dataset)
    feed(config, rows + corpus(3, args.dataset, seed=3), simulate(size + 3, base))
    del rows
    figures = {"chunks": size}
    figures.update(run_phase(args, "build", size))
    from rag.store import Store

    figures["disk_bytes"] = folder_size(Store(config.index_dir).current())
    figures["vector_cache_bytes"] = folder_size(config.index_dir / "vectors")
    figures.update(run_phase(args, "search", size, ann=args.ann_at == size))
    writes = [run_phase(args, "write", size) for _ in range(args.write_rounds)]
    for key in writes[0]:
        figures[key] = statistics.median(w[key] for w in writes)
    if not args.keep:
        shutil.rmtree(config.index_dir, ignore_errors=True)
    return figures


def show(figures: dict):
    size, today = figures["chunks"], TODAY.get(figures["chunks"], {})
    mb = lambda value: f"{value / 1e6:,.0f} MB"  # noqa: E731

    def line(label, value, before=None):
        print(f"  {label:<34} {value:>14}" + (f"   today: {before}" if before is not None else ""))

    print(f"\n{size:,} chunks")
    line("build (upsert of all rows)", f"{figures['build_s']:.1f} s")
    line("build peak RSS", f"{figures['build_peak_rss_mb']:,.0f} MB")
    line("on disk (live version)", mb(figures["disk_bytes"]), mb(today["disk_bytes"]) if "disk_bytes" in today else None)
    line("vector cache on disk", mb(figures["vector_cache_bytes"]))
    line("load (Searcher)", f"{figures['load_s']:.2f} s")
    for mode in ("hybrid", "dense", "keyword"):
        txtai_figure = f"txtai as today {figures[f'{mode}_txtai_p50_ms']:.1f}/{figures[f'{mode}_txtai_p95_ms']:.1f} ms here"
        issue = today.get(f"{mode}_p50_ms")
        line(f"{mode} p50/p95", f"{figures[f'{mode}_p50_ms']:.1f}/{figures[f'{mode}_p95_ms']:.1f} ms", txtai_figure + (f"; issue: {issue} ms" if issue else ""))
    line("dense recall@10 vs exact", f"{figures['recall@10']:.3f}")
    line("searcher RSS", f"{figures['searcher_rss_mb']:,.0f} MB")
    line("one-document upsert (3 chunks)", f"{figures['upsert_s']:.2f} s", f"{today['write_s']} s" if "write_s" in today else None)
    line("  bytes written", mb(figures["upsert_bytes"]), mb(today["write_bytes"]) if "write_bytes" in today else None)
    line("one-document delete", f"{figures['delete_s']:.2f} s", f"{today['delete_s']} s" if "delete_s" in today else None)
    line("  bytes written", mb(figures["delete_bytes"]))
    for name, value in figures.get("ann", {}).items():
        line(name, json.dumps(value) if isinstance(value, dict) else f"{value}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 chunks (hours, ~10 GB)")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--root", type=Path, default=Path("/tmp/localrag-scale"), help="work folder (indexes, vector cache)")
    parser.add_argument("--sample", type=int, default=2000, help="passages embedded for real as bases of the simulated vectors")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="search rounds over the queries (medians of all)")
    parser.add_argument("--write-rounds", type=int, default=3, help="upsert+delete rounds (median)")
    parser.add_argument("--ann-at", type=int, default=100_000, help="size at which approximate indexes are measured (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the indexes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ann", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    args.root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", file=sys.stderr)
    base = base_vectors(args.root, args.dataset, args.sample)
    results = []
    for size in args.sizes + ([1_000_000] if args.million else []):
        figures = measure_size(args, size, base)
        results.append(figures)
        if args.json:
            print(json.dumps(figures), flush=True)
        else:
            show(figures)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()

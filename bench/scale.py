"""The local index at 10k and 100k chunks (1M with --million): build, load, search, one-document writes.

Every index is written through the project's own store (rag.store: begin/add/publish, one lazy
generator of rows, as a big ingest does; SQLite content, BM25 and FAISS all real) with realistic
texts and metadata: passages of 3-7 sentences of the SciFact abstracts (title + heading prefix, a
sentence of another abstract mixed in, so passages are distinct), 20 passages a document, PDF-like
metadata. The size switch of `index.ann` applies (HNSW at 100k chunks and above, exact below).

Document vectors are simulated, so an index is built in minutes, not hours: `--sample` SciFact
passages are embedded for real (once; kept in the bench's vector cache), and each passage's vector
is one of those plus Gaussian noise (cosine ~0.85 to it), normalized, generated per block of 10k
from a seed (so the search phase regenerates them for exact ground truth). They are fed to the index
through the vector cache (rag.vectorcache): the write path looks them up instead of encoding.
Query encoding is real: ~50 SciFact claims.

Each phase runs in its own process (peak RSS per phase): build; search (load time, p50/p95 per
mode beside txtai's own search of the same one-segment index, dense recall@10 vs exact search over
every vector, searcher RSS; then, while it serves, one-document upserts and deletes run in child
processes (seconds, bytes written from /proc/<pid>/io), the reader follows each new version
(reload time) and the searches are timed again on the segmented version); merge (the deltas
compacted into a new base: seconds, bytes). Figures of today (issue 12) are printed beside.

    python bench/scale.py [--sizes 10000 100000] [--million] [--rounds 3] [--json]
"""

import argparse
import hashlib
import itertools
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

import numpy as np

from rag.config import load_config
from rag.index import COLUMNS, folder_size, open_embeddings
from rag.ingest import Ingestor
from rag.manifest import chunk_id
from rag.vectorcache import VectorCache, embedded_text, text_key

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
    return list(chunks(size, dataset, seed))


def chunks(size: int, dataset: Path, seed: int = 0):
    """The rows of `corpus`, one at a time."""
    rng = np.random.default_rng(seed)
    source = abstracts(dataset)
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
        yield (
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


BLOCK = 10_000


def simulate(start: int, stop: int, base: np.ndarray, seed: int = 2) -> np.ndarray:
    """Vectors of chunks start..stop: one base vector plus Gaussian noise per chunk, normalized;
    generated per block of BLOCK chunks from (seed, block), so any range is reproducible."""
    parts = []
    for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        rng = np.random.default_rng([seed, block])
        vectors = base[rng.integers(0, len(base), BLOCK)] + rng.normal(0, NOISE, (BLOCK, base.shape[1])).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        first = block * BLOCK
        parts.append(vectors[max(start, first) - first : min(stop, first + BLOCK) - first])
    return np.concatenate(parts)


def feed(config, rows, vectors: np.ndarray):
    """Puts the vectors of rows into the index's vector cache, keyed as the write path looks them up."""
    ingestor = Ingestor(config)
    cache = VectorCache(ingestor.vectors_dir, ingestor.settings["vectorcache"]["model"])
    keys = [text_key(embedded_text(data["text"], ingestor.settings)) for _, data in rows]
    cache.put(keys, vectors)
    cache.close()


def new_document(number: int = 0) -> list:
    """A 3-chunk document the write phase upserts (the same texts each time: their vectors are cached)."""
    rows = corpus(3, DATASET, seed=3)
    moved = lambda value: value.replace("papers/", f"new/{number}-")
    return [(moved(uid), {**data, "document": moved(data["document"]), "source": moved(data["source"])}) for uid, data in rows]


def written(pid="self") -> int:
    """Bytes a process caused to be written to storage so far (/proc/<pid>/io write_bytes)."""
    with open(f"/proc/{pid}/io", encoding="ascii") as handle:
        return int(dict(line.split(": ") for line in handle.read().splitlines())["write_bytes"])


# ---- phases (each in its own process) ------------------------------------------------


def recorded(rows, manifest):
    """The rows, each chunk counted in manifest under its document (as an ingest records them)."""
    from rag.manifest import DocumentRecord

    for uid, data in rows:
        record = manifest.documents.setdefault(
            data["document"], DocumentRecord(collection=data["collection"], source=data["source"], hash=data["hash"], title=data["title"], filetype="pdf", chunks=0)
        )
        record.chunks += 1
        yield uid, data


def build(args) -> dict:
    """One lazy generator of every row into a fresh version (as `rag ingest --rebuild` does)."""
    from rag.ingest import fingerprint
    from rag.manifest import Manifest
    from rag.store import open_store

    config = bench_config(args.root, args.size)
    ingestor, store = Ingestor(config), open_store(config)
    manifest = Manifest(fingerprint=fingerprint(config))


    before, started = written(), time.perf_counter()
    with store.lock(), store.begin(ingestor.settings, rebuild=True) as write:
        embedded = write.add(recorded(chunks(args.size, args.dataset), manifest))
        write.publish(manifest)
    return {"build_s": time.perf_counter() - started, "embedded": embedded, "build_bytes": written() - before}


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


def latencies(searcher, texts, rounds, today=None, weights=0.65) -> dict:
    """p50/p95 per mode of this code (and of txtai's own search, alternated, when today is given)."""
    figures = {}
    for mode in ("hybrid", "dense", "keyword"):
        ours, theirs = [], []
        for _ in range(rounds):  # alternate, so both see the same machine load
            for query in texts:
                ours.append(timed(lambda: searcher.search(query, limit=5, mode=mode)))
                if today is not None:
                    theirs.append(timed(lambda: txtai_search(today, query, mode, weights)))
        figures[f"{mode}_p50_ms"], figures[f"{mode}_p95_ms"] = percentile(ours, 50), percentile(ours, 95)
        if theirs:
            figures[f"{mode}_txtai_p50_ms"], figures[f"{mode}_txtai_p95_ms"] = percentile(theirs, 50), percentile(theirs, 95)
    return figures


def search(args) -> dict:
    from txtai import Embeddings

    from rag.search import Searcher
    from rag.store import Store

    config = bench_config(args.root, args.size)
    texts = queries(args.dataset, args.queries)
    searcher = Searcher(config)
    started = time.perf_counter()
    searcher.refresh(force=True)
    figures = {"load_s": time.perf_counter() - started, "segments": len(searcher.snapshot.segments)}
    for query in texts:  # warm-up: every query once (model, caches, mapped pages)
        for mode in ("hybrid", "dense", "keyword"):
            searcher.search(query, limit=5, mode=mode)
    figures["searcher_rss_mb"] = rss_mb()
    figures["recall@10"] = dense_recall(searcher, texts, args)

    # txtai as it was, on the same (one-segment) version: its own BM25 and search, nothing of rag.index's
    today = Embeddings().load(str(Store(config.index_dir).current()), config={"path": config.embeddings_settings()["path"]}) if args.size <= 100_000 else None
    if today is not None:
        for query in texts:
            txtai_search(today, query, "hybrid", config.search.weights)
    figures.update(latencies(searcher, texts, args.rounds, today, config.search.weights))
    if today is not None:
        today.close()

    # one-document writes in child processes while this reader serves; it follows each new version
    writes, reloads = [], []
    for number in range(args.write_rounds):
        writes.append(run_phase(args, "write", args.size, number))
        started = time.perf_counter()
        searcher.refresh(force=True)
        reloads.append(time.perf_counter() - started)
    for key in writes[0]:
        figures[key] = statistics.median(w[key] for w in writes)
    figures["reload_s"] = statistics.median(reloads)
    figures["segments_after_writes"] = len(searcher.snapshot.segments)
    after = latencies(searcher, texts, max(1, args.rounds - 1))
    figures.update({f"after_writes_{key}": value for key, value in after.items()})
    figures["searcher_rss_after_writes_mb"] = rss_mb()
    return figures


def dense_recall(searcher, texts, args) -> float:
    """Top-10 ids of dense search vs exact inner product over every stored vector (regenerated)."""
    base = base_vectors(args.root, args.dataset, args.sample)
    vectors = searcher.snapshot.embeddings.batchtransform([(None, query, None) for query in texts])
    best = [[] for _ in texts]
    for start in range(0, args.size, 100_000):
        block = simulate(start, min(args.size, start + 100_000), base)
        scores = vectors @ block.T
        for n, row in enumerate(scores):
            top = np.argpartition(-row, 10)[:10]
            best[n] = sorted(best[n] + [(float(row[i]), start + int(i)) for i in top], reverse=True)[:10]
    found = 0
    for query, exact in zip(texts, best):
        got = {hit.id for hit in searcher.search(query, limit=10, mode="dense")}
        found += len(got & {chunk_id(f"library:papers/{number // CHUNKS_PER_DOCUMENT:06d}.pdf", number % CHUNKS_PER_DOCUMENT) for _, number in exact})
    return found / (10 * len(texts))


def write(args) -> dict:
    """Upserts one new 3-chunk document (vectors in the cache), then deletes one of the built ones
    (a different one each round)."""
    config = bench_config(args.root, args.size)
    rows = new_document(args.round)
    before, started = written(), time.perf_counter()
    Ingestor(config).upsert(rows)
    upsert = time.perf_counter() - started, written() - before
    before, started = written(), time.perf_counter()
    Ingestor(config).remove([f"library:papers/{args.round * 7:06d}.pdf"])
    delete = time.perf_counter() - started, written() - before
    return {"upsert_s": upsert[0], "upsert_bytes": upsert[1], "delete_s": delete[0], "delete_bytes": delete[1]}


def merge(args) -> dict:
    """Compacts the live version's segments into a new base (what a due merge does in a write)."""
    from rag.store import Store

    config = bench_config(args.root, args.size)
    policy = config.index.segments.model_copy(update={"merge_ratio": 1e-9})
    store = Store(config.index_dir, config.index.keep_versions, config.index.model_copy(update={"segments": policy}))
    before, started = written(), time.perf_counter()
    with store.lock(), store.begin(Ingestor(config).settings) as change:
        change.publish(store.manifest())
    return {"merge_s": time.perf_counter() - started, "merge_bytes": written() - before}


def percentile(values, q) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS")) / 1024


PHASES = {"build": build, "search": search, "write": write, "merge": merge}


def run_phase(args, phase: str, size: int, number: int = 0) -> dict:
    """Runs a phase in a child process; adds its peak RSS."""
    command = [sys.executable, __file__, "--phase", phase, "--size", str(size), "--root", str(args.root), "--dataset", str(args.dataset), "--round", str(number)]
    command += ["--queries", str(args.queries), "--rounds", str(args.rounds), "--write-rounds", str(args.write_rounds), "--sample", str(args.sample)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"phase {phase} at {size} failed")
    return {**json.loads(output.splitlines()[-1]), f"{phase}_peak_rss_mb": usage.ru_maxrss / 1024}


def measure_size(args, size: int, base: np.ndarray) -> dict:
    from rag.store import Store

    config = bench_config(args.root, size)
    shutil.rmtree(config.index_dir, ignore_errors=True)
    started = time.perf_counter()
    rows = chunks(size, args.dataset)
    for start in range(0, size, BLOCK):
        block = list(itertools.islice(rows, BLOCK))
        feed(config, block, simulate(start, start + len(block), base))
    feed(config, new_document(), simulate(0, 3, base, seed=3))  # every new_document(n) has these texts
    figures = {"chunks": size, "feed_s": time.perf_counter() - started}
    figures.update(run_phase(args, "build", size))
    store = Store(config.index_dir, index=config.index)
    figures["disk_bytes"] = store.size()
    figures["vector_cache_bytes"] = folder_size(config.index_dir / "vectors")
    figures.update(run_phase(args, "search", size))
    if args.merge:
        figures.update(run_phase(args, "merge", size))
    if not args.keep:
        shutil.rmtree(config.index_dir, ignore_errors=True)
    return figures


def show(figures: dict):
    size, today = figures["chunks"], TODAY.get(figures["chunks"], {})
    mb = lambda value: f"{value / 1e6:,.1f} MB"

    def line(label, value, before=None):
        print(f"  {label:<38} {value:>16}" + (f"   today: {before}" if before is not None else ""))

    print(f"\n{size:,} chunks")
    line("build (one generator, one version)", f"{figures['build_s']:.1f} s")
    line("build peak RSS", f"{figures['build_peak_rss_mb']:,.0f} MB", "6 GB" if size == 1_000_000 else None)
    line("on disk (live version)", mb(figures["disk_bytes"]), mb(today["disk_bytes"]) if "disk_bytes" in today else None)
    line("vector cache on disk", mb(figures["vector_cache_bytes"]))
    line("load (Searcher)", f"{figures['load_s']:.2f} s")
    line("searcher RSS", f"{figures['searcher_rss_mb']:,.0f} MB")
    for mode in ("hybrid", "dense", "keyword"):
        here = f"txtai as today {figures[f'{mode}_txtai_p50_ms']:.1f}/{figures[f'{mode}_txtai_p95_ms']:.1f} ms here" if f"{mode}_txtai_p50_ms" in figures else ""
        issue = today.get(f"{mode}_p50_ms")
        line(f"{mode} p50/p95", f"{figures[f'{mode}_p50_ms']:.1f}/{figures[f'{mode}_p95_ms']:.1f} ms", (here + (f"; issue: {issue} ms" if issue else "")) or None)
    line("dense recall@10 vs exact", f"{figures['recall@10']:.3f}")
    line("one-document upsert (3 chunks)", f"{figures['upsert_s']:.2f} s", f"{today['write_s']} s" if "write_s" in today else None)
    line("  bytes written", mb(figures["upsert_bytes"]), mb(today["write_bytes"]) if "write_bytes" in today else None)
    line("  share of the index on disk", f"{100 * figures['upsert_bytes'] / figures['disk_bytes']:.2f} %", "≤ 5 % (goal)")
    line("one-document delete", f"{figures['delete_s']:.2f} s", f"{today['delete_s']} s" if "delete_s" in today else None)
    line("  bytes written", mb(figures["delete_bytes"]))
    line("reader reload after a write", f"{figures['reload_s']:.3f} s", "4.1 s" if size == 1_000_000 else None)
    line("segments after the writes", f"{figures['segments_after_writes']}")
    for mode in ("hybrid", "dense", "keyword"):
        line(f"  {mode} p50/p95 on them", f"{figures[f'after_writes_{mode}_p50_ms']:.1f}/{figures[f'after_writes_{mode}_p95_ms']:.1f} ms")
    line("searcher RSS after the writes", f"{figures['searcher_rss_after_writes_mb']:,.0f} MB")
    if "merge_s" in figures:
        line("merge into a new base", f"{figures['merge_s']:.1f} s, {mb(figures['merge_bytes'])}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 chunks (~8 GB on disk)")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--root", type=Path, default=Path("/tmp/localrag-scale"), help="work folder (indexes, vector cache)")
    parser.add_argument("--sample", type=int, default=2000, help="passages embedded for real as bases of the simulated vectors")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="search rounds over the queries (medians of all)")
    parser.add_argument("--write-rounds", type=int, default=3, help="upsert+delete rounds (median)")
    parser.add_argument("--no-merge", dest="merge", action="store_false", help="skip the merge phase")
    parser.add_argument("--keep", action="store_true", help="keep the indexes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    args.root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", file=sys.stderr)
    base = base_vectors(args.root, args.dataset, args.sample)
    for size in args.sizes + ([1_000_000] if args.million else []):
        figures = measure_size(args, size, base)
        if args.json:
            print(json.dumps(figures), flush=True)
        else:
            show(figures)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()

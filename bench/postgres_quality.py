"""SciFact dev nDCG@10 per mode and one-document writes: the local store beside PostgreSQL (rag.pgstore).

Both go through the real path of `rag eval` (rag.beir.evaluate_dataset: Ingestor into the index
`eval-<dataset>`, Searcher queries with real query encoding), once with `index.store: local` and
once with `index.store: postgres`; only the store differs. Both indexes sit under --workdir and
share its vector cache, so the corpus is embedded once (the first run) and later runs embed nothing.

Writes: one document of the corpus, through the Ingestor as `rag ingest` and DELETE /documents do:
its file edited and re-ingested (`run([path])`: read, chunk, embed its edited chunk, publish) and
removed (`remove([document])`), `--rounds` times, alternating; medians. The local store copies
its live version per write, Postgres changes rows in place, so the gap grows with the index.
At 100k and 1M chunks (simulated vectors), run bench/scale.py with a config whose
`index.store` is postgres (DATABASE_URL set): it writes through the same Ingestor.upsert.

PostgreSQL is a private pgserver (tests/pgserver.py) unless --url is given.

    .venv/bin/python bench/postgres_quality.py [DATASET] [--url URL] [--stores local,postgres] [--out FILE.json]
"""

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.beir import eval_config, evaluate_dataset
from rag.config import load_config
from rag.ingest import Ingestor
from rag.store import open_store

DATASET = Path("/work/shared/datasets/scifact-dev")
MODES = ("hybrid", "dense", "keyword")
BASELINE = {"local hybrid": 0.733}  # issue 13: SciFact dev nDCG@10 of the local store today


def store_config(config, store: str, workdir: Path, url: str | None):
    """The config with its index under workdir, in the given store."""
    index = {"path": workdir, "store": store}
    if store == "postgres":
        index["postgres"] = config.index.postgres.model_copy(update={"url": url, "schema_name": None})
    return config.model_copy(update={"index": config.index.model_copy(update=index)})


def measure_writes(config, dataset: Path, rounds: int) -> dict:
    """Median seconds of a one-document edit (re-ingest of its file) and delete, through the Ingestor."""
    config = eval_config(config, dataset)
    manifest = open_store(config).manifest()
    document = sorted(manifest.documents, key=lambda uid: (-manifest.documents[uid].chunks, uid))[len(manifest.documents) // 2]
    path = config.resolve(config.ingest.sources[0].path) / manifest.documents[document].source
    original = path.read_text(encoding="utf-8")
    edits, deletes = [], []
    try:
        for number in range(rounds):
            path.write_text(f"{original.rstrip()} Edited {number}.\n", encoding="utf-8")
            started = time.perf_counter()
            Ingestor(config).run([path])
            edits.append(time.perf_counter() - started)
            started = time.perf_counter()
            Ingestor(config).remove([document])
            deletes.append(time.perf_counter() - started)
    finally:
        path.write_text(original, encoding="utf-8")
        Ingestor(config).run([path])
    return {
        "document": document,
        "chunks": manifest.documents[document].chunks,
        "index_chunks": manifest.chunks,
        "edit_s": round(statistics.median(edits), 3),
        "delete_s": round(statistics.median(deletes), 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DATASET)
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--url", help="URL of a database with pgvector (default: a private pgserver)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "localrag-pgbench")
    parser.add_argument("--stores", default="local,postgres")
    parser.add_argument("--rounds", type=int, default=5, help="one-document writes per store")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the private server on kill too

    config = load_config(args.config)
    stores = args.stores.split(",")
    results = {"load_average": os.getloadavg()[0], "baseline": BASELINE}
    server = None
    url = args.url
    if "postgres" in stores and not url:
        from tests.pgserver import start

        server = start()
        url = server.database("bench")
    try:
        for store in stores:
            settings = store_config(config, store, args.workdir, url)
            evaluation = evaluate_dataset(settings, args.dataset, "dev", MODES)
            writes = measure_writes(settings, args.dataset, args.rounds)
            results[store] = {"evaluation": evaluation, "writes": writes}
            print(f"{store}: {evaluation['chunks']} chunks, indexed in {evaluation['indexing_seconds']} s "
                  f"({evaluation['embedded_chunks']} chunks added)", flush=True)
            for mode, metrics in evaluation["modes"].items():
                print(f"  {mode:<8} nDCG@10 {metrics['ndcg@10']:.4f}  recall@100 {metrics['recall@100']:.4f}  "
                      f"p50 {metrics['latency_p50_ms']:.1f} ms  p95 {metrics['latency_p95_ms']:.1f} ms", flush=True)
            print(f"  one document ({writes['chunks']} chunks): edit {writes['edit_s']} s, delete {writes['delete_s']} s", flush=True)
    finally:
        if server:
            server.stop()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Ingestion throughput vs. the model's raw forward pass, side by side in one process.

Writes a subset of the SciFact corpus as Markdown files, runs the real ingestion (load, chunk,
embed, BM25, save, publish) and then encodes the very same chunk texts with a bare
SentenceTransformer.encode (same model files, same batch size, warmed up like the ingest). Prints chunks/s, tokens/s,
peak RSS and the ratio ingest / raw.

    python bench/ingest.py [--docs 1000] [--dataset ../shared/datasets/scifact-dev]
"""

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.config import load_config  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from rag.ingest import Ingestor  # noqa: E402
from rag.store import Store  # noqa: E402

DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "scifact-dev"


def write_corpus(dataset: Path, folder: Path, count: int) -> int:
    folder.mkdir(parents=True)
    written = 0
    with open(dataset / "corpus.jsonl", encoding="utf-8") as lines:
        for line in lines:
            if written >= count:
                break
            row = json.loads(line)
            (folder / f"{row['_id']}.md").write_text(f"# {row['title']}\n\n{row['text']}\n", encoding="utf-8")
            written += 1
    return written


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500, help="number of SciFact abstracts (5183 = all)")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent / "config.yml")
    parser.add_argument("--rounds", type=int, default=2, help="alternating ingest / raw encode rounds")
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        docs = write_corpus(args.dataset, tmp / "docs", args.docs)
        base = args.config.read_text(encoding="utf-8")
        config_file = tmp / "config.yml"
        config_file.write_text(base, encoding="utf-8")
        env = {"RAG_INDEX_DIR": str(tmp / "indexes"), "RAG_DATA_DIR": str(tmp / "docs"), "RAG_INDEX__VECTOR_CACHE__ENABLED": "false"}  # every round embeds
        config = load_config(config_file, environ={**os.environ, **env})

        # Warm-up: load the model once (as a long-running process would) on a one-file index
        warm = tmp / "warm"
        warm.mkdir()
        (warm / "a.md").write_text("# Warm up\n\nLoads the model.\n")
        Ingestor(load_config(config_file, environ={**os.environ, **env, "RAG_DATA_DIR": str(warm), "RAG_INDEX_NAME": "warm"})).run()

        # Rounds alternate ingest (from scratch) and raw encode, so both see the same machine load;
        # each side reports its best round, the usual way to take noise out of a throughput figure
        ingest_times, raw_times, model = [], [], None
        for _ in range(args.rounds):
            started = time.perf_counter()
            report = Ingestor(config).run(rebuild=True)
            ingest_times.append(time.perf_counter() - started)
            rss_ingest = peak_rss_mb()

            if model is None:
                current = Store(config.index_dir).current()
                with sqlite3.connect(current / "documents") as db:
                    rows = db.execute("select s.text, json_extract(d.data, '$.tokens') from sections s join documents d on d.id = s.id").fetchall()
                texts = [text for text, _ in rows]
                tokens = sum(int(t or 0) for _, t in rows)
                model = SentenceTransformer(config.embeddings_settings()["path"], device="cpu")
                model.encode(texts[:64], batch_size=32)  # warm-up, as the ingest had
                batch = config.index.embeddings.get("encodebatch", 32)
            started = time.perf_counter()
            model.encode(texts, batch_size=batch, normalize_embeddings=True)
            raw_times.append(time.perf_counter() - started)
        ingest_seconds, raw_seconds = min(ingest_times), min(raw_times)

    figures = {
        "documents": docs,
        "chunks": report.chunks,
        "tokens": tokens,
        "ingest_seconds": round(ingest_seconds, 2),
        "ingest_chunks_per_s": round(report.chunks / ingest_seconds, 1),
        "ingest_tokens_per_s": round(tokens / ingest_seconds, 0),
        "raw_encode_seconds": round(raw_seconds, 2),
        "raw_chunks_per_s": round(len(texts) / raw_seconds, 1),
        "ratio_ingest_over_raw": round((report.chunks / ingest_seconds) / (len(texts) / raw_seconds), 3),
        "peak_rss_mb_after_ingest": round(rss_ingest, 0),
        "batch_size": batch,
        "rounds": args.rounds,
        "ratio_per_round": [round(raw / ingest, 3) for ingest, raw in zip(ingest_times, raw_times)],
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()

"""`make bench`: runs every benchmark and writes bench/RESULTS.md (machine, date, figures, ratios).

    python bench/report.py [--docs 1000] [--eval]   # --eval adds `rag eval` on scifact-dev (~15 min the first time)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATASET = ROOT.parent / "shared" / "datasets" / "scifact-dev"



SEE_ALSO = (
    "The long benches run by hand, with their figures: bench/scale.py, bench/throughput.py "
    "(bench/RESULTS_scale.md) and bench/postgres_scale.py, bench/postgres_quality.py (bench/RESULTS_postgres.md)."
)

def run(*command) -> dict:
    """Runs a bench script with --json and returns its figures."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *command, "--json"], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{command[0]}: {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return figures


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {platform.python_version()}, "
        f"torch {torch.__version__}, load average at start {load:.2f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--eval", action="store_true", help="also run rag eval on scifact-dev")
    args = parser.parse_args()

    header = machine()
    ingest = run("bench/ingest.py", "--docs", str(args.docs))
    api = run("bench/api.py", "--docs", str(args.docs))
    ask = run("bench/ask.py")
    lines = [
        "# Benchmark results",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {header}",
        f"- Corpus: {args.docs} SciFact abstracts written as Markdown files ({ingest['chunks']} chunks); shipped config.yml",
        "",
        "## Ingestion vs raw encode (`bench/ingest.py`)",
        "",
        "| figure | localrag ingest | raw `SentenceTransformer.encode` | ratio (target ≥ 0.9) |",
        "| --- | --- | --- | --- |",
        f"| chunks/s | {ingest['ingest_chunks_per_s']} | {ingest['raw_chunks_per_s']} | {ingest['ratio_ingest_over_raw']} |",
        f"| seconds | {ingest['ingest_seconds']} | {ingest['raw_encode_seconds']} | |",
        f"| tokens/s | {ingest['ingest_tokens_per_s']} | | |",
        f"| peak RSS (MB) | {ingest['peak_rss_mb_after_ingest']} | | |",
        "",
        f"Best of {ingest['rounds']} alternating rounds per side; ratio per round: {ingest['ratio_per_round']}.",
        "",
        "## Search latency: HTTP vs in process (`bench/api.py`)",
        "",
        "| client | p50 ms | p95 ms | p99 ms | req/s | errors |",
        "| --- | --- | --- | --- | --- | --- |",
        row("in process", api["in_process"]),
    ]
    lines += [row(f"HTTP, {key.split('_')[1]} client(s)", value) for key, value in api.items() if key.startswith("http_") and isinstance(value, dict)]
    lines += [
        "",
        f"HTTP p50 / in-process p50 = **{api['ratio_http_p50_over_in_process_p50']}** (target ≤ 1.3); "
        f"HTTP overhead {api['http_overhead_p50_ms']} ms; one-client p50 target ≤ 25 ms.",
        "",
        "## Answer overhead (`bench/ask.py`, embedded SmolLM2-135M, sample documents)",
        "",
        "| figure | median ms |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in ask.items() if key.endswith(("p50", "p50 (all but the LLM)", "max"))]
    if args.eval:
        result = subprocess.run([sys.executable, "-m", "rag.cli", "eval", str(DATASET), "--json"], capture_output=True, text=True, cwd=ROOT)
        retrieval = json.loads(result.stdout)["retrieval"]
        lines += [
            "",
            f"## Retrieval quality (`rag eval`, scifact-dev: {retrieval['queries']} queries, {retrieval['chunks']} chunks)",
            "",
            "| mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | p50 ms | p95 ms |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for mode, m in retrieval["modes"].items():
            lines.append(f"| {mode} | {m['ndcg@10']} | {m['recall@10']} | {m['recall@100']} | {m['mrr@10']} | {m['latency_p50_ms']} | {m['latency_p95_ms']} |")
        lines += ["", "References (held-out test queries): BM25 0.662, dense exact 0.649, txtai default hybrid 0.657; target ≥ 0.70."]
    lines += ["", SEE_ALSO]
    (BENCH / "RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def row(name: str, figures: dict) -> str:
    return f"| {name} | {figures['p50_ms']} | {figures['p95_ms']} | {figures['p99_ms']} | {figures.get('throughput_rps', '')} | {figures.get('errors', '')} |"


if __name__ == "__main__":
    main()

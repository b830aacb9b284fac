"""/search over HTTP vs. in process, on a SciFact index, at 1, 4 and 16 concurrent clients.

Writes SciFact abstracts as Markdown files into a cache folder (/tmp/localrag-bench/api-<docs>/;
re-runs reuse the index: an unchanged corpus ingests as a no-op), serves the API with uvicorn in a
subprocess (`uvicorn api.app:create_app --factory`, no access log) and sends SciFact claims as
queries with httpx (keep-alive connections, one per client). In the same run it times
LocalRAG.search in process on the same index and queries. Prints p50/p95/p99 latency, throughput,
errors and the ratio HTTP p50 / in-process p50. Targets: p50 <= 25 ms at one client;
HTTP p50 <= 1.3 x in-process p50; zero errors.

    python bench/api.py [--docs 1000] [--requests 300] [--clients 1 4 16] [--json]
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402

from ingest import DATASET, write_corpus  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.ingest import Ingestor  # noqa: E402
from rag.service import LocalRAG  # noqa: E402

CONFIG = """\
index: {name: scifact, path: indexes}
ingest:
  sources: [{name: scifact, path: docs}]
search: {limit: 10, mode: hybrid}
llm: {provider: embedded}
"""


def workspace(dataset: Path, docs: int) -> Path:
    """The cached corpus folder and config; the index is brought up to date (a no-op when cached)."""
    folder = Path("/tmp/localrag-bench") / f"api-{docs}"
    if not (folder / "docs").exists():
        write_corpus(dataset, folder / "docs", docs)
    config = folder / "config.yml"
    config.write_text(CONFIG, encoding="utf-8")
    started = time.perf_counter()
    report = Ingestor(load_config(config)).run()
    how = f"built in {time.perf_counter() - started:.0f}s" if report.changed else "cached"
    print(f"index: {report.documents} documents, {report.chunks} chunks ({how})", file=sys.stderr)
    return config


def queries(dataset: Path, count: int) -> list[str]:
    with open(dataset / "queries.jsonl", encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line, _ in zip(lines, range(count))]


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)

    def at(q):
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "mean_ms": round(statistics.fmean(samples) * 1000, 2)}


def in_process(rag: LocalRAG, texts: list[str], limit: int) -> list[float]:
    samples = []
    for text in texts:
        started = time.perf_counter()
        rag.search(text, limit=limit)
        samples.append(time.perf_counter() - started)
    return samples


async def over_http(url: str, texts: list[str], clients: int, limit: int) -> tuple[list[float], int, float]:
    """Latencies, errors and wall seconds for len(texts) requests from `clients` concurrent clients."""
    pending = list(reversed(texts))
    samples, errors = [], 0

    async def client():
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while pending:
                text = pending.pop()
                started = time.perf_counter()
                response = await http.post("/search", json={"query": text, "limit": limit})
                samples.append(time.perf_counter() - started)
                if response.status_code != 200 or not response.json()["hits"]:
                    errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return samples, errors, time.perf_counter() - started


def start_server(config: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAG_CONFIG": str(config)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="SciFact abstracts in the index (5183 = all)")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print figures as JSON")
    args = parser.parse_args()

    config = workspace(args.dataset, args.docs)
    texts = queries(args.dataset, args.requests)
    rag = LocalRAG(load_config(config))
    in_process(rag, texts[:20], args.limit)  # warm-up: model and index loaded

    process, url = start_server(config)
    try:
        asyncio.run(over_http(url, texts[:20], 1, args.limit))  # warm-up
        # in-process and one-client HTTP alternate, so both see the same machine load
        local, remote, errors, wall = [], [], 0, 0.0
        half = len(texts) // 2
        for part in (texts[:half], texts[half:]):
            local += in_process(rag, part, args.limit)
            samples, failed, seconds = asyncio.run(over_http(url, part, 1, args.limit))
            remote, errors, wall = remote + samples, errors + failed, wall + seconds
        figures = {"documents": args.docs, "requests": len(texts), "limit": args.limit, "in_process": percentiles(local)}
        figures["in_process"]["throughput_rps"] = round(len(local) / sum(local), 1)
        levels = {1: (remote, errors, wall)}
        for clients in args.clients:
            if clients != 1:
                levels[clients] = asyncio.run(over_http(url, texts, clients, args.limit))
        for clients, (samples, failed, seconds) in sorted(levels.items()):
            figures[f"http_{clients}_clients"] = {
                **percentiles(samples),
                "throughput_rps": round(len(samples) / seconds, 1),
                "errors": failed,
            }
        figures["ratio_http_p50_over_in_process_p50"] = round(figures["http_1_clients"]["p50_ms"] / figures["in_process"]["p50_ms"], 3)
        figures["http_overhead_p50_ms"] = round(figures["http_1_clients"]["p50_ms"] - figures["in_process"]["p50_ms"], 2)
    finally:
        process.terminate()
        process.wait(timeout=30)

    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            print(f"{key:>36}: " + "  ".join(f"{k}={v}" for k, v in value.items()))
        else:
            print(f"{key:>36}: {value}")


if __name__ == "__main__":
    main()

"""/search throughput over real HTTP: 1, 4 and 16 clients against 1 and 2 `rag serve` replicas.

The index is the one bench/scale.py builds (simulated document vectors, real texts, metadata and
query encoding), on the local store or, with --database-url, on PostgreSQL (index.store: postgres).
Each replica is its own `rag serve` process on its own port, all over the same index; clients spread
their requests over the replicas as a reverse proxy would. Every client thread sends SciFact claims
to POST /search (hybrid, limit 5) on a keep-alive connection for --seconds; the settings alternate
over --rounds rounds and the medians are printed: searches/s, p50/p95 latency, and the speed-up
over one client on one replica (issue 12's goal: 4 clients >= 1.5x one client; before: 1.0-1.17x).

    python bench/throughput.py [--size 100000] [--root /tmp/localrag-scale] [--database-url URL]
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale import DATASET, base_vectors, bench_config, corpus, feed, queries, simulate  # noqa: E402

CLIENTS = (1, 4, 16)
REPLICAS = (1, 2)


def environment(args, port: int) -> dict:
    """The environment of a `rag serve` replica over the bench index."""
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(args.root / "indexes"),
        "RAG_INDEX_NAME": f"scale-{args.size}",
        "RAG_PORT": str(port),
        "RAG_LLM_PROVIDER": "embedded",
        # replicas on one machine share its cores, as `rag serve --workers N` shares them
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // args.running)),
    }
    if args.database_url:
        env.update(RAG_INDEX_STORE="postgres", DATABASE_URL=args.database_url)
    return env


def ensure_index(args):
    """Builds the bench index (as bench/scale.py does) unless it exists."""
    config = bench_config(args.root, args.size)
    if args.database_url:
        config = config.model_copy(
            update={"index": config.index.model_copy(update={"store": "postgres", "postgres": config.index.postgres.model_copy(update={"url": args.database_url})})}
        )
    from rag.ingest import Ingestor
    from rag.store import open_store

    if open_store(config).stamp() is not None:
        return
    print(f"building the {args.size:,}-chunk index ...", file=sys.stderr)
    rows = corpus(args.size, args.dataset)
    feed(config, rows, simulate(0, len(rows), base_vectors(args.root, args.dataset, 2000)))
    started = time.perf_counter()
    Ingestor(config).upsert(rows)
    print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_replicas(args, count: int) -> list[tuple[subprocess.Popen, int]]:
    replicas = []
    for _ in range(count):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "--config", str(ROOT / "config.yml"), "serve"],
            env=environment(args, port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        replicas.append((process, port))
    for process, port in replicas:
        wait_ready(process, port)
    return replicas


def wait_ready(process, port: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rag serve exited with {process.returncode}")
        try:
            status, _ = request(http.client.HTTPConnection("127.0.0.1", port, timeout=5), "GET", "/ready")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("rag serve did not become ready")


def stop_replicas(replicas):
    for process, _ in replicas:
        os.killpg(process.pid, signal.SIGTERM)
    for process, _ in replicas:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def request(connection, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    response = connection.getresponse()
    return response.status, response.read()


def hammer(ports: list[int], clients: int, seconds: float, texts: list[str]) -> dict:
    """`clients` threads searching for `seconds`; searches/s and latency percentiles."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(number: int):
        connection = http.client.HTTPConnection("127.0.0.1", ports[number % len(ports)], timeout=60)
        mine, index = [], number * 7
        while time.monotonic() < stop:
            started = time.perf_counter()
            status, _ = request(connection, "POST", "/search", {"query": texts[index % len(texts)], "limit": 5})
            index += 1
            if status == 200:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] if latencies else None,
        "p95_ms": latencies[int(len(latencies) * 0.95)] if latencies else None,
        "errors": errors[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=Path("/tmp/localrag-scale"))
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--database-url", help="PostgreSQL URL: the index on index.store postgres")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--replicas", type=int, nargs="+", default=list(REPLICAS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    args.root.mkdir(parents=True, exist_ok=True)
    ensure_index(args)
    texts = queries(args.dataset, 50)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start", file=sys.stderr)
    results: dict[tuple[int, int], list[dict]] = {}
    for replicas in args.replicas:
        args.running = replicas
        running = start_replicas(args, replicas)
        try:
            ports = [port for _, port in running]
            hammer(ports, 2, 3, texts)  # warm-up: model, mapped pages
            for _ in range(args.rounds):  # settings alternate within a round
                for clients in args.clients:
                    results.setdefault((replicas, clients), []).append(hammer(ports, clients, args.seconds, texts))
        finally:
            stop_replicas(running)

    base = statistics.median(r["per_s"] for r in results[(args.replicas[0], args.clients[0])])
    store = "postgres" if args.database_url else "local"
    print(f"\n/search throughput, {args.size:,} chunks, {store} store (medians of {args.rounds} rounds of {args.seconds:.0f} s)")
    print(f"  {'replicas':>8} {'clients':>7} {'searches/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'vs 1x1':>7} errors")
    summary = []
    for (replicas, clients), runs in sorted(results.items()):
        row = {key: statistics.median(r[key] for r in runs if r[key] is not None) for key in ("per_s", "p50_ms", "p95_ms")}
        row.update(replicas=replicas, clients=clients, speedup=row["per_s"] / base, errors=sum(r["errors"] for r in runs))
        summary.append(row)
        print(f"  {replicas:>8} {clients:>7} {row['per_s']:>11.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['speedup']:>6.2f}x {row['errors']}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)
    if args.json:
        print(json.dumps({"store": store, "size": args.size, "results": summary}))


if __name__ == "__main__":
    main()

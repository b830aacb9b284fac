"""`rag serve`: the API under uvicorn."""

import os
import tempfile
from pathlib import Path

import uvicorn

from rag.config import ENV_CONFIG, Config, load_config

# Seconds requests in flight get to finish on SIGTERM; then they are cancelled and LLM calls aborted
GRACEFUL_SHUTDOWN = 5


def serve(config: Config | str | Path | None = None, host: str | None = None, port: int | None = None, workers: int | None = None):
    """Serves the API on host:port (default api.host / api.port) with `workers` processes (api.workers).

    Several workers each load the config from its file ($RAG_CONFIG, so environment overrides apply
    alike) and their own LocalRAG over the same index folder; jobs live in files (on PostgreSQL, in a table), so any worker
    reports any job; metrics are summed across workers (prometheus multiprocess directory).
    """
    if not isinstance(config, Config):
        config = load_config(config)
    host = host or config.api.host
    port = port or config.api.port
    workers = workers or config.api.workers
    # the app's default trusted Host names follow the address it is bound to (api.allowed_hosts)
    config = config.model_copy(update={"api": config.api.model_copy(update={"host": host, "port": port})})
    size_thread_pools(workers)
    if workers > 1:
        os.environ[ENV_CONFIG] = str(config.file.resolve())
        os.environ["RAG_API__HOST"] = host  # each worker loads the config again
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="localrag-metrics-"))
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)
    else:
        from .app import create_app

        uvicorn.run(create_app(config), host=host, port=port, log_level="info", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN)


def size_thread_pools(workers: int):
    """Gives each of `workers` processes an equal share of the cores for its torch and FAISS
    (OpenMP) thread pools, unless OMP_NUM_THREADS says otherwise: a search then keeps its share
    busy instead of every process contending for every core. Set before the workers import torch."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, threads)

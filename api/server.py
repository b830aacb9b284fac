"""`rag serve`: the API under uvicorn."""

import os
import tempfile
from pathlib import Path

import uvicorn

from rag.config import ENV_CONFIG, Config, load_config


def serve(config: Config | str | Path | None = None, host: str | None = None, port: int | None = None, workers: int | None = None):
    """Serves the API on host:port (default api.host / api.port) with `workers` processes (api.workers).

    Several workers each load the config from its file ($RAG_CONFIG, so environment overrides apply
    alike) and their own LocalRAG over the same index folder; jobs live in files, so any worker
    reports any job; metrics are summed across workers (prometheus multiprocess directory).
    """
    if not isinstance(config, Config):
        config = load_config(config)
    host = host or config.api.host
    port = port or config.api.port
    workers = workers or config.api.workers
    if workers > 1:
        os.environ[ENV_CONFIG] = str(config.file.resolve())
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="localrag-metrics-"))
        uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")
    else:
        from .app import create_app

        uvicorn.run(create_app(config), host=host, port=port, log_level="info")

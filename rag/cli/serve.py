"""`rag serve`: the HTTP API (and the web page) under uvicorn."""

import typer

from .app import USAGE, app, config, fail


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Bind address (default api.host)."),
    port: int = typer.Option(None, "--port", "-p", help="Port (default api.port)."),
    workers: int = typer.Option(None, "--workers", "-w", help="uvicorn worker processes (default api.workers)."),
):
    """Serve the HTTP API (search, ask, documents, jobs, OpenAI/Ollama-compatible chat, workflows)."""
    from api.server import serve as run

    from ..config import ConfigError

    settings = config()
    try:
        for name, key in settings.api.api_keys.items():  # every worker would fail the same way: say it once, here
            key.digest(name)
        run(settings, host=host, port=port, workers=workers)
    except ConfigError as error:
        fail(error, USAGE, label="config error")

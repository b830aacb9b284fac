"""The typer app every command module registers on, and what commands share: the config, the
service, consoles, exit codes and error reporting."""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import typer
from rich.console import Console

from ..config import ConfigError, load_config

# Exit codes (documented in README.md)
OK, FILES_FAILED, USAGE, LOCKED, UNAVAILABLE, UNWRITABLE = 0, 1, 2, 3, 4, 5

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Private, local-first semantic search and question answering.")
console = Console(stderr=True)
out = Console()
state = {"config": None}


@app.callback()
def main_options(
    config_path: Path = typer.Option(None, "--config", "-c", envvar="RAG_CONFIG", help="Path to config.yml (default ./config.yml)."),
):
    state["config"] = config_path


def config():
    """The loaded config; an invalid one stops here with exit code 2 and a message naming the key."""
    try:
        return load_config(state["config"])
    except ConfigError as error:
        console.print(f"[red]config error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(USAGE) from None


def service(progress=None):
    """The LocalRAG service of the config (progress: Ollama pulls)."""
    from ..service import LocalRAG

    return LocalRAG(config(), progress=progress)


def fail(error: Exception | str, code: int, label: str = "error"):
    """Prints the error and exits with code."""
    console.print(f"[red]{label}:[/red] {error}", highlight=False)
    raise typer.Exit(code)


def emit(data):
    out.print_json(json.dumps(data, default=str))

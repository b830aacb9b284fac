"""The `rag` command line: ingest, search, status (and ask, serve, workflow, eval)."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import typer
from rich.console import Console
from rich.table import Table

from .config import ConfigError, load_config

# Exit codes (documented in README.md)
OK, FILES_FAILED, USAGE, LOCKED, UNAVAILABLE = 0, 1, 2, 3, 4

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Private, local-first semantic search and question answering.")
console = Console(stderr=True)
out = Console()
state = {"config": None}


def config():
    """The loaded config; an invalid one stops here with exit code 2 and a message naming the key."""
    try:
        return load_config(state["config"])
    except ConfigError as error:
        console.print(f"[red]config error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(USAGE) from None


def emit(data):
    out.print_json(json.dumps(data, default=str))


@app.callback()
def main_options(
    config_path: Path = typer.Option(None, "--config", "-c", envvar="RAG_CONFIG", help="Path to config.yml (default ./config.yml)."),
):
    state["config"] = config_path


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(None, help="Only these files or folders (default: every configured source)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Start from scratch: re-embed everything."),
    strict: bool = typer.Option(False, "--strict", help="If any file fails, write nothing and exit 1."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
):
    """Sync documents into the index: only new or changed files are embedded; removed ones are deleted."""
    from .ingest import Ingestor, StrictFailure
    from .progress import IngestBar
    from .store import IndexLocked

    settings = config()
    bar = IngestBar(console, enabled=not as_json and console.is_terminal)
    try:
        with bar:
            report = Ingestor(settings, bar).run(paths or None, rebuild=rebuild, strict=strict)
    except IndexLocked as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(LOCKED) from None
    except StrictFailure as error:
        report = error.report
        show_failures(report)
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(FILES_FAILED) from None

    if as_json:
        emit(report.to_dict())
    else:
        show_failures(report)
        counts = report.counts()
        console.print(
            f"added {counts['added']}, updated {counts['updated']}, removed {counts['removed']}, "
            f"unchanged {counts['unchanged']}, failed {counts['failed']}, skipped {counts['skipped']} · "
            f"{report.chunks_added} chunks embedded, {report.chunks_removed} deleted · "
            f"{report.documents} documents, {report.chunks} chunks in index · {report.seconds:.1f}s"
            + (" · rebuilt" if report.rebuilt else "")
        )
    raise typer.Exit(FILES_FAILED if report.failed else OK)


def show_failures(report):
    for item in report.failed:
        console.print(f"[red]failed[/red]  {item['source']}:{item['path']}: {item['reason']}", highlight=False)
    for item in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {item['path']}: {item['reason']}", highlight=False)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for."),
    limit: int = typer.Option(None, "--limit", "-n", help="Number of passages (default from config)."),
    mode: str = typer.Option(None, "--mode", "-m", help="hybrid | dense | keyword (default from config)."),
    where: str = typer.Option(None, "--where", "-w", help="SQL filter on metadata, e.g. \"filetype = 'pdf'\"."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
):
    """Search the index: ranked passages with score, source, page, heading and a snippet."""
    from .search import Searcher, SearchError

    searcher = Searcher(config())
    try:
        hits = searcher.search(query, limit=limit, mode=mode, where=where)
    except SearchError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(USAGE) from None
    if as_json:
        emit([hit.to_dict() for hit in hits])
        return
    if not hits:
        console.print("no results")
        return
    table = Table(show_lines=True)
    for column in ("#", "score", "source", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, 1):
        table.add_row(str(rank), f"{hit.score:.3f}", hit.label, hit.snippet())
    out.print(table)


@app.command()
def ask(
    question: str = typer.Argument(..., help="Your question about the documents."),
    top_k: int = typer.Option(None, "--top-k", "-k", help="Passages to retrieve (default from config)."),
    where: str = typer.Option(None, "--where", "-w", help="SQL filter on metadata, e.g. \"source like 'guide/%'\"."),
    stream: bool = typer.Option(False, "--stream", "-s", help="Print the answer as it is generated."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer, citations and timings as JSON."),
):
    """Answer a question from the documents, citing the passages used."""
    from .llm.errors import LLMError
    from .llm.progress import PullBar
    from .search import SearchError
    from .service import LocalRAG

    service = LocalRAG(config(), pull_progress=PullBar(console))
    answer = None
    try:
        for event in service.stream(question, top_k=top_k, where=where):
            if event.type == "token" and stream and not as_json:
                out.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
            elif event.type == "error":
                console.print(f"\n[red]error:[/red] {event.error}", highlight=False)
            elif event.type == "answer":
                answer = event.answer
    except SearchError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(USAGE) from None
    except LLMError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(UNAVAILABLE) from None

    if as_json:
        emit(answer.to_dict())
    else:
        if not stream:
            out.print(answer.answer, markup=False, highlight=False)
        else:
            out.print()
        show_citations(answer)
    if not answer.complete:
        raise typer.Exit(UNAVAILABLE)


def show_citations(answer):
    if not answer.found:
        return
    label = "sources (inferred)" if any(c.inferred for c in answer.citations) else "sources"
    if answer.citations:
        out.print(f"\n[bold]{label}[/bold]")
    for citation in answer.citations:
        number = f"[{citation.number}]" if citation.number else "-"
        out.print(f"  {number} {citation.label}  (score {citation.score:.2f})", highlight=False, markup=False)
    if not answer.complete:
        console.print("[yellow]answer incomplete: the LLM failed while generating[/yellow]")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Print status as JSON.")):
    """Index name, model, documents, chunks, size on disk, last ingest (and the LLM backend)."""
    from .search import status as index_status

    settings = config()
    info = index_status(settings)
    info["llm"] = llm_status(settings)
    if as_json:
        emit(info)
        return
    for key, value in info.items():
        out.print(f"{key:>12}: {value}", highlight=False)


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Bind address (default api.host)."),
    port: int = typer.Option(None, "--port", "-p", help="Port (default api.port)."),
    workers: int = typer.Option(None, "--workers", "-w", help="uvicorn worker processes (default api.workers)."),
):
    """Serve the HTTP API (search, ask, documents, jobs, OpenAI/Ollama-compatible chat, workflows)."""
    from api.server import serve as run

    run(config(), host=host, port=port, workers=workers)


@app.command(name="eval")
def evaluate(
    dataset: Path = typer.Argument(None, help="BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."),
    qrels: str = typer.Option("dev", "--qrels", help="Which qrels/<NAME>.tsv to score against."),
    mode: list[str] = typer.Option(None, "--mode", "-m", help="Search modes to score (default: hybrid, dense, keyword)."),
    answers: Path = typer.Option(None, "--answers", help="JSONL questions about the indexed documents: score the answers."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
):
    """Retrieval quality on a BEIR dataset (nDCG@10, Recall@10/100, MRR@10, latency), or answer quality."""
    from .progress import IngestBar

    settings = config()
    if not dataset and not answers:
        console.print("[red]error:[/red] give a DATASET folder, --answers FILE, or both")
        raise typer.Exit(USAGE)
    results = {}
    if dataset:
        from .beir import evaluate_dataset

        if not (dataset / "corpus.jsonl").exists() or not (dataset / "qrels" / f"{qrels}.tsv").exists():
            console.print(f"[red]error:[/red] {dataset} is not a BEIR folder with corpus.jsonl and qrels/{qrels}.tsv")
            raise typer.Exit(USAGE)
        with IngestBar(console, enabled=not as_json and console.is_terminal) as bar:
            results["retrieval"] = evaluate_dataset(settings, dataset, qrels, tuple(mode or ("hybrid", "dense", "keyword")), progress=bar)
    if answers:
        from .answer_eval import evaluate_answers
        from .service import LocalRAG

        results["answers"] = evaluate_answers(LocalRAG(settings), answers)
    if as_json:
        emit(results)
        return
    if "retrieval" in results:
        retrieval = results["retrieval"]
        table = Table(title=f"{retrieval['dataset']} ({retrieval['documents']} documents, {retrieval['queries']} queries, {retrieval['chunks']} chunks)")
        metrics = list(next(iter(retrieval["modes"].values())))
        table.add_column("mode")
        for name in metrics:
            table.add_column(name, justify="right")
        for name, values in retrieval["modes"].items():
            table.add_row(name, *(f"{values[m]:.4f}" if "latency" not in m else f"{values[m]:.1f}" for m in metrics))
        out.print(table)
    if "answers" in results:
        for row in results["answers"]["results"]:
            mark = "ok " if row.get("facts_hit") or (not row["answerable"] and row["refused"]) else "-- "
            out.print(f"{mark} {row['question']}\n     {row['answer'][:160]}", markup=False, highlight=False)
        for key, value in results["answers"]["summary"].items():
            out.print(f"{key:>24}: {value}", highlight=False)


def llm_status(settings) -> dict:
    """Which LLM backend is active and why (probes Ollama when provider is auto)."""
    from .llm.errors import LLMError
    from .llm.factory import create_llm

    try:
        llm = create_llm(settings.llm, settings.root)
        return {"backend": llm.name, "model": llm.model, "reason": llm.reason}
    except LLMError as error:
        return {"backend": None, "error": str(error)}


from . import workflow_cli  # noqa: E402,F401  (registers `rag workflow`)


def main():
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

"""`rag ingest`, `rag search`, `rag status`: the index from the command line."""

from pathlib import Path

import typer
from rich.table import Table

from .app import FILES_FAILED, LOCKED, OK, UNWRITABLE, USAGE, app, console, emit, fail, out, service


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(None, help="Only these files or folders (default: every configured source)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Start from scratch: re-embed everything."),
    strict: bool = typer.Option(False, "--strict", help="If any file fails, write nothing and exit 1."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
):
    """Sync documents into the index: only new or changed files are embedded; removed ones are deleted."""
    from ..ingest import StrictFailure
    from ..store import IndexLocked, IndexUnwritable
    from .progress import IngestBar

    rag = service()
    bar = IngestBar(console, enabled=not as_json and console.is_terminal)
    try:
        with bar:
            report = rag.ingest(paths or None, rebuild=rebuild, strict=strict, progress=bar)
    except IndexLocked as error:
        fail(error, LOCKED)
    except IndexUnwritable as error:
        fail(error, UNWRITABLE)
    except StrictFailure as error:
        show_failures(error.report)
        fail(error, FILES_FAILED)

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
    from ..search import SearchError

    try:
        hits = service().search(query, limit=limit, mode=mode, where=where)
    except SearchError as error:
        fail(error, USAGE)
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
def status(as_json: bool = typer.Option(False, "--json", help="Print status as JSON.")):
    """Index name, model, documents, chunks, size on disk, last ingest (and the LLM backend)."""
    rag = service()
    info = rag.status()
    info["llm"] = rag.llm_choice()
    if as_json:
        emit(info)
        return
    for key, value in info.items():
        out.print(f"{key:>12}: {value}", highlight=False)

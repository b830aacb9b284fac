"""`rag ask`: a grounded answer with citations in the terminal."""

import typer

from .app import UNAVAILABLE, USAGE, app, console, emit, fail, out, service


@app.command()
def ask(
    question: str = typer.Argument(..., help="Your question about the documents."),
    top_k: int = typer.Option(None, "--top-k", "-k", help="Passages to retrieve (default from config)."),
    where: str = typer.Option(None, "--where", "-w", help="SQL filter on metadata, e.g. \"source like 'guide/%'\"."),
    stream: bool = typer.Option(False, "--stream", "-s", help="Print the answer as it is generated."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer, citations and timings as JSON."),
):
    """Answer a question from the documents, citing the passages used."""
    from ..llm.errors import LLMError
    from ..search import SearchError
    from .progress import PullBar

    rag = service(progress=PullBar(console))
    answer = None
    try:
        for event in rag.stream(question, top_k=top_k, where=where):
            if event.type == "token" and stream and not as_json:
                out.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
            elif event.type == "error":
                console.print(f"\n[red]error:[/red] {event.error}", highlight=False)
            elif event.type == "answer":
                answer = event.answer
    except SearchError as error:
        fail(error, USAGE)
    except LLMError as error:
        fail(error, UNAVAILABLE)

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

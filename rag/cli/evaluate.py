"""`rag eval`: retrieval quality on a BEIR dataset, answer quality on a questions file."""

from pathlib import Path

import typer
from rich.table import Table

from .app import USAGE, app, config, console, emit, fail, out


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
        fail("give a DATASET folder, --answers FILE, or both", USAGE)
    results = {}
    if dataset:
        from ..beir import evaluate_dataset

        if not (dataset / "corpus.jsonl").exists() or not (dataset / "qrels" / f"{qrels}.tsv").exists():
            fail(f"{dataset} is not a BEIR folder with corpus.jsonl and qrels/{qrels}.tsv", USAGE)
        with IngestBar(console, enabled=not as_json and console.is_terminal) as bar:
            results["retrieval"] = evaluate_dataset(settings, dataset, qrels, tuple(mode or ("hybrid", "dense", "keyword")), progress=bar)
    if answers:
        from ..answer_eval import evaluate_answers
        from ..service import LocalRAG

        results["answers"] = evaluate_answers(LocalRAG(settings), answers)
    if as_json:
        emit(results)
        return
    if "retrieval" in results:
        show_retrieval(results["retrieval"])
    if "answers" in results:
        show_answers(results["answers"])


def show_retrieval(retrieval: dict):
    table = Table(title=f"{retrieval['dataset']} ({retrieval['documents']} documents, {retrieval['queries']} queries, {retrieval['chunks']} chunks)")
    metrics = list(next(iter(retrieval["modes"].values())))
    table.add_column("mode")
    for name in metrics:
        table.add_column(name, justify="right")
    for name, values in retrieval["modes"].items():
        table.add_row(name, *(f"{values[m]:.4f}" if "latency" not in m else f"{values[m]:.1f}" for m in metrics))
    out.print(table)


def show_answers(answers: dict):
    for row in answers["results"]:
        mark = "ok " if row.get("facts_hit") or (not row["answerable"] and row["refused"]) else "-- "
        out.print(f"{mark} {row['question']}\n     {row['answer'][:160]}", markup=False, highlight=False)
    for key, value in answers["summary"].items():
        out.print(f"{key:>24}: {value}", highlight=False)

"""`rag eval`: runs a BEIR dataset through the configured pipeline and scores the rankings.

The corpus is written as Markdown files (`# title` + text) and ingested by the same Ingestor
the CLI and the API use, into its own index `eval-<dataset>` next to the configured one, so a
second run reuses the embeddings (incremental sync). Queries go through the same Searcher;
chunk hits map back to their document by max score.
"""

import time
from pathlib import Path

from .config import Config, SourceConfig
from .evaluation import evaluate, load_beir, percentile, rank_documents
from .ingest import Ingestor, Progress
from .search import Searcher

SOURCE = "corpus"


def write_corpus(corpus: dict, folder: Path):
    """One Markdown file per document; unchanged files are left alone so re-runs embed nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    for uid, row in corpus.items():
        text = f"# {row['title']}\n\n{row['text']}\n" if row["title"] else f"{row['text']}\n"
        path = folder / f"{safe(uid)}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def safe(uid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in uid)


def eval_config(config: Config, dataset: Path) -> Config:
    """The configured pipeline with its own index and the corpus folder as the only source."""
    name = f"eval-{safe(dataset.resolve().name)}"
    folder = config.resolve(config.index.path) / f"{name}.corpus"
    return config.model_copy(
        update={
            # its own schema on Postgres too (localrag_<name>), never an explicitly configured one
            "index": config.index.model_copy(update={"name": name, "postgres": config.index.postgres.model_copy(update={"schema_name": None})}),
            "ingest": config.ingest.model_copy(update={"sources": [SourceConfig(name=SOURCE, path=folder)], "uploads": folder / ".none"}),
        }
    )


def evaluate_dataset(
    config: Config,
    dataset: Path,
    split: str = "dev",
    modes: tuple = ("hybrid", "dense", "keyword"),
    depth: int = 100,
    progress: Progress | None = None,
) -> dict:
    """Indexes the corpus, runs every judged query in each mode, returns metrics and latency."""
    data = load_beir(dataset, split)
    config = eval_config(config, Path(dataset))
    write_corpus(data.corpus, config.resolve(config.ingest.sources[0].path))
    started = time.perf_counter()
    report = Ingestor(config, progress).run()
    indexing = time.perf_counter() - started

    # eval ranks documents from 2 x depth chunks: beyond what an API request may ask (search.max_limit)
    config = config.model_copy(update={"search": config.search.model_copy(update={"max_limit": max(config.search.max_limit, depth * 2)})})
    searcher = Searcher(config)
    by_stem = {safe(uid): uid for uid in data.corpus}
    queries = data.judged
    results = {}
    for mode in modes:
        rankings, latencies = {}, []
        for uid, text in queries.items():
            started = time.perf_counter()
            hits = searcher.search(text, limit=depth * 2, mode=mode)
            latencies.append((time.perf_counter() - started) * 1000)
            rankings[uid] = rank_documents(((hit.source, hit.score) for hit in hits), lambda s: by_stem[s[:-3]])
        metrics = {key: round(value, 4) for key, value in evaluate(rankings, data.qrels).items()}
        metrics["latency_p50_ms"] = round(percentile(latencies, 50), 2)
        metrics["latency_p95_ms"] = round(percentile(latencies, 95), 2)
        results[mode] = metrics

    return {
        "dataset": str(dataset),
        "split": split,
        "documents": len(data.corpus),
        "queries": len(queries),
        "chunks": report.chunks,
        "index": config.index.name,
        "indexing_seconds": round(indexing, 1),
        "embedded_chunks": report.chunks_added,
        "modes": results,
    }

"""Follow-up questions: which standalone query finds the right page (rag/condense.py methods).

Over a fixed subset of Debian's Python 3.11 manual (bench/followups.yml; `apt-get install
python3.11-doc`), indexed once into indexes/bench-followups/ and reused, it asks
bench/data/followups.jsonl:

- follow-ups: the last turn of 2- and 3-turn conversations, which only makes sense after them;
- follow-ups after a topic switch: the same, with another conversation's turns before;
- standalone questions with no history, and after an unrelated turn (another conversation's first
  turn), which must not get worse.

and prints hit@5 (an expected page among the top-5 hits' sources), MRR@5 and the median time per
query (standalone query + search) for each method, over all questions and per split: `dev`
(written first; the methods and the reference cues were shaped on it) and `holdout` (written after
the cues were fixed; has the 3-turn conversations; fused's discount 0.1 was picked looking at
both: 0.1-0.15 is a plateau). A method name with ":gated" uses the history only for questions with a reference
cue (rag.condense.REFERENCES: it, its, one, that, an opening "and", ...).

    python bench/followups.py [--methods last,concat,weighted,fused,llm,fused:gated] [--turns 3] [--json]
    python bench/followups.py --provider ollama --model llama3.2:1b     # the llm method on Ollama
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.condense import METHODS, condensed_search, standalone_query  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.ingest import Ingestor  # noqa: E402
from rag.llm.config import LLMConfig  # noqa: E402
from rag.llm.factory import create_llm  # noqa: E402
from rag.search import Searcher  # noqa: E402

CONFIG = ROOT / "bench" / "followups.yml"
DATA = ROOT / "bench" / "data" / "followups.jsonl"
K = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join([*METHODS, "weighted:gated", "fused:gated"]))
    parser.add_argument("--turns", type=int, default=3, help="previous user turns used at most (history window)")
    parser.add_argument("--discount", type=float, default=0.1, help="fused: score discount of the contextual search")
    parser.add_argument("--provider", default="embedded", help="llm method backend: embedded | ollama | openai")
    parser.add_argument("--model", help="Ollama/OpenAI model for the llm method")
    parser.add_argument("--seed", type=int, default=14, help="pairs standalone questions with unrelated turns")
    parser.add_argument("--show", action="store_true", help="print every query and where the expected page ranked")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    config = load_config(CONFIG)
    source = config.resolve(config.ingest.sources[0].path)
    if not (source / "tutorial" / "index.html").is_file():
        sys.exit(f"{source}: the Python manual is missing: apt-get install python3.11-doc (or set PYDOC_DIR)")
    report = Ingestor(config).run()  # incremental: nothing to do once the index exists
    if report.changed:
        print(f"indexed {report.documents} pages, {report.chunks} chunks in {report.seconds:.0f} s", file=sys.stderr)
    searcher = Searcher(config)
    search = lambda query, limit, where: searcher.search(query, limit, None, where)  # noqa: E731
    search("warm-up", K, None)

    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    sets = question_sets(rows, random.Random(args.seed))
    methods = args.methods.split(",")
    llm = make_llm(args) if any(m.split(":")[0] == "llm" for m in methods) else None

    results = {}
    for spec in methods:
        method, _, variant = spec.partition(":")
        settings = {"turns": args.turns}
        if variant == "gated":
            settings["gate"] = True
        if method == "llm":
            settings["llm"] = llm
        if method == "fused":
            settings["discount"] = args.discount
        for name, items in sets.items():
            if name == "standalone, no history" and spec != methods[0]:
                continue  # no history: every method searches the question alone
            results[(name, spec)] = run(search, items, method, settings, args.show)

    figures = {"chunks": searcher.info().chunks, "documents": searcher.info().documents, "turns": args.turns, "rows": []}
    for (name, method), result in results.items():
        figures["rows"].append({"set": name, "method": method, **result})
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        table(figures)


def question_sets(rows: list[dict], rng: random.Random) -> dict[str, list[dict]]:
    """The four sets of (question, history, expected) the methods are scored on."""
    followups = [row for row in rows if row["kind"] == "followup"]
    standalone = [row for row in rows if row["kind"] == "standalone"]

    def unrelated(expected: list[str], exclude: str = "") -> list[dict]:
        """The first turn (user and assistant) of a random conversation about other pages."""
        others = [row for row in followups if row["id"] != exclude and not set(row["expected"]) & set(expected)]
        return rng.choice(others)["history"]

    return {
        "follow-up": [{**row} for row in followups],
        "follow-up after topic switch": [{**row, "history": unrelated(row["expected"], row["id"]) + row["history"]} for row in followups],
        "standalone, no history": [{**row, "history": []} for row in standalone],
        "standalone, unrelated history": [{**row, "history": unrelated(row["expected"])} for row in standalone],
    }


def run(search, items: list[dict], method: str, settings: dict, show: bool) -> dict:
    """hit@5, MRR@5 and time per query of one method over one set."""
    ranks, times, splits, rewritten = [], [], [], 0
    for item in items:
        start = time.perf_counter()
        query, hits = condensed_search(search, item["question"], item["history"], K, method, **settings)
        times.append((time.perf_counter() - start) * 1000)
        sources = [hit.source for hit in hits]
        rank = next((n for n, source in enumerate(sources, 1) if source in item["expected"]), None)
        ranks.append(rank)
        splits.append(item.get("split", "dev"))
        if method == "llm" and item["history"]:  # else the fallback's (or the question alone) was searched
            fallback = {key: value for key, value in settings.items() if key != "llm"}
            rewritten += query != standalone_query(item["question"], item["history"], "weighted", **fallback)
        if show:
            print(f"{method:9} {item['id']:28} rank={rank or '-'} query={query!r} top={sources[:3]}", file=sys.stderr)
    return {
        "n": len(items),
        "hit@5": round(sum(rank is not None for rank in ranks) / len(items), 3),
        "mrr@5": round(sum(1 / rank for rank in ranks if rank) / len(items), 3),
        **{f"{split} hit@5": hit_rate([r for r, s in zip(ranks, splits) if s == split]) for split in ("dev", "holdout")},
        "ms_p50": round(statistics.median(times), 1),
        "ms_max": round(max(times), 1),
        **({"llm_rewrites": rewritten} if method == "llm" else {}),
    }


def hit_rate(ranks: list) -> float | None:
    return round(sum(rank is not None for rank in ranks) / len(ranks), 3) if ranks else None


def make_llm(args):
    settings = {"provider": args.provider, "temperature": 0.0, "max_tokens": 48}
    if args.model:
        settings[args.provider] = {"model": args.model}
    llm = create_llm(LLMConfig(**settings))
    llm.chat("Say OK.", max_tokens=2)  # loads the model outside the timings
    return llm


def table(figures: dict):
    print(f"{figures['documents']} pages, {figures['chunks']} chunks; history window: {figures['turns']} user turns")
    print(f"{'set':30} {'method':15} {'n':>3} {'hit@5':>6} {'MRR@5':>6} {'dev':>6} {'holdout':>7} {'ms p50':>8} {'ms max':>8}")
    for row in figures["rows"]:
        extra = f"  ({row['llm_rewrites']} LLM rewrites used)" if "llm_rewrites" in row else ""
        print(
            f"{row['set']:30} {row['method']:15} {row['n']:>3} {row['hit@5']:>6.3f} {row['mrr@5']:>6.3f} "
            f"{row['dev hit@5']:>6.3f} {row['holdout hit@5']:>7.3f} {row['ms_p50']:>8.1f} {row['ms_max']:>8.1f}{extra}"
        )


if __name__ == "__main__":
    main()

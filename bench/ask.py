"""Answer latency split into retrieval, context assembly and the LLM, on the sample documents.

Ingests data/ into a temporary index, warms the models up, then asks a fixed set of questions
(tests/fixtures/answers.jsonl) and prints per-stage medians: retrieval, context assembly (token
budget, prompt), time to first token, LLM time, total, and the pipeline overhead (everything but
the LLM's own time), which has a target of <= 50 ms at the median.

    python bench/ask.py [--provider embedded] [--rounds 1]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer_eval import load_questions  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.service import LocalRAG  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider", default="embedded")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--questions", type=Path, default=ROOT / "tests" / "fixtures" / "answers.jsonl")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RAG_INDEX_DIR": str(Path(tmp) / "indexes"), "RAG_DATA_DIR": str(ROOT / "data"), "RAG_LLM__PROVIDER": args.provider}
        service = LocalRAG(load_config(ROOT / "config.yml", environ=env))
        service.ingest()
        questions = [row["question"] for row in load_questions(args.questions)]
        service.ask(questions[0])  # warm-up: loads the LLM

        timings = []
        for _ in range(args.rounds):
            for question in questions:
                answer = service.ask(question)
                t = answer.timings
                overhead = t["total_ms"] - t["llm_ms"]
                timings.append({**t, "overhead_ms": overhead, "found": answer.found})
        service.close()

    answered = [t for t in timings if t["found"]]
    figures = {
        "questions": len(timings),
        "answered_by_llm": len(answered),
        "backend": args.provider,
        "retrieval_ms_p50": median(t["retrieval_ms"] for t in timings),
        "context_ms_p50": median(t["context_ms"] for t in answered),
        "first_token_ms_p50": median(t["first_token_ms"] for t in answered if t["first_token_ms"] is not None),
        "llm_ms_p50": median(t["llm_ms"] for t in answered),
        "total_ms_p50": median(t["total_ms"] for t in timings),
        "overhead_ms_p50 (all but the LLM)": median(t["overhead_ms"] for t in timings),
        "overhead_ms_max": round(max(t["overhead_ms"] for t in timings), 2),
        "target_overhead_ms_p50": 50,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>36}: {value}")


def median(values) -> float:
    values = list(values)
    return round(statistics.median(values), 2) if values else 0.0


if __name__ == "__main__":
    main()

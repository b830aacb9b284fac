"""Answer-level evaluation: fact hit rate, citation validity and correct refusals.

The questions file is JSONL, one question per line:

    {"question": "...", "expected_facts": ["8080"], "expected_sources": ["guide/http-api.md"]}
    {"question": "What is the capital of Peru?", "answerable": false}

A fact is hit when it appears in the answer (case-insensitive). A citation is valid when it
names a retrieved passage that supports the answer: the passage comes from an expected source or
contains an expected fact. An unanswerable question is refused correctly when the answer is the
not-found message or says it does not know.
"""

import json
import re
from pathlib import Path

REFUSAL = re.compile(r"\b(don'?t know|do not know|could not find|cannot find|not (?:in|found in) the (?:documents|passages))\b", re.I)


def load_questions(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from None
            if "question" not in row:
                raise ValueError(f"{path}:{number}: missing 'question'")
            rows.append(row)
    return rows


def answerable(row: dict) -> bool:
    return row.get("answerable", bool(row.get("expected_facts") or row.get("expected_sources")))


def judge(row: dict, answer) -> dict:
    """Scores one answer against its expectations."""
    text = answer.answer.lower()
    facts = [fact.lower() for fact in row.get("expected_facts", [])]
    sources = set(row.get("expected_sources", []))
    result = {"question": row["question"], "answer": answer.answer, "answerable": answerable(row)}
    if not result["answerable"]:
        result["refused"] = (not answer.found) or bool(REFUSAL.search(answer.answer))
        return result

    result["facts_hit"] = all(fact in text for fact in facts) if facts else None
    supported = [
        citation.source in sources or any(fact in citation.snippet.lower() for fact in facts) for citation in answer.citations
    ]
    result["citations"] = len(answer.citations)
    result["citations_valid"] = sum(supported)
    result["cited_expected_source"] = any(c.source in sources for c in answer.citations)
    result["invalid_markers"] = len(answer.invalid_markers)
    result["refused"] = not answer.found
    return result


def summarize(results: list[dict]) -> dict:
    """Rates over all judged questions."""
    answerable_rows = [r for r in results if r["answerable"]]
    with_facts = [r for r in answerable_rows if r["facts_hit"] is not None]
    refusals = [r for r in results if not r["answerable"]]
    cited = sum(r["citations"] for r in answerable_rows)
    return {
        "questions": len(results),
        "fact_hit_rate": rate(sum(r["facts_hit"] for r in with_facts), len(with_facts)),
        "citation_validity": rate(sum(r["citations_valid"] for r in answerable_rows), cited),
        "expected_source_cited": rate(sum(r["cited_expected_source"] for r in answerable_rows), len(answerable_rows)),
        "invalid_markers": sum(r["invalid_markers"] for r in answerable_rows),
        "false_refusals": sum(r["refused"] for r in answerable_rows),
        "correct_refusal_rate": rate(sum(r["refused"] for r in refusals), len(refusals)),
    }


def rate(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def evaluate_answers(service, path: Path, progress=None) -> dict:
    """Asks every question of the file through the service and scores the answers."""
    results = []
    for row in load_questions(path):
        answer = service.ask(row["question"])
        results.append(judge(row, answer))
        if progress:
            progress(results[-1])
    return {"summary": summarize(results), "results": results}

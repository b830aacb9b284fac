"""Default prompts for grounded answers (every one can be replaced in config.yml, `answer:`), and
the helpers that fill them in and fit them into a model's window."""

import re
from collections.abc import Callable

SYSTEM = (
    "Answer the question using only the numbered passages. "
    "Cite the passage number in square brackets, e.g. [2]. "
    "If the answer is not in the passages, say: I don't know."
)

# The question comes first and again last: small models (SmolLM2-135M) then answer it instead of
# copying the passages' headers (5 of 8 sample questions right, against 3 with the question last only)
TEMPLATE = 'Question: {question}\n\nPassages:\n{context}\n\nAnswer to "{question}" (cite passages like [1]):'

# Fields: n (1-based number), label, text, source, page, heading, title, id, score
PASSAGE = "[{n}] ({label})\n{text}"

SEPARATOR = "\n\n"

NOT_FOUND = "I could not find this in the documents."


def passage_fields(n: int, hit, text: str | None = None) -> dict:
    """Values a passage format may use."""
    return {
        "n": n,
        "label": hit.label,
        "text": hit.text if text is None else text,
        "source": hit.source,
        "page": hit.page or "",
        "heading": hit.heading,
        "title": hit.title,
        "id": hit.id,
        "score": round(hit.score, 4),
    }


def shorten(text: str, fits: Callable[[str], bool]) -> str | None:
    """The longest prefix of text cut at a word boundary and marked " …" for which fits() holds
    (a binary search over word ends); None when not even the first word fits."""
    ends = [match.end() for match in re.finditer(r"\S+", text)]
    low, high, best = 0, len(ends) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = text[: ends[middle]] + " …"
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best

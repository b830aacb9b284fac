"""Default prompts for grounded answers; every one can be replaced in config.yml (`answer:`)."""

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

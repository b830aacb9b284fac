"""The retrieval query of a question asked inside a conversation.

A follow-up ("How do I make one of its options required?") means little to a search on its own;
its standalone query brings back what the earlier turns were about.

    question, history = split_messages(chat_messages)           # OpenAI/Ollama message lists
    query = standalone_query(question, history, method="weighted")
    query, hits = condensed_search(search, question, history, limit=5, method="fused")

Methods (`answer.condense`), measured in bench/followups.py:

- `last`: the question alone, as without history.
- `concat`: the previous user turns followed by the question.
- `weighted`: like concat, with the question repeated `weight` times so that it outweighs them.
- `fused`: two searches, the question alone and `weighted`; each passage keeps its best score,
  the contextual search's scores lowered by `discount` for the ranking, so a question that stands
  alone keeps its own hits. Needs the search function (`condensed_search`).
- `llm`: the LLM rewrites the follow-up as a standalone question (`CONDENSE_PROMPT`); when it
  fails or answers something unusable, the `fallback` method is used.

History window: the previous user turns back to the latest one that stands alone (it set the
topic; a turn with none of the `REFERENCES` cues: it, its, them, one, that, an opening "and",
"what about", ...), at most `turns` of them and `max_chars` characters. The cues are English: in
other languages the window is simply the last `turns` turns. With gate=True the history is used
only for questions that themselves contain a cue.

Only user turns feed the cheap methods: assistant answers are long and, from a small model, often
wrong. The LLM prompt shows both roles, each turn shortened.
"""

import re
from collections.abc import Callable, Sequence

from .llm.base import LLM
from .llm.errors import LLMError
from .types import Hit

METHODS = ("last", "concat", "weighted", "fused", "llm")
SINGLE_QUERY = ("last", "concat", "weighted")  # one query string, no LLM: usable as the llm fallback

# search(query, limit, where) -> ranked hits, as rag.answer.Answerer takes it
Search = Callable[[str, int, str | None], list[Hit]]

# Words that make a question lean on what was said before
REFERENCES = re.compile(
    r"\b(?:it|its|itself|they|them|their|theirs|themselves|this|that|these|those|one|ones|there|same|"
    r"also|too|instead|else|former|latter)\b|^\W*(?:and|but|or|so|what about|how about)\b",
    re.IGNORECASE,
)

CONDENSE_SYSTEM = (
    "Rewrite the user's last question so that it can be understood without the conversation: "
    "replace words like it, its, them, one and that with what they refer to. "
    "Reply with the rewritten question only, on one line."
)
CONDENSE_PROMPT = "Conversation:\n{history}\n\nLast question: {question}\n\nRewritten question:"
# Labels a model may echo before its rewrite, and transcript lines it may continue with
LABELS = re.compile(r"^\s*(?:rewritten|standalone|last|new)?\s*(?:question|query)\s*:\s*", re.IGNORECASE)
ROLE_LINE = re.compile(r"^\s*(?:user|assistant|system)\s*:", re.IGNORECASE)
WORDS = re.compile(r"[^\W_]{3,}")


class CondenseError(ValueError):
    """An unknown method or a setting out of range."""


def check_method(method: str, allowed: Sequence[str] = METHODS) -> str:
    if method not in allowed:
        raise CondenseError(f"unknown condense method {method!r}; expected one of {', '.join(allowed)}")
    return method


def split_messages(messages: Sequence[dict]) -> tuple[str, list[dict]]:
    """(question, history) from a chat message list: the last user message and the user and
    assistant turns before it (system messages left out)."""
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    last = max((i for i, m in enumerate(turns) if m["role"] == "user"), default=None)
    if last is None:
        return "", turns
    return turns[last].get("content") or "", turns[:last]


def refers_back(text: str, references: re.Pattern | None = REFERENCES) -> bool:
    """True when text seems to lean on earlier turns (always, when references is None)."""
    return references is None or bool(references.search(text))


def clip(text: str, size: int) -> str:
    """text with its whitespace collapsed, cut at a word boundary to at most size characters."""
    text = " ".join(text.split())
    if len(text) <= size:
        return text
    cut = text[:size].rsplit(" ", 1)[0]
    return cut if cut and len(cut) < size else text[:size]


def recent_turns(
    history: Sequence[dict],
    turns: int = 3,
    max_chars: int = 1000,
    roles: Sequence[str] = ("user",),
    references: re.Pattern | None = None,
) -> list[dict]:
    """The last `turns` turns of the given roles, oldest first, dropped oldest-first until their
    text fits max_chars (the newest one is shortened if it alone does not fit). With references,
    turns before the latest one that stands alone are left out: that one set the topic."""
    if turns < 0 or max_chars < 0:
        raise CondenseError("turns and max_chars must not be negative")
    chosen = [m for m in history if m.get("role") in roles and (m.get("content") or "").strip()]
    chosen = chosen[-turns:] if turns else []
    if references is not None:
        anchor = max((i for i, m in enumerate(chosen) if not refers_back(m["content"], references)), default=0)
        chosen = chosen[anchor:]
    kept, room = [], max_chars
    for message in reversed(chosen):
        text = " ".join(message["content"].split())
        if len(text) > room:
            if not kept and room:
                kept.append({"role": message["role"], "content": clip(text, room)})
            break
        kept.append({"role": message["role"], "content": text})
        room -= len(text) + 1
    return kept[::-1]


def standalone_query(
    question: str,
    history: Sequence[dict] | None = None,
    method: str = "weighted",
    llm: LLM | None = None,
    turns: int = 3,
    max_chars: int = 1000,
    weight: int = 2,
    fallback: str = "weighted",
    prompt: str = CONDENSE_PROMPT,
    system: str = CONDENSE_SYSTEM,
    references: re.Pattern | None = REFERENCES,
    gate: bool = False,
) -> str:
    """The query to search for question asked after history ({role, content} dicts, oldest first).

    The question alone without history, with method `last`, and with gate=True when the question
    has no reference cue. For `fused`, the contextual query of the two it searches (`weighted`).
    For `llm` without a usable rewrite (no llm, an LLMError, an empty, off-topic or overlong
    answer), the `fallback` method's query.
    """
    check_method(method)
    check_method(fallback, SINGLE_QUERY)
    if weight < 1:
        raise CondenseError("weight must be at least 1")
    question = " ".join(question.split())
    if method == "last" or (gate and not refers_back(question, references)):
        return question
    previous = [m["content"] for m in recent_turns(history or [], turns, max_chars, references=references)]
    if not previous:
        return question
    if method == "concat":
        return " ".join([*previous, question])
    if method in ("weighted", "fused"):
        return " ".join([*previous, *[question] * weight])
    rewritten = rewrite(question, history or [], llm, turns, max_chars, prompt, system) if llm else None
    settings = {"turns": turns, "max_chars": max_chars, "weight": weight, "references": references}
    return rewritten or standalone_query(question, history, fallback, **settings)


def rewrite(
    question: str,
    history: Sequence[dict],
    llm: LLM,
    turns: int = 3,
    max_chars: int = 1000,
    prompt: str = CONDENSE_PROMPT,
    system: str = CONDENSE_SYSTEM,
    max_tokens: int = 48,
) -> str | None:
    """The LLM's standalone version of question, or None when it fails or answers unusably."""
    # both roles, each turn short: the assistant's answer often names what "it" is
    window = recent_turns(history, 2 * turns, max_chars, roles=("user", "assistant"))
    if not window:
        return None
    lines = "\n".join(f"{m['role'].capitalize()}: {clip(m['content'], 300)}" for m in window)
    messages = [{"role": "user", "content": prompt.format(history=lines, question=question)}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        answer = llm.chat(messages, max_tokens=max_tokens, temperature=0.0, stop=["\n\n"])
    except LLMError:
        return None
    return usable(answer, question, history)


def usable(answer: str, question: str, history: Sequence[dict], limit: int = 300) -> str | None:
    """The first line of an LLM rewrite, labels and quotes removed, if it looks like a question
    about this conversation: not empty, not a transcript line, at most max(limit, 2 x question)
    characters, and sharing a word with the question or the history."""
    line = next((line for line in (answer or "").splitlines() if line.strip()), "")
    line = LABELS.sub("", line).strip().strip("\"'`").strip()
    if not line or ROLE_LINE.match(line) or len(line) > max(limit, 2 * len(question)):
        return None
    known = words(question) | words(" ".join(m.get("content") or "" for m in history))
    return line if words(line) & known else None


def words(text: str) -> set[str]:
    return {word.lower() for word in WORDS.findall(text)}


def condensed_search(
    search: Search,
    question: str,
    history: Sequence[dict] | None = None,
    limit: int = 5,
    method: str = "fused",
    where: str | None = None,
    discount: float = 0.1,
    **settings,
) -> tuple[str, list[Hit]]:
    """(query shown as searched, ranked hits) for question asked after history; settings go to
    standalone_query. `fused` searches the question alone and the weighted contextual query and
    merges both (see `fuse`); the query it shows is the concat form, which reads as a question."""
    check_method(method)
    query = standalone_query(question, history, method, **settings)
    question = " ".join(question.split())
    if method != "fused" or query == question:
        return query, search(query, limit, where)
    hits = fuse([search(question, limit, where), search(query, limit, where)], [0.0, discount], limit)
    return standalone_query(question, history, "concat", **settings), hits


def fuse(rankings: Sequence[list[Hit]], discounts: Sequence[float], limit: int) -> list[Hit]:
    """The best `limit` passages of several searches by score, each search's scores lowered by its
    discount for the ranking. A passage found twice counts once, with its better score; hits keep
    their own scores (score thresholds still apply); ties keep the earlier search's order."""
    ranked, best = {}, {}
    for ranking, discount in zip(rankings, discounts):
        for hit in ranking:
            if hit.id not in ranked or hit.score - discount > ranked[hit.id]:
                ranked[hit.id] = hit.score - discount
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    order = sorted(ranked, key=lambda uid: -ranked[uid])  # stable: first seen first among equals
    return [best[uid] for uid in order[:limit]]

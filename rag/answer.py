"""Grounded answers: retrieve, fit numbered passages into the model's window, generate, cite.

    answerer = Answerer(llm, search=lambda q, k, where: searcher.search(q, k, mode, where), config=answer_config)
    answer = answerer.ask("How do I back up the index?")
    for event in answerer.stream("How do I back up the index?"): ...   # token events, then the answer

Citations: the model is asked to cite passages as [n]. Markers naming a passage become citations
(source, page, heading, chunk id, score, snippet); markers naming none are removed from the text and
listed in `invalid_markers`. Small models often cite nothing: then, if answer.infer_citations, the
passages whose words the answer shares are cited with `inferred: true` (see `infer`).
"""

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from .llm.base import LLM
from .config import AnswerConfig
from .llm.errors import ContextOverflow, LLMError
from .condense import condensed_search
from .prompts import passage_fields, shorten
from .types import Hit

Search = Callable[[str, int, str | None], list[Hit]]

# [3], [1, 2], [1;4]: one marker naming one or more passages, with the whitespace before it
MARKER = re.compile(r"(\s*)\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
# The end of a stream piece that may still become a marker: whitespace and an open bracket with digits
PENDING = re.compile(r"\s*(?:\[[\d\s,;]{0,20})?$")

WORDS = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    "the and for are but not you your with this that from have has had was were will can all any its into than "
    "then there their what which who whom how why when where does did done been being about also only just very "
    "more most some such they them these those our out use used using may might must shall should would could "
    "answer question passage passages know don according".split()
)
# Inferred citations: a passage is cited when it holds at least INFER_MIN_WORDS of the answer's
# informative words (or INFER_MIN_SHARE of them) and at least INFER_NEAR_BEST of the best passage's count
INFER_MIN_WORDS = 2
INFER_MIN_SHARE = 0.5
INFER_NEAR_BEST = 0.5


@dataclass
class Citation:
    """A passage given to the model: cited in the answer, or kept as context."""

    number: Annotated[int | None, Field(description="The passage's [n] in the answer; null: retrieved but left out by the token budget.")]
    id: str
    source: str
    document: str
    title: str
    heading: str
    page: int | None
    chunk: int
    score: float
    snippet: str
    label: Annotated[str, Field(examples=["guide/backup.md, Backups"])]
    inferred: Annotated[bool, Field(description="Cited by word overlap because the answer carried no valid [n].")] = False
    truncated: Annotated[bool, Field(description="The passage was shortened to fit the context window.")] = False

    @classmethod
    def from_hit(cls, hit: Hit, number: int | None, snippet_size: int = 240, **flags) -> "Citation":
        return cls(
            number=number,
            id=hit.id,
            source=hit.source,
            document=hit.document,
            title=hit.title,
            heading=hit.heading,
            page=hit.page,
            chunk=hit.chunk,
            score=hit.score,
            snippet=hit.snippet(snippet_size),
            label=hit.label,
            **flags,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Answer:
    """A grounded answer with the passages it used."""

    question: str
    answer: str
    query: Annotated[str | None, Field(description="What was searched: the question, made standalone after earlier turns.")] = None
    citations: Annotated[list[Citation], Field(description="Passages the answer cites.")] = field(default_factory=list)
    context: Annotated[list[Citation], Field(description="Retrieved passages the answer does not cite.")] = field(default_factory=list)
    invalid_markers: Annotated[list[int], Field(description="[n] markers naming no passage, removed from the text.")] = field(
        default_factory=list
    )
    found: Annotated[bool, Field(description="False: no passage was relevant; the answer says so.")] = True
    complete: Annotated[bool, Field(description="False: the LLM failed mid-answer; `answer` is the partial text and `error` says why.")] = True
    error: str | None = None
    error_type: str | None = None
    backend: str = ""
    model: str = ""
    prompt_tokens: Annotated[int, Field(description="Counted before sending (exact, or a conservative estimate).")] = 0
    completion_tokens: int | None = None
    dropped: Annotated[int, Field(description="Passages left out by the token budget.")] = 0
    conversation_id: Annotated[str | None, Field(description="The stored conversation this answer continues or began.")] = None
    timings: Annotated[
        dict[str, float | None],
        Field(examples=[{"retrieval_ms": 12.1, "context_ms": 3.2, "llm_ms": 850.0, "first_token_ms": 120.5, "total_ms": 866.0}]),
    ] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Event:
    """One streamed event: `token` (text), `error` (the LLM failed; an answer event follows), `answer`."""

    type: str
    text: str = ""
    error: str | None = None
    error_type: str | None = None
    answer: Answer | None = None
    exception: Exception | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        if self.type == "token":
            return {"type": "token", "text": self.text}
        if self.type == "error":
            return {"type": "error", "error": self.error, "error_type": self.error_type}
        return {"type": "answer", **self.answer.to_dict()}


@dataclass
class Prompt:
    """The chat messages sent to the LLM and the passages they number."""

    messages: list[dict]
    passages: list[Hit]  # passage [n] is passages[n - 1]; text may be truncated
    truncated: set[int]  # numbers of truncated passages
    dropped: list[Hit]  # left out by the budget, lowest-ranked first to go
    tokens: int  # prompt tokens (llm.count_messages)
    budget: int  # tokens the prompt may use: window - max_tokens - safety margin
    turns: int = 0  # earlier conversation messages included


class MarkerFilter:
    """Removes [n] markers that name no passage from streamed text and records the cited numbers.

    Text that could still become a marker (an open bracket with digits, and whitespace before it)
    is held back until the next piece decides it, so the streamed text equals the final answer.
    """

    def __init__(self, count: int):
        self.count = count
        self.pending = ""
        self.used: list[int] = []
        self.invalid: list[int] = []

    def feed(self, text: str) -> str:
        buffer = self.pending + text
        cut = PENDING.search(buffer).start()
        ready, self.pending = buffer[:cut], buffer[cut:]
        return MARKER.sub(self.replace, ready)

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return MARKER.sub(self.replace, ready)

    def replace(self, match: re.Match) -> str:
        numbers = [int(number) for number in re.split(r"\s*[,;]\s*", match.group(2))]
        valid = [number for number in numbers if 1 <= number <= self.count]
        self.invalid.extend(number for number in numbers if number not in valid)
        self.used.extend(number for number in valid if number not in self.used)
        if not valid:
            return ""
        if len(valid) == len(numbers):
            return match.group(0)
        return f"{match.group(1)}[{', '.join(map(str, valid))}]"


def words(text: str) -> set[str]:
    """Informative lowercase words and numbers of text."""
    return {w for w in (word.lower() for word in WORDS.findall(text)) if (len(w) > 2 or w.isdigit()) and w not in STOPWORDS}


def infer(answer: str, question: str, passages: list[Hit]) -> list[int]:
    """Passage numbers an answer without markers most likely drew on.

    The answer's informative words not already in the question (all of them if it only restates
    the question) are looked up in each passage. A passage is cited when it holds at least two of
    them (or half of them, for one-word answers) and at least half as many as the best passage.
    An answer that shares nothing specific with the passages (e.g. "I don't know", or an invented
    command) cites nothing.
    """
    answer_words = words(answer)
    basis = (answer_words - words(question)) or answer_words
    if not basis or not passages:
        return []
    shared = [len(basis & words(hit.text)) for hit in passages]
    best = max(shared)
    return [
        n
        for n, count in enumerate(shared, 1)
        if count and (count >= INFER_MIN_WORDS or count / len(basis) >= INFER_MIN_SHARE) and count >= INFER_NEAR_BEST * best
    ]


def final(events: Iterator[Event]) -> Answer:
    """The answer of an event stream; the LLM's error when it failed before producing any text
    (a failure after some text gives the partial answer with complete=False)."""
    for event in events:
        if event.type == "answer":
            if not event.answer.complete and not event.answer.answer and event.exception:
                raise event.exception
            return event.answer
    raise RuntimeError("the answer stream ended without an answer")


def elapsed(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class Answerer:
    """Answers questions from retrieved passages with an LLM, citing the passages used.

    llm: a rag.llm backend. search(question, top_k, where) -> ranked hits (the caller binds the
    search mode and index). config: the `answer:` section.
    """

    def __init__(self, llm: LLM, search: Search, config: AnswerConfig | None = None, max_tokens: int | None = None):
        self.llm = llm
        self.search = search
        self.config = config or AnswerConfig()
        self.max_tokens = max_tokens or llm.max_tokens

    def retrieve(self, question: str, top_k: int | None = None, where=None, history: list[dict] | None = None) -> tuple[str, list[Hit]]:
        """(the query searched, ranked hits scoring at least min_score). After earlier turns the
        query is made standalone by the `answer.condense` method (rag.condense)."""
        config = self.config
        query, hits = condensed_search(
            self.search, question, history, top_k or config.top_k, config.condense, where, llm=self.llm, turns=config.condense_turns
        )
        return query, [hit for hit in hits if hit.score >= config.min_score]

    def messages(self, question: str, context: str, history: list[dict] = ()) -> list[dict]:
        """system, the earlier turns, then the question with its numbered passages."""
        messages = [*history, {"role": "user", "content": self.config.template.format(question=question, context=context)}]
        return [{"role": "system", "content": self.config.system}, *messages] if self.config.system else messages

    def with_history(self, prompt: "Prompt", question: str, history: list[dict]) -> "Prompt":
        """The prompt with as many recent turns (answer.history_turns at most) as the budget leaves
        room for beside the passages: history goes oldest-first, before any passage would."""
        window = [{"role": m["role"], "content": m["content"]} for m in history if m.get("role") in ("user", "assistant")]
        window = window[-self.config.history_turns :] if self.config.history_turns else []
        context = self.context(prompt.passages)
        while window:
            messages = self.messages(question, context, window)
            tokens = self.llm.count_messages(messages)
            if tokens <= prompt.budget:
                return dataclasses.replace(prompt, messages=messages, tokens=tokens, turns=len(window))
            window = window[1:]
        return prompt

    def block(self, n: int, hit: Hit, text: str | None = None) -> str:
        return self.config.passage.format(**passage_fields(n, hit, text))

    def context(self, hits: list[Hit]) -> str:
        """Numbered passages [1]..[n]."""
        return self.config.separator.join(self.block(n, hit) for n, hit in enumerate(hits, 1))

    def prompt(self, question: str, hits: list[Hit], history: list[dict] | None = None) -> Prompt:
        """Fits the prompt into the window: system + template + question + numbered passages +
        max_tokens + safety margin <= context window. Keeps a prefix of the ranking (the lowest-ranked
        passages go first); cuts the first passage when even it alone does not fit. Then recent
        turns of the conversation fill what room is left (with_history)."""
        prompt = self.passages(question, hits)
        return self.with_history(prompt, question, history) if history else prompt

    def passages(self, question: str, hits: list[Hit]) -> Prompt:
        """The prompt with as many of the ranked passages as fit."""
        budget = self.llm.context_window - self.max_tokens - self.config.safety_margin
        messages = self.messages(question, self.context(hits))
        tokens = self.llm.count_messages(messages)
        if tokens <= budget:  # the common case: one count
            return Prompt(messages, list(hits), set(), [], tokens, budget)

        fixed = self.llm.count_messages(self.messages(question, ""))
        if fixed > budget:
            raise ContextOverflow(
                f"the question and prompt templates need {fixed} tokens, more than the {budget} the window allows "
                f"({self.llm.context_window} - max_tokens {self.max_tokens} - margin {self.config.safety_margin})"
            )
        room, separator = budget - fixed, self.llm.count_tokens(self.config.separator)
        chosen, truncated = [], set()
        for hit in hits:
            cost = self.llm.count_tokens(self.block(len(chosen) + 1, hit)) + (separator if chosen else 0)
            if cost > room:
                if not chosen and (cut := self.truncate(hit, room)):
                    chosen, truncated = [cut], {1}
                break
            chosen.append(hit)
            room -= cost

        # Token counts of parts may not add up exactly: check the whole and shrink until it fits
        while True:
            messages = self.messages(question, self.context(chosen))
            tokens = self.llm.count_messages(messages)
            if tokens <= budget:
                break
            if len(chosen) > 1:
                chosen.pop()
                continue
            cut = self.truncate(chosen[0], self.llm.count_tokens(self.block(1, chosen[0])) - (tokens - budget) - 4) if chosen else None
            if not cut:
                raise ContextOverflow(f"no passage fits the {budget} tokens the window allows")
            chosen, truncated = [cut], {1}
        if not chosen:
            raise ContextOverflow(f"not even a part of a passage fits the {budget} tokens the window allows")
        dropped = [hit for hit in hits if hit.id not in {kept.id for kept in chosen}]
        return Prompt(messages, chosen, truncated, dropped, tokens, budget)

    def truncate(self, hit: Hit, room: int) -> Hit | None:
        """hit with its text cut at a word boundary so that passage [1] takes at most room tokens."""
        text = shorten(hit.text, lambda text: self.llm.count_tokens(self.block(1, hit, text)) <= room)
        return dataclasses.replace(hit, text=text) if text else None

    def ask(self, question: str, top_k: int | None = None, where=None, history: list[dict] | None = None, **sampling) -> Answer:
        """The whole answer. Raises LLMError if the LLM fails before producing any text; a failure
        after some text returns the partial answer with complete=False."""
        return final(self.stream(question, top_k, where, history, **sampling))

    def stream(self, question: str, top_k: int | None = None, where=None, history: list[dict] | None = None, **sampling) -> Iterator[Event]:
        """Token events as the LLM writes, then one answer event. An LLM failure yields an error
        event and an answer with complete=False. Search errors are raised.

        history: the conversation so far ({role, content}, oldest first): it makes the search query
        standalone and its recent turns go into the prompt. sampling: max_tokens, temperature, top_p,
        stop, seed for the LLM (already clamped by the caller)."""
        start = time.perf_counter()
        timings = {}
        query, hits = self.retrieve(question, top_k, where, history)
        timings["retrieval_ms"] = elapsed(start)
        backend = {"backend": self.llm.name, "model": self.llm.model}

        if not hits:
            text = self.config.not_found
            timings.update(context_ms=0.0, llm_ms=0.0, first_token_ms=None, total_ms=elapsed(start))
            yield Event("token", text=text)
            yield Event("answer", answer=Answer(question, text, found=False, query=query, timings=timings, **backend))
            return

        pieces, prompt, failure, generation = [], None, None, None
        markers = MarkerFilter(0)
        started = time.perf_counter()
        try:
            prompt = self.prompt(question, hits, history)
            markers = MarkerFilter(len(prompt.passages))
            timings["context_ms"] = elapsed(started)

            started = time.perf_counter()
            generation = self.llm.chat(prompt.messages, **{"max_tokens": self.max_tokens, **sampling}, stream=True)
            for piece in generation:
                if text := self.emit(markers.feed(piece), pieces, timings, started):
                    yield Event("token", text=text)
        except LLMError as error:
            failure = error
        finally:
            if generation is not None:
                generation.close()  # stops the model when the consumer stops reading
        if text := self.emit(markers.flush().rstrip(), pieces, timings, started):
            yield Event("token", text=text)
        if failure:
            yield Event("error", error=str(failure), error_type=type(failure).__name__, exception=failure)
        timings.setdefault("context_ms", elapsed(started))
        timings["llm_ms"] = elapsed(started) if prompt else 0.0
        timings.setdefault("first_token_ms", None)
        answer = self.cite(question, "".join(pieces).rstrip(), prompt, hits, markers)
        answer.query = query
        answer.timings = {**timings, "total_ms": elapsed(start)}
        answer.backend, answer.model = backend["backend"], backend["model"]
        answer.completion_tokens = self.count(answer.answer) if answer.answer else None
        if failure:
            answer.complete, answer.error, answer.error_type = False, str(failure), type(failure).__name__
        yield Event("answer", answer=answer, exception=failure)

    def count(self, text: str) -> int | None:
        """Tokens of the answer; None when the backend cannot count (a count never fails an answer)."""
        try:
            return self.llm.count_tokens(text)
        except Exception:
            return None

    @staticmethod
    def emit(text: str, pieces: list[str], timings: dict, started: float) -> str:
        """Records a streamed piece (leading whitespace of the answer dropped) and its first-token time."""
        if not pieces:
            text = text.lstrip()
        if text:
            if not pieces:
                timings["first_token_ms"] = elapsed(started)
            pieces.append(text)
        return text

    def cite(self, question: str, text: str, prompt: Prompt | None, hits: list[Hit], markers: MarkerFilter) -> Answer:
        """Answer with citations for the markers used (or inferred ones) and the rest as context."""
        size = self.config.snippet_size
        if prompt is None:
            context = [Citation.from_hit(hit, None, size) for hit in hits]
            return Answer(question, text, context=context)

        numbers, inferred = list(markers.used), False
        if not numbers and text and self.config.infer_citations:
            numbers, inferred = infer(text, question, prompt.passages), True

        def citation(n, **flags):
            return Citation.from_hit(prompt.passages[n - 1], n, size, truncated=n in prompt.truncated, **flags)

        citations = [citation(n, inferred=inferred) for n in numbers]
        context = [citation(n) for n in range(1, len(prompt.passages) + 1) if n not in numbers]
        context += [Citation.from_hit(hit, None, size) for hit in prompt.dropped]
        return Answer(
            question,
            text,
            citations=citations,
            context=context,
            invalid_markers=markers.invalid,
            prompt_tokens=prompt.tokens,
            dropped=len(prompt.dropped),
        )

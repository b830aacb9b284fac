"""Grounded answers with the real embedded model: citations, refusal, token budget, streaming, failures."""

import time

import pytest

from rag.answer import Answerer, MarkerFilter, Prompt, infer
from rag.config import AnswerConfig
from rag.llm import ContextOverflow, EmbeddedLLM, LLMUnavailable, create_llm
from rag.types import Hit
from tests.conftest_llm import OLLAMA_MODEL, llm_config
from tests.ollama_server import free_port

PASSAGES = [
    ("notes/animals.txt", "", "The giraffe is the tallest living terrestrial animal. It lives in Africa."),
    ("guide/backup.md", "Backups", "Copy the indexes folder to back up every index. Restores are a copy back."),
    ("guide/install.md", "Installation > Requirements", "Run make demo to install localrag. Python 3.11 or newer is required."),
]


def hit(source, text, score=0.8, heading="", chunk=0) -> Hit:
    return Hit(id=f"{source}#{chunk}", score=score, text=text, source=source, document=source, heading=heading, chunk=chunk)


def hits_for(question: str) -> list[Hit]:
    """A stand-in for search: passages ranked by shared words (retrieval itself is tested elsewhere)."""
    words = set(question.lower().split())
    ranked = sorted(PASSAGES, key=lambda p: -len(words & set(p[2].lower().split())))
    return [hit(source, text, 0.9 - 0.1 * rank, heading) for rank, (source, heading, text) in enumerate(ranked)]


def long_text(tokens: int, topic: str = "archive") -> str:
    """Text of roughly `tokens` tokens (a sentence is about 17)."""
    return " ".join(f"Sentence {i} of the {topic} notes describes shelf {i % 17} and box {i % 5}." for i in range(tokens // 17))


class Recorder:
    """A search callable that remembers its calls."""

    def __init__(self, results):
        self.results, self.calls = results, []

    def __call__(self, question, top_k, where):
        self.calls.append((question, top_k, where))
        return self.results


@pytest.mark.parametrize(
    "question, expected, source",
    [
        ("What is the tallest living terrestrial animal?", "giraffe", "notes/animals.txt"),
        ("Which Python version is required?", "3.11", "guide/install.md"),
    ],
)
def test_answers_from_the_passages_and_cites_the_source(embedded_llm, question, expected, source):
    answer = Answerer(embedded_llm, lambda q, k, where: hits_for(q)).ask(question)
    assert expected in answer.answer.lower()
    assert [citation.source for citation in answer.citations] == [source]
    assert {c.source for c in answer.context} == {p[0] for p in PASSAGES} - {source}
    assert answer.complete and answer.found
    assert answer.backend == "embedded" and answer.model == "SmolLM2-135M-Instruct"
    assert set(answer.timings) >= {"retrieval_ms", "context_ms", "llm_ms", "first_token_ms", "total_ms"}
    assert answer.timings["first_token_ms"] <= answer.timings["llm_ms"] <= answer.timings["total_ms"]


def test_nothing_relevant_means_no_llm_call_and_no_citations():
    # An LLM that cannot be reached: any call would fail the answer
    dead = create_llm(llm_config("ollama", ollama={"base_url": f"http://127.0.0.1:{free_port()}", "model": OLLAMA_MODEL}))
    search = Recorder([hit("notes/animals.txt", "The giraffe is tall.", score=0.05)])
    answerer = Answerer(dead, search, AnswerConfig(min_score=0.3, not_found="Not in your documents."))

    answer = answerer.ask("Who won the 1998 World Cup?", top_k=3, where="source = 'x'")
    assert answer.answer == "Not in your documents."
    assert not answer.found and answer.complete
    assert answer.citations == [] and answer.context == []
    assert search.calls == [("Who won the 1998 World Cup?", 3, "source = 'x'")]

    events = list(answerer.stream("Who won the 1998 World Cup?"))
    assert [event.type for event in events] == ["token", "answer"]
    assert events[0].text == "Not in your documents."


def test_lowest_ranked_passages_are_dropped_to_fit_the_window(embedded_llm):
    hits = [hit(f"docs/part{i}.md", long_text(700, f"topic{i}"), score=0.9 - 0.1 * i) for i in range(4)]
    answerer = Answerer(embedded_llm, Recorder(hits), max_tokens=256)
    prompt = answerer.prompt("Which shelf holds box 3?", hits)

    window = embedded_llm.context_window
    assert embedded_llm.count_messages(prompt.messages) == prompt.tokens <= window - 256 - answerer.config.safety_margin
    assert [h.source for h in prompt.passages] == ["docs/part0.md", "docs/part1.md"]  # a prefix of the ranking
    assert [h.source for h in prompt.dropped] == ["docs/part2.md", "docs/part3.md"]
    one_more = answerer.messages("Which shelf holds box 3?", answerer.context(hits[:3]))
    assert embedded_llm.count_messages(one_more) > prompt.budget  # the prefix is as long as fits
    assert "[1] (docs/part0.md)" in prompt.messages[-1]["content"]
    assert "[3]" not in prompt.messages[-1]["content"]


def test_a_single_huge_passage_is_cut_to_fit_and_answered(embedded_llm):
    # A 768-token window (llm.context_window) on the same loaded model keeps the prompt quick to process
    llm = EmbeddedLLM(llm_config(context_window=768))
    assert llm.loaded is embedded_llm.loaded and llm.context_window == 768
    hits = [hit("docs/huge.md", long_text(9000)), hit("docs/other.md", long_text(3000, "garden"), score=0.5)]
    answerer = Answerer(llm, Recorder(hits))
    prompt = answerer.prompt("Which shelf holds box 3?", hits)
    assert llm.count_messages(prompt.messages) <= 768 - llm.max_tokens
    assert prompt.truncated == {1} and prompt.passages[0].text.endswith("…")
    assert prompt.tokens > prompt.budget - 64  # the cut keeps as much as fits

    answer = answerer.ask("Which shelf holds box 3?")  # llama.cpp accepts the prompt
    assert answer.complete and answer.answer
    assert answer.dropped == 1
    assert all(c.truncated for c in answer.citations + answer.context if c.number == 1)
    assert [c.number for c in answer.context if c.source == "docs/other.md"] == [None]


def test_question_too_long_for_the_window(embedded_llm):
    answerer = Answerer(embedded_llm, Recorder(hits_for("giraffe")))
    with pytest.raises(ContextOverflow, match="question and prompt templates need"):
        answerer.ask(long_text(3000))


def test_estimated_budget_holds_against_the_real_tokenizer(embedded_llm, ollama_server):
    """Ollama has no tokenizer endpoint: the estimate must keep the real prompt inside num_ctx."""
    llm = create_llm(llm_config("ollama", ollama={"base_url": ollama_server.url, "model": OLLAMA_MODEL, "options": {"num_ctx": 512}}))
    hits = [hit(f"docs/part{i}.md", long_text(150, f"topic{i}"), score=0.9 - 0.1 * i) for i in range(5)]
    answer = Answerer(llm, Recorder(hits)).ask("Which shelf holds box 3?")
    assert answer.complete and answer.dropped > 0
    sent = ollama_server.requests[-1][1]
    assert sent["options"]["num_ctx"] == 512
    assert embedded_llm.count_messages(sent["messages"]) <= 512 - llm.max_tokens


def test_stream_yields_tokens_then_the_answer(embedded_llm):
    answerer = Answerer(embedded_llm, lambda q, k, where: hits_for(q))
    events = list(answerer.stream("What is the tallest living terrestrial animal?"))
    assert [e.type for e in events[:-1]] == ["token"] * (len(events) - 1) and len(events) > 3
    final = events[-1]
    assert final.type == "answer"
    assert "".join(e.text for e in events[:-1]) == final.answer.answer
    assert final.to_dict()["citations"][0]["source"] == "notes/animals.txt"


def test_llm_failure_mid_stream_marks_the_answer_incomplete(ollama_server):
    ollama_server.fail_after = 3
    llm = create_llm(llm_config("ollama", ollama={"base_url": ollama_server.url, "model": OLLAMA_MODEL}))
    answerer = Answerer(llm, lambda q, k, where: hits_for(q))

    events = list(answerer.stream("What is the tallest living terrestrial animal?"))
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "answer"] and set(kinds[:-2]) == {"token"}
    answer = events[-1].answer
    assert not answer.complete and answer.error_type == "LLMError" and "unexpected EOF" in answer.error
    assert answer.answer == "".join(e.text for e in events if e.type == "token") != ""

    partial = answerer.ask("What is the tallest living terrestrial animal?")
    assert not partial.complete and partial.answer


def test_llm_unreachable_before_any_token():
    dead = create_llm(llm_config("ollama", ollama={"base_url": f"http://127.0.0.1:{free_port()}", "model": OLLAMA_MODEL}))
    answerer = Answerer(dead, lambda q, k, where: hits_for(q))
    with pytest.raises(LLMUnavailable, match="ollama serve"):
        answerer.ask("What is the tallest living terrestrial animal?")
    events = list(answerer.stream("What is the tallest living terrestrial animal?"))
    assert [e.type for e in events] == ["error", "answer"]
    assert events[-1].answer.complete is False and events[-1].answer.error_type == "LLMUnavailable"


def test_markers_naming_no_passage_are_removed_and_reported():
    text = "Giraffes are the tallest [3]. Back up by copying the folder [1, 7] and [9]. Done [2][2]."
    markers = MarkerFilter(3)
    assert markers.feed(text) + markers.flush() == "Giraffes are the tallest [3]. Back up by copying the folder [1] and. Done [2][2]."
    assert markers.used == [3, 1, 2] and markers.invalid == [7, 9]

    for cut in range(len(text) + 1):  # streamed in two pieces, split anywhere: same text
        split = MarkerFilter(3)
        assert split.feed(text[:cut]) + split.feed(text[cut:]) + split.flush() == markers.feed(text) + markers.flush()


def test_citations_follow_the_markers_in_order(embedded_llm):
    hits = hits_for("giraffe")
    answerer = Answerer(embedded_llm, Recorder(hits))
    prompt = Prompt([], hits[:2], set(), hits[2:], 100, 1000)
    markers = MarkerFilter(2)
    text = markers.feed("Backups are copies [2]; the giraffe is tall [1] [5].") + markers.flush()
    answer = answerer.cite("q", text, prompt, hits, markers)
    assert answer.answer == "Backups are copies [2]; the giraffe is tall [1]."
    assert [c.number for c in answer.citations] == [2, 1]
    assert not any(c.inferred for c in answer.citations)
    assert answer.invalid_markers == [5]
    assert [(c.number, c.source) for c in answer.context] == [(None, hits[2].source)]
    assert answer.citations[1].snippet == hits[0].snippet() and answer.citations[1].id == hits[0].id


def test_inferred_citations_need_real_overlap():
    hits = hits_for("giraffe")
    question = "What is the tallest animal?"
    assert infer("The giraffe, which lives in Africa.", question, hits) == [1]
    assert infer("I don't know.", question, hits) == []
    assert infer("Blue whales are heavier than elephants.", question, hits) == []
    assert infer("The giraffe lives in Africa; copy the indexes folder to back up.", question, hits) == [1, 2]
    assert infer("Use sudo cp /etc/varnish to back up.", question, hits) == []  # invented, not from a passage


def test_abandoned_answer_stream_stops_the_model(embedded_llm):
    before = embedded_llm.metrics()["tokens_predicted_total"]
    config = AnswerConfig(system="", template="{context}\n\nIgnore the passages above. {question}")  # a long answer
    answerer = Answerer(embedded_llm, lambda q, k, where: hits_for(q)[:1], config, max_tokens=1200)
    events = answerer.stream("Count from 1 to 500, separated by commas.")
    assert [next(events).type for _ in range(3)] == ["token"] * 3
    events.close()  # e.g. the HTTP client went away
    deadline = time.monotonic() + 30
    while embedded_llm.metrics()["requests_processing"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert embedded_llm.metrics()["tokens_predicted_total"] - before < 30

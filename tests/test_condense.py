"""The standalone retrieval query of a follow-up question (rag/condense.py), with the real
embedding model, a real FAISS index and the real embedded LLM."""

import pytest

from rag.condense import (
    METHODS,
    CondenseError,
    condensed_search,
    fuse,
    recent_turns,
    split_messages,
    standalone_query,
    usable,
)
from rag.config import load_config
from rag.ingest import Ingestor
from rag.llm import EmbeddedLLM
from rag.search import Searcher
from rag.types import Hit
from tests.conftest import write_config
from tests.conftest_llm import llm_config

FIRST = "Which utility takes a base backup of a running cluster?"
ANSWER = "pg_basebackup takes a base backup of a running PostgreSQL cluster."
FOLLOWUP = "How do I make it include the required WAL files?"
HISTORY = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": ANSWER}]


def conversation(*questions: str) -> list[dict]:
    """User turns, each followed by a short assistant answer."""
    turns = []
    for n, question in enumerate(questions):
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": f"answer {n}"}]
    return turns


def test_last_is_the_question_alone():
    assert standalone_query("  How do I   restore it? ", HISTORY, "last") == "How do I restore it?"


def test_concat_puts_the_previous_user_turn_before_the_question_and_no_assistant_text():
    query = standalone_query(FOLLOWUP, HISTORY, "concat")
    assert query == f"{FIRST} {FOLLOWUP}"
    assert "PostgreSQL" not in query  # only in the assistant's answer


def test_weighted_repeats_the_question_after_the_history():
    assert standalone_query(FOLLOWUP, HISTORY, "weighted", weight=2) == f"{FIRST} {FOLLOWUP} {FOLLOWUP}"
    with pytest.raises(CondenseError):
        standalone_query(FOLLOWUP, HISTORY, "weighted", weight=0)


@pytest.mark.parametrize("method", METHODS)
def test_without_history_every_method_searches_the_question(method):
    assert standalone_query(FOLLOWUP, [], method) == FOLLOWUP
    assert standalone_query(FOLLOWUP, None, method) == FOLLOWUP
    assert standalone_query(FOLLOWUP, [{"role": "assistant", "content": ANSWER}], method) == FOLLOWUP


def test_history_window_is_bounded_by_turns():
    history = conversation("alpha", "bravo", "charlie", "delta")
    ask = lambda turns: standalone_query("and echo?", history, "concat", turns=turns, references=None)  # noqa: E731
    assert ask(3) == "bravo charlie delta and echo?"
    assert ask(2) == "charlie delta and echo?"
    assert ask(1) == "delta and echo?"
    assert ask(0) == "and echo?"


def test_history_window_drops_oldest_turns_first_to_fit_characters():
    history = conversation("a" * 50, "b" * 50, "c" * 50)
    kept = recent_turns(history, turns=3, max_chars=110)
    assert [turn["content"] for turn in kept] == ["b" * 50, "c" * 50]


def test_a_single_turn_longer_than_the_window_is_shortened_at_a_word():
    history = conversation("word " * 400)
    query = standalone_query("what next with it?", history, "concat", max_chars=100)
    assert query.endswith(" what next with it?")
    assert len(query) <= 100 + len(" what next with it?")
    assert query.startswith("word word")


@pytest.mark.parametrize("method", ["concat", "weighted", "fused"])
def test_gated_a_question_without_reference_ignores_the_history(method):
    question = "How do I read a text file line by line?"
    assert standalone_query(question, HISTORY, method, gate=True) == question
    assert standalone_query(question, HISTORY, method).endswith(question)
    assert standalone_query(question, HISTORY, method).startswith(FIRST)


@pytest.mark.parametrize("question", ["How do I restore it?", "And on Windows?", "What about the WAL files?", "Is there one for tables?"])
def test_gated_pronouns_and_openings_mark_a_follow_up(question):
    assert standalone_query(question, HISTORY, "concat", gate=True) == f"{FIRST} {question}"


def test_the_window_reaches_back_to_the_turn_that_set_the_topic():
    chain = conversation("Which module parses command-line options?", "How do I make one of its options required?")
    question = "And how do I give it a default value?"
    assert standalone_query(question, chain, "concat") == " ".join([chain[0]["content"], chain[2]["content"], question])
    switched = conversation("Which module parses command-line options?", "How do I read a CSV file?")
    assert standalone_query("How do I skip its header?", switched, "concat") == "How do I read a CSV file? How do I skip its header?"


def test_unknown_method_or_fallback_is_refused_with_the_choices():
    with pytest.raises(CondenseError, match="concat"):
        standalone_query(FOLLOWUP, HISTORY, "summarize")
    with pytest.raises(CondenseError, match="fallback|expected"):
        standalone_query(FOLLOWUP, HISTORY, "llm", fallback="llm")
    with pytest.raises(CondenseError):
        recent_turns(HISTORY, turns=-1)


def test_split_messages_takes_the_last_user_message_and_leaves_out_system():
    messages = [{"role": "system", "content": "Be brief."}, *HISTORY, {"role": "user", "content": FOLLOWUP}]
    question, history = split_messages(messages)
    assert question == FOLLOWUP
    assert history == HISTORY
    assert split_messages([{"role": "system", "content": "x"}]) == ("", [])


def test_llm_rewrite_is_a_single_nonempty_line(embedded_llm):
    query = standalone_query(FOLLOWUP, HISTORY, "llm", llm=embedded_llm)
    assert query.strip() and "\n" not in query
    assert len(query) <= 300


def test_llm_that_cannot_run_falls_back_to_the_cheap_method(tmp_path):
    broken = EmbeddedLLM(llm_config(embedded={"model_path": str(tmp_path / "missing.gguf")}))
    assert standalone_query(FOLLOWUP, HISTORY, "llm", llm=broken) == f"{FIRST} {FOLLOWUP} {FOLLOWUP}"
    assert standalone_query(FOLLOWUP, HISTORY, "llm", llm=broken, fallback="concat") == f"{FIRST} {FOLLOWUP}"
    assert standalone_query(FOLLOWUP, HISTORY, "llm", llm=broken, fallback="last") == FOLLOWUP
    assert standalone_query(FOLLOWUP, HISTORY, "llm", llm=None, fallback="concat") == f"{FIRST} {FOLLOWUP}"


def test_llm_answer_unrelated_to_the_conversation_falls_back(embedded_llm):
    """The real model told to answer off-topic: its reply shares no word with the conversation."""
    query = standalone_query(FOLLOWUP, HISTORY, "llm", llm=embedded_llm, system="", prompt="Write the word banana five times.", fallback="concat")
    assert query == f"{FIRST} {FOLLOWUP}"


def test_usable_keeps_a_clean_rewrite_and_rejects_garbage():
    assert usable('Rewritten question: "How do I include WAL files in pg_basebackup?"\nmore', FOLLOWUP, HISTORY) == (
        "How do I include WAL files in pg_basebackup?"
    )
    assert usable("", FOLLOWUP, HISTORY) is None
    assert usable("\n\n  \n", FOLLOWUP, HISTORY) is None
    assert usable("User: Which utility takes a base backup?", FOLLOWUP, HISTORY) is None  # a transcript line
    assert usable("backup " * 100, FOLLOWUP, HISTORY) is None  # too long
    assert usable("Bananas are yellow.", FOLLOWUP, HISTORY) is None  # about nothing said


def hit(uid: str, score: float = 0.5) -> Hit:
    return Hit(id=uid, score=score, text=uid, source=f"{uid}.md")


def test_fuse_ranks_by_discounted_score_and_keeps_each_hits_own_best_score():
    question = [hit("a", 0.60), hit("b", 0.55), hit("c", 0.40)]
    context = [hit("x", 0.75), hit("a", 0.66), hit("y", 0.60)]
    fused = fuse([question, context], [0.0, 0.1], 4)
    assert [h.id for h in fused] == ["x", "a", "b", "y"]  # x: 0.65, a: 0.60, b: 0.55, y: 0.50 > c: 0.40
    assert [h.score for h in fused] == [0.75, 0.66, 0.55, 0.60]  # scores as searched: min_score still applies
    assert [h.id for h in fuse([question, context], [0.0, 0.3], 3)] == ["a", "b", "x"]  # a larger discount favours the question


MANUAL = {
    "pg_basebackup.md": "# pg_basebackup\n\npg_basebackup takes a base backup of a running PostgreSQL cluster. "
    "Pass --wal-method=stream so the backup includes the required WAL files and can be restored on its own.\n",
    "rsync.md": "# rsync\n\nrsync synchronizes folders between machines. Use --include and --exclude patterns "
    "to choose which files are included in the transfer; required files must match an include rule.\n",
    "tar.md": "# tar\n\ntar packs files into an archive. Add --files-from to include the files listed in a file.\n",
    "giraffe.md": "# Giraffes\n\nThe giraffe is the tallest living terrestrial animal.\n",
}


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    """A real index of a few tool pages: "include ... files" alone matches rsync and tar best."""
    folder = tmp_path_factory.mktemp("condense")
    (folder / "docs").mkdir()
    for name, text in MANUAL.items():
        (folder / "docs" / name).write_text(text, encoding="utf-8")
    config = load_config(write_config(folder, "search:\n  mode: hybrid\n"))
    Ingestor(config).run()
    return Searcher(config)


def search_function(searcher):
    return lambda query, limit, where: searcher.search(query, limit, None, where)


# Without "WAL", the follow-up alone matches rsync and tar, which talk about including files
VAGUE = "How do I make it include the required files?"


def test_concat_finds_the_page_the_follow_up_alone_misses(searcher):
    search = search_function(searcher)
    _, alone = condensed_search(search, VAGUE, HISTORY, 1, "last")
    query, with_history = condensed_search(search, VAGUE, HISTORY, 1, "concat")
    assert query == f"{FIRST} {VAGUE}"
    assert with_history[0].source == "pg_basebackup.md"
    assert alone[0].source != "pg_basebackup.md"


def test_fused_finds_the_follow_ups_page_and_keeps_the_questions_own_hits(searcher):
    search = search_function(searcher)
    query, hits = condensed_search(search, VAGUE, HISTORY, 3, "fused")
    assert query == f"{FIRST} {VAGUE}"  # shown as the concat form; the weighted one is what was searched
    assert hits[0].source == "pg_basebackup.md"
    assert search(VAGUE, 1, None)[0].id in {h.id for h in hits}


def test_fused_keeps_a_standalone_questions_page_first_after_an_unrelated_turn(searcher):
    search = search_function(searcher)
    question = "Which animal is the tallest?"
    _, hits = condensed_search(search, question, HISTORY, 3, "fused")
    assert hits[0].source == "giraffe.md"
    assert hits[0].id == search(question, 1, None)[0].id


def test_fused_without_history_is_the_plain_search(searcher):
    search = search_function(searcher)
    query, hits = condensed_search(search, "tallest animal", [], 3, "fused")
    assert query == "tallest animal"
    assert [h.id for h in hits] == [h.id for h in search("tallest animal", 3, None)]

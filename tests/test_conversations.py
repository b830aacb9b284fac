"""Conversations: follow-up questions retrieve with their history, the prompt carries recent turns
within the token budget, and stored conversations are kept per owner, in SQLite (local store) or
PostgreSQL (index.store: postgres, seen by every replica)."""

import time

import pytest
from sqlalchemy import update

from rag.config import Config, load_config
from rag.conversations import CONVERSATIONS, ConversationNotFound, Conversations, Turn
from rag.service import LocalRAG
from tests.helpers import make_workspace
from tests.pgserver import query


@pytest.fixture(scope="module")
def rag(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat")
    config = make_workspace(folder, keys=False, ingest=False)
    (folder / "docs" / "koala.md").write_text("# Koalas\n\nKoalas eat eucalyptus leaves and sleep most of the day.\n", encoding="utf-8")
    service = LocalRAG(load_config(config))
    service.ingest()
    yield service
    service.close()


def postgres_config(url: str, name: str = "chat", **conversations) -> Config:
    """The config of a replica whose index (and conversations) live in PostgreSQL at url."""
    return Config.model_validate({"index": {"name": name, "store": "postgres", "postgres": {"url": url}}, "conversations": conversations})


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path):
    """open_store(retention_days, max_turns): a conversation store on each engine (a fresh database)."""
    if request.param == "sqlite":
        return lambda **settings: Conversations(tmp_path / "c.sqlite3", **settings)
    url = request.getfixturevalue("postgres_database")
    return lambda **settings: Conversations.open(postgres_config(url, **settings))


def test_a_follow_up_finds_its_passage_only_with_the_history(rag):
    history = [
        {"role": "user", "content": "What is the tallest living terrestrial animal?"},
        {"role": "assistant", "content": "The giraffe [1]."},
    ]
    assert rag.search("What does it eat?")[0].source == "koala.md"  # the question alone: the wrong animal
    assert rag.answerer.retrieve("What does it eat?")[1] == []  # ... and nothing above min_score
    query, hits = rag.answerer.retrieve("What does it eat?", history=history)
    assert hits[0].source == "notes.txt" and "tallest living terrestrial animal" in query and query.endswith("What does it eat?")
    # a question that stands alone gets the same passages with or without an unrelated history
    _, plain = rag.answerer.retrieve("Which port does the server listen on?")
    _, after = rag.answerer.retrieve("Which port does the server listen on?", history=history)
    assert plain[0].source == after[0].source == "guide/http-api.md"


def test_the_prompt_keeps_recent_turns_within_the_budget_oldest_dropped_first(rag):
    answerer = rag.answerer
    _, hits = answerer.retrieve("Which port does the server listen on?")
    plain = answerer.prompt("Which port does the server listen on?", hits)
    history = [{"role": role, "content": f"turn {n}: " + "words " * 150} for n in range(20) for role in ("user", "assistant")]
    prompt = answerer.prompt("Which port does the server listen on?", hits, history)
    assert prompt.passages == plain.passages  # passages are never dropped for history
    assert 0 < prompt.turns <= answerer.config.history_turns and prompt.tokens <= prompt.budget
    kept = [m["content"] for m in prompt.messages if m["role"] in ("user", "assistant")][:-1]
    assert kept == [m["content"] for m in history[-prompt.turns :]]  # the newest turns, in order


def test_a_stored_conversation_continues_across_calls(rag, open_store):
    rag._conversations = open_store()
    first = rag.ask("What is the tallest living terrestrial animal?", remember=True, owner="alice", max_tokens=12)
    assert first.conversation_id and first.citations[0].source == "notes.txt"
    second = rag.ask("What does it eat?", conversation=first.conversation_id, owner="alice", max_tokens=12)
    assert second.conversation_id == first.conversation_id
    assert "notes.txt" in [c.source for c in second.citations + second.context]
    stored = rag.conversations.get(first.conversation_id, "alice")
    assert [turn.role for turn in stored.turns] == ["user", "assistant", "user", "assistant"]
    assert stored.turns[3].query.endswith("What does it eat?") and stored.turns[2].content == "What does it eat?"
    with pytest.raises(ConversationNotFound):
        rag.ask("And then?", conversation=first.conversation_id, owner="mallory")


def test_store_is_scoped_by_owner_bounded_and_forgets_old_conversations(open_store):
    store = open_store(retention_days=1, max_turns=4)
    mine = store.create("alice", "  A   question \n")
    store.append(mine, "alice", [Turn("user", f"q{n}") for n in range(6)])
    assert [turn.content for turn in store.get(mine, "alice").turns] == ["q2", "q3", "q4", "q5"]
    assert store.get(mine, "alice").title == "A question"
    for call in (lambda: store.get(mine, "bob"), lambda: store.delete(mine, "bob"), lambda: store.append(mine, "bob", [Turn("user", "x")])):
        with pytest.raises(ConversationNotFound):
            call()
    assert [c.id for c in store.list("alice")] == [mine] and store.list("bob") == []
    # untouched for longer than the retention: deleted by the next write's sweep
    with store.connect(write=True) as db:
        db.execute(update(CONVERSATIONS).values(updated=time.time() - 2 * 86400))
    store.purged = 0
    store.create("bob", "new")
    assert store.list("alice") == []
    store.delete(store.list("bob")[0].id, "bob")
    assert store.list("bob") == []


def test_the_ask_workflow_action_takes_history(rag):
    from rag.workflows.actions import Ask

    history = [{"role": "user", "content": "What is the tallest living terrestrial animal?"}]
    answered = Ask(rag).each({"question": "What does it eat?", "history": history, "id": 1})
    assert answered["id"] == 1 and answered["found"] and "tallest" in answered["query"]
    assert "notes.txt" in [c["source"] for c in answered["citations"] + answered["context"]]
    assert Ask(rag).each({"question": "What does it eat?"})["found"] is False  # alone: nothing relevant


def test_replicas_on_postgres_share_conversations_in_the_index_schema(postgres_database):
    first, second = (Conversations.open(postgres_config(postgres_database, name="Team-Docs.v2")) for _ in range(2))
    uid = first.create("alice", "Where are backups kept?")
    second.append(uid, "alice", [Turn("user", "Where are backups kept?"), Turn("assistant", "In /srv [1].", "backups", [{"id": "a#0001"}])])
    stored = first.get(uid, "alice")
    assert [(turn.role, turn.content) for turn in stored.turns] == [("user", "Where are backups kept?"), ("assistant", "In /srv [1].")]
    assert stored.turns[1].query == "backups" and stored.turns[1].citations == [{"id": "a#0001"}]
    assert [c.id for c in second.list("alice")] == [uid] and second.list("bob") == []
    with pytest.raises(ConversationNotFound):
        second.get(uid, "bob")
    second.delete(uid, "alice")
    with pytest.raises(ConversationNotFound):
        first.get(uid, "alice")
    tables = query(postgres_database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'localrag_team_docs_v2' ORDER BY 1")
    assert tables == [("conversations",), ("turns",)]

"""Conversations over real HTTP: the OpenAI and Ollama clients' history makes a follow-up find its
passage, /ask continues stored conversations scoped by API key, and request parameters reach the LLM."""

import ollama
import openai
import pytest

from tests.helpers import ADMIN_KEY, READ_KEY, assert_error

FIRST = "What is the tallest living terrestrial animal?"
FOLLOW_UP = "What does it eat?"  # alone it finds nothing above answer.min_score (the koala ranks first)
NOT_FOUND = "I could not find this in the documents."


@pytest.fixture(scope="module")
def server(serve):
    return serve(prepare=koala)


def koala(folder):
    (folder / "docs").mkdir()
    (folder / "docs" / "koala.md").write_text("# Koalas\n\nKoalas eat eucalyptus leaves and sleep most of the day.\n", encoding="utf-8")


def sources(passages) -> list[str]:
    return [passage["source"] for passage in passages]


def test_openai_client_history_makes_the_follow_up_find_its_passage(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=READ_KEY, max_retries=0)
    alone = client.chat.completions.create(model="localrag", messages=[{"role": "user", "content": FOLLOW_UP}])
    assert alone.model_extra["localrag"]["found"] is False
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "The giraffe."},
        {"role": "user", "content": FOLLOW_UP},
    ]
    completion = client.chat.completions.create(model="localrag", messages=messages, max_tokens=8, temperature=0.0)
    extra = completion.model_extra["localrag"]
    retrieved = sources(completion.model_extra["citations"]) + sources(extra["context"])
    assert "notes.txt" in retrieved and extra["query"].endswith(FOLLOW_UP) and FIRST in extra["query"]
    assert 0 < completion.usage.completion_tokens <= 8  # max_tokens reached the LLM


def test_ollama_client_history_makes_the_follow_up_find_its_passage(server):
    """The Ollama client drops fields it does not know, so what it shows is the answer itself: the
    not-found message alone, an answer from the giraffe passage with the history."""
    client = ollama.Client(host=server.url, headers={"Authorization": f"Bearer {READ_KEY}"})
    alone = client.chat(model="localrag", messages=[{"role": "user", "content": FOLLOW_UP}], stream=False)
    assert alone.message.content == NOT_FOUND
    messages = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": "The giraffe."}, {"role": "user", "content": FOLLOW_UP}]
    reply = client.chat(model="localrag", messages=messages, stream=False, options={"num_predict": 6, "seed": 7})
    assert reply.message.content != NOT_FOUND and 0 < reply.eval_count <= 6  # num_predict reached the LLM
    parts = list(client.chat(model="localrag", messages=messages, stream=True, options={"num_predict": 6}))
    assert parts[-1].done and "".join(part.message.content for part in parts) != NOT_FOUND
    with server.client(READ_KEY) as raw:  # the extra fields, as a client that keeps them sees them
        final = raw.post("/api/chat", json={"model": "localrag", "messages": messages, "stream": False}).json()
    assert "notes.txt" in sources(final["citations"]) + sources(final["localrag"]["context"])


def test_ask_continues_a_stored_conversation_of_its_own_key_only(server):
    with server.client(READ_KEY) as reader, server.client(ADMIN_KEY) as admin:
        first = reader.post("/ask", json={"question": FIRST, "remember": True}).json()
        uid = first["conversation_id"]
        assert uid and first["query"] == FIRST
        second = reader.post("/ask", json={"question": FOLLOW_UP, "conversation_id": uid}).json()
        assert second["conversation_id"] == uid and "notes.txt" in sources(second["citations"]) + sources(second["context"])
        stored = reader.get(f"/conversations/{uid}").json()
        assert [turn["role"] for turn in stored["turns"]] == ["user", "assistant"] * 2 and stored["turns"][3]["query"].endswith(FOLLOW_UP)
        assert uid in [c["id"] for c in reader.get("/conversations").json()["conversations"]]
        # another key sees none of it, cannot continue it, cannot delete it
        assert uid not in [c["id"] for c in admin.get("/conversations").json()["conversations"]]
        assert_error(admin.get(f"/conversations/{uid}"), 404)
        assert_error(admin.post("/ask", json={"question": FOLLOW_UP, "conversation_id": uid}), 404)
        assert_error(admin.delete(f"/conversations/{uid}"), 404)
        assert reader.delete(f"/conversations/{uid}").status_code == 204
        assert_error(reader.get(f"/conversations/{uid}"), 404)
        # history without storing anything
        given = reader.post("/ask", json={"question": FOLLOW_UP, "history": [{"role": "user", "content": FIRST}]}).json()
        assert given["conversation_id"] is None and given["query"] == f"{FIRST} {FOLLOW_UP}"
        assert_error(reader.post("/ask", json={"question": "x", "history": [{"role": "tool", "content": "y"}]}), 422)

"""OpenAI- and Ollama-compatible routes, driven by the official `openai` and `ollama` clients."""

import httpx
import ollama
import openai
import pytest

from tests.helpers import ADMIN_KEY, READ_KEY, assert_error

QUESTION = "What is the tallest living terrestrial animal?"


@pytest.fixture(scope="module")
def server(serve):
    return serve()


@pytest.fixture
def gpt(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=READ_KEY, max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture
def llama(server):
    return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=120)


# ---- OpenAI -------------------------------------------------------------------------------


def test_openai_models(gpt):
    assert [model.id for model in gpt.models.list()] == ["localrag"]


def test_openai_chat_completion_answers_the_last_user_message_with_citations(gpt):
    completion = gpt.chat.completions.create(
        model="localrag",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Tell me about backups."},
            {"role": "assistant", "content": "Copy the indexes folder."},
            {"role": "user", "content": QUESTION},
        ],
    )
    assert completion.object == "chat.completion" and completion.model == "localrag"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant" and choice.message.content.strip()
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    extra = completion.model_extra
    assert extra["localrag"]["found"] is True
    assert [citation["document"] for citation in extra["citations"]] == ["docs:notes.txt"]


def test_openai_stream_chunks_then_citations_on_the_final_chunk(gpt):
    stream = gpt.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": QUESTION}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    final = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason][-1]
    assert text.strip() and final.choices[0].finish_reason == "stop" and final.model == "anything"
    assert [c["document"] for c in final.model_extra["citations"]] == ["docs:notes.txt"] and final.model_extra["localrag"]["complete"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens > 0
    assert len({chunk.id for chunk in chunks}) == 1


def test_openai_errors_reach_the_client_as_typed_exceptions(server, gpt):
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        gpt.chat.completions.create(model="localrag", messages=[{"role": "system", "content": "no question"}])
    assert "no user message" in raised.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        gpt.chat.completions.create(model="localrag", messages=[])
    with pytest.raises(openai.UnprocessableEntityError):
        gpt.chat.completions.create(model="localrag", messages=[{"role": "user", "content": "q" * 301}])
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()


# ---- Ollama -------------------------------------------------------------------------------


def test_ollama_list_show_and_version(llama, server):
    models = llama.list().models
    assert [model.model for model in models] == ["localrag:latest"] and models[0].details.family == "localrag"
    shown = llama.show("localrag")
    assert shown.capabilities == ["completion"] and shown.modelinfo["general.architecture"] == "localrag"
    with server.client(READ_KEY) as client:
        assert client.get("/api/version").json()["version"]


def test_ollama_chat_not_streamed(llama):
    response = llama.chat(model="localrag", messages=[{"role": "user", "content": QUESTION}], stream=False)
    assert response.done and response.done_reason == "stop" and response.message.role == "assistant"
    assert response.message.content.strip() and response.prompt_eval_count > 0 and response.eval_count > 0
    assert response.total_duration > 0


def test_ollama_chat_streams_ndjson_parts(llama, server):
    parts = list(llama.chat(model="localrag", messages=[{"role": "user", "content": QUESTION}], stream=True))
    assert all(not part.done for part in parts[:-1]) and parts[-1].done and parts[-1].done_reason == "stop"
    assert "".join(part.message.content for part in parts).strip()
    # the raw final line also carries the citations (the ollama client's types drop unknown fields)
    with server.client(READ_KEY) as client:
        body = client.post(
            "/api/chat", json={"model": "localrag", "messages": [{"role": "user", "content": QUESTION}], "stream": False}
        ).json()
    assert body["done"] is True and [c["document"] for c in body["citations"]] == ["docs:notes.txt"]


def test_ollama_generate_and_empty_chat_loads(llama):
    generated = llama.generate(model="localrag", prompt=QUESTION, stream=False)
    assert generated.done and generated.response.strip()
    loaded = llama.chat(model="localrag", messages=[])
    assert loaded.done and loaded.done_reason == "load"


def test_ollama_errors_are_ollama_shaped(server, llama):
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=server.url).list()
    assert raised.value.status_code == 401 and "API key" in raised.value.error
    with pytest.raises(ollama.ResponseError) as raised:
        llama.chat(model="localrag", messages=[{"role": "assistant", "content": "no question"}])
    assert raised.value.status_code == 422 and "no user message" in raised.value.error
    with server.client(ADMIN_KEY) as client:
        assert_error(client.post("/api/chat", json={"messages": []}), 422, "validation_error")
        assert_error(client.post("/api/show", content=b"nope", headers={"content-type": "application/json"}), 422)


def test_answers_over_compatible_routes_are_counted(server):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": READ_KEY}) as client:
        text = client.get("/metrics").text
    assert 'localrag_answers_total{endpoint="openai",outcome="answered"}' in text
    assert 'localrag_answers_total{endpoint="ollama",outcome="answered"}' in text

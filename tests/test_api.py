"""The HTTP API end to end: real app, real index and model, real uvicorn, real HTTP (httpx).

Health and readiness, the auth matrix generated from the OpenAPI schema, /search, /ask (JSON and
Server-Sent Events), limits and the JSON error shape, CORS, metrics, and an LLM that is down.
"""

import json
import re

import pytest

from tests.ollama_server import free_port
from tests.helpers import ADMIN_KEY, READ_KEY, ApiServer, assert_error, make_workspace, sse_events

OPEN_PATHS = {"/health", "/ready", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}


@pytest.fixture(scope="module")
def server(serve):
    return serve()


@pytest.fixture
def api(server):
    with server.client(ADMIN_KEY) as client:
        yield client


@pytest.fixture
def anonymous(server):
    with server.client(None) as client:
        yield client


# ---- health, readiness, docs ---------------------------------------------------------------


def test_health_and_ready_are_open_and_report_index_and_llm(anonymous, server):
    assert anonymous.get("/health").json()["status"] == "ok"
    ready = anonymous.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["index"]["version"] == server.rag.searcher.version and body["index"]["documents"] == 5
    server.app.state.llm_status.check()
    llm = anonymous.get("/ready").json()["llm"]
    assert llm["backend"] == "embedded" and llm["available"] is True and llm["checked_at"]


def test_ready_is_503_without_an_index(tmp_path):
    server = ApiServer(make_workspace(tmp_path, ingest=False)).start()
    try:
        with server.client(None) as client:
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert "rag ingest" in ready.json()["error"]["message"]
        with server.client(ADMIN_KEY) as client:
            assert_error(client.post("/search", json={"query": "giraffe"}), 503, "index_unavailable")
    finally:
        server.stop()


def test_openapi_documents_routes_examples_and_configured_limits(anonymous):
    schema = anonymous.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/search",
        "/ask",
        "/documents",
        "/documents/{id}",
        "/ingest",
        "/jobs/{id}",
        "/v1/chat/completions",
        "/api/chat",
        "/metrics",
    ):
        assert path in paths, path
    components = schema["components"]["schemas"]
    assert components["SearchRequest"]["examples"] and components["AskRequest"]["examples"]
    limit = components["SearchRequest"]["properties"]["limit"]["anyOf"][0]
    assert limit["maximum"] == 20  # search.max_limit of the test config
    assert components["AskRequest"]["properties"]["question"]["maxLength"] == 300
    assert "text/event-stream" in paths["/ask"]["post"]["responses"]["200"]["content"]
    assert anonymous.get("/docs").status_code == 200


# ---- API keys: the matrix comes from the OpenAPI schema -------------------------------------


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            scopes = {scope for requirement in operation.get("security", []) for values in requirement.values() for scope in values}
            yield path, method.upper(), scopes


def call(client, method: str, path: str, **headers):
    url = re.sub(r"\{[^}]+\}", "nope", path)
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.request(method, url, headers=headers, **body)


def test_every_route_but_health_ready_and_docs_needs_a_key(anonymous):
    schema = anonymous.get("/openapi.json").json()
    checked = 0
    for path, method, scopes in operations(schema):
        if path in OPEN_PATHS:
            assert not scopes, path
            assert call(anonymous, method, path).status_code == 200
            continue
        assert scopes, f"{method} {path} declares no scope"
        missing = call(anonymous, method, path)
        error = assert_error(missing, 401, "unauthorized")
        assert "API key" in error["message"] and missing.headers["www-authenticate"] == "Bearer"
        assert_error(call(anonymous, method, path, authorization="Bearer wrong-key"), 401, "unauthorized")
        assert_error(call(anonymous, method, path, **{"x-api-key": "wrong-key"}), 401, "unauthorized")
        checked += 1
    assert checked >= 18


def test_read_keys_are_refused_on_write_routes_and_accepted_on_read_routes(anonymous):
    schema = anonymous.get("/openapi.json").json()
    writes = 0
    for path, method, scopes in operations(schema):
        if path in OPEN_PATHS:
            continue
        for headers in ({"authorization": f"Bearer {READ_KEY}"}, {"x-api-key": READ_KEY}):
            response = call(anonymous, method, path, **headers)
            if "write" in scopes:
                error = assert_error(response, 403, "forbidden")
                assert "write" in error["message"]
            else:
                assert response.status_code not in (401, 403), f"{method} {path}: {response.text}"
        if "write" in scopes:
            writes += 1
            assert call(anonymous, method, path, authorization=f"Bearer {ADMIN_KEY}").status_code not in (401, 403)
    assert writes >= 4  # upload, delete, ingest, run workflow


def test_without_configured_keys_the_api_is_open(tmp_path):
    server = ApiServer(make_workspace(tmp_path, keys=False)).start()
    try:
        with server.client(None) as client:
            assert client.post("/search", json={"query": "giraffe"}).status_code == 200
            assert client.get("/documents").json()["count"] == 5
    finally:
        server.stop()


# ---- /search ------------------------------------------------------------------------------


def test_search_returns_ranked_passages_with_metadata(api, server):
    response = api.post("/search", json={"query": "How do I back up the indexes folder?", "limit": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(body["hits"]) <= 3 and body["mode"] == "hybrid"
    assert body["version"] == server.rag.searcher.version
    top = body["hits"][0]
    assert top["document"] == "docs:backup.md" and top["source"] == "backup.md" and top["title"] == "Backups"
    assert "Copy the indexes folder" in top["text"] and top["score"] > 0
    assert [hit["score"] for hit in body["hits"]] == sorted((hit["score"] for hit in body["hits"]), reverse=True)


def test_search_modes_filters_and_where(api):
    for mode in ("dense", "keyword"):
        body = api.post("/search", json={"query": "giraffe acacia", "mode": mode, "limit": 2}).json()
        assert body["mode"] == mode and body["hits"][0]["document"] == "docs:notes.txt"
    filtered = api.post(
        "/search", json={"query": "install the server", "filters": {"filetype": "md", "source": ["guide/http-api.md"]}}
    ).json()
    assert filtered["hits"] and {hit["source"] for hit in filtered["hits"]} == {"guide/http-api.md"}
    where = api.post("/search", json={"query": "install the server", "where": "source like 'guide/%'"}).json()
    assert where["hits"] and all(hit["source"].startswith("guide/") for hit in where["hits"])


@pytest.mark.parametrize(
    "body, where",
    [
        ({"query": "giraffe", "limit": 21}, "limit"),  # search.max_limit is 20
        ({"query": "giraffe", "limit": 0}, "limit"),
        ({"query": "   "}, "query"),
        ({"query": ""}, "query"),
        ({"query": "x" * 301}, "query"),  # api.max_question_length is 300
        ({"query": "giraffe", "mode": "fuzzy"}, "mode"),
        ({"query": "giraffe", "filters": {"password": "x"}}, "filters"),
        ({"query": "giraffe", "colour": "red"}, "colour"),
        ({}, "query"),
    ],
)
def test_search_rejects_bad_input_with_422(api, body, where):
    error = assert_error(api.post("/search", json=body), 422, "validation_error")
    assert any(where in problem["loc"] for problem in error["details"]), error


def test_search_bad_sql_filter_and_bad_json(api):
    error = assert_error(api.post("/search", json={"query": "giraffe", "where": "source = = 'x'"}), 400, "search_error")
    assert "where" in error["message"] and "position 10" in error["message"]
    assert_error(api.post("/search", content=b"{not json", headers={"content-type": "application/json"}), 422, "validation_error")


def test_unknown_routes_and_methods_use_the_error_shape(api):
    assert_error(api.get("/nope"), 404, "not_found")
    assert_error(api.delete("/search"), 405, "method_not_allowed")


# ---- /ask ---------------------------------------------------------------------------------


def test_ask_returns_answer_citations_context_and_timings(api):
    response = api.post("/ask", json={"question": "What is the tallest living terrestrial animal?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["found"] and body["complete"] and body["answer"].strip()
    assert body["backend"] == "embedded" and body["prompt_tokens"] > 0
    passages = body["citations"] + body["context"]
    assert "docs:notes.txt" in {passage["document"] for passage in passages}
    assert {"retrieval_ms", "llm_ms", "total_ms"} <= set(body["timings"])


def test_ask_without_relevant_passages_says_it_does_not_know(api):
    body = api.post("/ask", json={"question": "qwxz vbnm plkj"}).json()
    assert body["found"] is False and body["citations"] == [] and body["answer"]


def test_ask_streams_server_sent_events_in_order(api):
    with api.stream("POST", "/ask", json={"question": "How do I back up every index?", "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[-2:] == ["citations", "done"] and set(names[:-2]) == {"token"}, names
    tokens = "".join(json.loads(data)["text"] for name, data in events if name == "token")
    done = json.loads(events[-1][1])
    assert done["answer"] == tokens and done["complete"] and done["found"] and "total_ms" in done["timings"]
    citations = json.loads(events[-2][1])
    assert "docs:backup.md" in {passage["document"] for passage in citations["citations"] + citations["context"]}


def test_ask_streams_when_the_client_accepts_event_streams(api):
    with api.stream("POST", "/ask", json={"question": "qwxz vbnm plkj"}, headers={"accept": "text/event-stream"}) as response:
        events = sse_events(response)
    assert [name for name, _ in events] == ["token", "citations", "done"]
    assert json.loads(events[-1][1])["found"] is False


@pytest.mark.parametrize(
    "body, where",
    [
        ({"question": "y" * 301}, "question"),
        ({"question": "giraffe", "top_k": 21}, "top_k"),
        ({"question": " "}, "question"),
        ({"question": "giraffe", "stream": "sometimes"}, "stream"),
    ],
)
def test_ask_rejects_bad_input_with_422(api, body, where):
    error = assert_error(api.post("/ask", json=body), 422, "validation_error")
    assert any(where in problem["loc"] for problem in error["details"]), error


# ---- LLM down: /ask 503 with the reason, /search keeps working -----------------------------


def test_llm_unavailable_gives_503_with_the_reason_while_search_works(tmp_path):
    port = free_port()  # nothing listens there: Ollama is "down"
    server = ApiServer(make_workspace(tmp_path, provider="ollama", ollama_url=f"http://127.0.0.1:{port}")).start()
    try:
        with server.client(ADMIN_KEY) as client:
            question = {"question": "How do I back up every index?"}
            error = assert_error(client.post("/ask", json=question), 503, "llm_unavailable")
            assert "not reachable" in error["message"] and str(port) in error["message"]
            assert_error(client.post("/ask", json={**question, "stream": True}), 503, "llm_unavailable")
            chat = {"model": "localrag", "messages": [{"role": "user", "content": question["question"]}]}
            assert_error(client.post("/v1/chat/completions", json=chat), 503, "llm_unavailable")
            assert_error(client.post("/api/chat", json=chat), 503, "llm_unavailable")

            assert client.post("/search", json={"query": "back up every index"}).json()["hits"][0]["document"] == "docs:backup.md"
            ready = client.get("/ready")
            assert ready.status_code == 200 and ready.json()["llm"]["available"] is False
            assert "not reachable" in ready.json()["llm"]["error"]
            assert 'localrag_llm_errors_total{type="LLMUnavailable"} 4.0' in client.get("/metrics").text
    finally:
        server.stop()


# ---- CORS and metrics ---------------------------------------------------------------------


def test_cors_allows_the_configured_origins_only(anonymous):
    allowed = anonymous.options(
        "/search",
        headers={
            "origin": "http://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization",
        },
    )
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "http://app.example"
    other = anonymous.options("/search", headers={"origin": "http://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in other.headers


def test_metrics_count_requests_per_route_and_llm_tokens(api):
    api.post("/search", json={"query": "giraffe"})
    api.post("/search", json={"query": "giraffe", "limit": 99})
    api.get("/documents/docs:guide/http-api.md")
    api.post("/ask", json={"question": "Which port does the server listen on?"})
    text = api.get("/metrics").text
    count = r'localrag_http_requests_total\{method="POST",route="/search",status="%s"\} (\d+)'
    assert int(float(re.search(count % "200", text).group(1))) >= 1 and re.search(count % "422", text)
    assert 'route="/documents/{id:path}"' in text  # route templates, not raw paths
    assert re.search(r'localrag_http_request_duration_seconds_bucket\{le="0.5",method="POST",route="/search"\} [1-9]', text)
    assert re.search(r'localrag_llm_tokens_total\{backend="embedded",kind="prompt"\} [1-9]', text)
    assert re.search(r'localrag_llm_tokens_total\{backend="embedded",kind="completion"\} [1-9]', text)
    assert re.search(r'localrag_llm_duration_seconds_count\{backend="embedded"\} [1-9]', text)
    assert "localrag_index_documents 5.0" in text

"""The MCP server, driven by the `mcp` package's own client: over stdio (`rag mcp` in a subprocess)
and over streamable HTTP (/mcp of the real app on a real uvicorn server, with API keys)."""

import asyncio
import json
import os
import sys

import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.helpers import ADMIN_KEY, READ_KEY, ApiServer, assert_error, make_workspace

TOOLS = {"search", "ask", "list_documents", "get_passage"}
TIMEOUT = 300  # the embedded LLM is slow on a shared machine


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("mcp"))


@pytest.fixture(scope="module")
def server(config):
    server = ApiServer(config).start()
    yield server
    server.stop()


def run(scenario):
    """Runs an async scenario to its end."""
    return asyncio.run(asyncio.wait_for(scenario, TIMEOUT))


def over_http(server: ApiServer, headers: dict) -> Client:
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=TIMEOUT))
    return Client(streamable_http_client(f"{server.url}/mcp", http_client=http), read_timeout_seconds=TIMEOUT)


async def use_every_tool(client: Client) -> dict:
    """Lists the tools and calls each as an agent would; returns what it saw."""
    seen = {"tools": {tool.name: tool for tool in (await client.list_tools()).tools}}

    found = await client.call_tool("search", {"query": "How do I back up every index?", "limit": 3})
    assert not found.is_error, found.content
    seen["search"] = found
    passage_id = found.structured_content["passages"][0]["id"]
    seen["passage"] = await client.call_tool("get_passage", {"id": passage_id})
    seen["documents"] = await client.call_tool("list_documents", {})
    seen["uploads"] = await client.call_tool("list_documents", {"collection": "uploads"})
    history = [{"role": "user", "content": "Tell me about animals."}, {"role": "assistant", "content": "Which ones?"}]
    seen["ask"] = await client.call_tool("ask", {"question": "What is the tallest living terrestrial animal?", "history": history})
    return seen


def check_every_tool(seen: dict):
    tools = seen["tools"]
    assert set(tools) == TOOLS
    assert {"query", "limit", "mode", "where", "filters"} <= set(tools["search"].input_schema["properties"])
    assert {"question", "history"} <= set(tools["ask"].input_schema["properties"])
    assert all(tool.annotations.read_only_hint for tool in tools.values())

    found = seen["search"]
    first = found.structured_content["passages"][0]
    assert first["source"] == "backup.md" and first["document"] == "docs:backup.md" and first["id"].startswith("docs:backup.md#")
    assert "backup.md" in found.content[0].text and first["id"] in found.content[0].text  # readable, with the citation

    passage = seen["passage"]
    assert not passage.is_error
    assert passage.structured_content["text"] == "Copy the indexes folder to back up every index. Restores are a copy back."
    assert passage.structured_content["source"] == "backup.md" and passage.structured_content["heading"] == "Backups"

    documents = seen["documents"].structured_content
    assert documents["count"] == 5 and {d["id"] for d in documents["documents"]} >= {"docs:backup.md", "docs:guide/http-api.md"}
    assert all(d["chunks"] >= 1 and d["collection"] == "docs" for d in documents["documents"])
    assert seen["uploads"].structured_content == {"count": 0, "documents": []}

    answer = seen["ask"]
    assert not answer.is_error, answer.content
    body = answer.structured_content
    assert body["found"] and body["complete"] and body["answer"]  # SmolLM2's words vary with the history: judge the citation
    assert [c["document"] for c in body["citations"]] == ["docs:notes.txt"]
    assert body["citations"][0]["id"] == "docs:notes.txt#0000" and "notes.txt" in answer.content[0].text


@pytest.mark.slow
def test_stdio_serves_every_tool(config):
    """`rag mcp` spawned as a desktop agent does: search, read a passage, list documents, ask."""
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "rag.cli", "--config", str(config), "mcp"], env=dict(os.environ), cwd=str(config.parent)
    )

    async def scenario():
        async with Client(command, read_timeout_seconds=TIMEOUT) as client:
            seen = await use_every_tool(client)
            missing = await client.call_tool("get_passage", {"id": "docs:nothing.md#0000"})
            return seen, missing

    seen, missing = run(scenario())
    check_every_tool(seen)
    assert missing.is_error and "no passage with id 'docs:nothing.md#0000'" in missing.content[0].text


def test_http_serves_every_tool_with_a_read_key(server):
    async def scenario():
        async with over_http(server, {"Authorization": f"Bearer {READ_KEY}"}) as client:
            return await use_every_tool(client)

    check_every_tool(run(scenario()))


def test_http_resources_list_and_read_documents(server):
    async def scenario():
        async with over_http(server, {"X-API-Key": READ_KEY}) as client:  # the other header form
            listed = await client.list_resources()
            templates = await client.list_resource_templates()
            everything = await client.read_resource("localrag://documents")
            one = await client.read_resource("localrag://documents/docs:install.md")
            return listed, templates, everything, one

    listed, templates, everything, one = run(scenario())
    assert [str(resource.uri) for resource in listed.resources] == ["localrag://documents"]
    assert [template.uri_template for template in templates.resource_templates] == ["localrag://documents/{+id}"]
    assert len(json.loads(everything.contents[0].text)) == 5
    document = json.loads(one.contents[0].text)
    assert document["id"] == "docs:install.md" and document["title"] == "Installation"
    texts = [passage["text"] for passage in document["passages"]]
    assert len(texts) == document["chunks"] == 2 and "make demo" in texts[0] and "Python 3.11" in texts[1]


def test_http_tool_errors_reach_the_agent(server):
    async def scenario():
        async with over_http(server, {"Authorization": f"Bearer {ADMIN_KEY}"}) as client:  # write implies read
            bad_filter = await client.call_tool("search", {"query": "backup", "where": "secret = 1"})
            too_many = await client.call_tool("search", {"query": "backup", "limit": 21})
            filtered = await client.call_tool("search", {"query": "animal", "filters": {"filetype": "md"}, "mode": "keyword"})
            return bad_filter, too_many, filtered

    bad_filter, too_many, filtered = run(scenario())
    assert bad_filter.is_error and "unknown column 'secret'" in bad_filter.content[0].text
    assert too_many.is_error and "limit" in too_many.content[0].text
    assert not filtered.is_error and all(p["source"].endswith(".md") for p in filtered.structured_content["passages"])


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"X-API-Key": "wrong-key"}])
def test_http_without_a_valid_key_is_401(server, headers):
    response = httpx.post(f"{server.url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=30)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"

    async def scenario():
        async with over_http(server, headers):
            pass

    with pytest.raises(BaseExceptionGroup) as refused:  # the package's own client cannot connect
        run(scenario())
    assert refused.group_contains(MCPError, match="error response")


def test_http_refuses_a_cross_origin_page(server):
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {READ_KEY}", "Origin": "http://evil.example"}
    assert_error(httpx.post(f"{server.url}/mcp", json=INITIALIZE, headers=headers, timeout=30), 403, "cross_origin")
    allowed = httpx.post(f"{server.url}/mcp", json=INITIALIZE, headers={**headers, "Origin": server.url}, timeout=30)
    assert allowed.status_code == 200 and "localrag" in allowed.text

"""localrag as an MCP server (the official `mcp` package) for agents: tools `search`, `ask`,
`list_documents`, `get_passage`, and the documents as resources (`localrag://documents`,
`localrag://documents/{id}`).

    build_server(rag).run("stdio")          # `rag mcp`, for desktop agents
    mount(app); async with serving(app, rag): ...   # streamable HTTP at /mcp in `rag serve`

One server implementation for both transports, thin over rag.service.LocalRAG. Over HTTP, /mcp
takes the same API keys as the REST API (read scope: every tool only reads) and the same guards
(trusted hosts, same-origin writes, body size); it is stateless, so any uvicorn worker answers any
request.
"""

import json
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import FastAPI, Request
from fastapi.security import SecurityScopes
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.routing import Route

from rag.answer import Citation
from rag.filters import COLUMNS
from rag.llm.errors import LLMError
from rag.manifest import Document
from rag.search import PassageNotFound, SearchError
from rag.service import DocumentNotFound, LocalRAG
from rag.types import Hit

from .auth import authorize, bearer, header
from .routers.health import VERSION

PATH = "/mcp"
INSTRUCTIONS = """\
localrag searches and answers from the user's own documents. Use `search` to find passages (cite
them by source and page), `ask` for an answer written from the passages with numbered citations,
`get_passage` to read a passage in full, and `list_documents` to see what is indexed."""
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
Mode = Literal["hybrid", "dense", "keyword"]
Scalar = str | int | float | None
WHERE = (
    "A condition on metadata in localrag's filter language: comparisons (=, !=, <, <=, >, >=), IN, LIKE, "
    f"IS NULL, BETWEEN, combined with AND, OR, NOT and parentheses; values 'text' or numbers. Columns: {', '.join(COLUMNS)}. "
    "Example: filetype = 'pdf' and page <= 3"
)
FILTERS = f"Equality filters combined with AND; a list means any of. Columns: {', '.join(COLUMNS)}. Example: {{\"collection\": \"docs\"}}"


class Passage(BaseModel):
    """A passage (chunk) of a document, with what is needed to cite it."""

    id: str = Field(description="Passage id, for get_passage.", examples=["docs:guide/backup.md#0001"])
    citation: str = Field(description="Source, page and heading, ready to cite.", examples=["guide/backup.md, p. 2, Backups"])
    source: str = Field(description="File path relative to its source folder.")
    collection: str | None = Field(None, description="The source folder's name; `uploads` for uploaded files.")
    document: str = Field(description="Document id, `<collection>:<source>`.")
    title: str = ""
    heading: str = ""
    page: int | None = None
    chunk: int = 0
    score: float | None = Field(None, description="Relevance (search only).")
    text: str

    @classmethod
    def of(cls, hit: Hit, score: bool = True) -> "Passage":
        return cls(
            id=hit.id,
            citation=hit.label,
            source=hit.source,
            collection=hit.extra.get("collection"),
            document=hit.document,
            title=hit.title,
            heading=hit.heading,
            page=hit.page,
            chunk=hit.chunk,
            score=round(hit.score, 4) if score else None,
            text=hit.text,
        )

    def render(self) -> str:
        return f"{self.citation} (id {self.id})\n{self.text}"


class SearchResult(BaseModel):
    query: str
    mode: str
    count: int
    passages: list[Passage]


class AskResult(BaseModel):
    question: str
    answer: str
    found: bool = Field(description="False: no passage was relevant; the answer says so.")
    complete: bool = Field(description="False: the LLM failed mid-answer; `answer` is partial and `error` says why.")
    error: str | None = None
    citations: list[Citation] = Field(description="The passages the answer cites: [n] in the answer is the citation with number n.")
    backend: str = ""
    model: str = ""


class DocumentList(BaseModel):
    count: int
    documents: list[Document]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


def structured(model: BaseModel, text: str) -> CallToolResult:
    """A tool result as structured content and a readable text rendering of it."""
    return CallToolResult(content=[TextContent(text=text)], structured_content=model.model_dump(mode="json"))


def build_server(rag: LocalRAG) -> MCPServer:
    """The MCP server of a LocalRAG: the same tools and resources over stdio and streamable HTTP."""
    # log_level: MCPServer configures the root logger (when nothing did); INFO would let every library talk
    server = MCPServer("localrag", title="localrag", version=VERSION, instructions=INSTRUCTIONS, log_level="WARNING")
    text_limit = rag.config.api.max_question_length
    Query = Annotated[str, Field(min_length=1, max_length=text_limit, description="What to look for, in plain words.")]
    Where = Annotated[str | None, Field(max_length=2000, description=WHERE)]
    Filters = Annotated[dict[str, Scalar | list[Scalar]] | None, Field(description=FILTERS)]
    Limit = Annotated[int | None, Field(ge=1, le=rag.config.search.max_limit, description="Number of passages (default from config).")]

    @server.tool(annotations=READ_ONLY)
    def search(
        query: Query, limit: Limit = None, mode: Mode | None = None, where: Where = None, filters: Filters = None
    ) -> Annotated[CallToolResult, SearchResult]:
        """Search the user's documents: ranked passages with their source, page, heading and id (hybrid dense + keyword search by default)."""
        mode = mode or rag.config.search.mode
        try:
            hits = rag.search(query, limit=limit, mode=mode, where=where, filters=filters)
        except SearchError as error:
            raise ToolError(str(error)) from None
        result = SearchResult(query=query, mode=mode, count=len(hits), passages=[Passage.of(hit) for hit in hits])
        lines = [f"{result.count} passage(s) for {query!r}:"] if hits else [f"No passage found for {query!r}."]
        lines += [f"[{n}] {passage.render()}" for n, passage in enumerate(result.passages, 1)]
        return structured(result, "\n\n".join(lines))

    @server.tool(annotations=READ_ONLY)
    def ask(
        question: Annotated[str, Field(min_length=1, max_length=text_limit, description="The question.")],
        history: Annotated[list[Message] | None, Field(max_length=1000, description="The conversation so far, oldest first.")] = None,
        top_k: Annotated[int | None, Field(ge=1, le=rag.config.search.max_limit, description="Passages to retrieve (default from config).")] = None,
        where: Where = None,
        filters: Filters = None,
    ) -> Annotated[CallToolResult, AskResult]:
        """Answer a question from the user's documents: an answer written only from retrieved passages,
        with numbered citations [n] (source, page, passage id). Says so when the documents do not contain the answer."""
        turns = [message.model_dump() for message in history or []]
        try:
            answer = rag.ask(question, top_k=top_k, where=where, filters=filters, history=turns)
        except SearchError as error:
            raise ToolError(str(error)) from None
        except LLMError as error:
            raise ToolError(f"the LLM failed: {error}") from None
        result = AskResult(
            question=question,
            answer=answer.answer,
            found=answer.found,
            complete=answer.complete,
            error=answer.error,
            citations=answer.citations,
            backend=answer.backend,
            model=answer.model,
        )
        text = answer.answer + ("" if answer.complete else f"\n\n(incomplete: {answer.error})")
        if answer.citations:
            text += "\n\nSources:\n" + "\n".join(f"[{c.number}] {c.label} (id {c.id})" for c in answer.citations)
        return structured(result, text)

    @server.tool(annotations=READ_ONLY)
    def list_documents(
        collection: Annotated[str | None, Field(description="Only the documents of this source (collection), e.g. `docs` or `uploads`.")] = None,
    ) -> Annotated[CallToolResult, DocumentList]:
        """List the indexed documents: id, source path, collection, title, type, size and number of passages."""
        documents = [d for d in rag.documents() if collection is None or d.collection == collection]
        result = DocumentList(count=len(documents), documents=documents)
        lines = [f"{result.count} document(s)" + (f" in {collection}" if collection else "") + ":"]
        lines += [f"- {d.id}: {d.title or d.source} ({d.filetype}, {d.chunks} passage(s), {d.size or 0} bytes)" for d in documents]
        return structured(result, "\n".join(lines))

    @server.tool(annotations=READ_ONLY)
    def get_passage(
        id: Annotated[str, Field(min_length=1, max_length=4096, description="A passage id from search or ask, e.g. docs:guide/backup.md#0001.")],
    ) -> Annotated[CallToolResult, Passage]:
        """Read one passage in full, with its source, page and heading."""
        try:
            passage = Passage.of(rag.passage(id), score=False)
        except PassageNotFound:
            raise ToolError(f"no passage with id {id!r}") from None
        return structured(passage, passage.render())

    @server.resource("localrag://documents", name="documents", description="Every indexed document (JSON).", mime_type="application/json")
    def documents() -> str:
        return json.dumps([d.model_dump(mode="json") for d in rag.documents()], ensure_ascii=False)

    # Ids are looked up in the index, never used as paths: the path checks do not apply
    @server.resource(
        "localrag://documents/{+id}",
        name="document",
        description="One document's metadata and its passages in order (JSON).",
        mime_type="application/json",
        security=ResourceSecurity(exempt_params={"id"}),
    )
    def document(id: str) -> str:
        try:
            found = rag.document(id)
            passages = rag.passages(id)
        except DocumentNotFound:
            raise ResourceError(f"no document with id {id!r}") from None
        data = {**found.model_dump(mode="json"), "passages": [Passage.of(hit, score=False).model_dump(mode="json") for hit in passages]}
        return json.dumps(data, ensure_ascii=False)

    return server


# ---- streamable HTTP in the FastAPI app ---------------------------------------------


class Endpoint:
    """The ASGI app at /mcp: the API key is checked (read scope) as for every REST route, then the
    request goes to the MCP session manager that `serving` runs."""

    async def __call__(self, scope, receive, send):
        request = Request(scope, receive)
        authorize(SecurityScopes(["read"]), request, await bearer(request), await header(request))  # raises ApiError: 401/403
        await request.app.state.mcp.handle_request(scope, receive, send)


def mount(app: FastAPI):
    """Adds the /mcp route (any method: POST messages, GET streams, DELETE sessions)."""
    app.router.routes.append(Route(PATH, Endpoint(), include_in_schema=False))


@asynccontextmanager
async def serving(app: FastAPI, rag: LocalRAG):
    """Runs the MCP server of `rag` for /mcp while the app runs (inside its lifespan)."""
    server = build_server(rag)
    server.streamable_http_app(
        stateless_http=True,  # no session state: any worker answers any request
        max_request_body_size=rag.config.api.max_body_size,
        # the app's TrustedHostMiddleware and SameOriginWrites guard /mcp as every route
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.state.mcp = server.session_manager
    async with server.session_manager.run():
        yield

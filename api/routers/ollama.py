"""Ollama-compatible API: GET /api/version, GET /api/tags, POST /api/show, POST /api/chat and
POST /api/generate (NDJSON streaming by default, as Ollama does), so Ollama clients such as
Open WebUI can use localrag as a model.

The RAG pipeline answers the last user message (chat; the turns before it make the search query
standalone and go into the prompt) or the prompt (generate); any model name is accepted. Of
`options`, `num_predict`, `temperature`, `top_p`, `stop` and `seed` are passed to the LLM within
config.yml's limits. Extra fields on the final (`done: true`) object: `citations`, and `localrag`
(the `query` searched and the other retrieved passages as `context`). Errors are Ollama-style
{"error": "<message>"} bodies (plus `type` and `details`).
"""

import hashlib
import time
from contextlib import aclosing
from datetime import datetime, timezone
from typing import Annotated

import ollama
from ollama._types import ModelDetails  # not re-exported by the package
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from rag.condense import split_messages

from rag.config import Config

from ..answering import answer as answer_of, answer_events
from ..auth import READ
from ..errors import ApiError, answer_error, event_error
from ..limits import check_text, checked
from ..schemas import HARD_MAX_TEXT, MAX_MESSAGES, MAX_NAME, OllamaError, Request as Body
from ..sse import ndjson

ERRORS = {
    status: {"model": OllamaError, "description": description}
    for status, description in {
        400: "A body that is not JSON",
        401: "Missing or invalid API key",
        403: "The API key lacks the scope",
        413: "The body is larger than api.max_body_size",
        415: "The body is not JSON",
        422: "Invalid body (including the configured limits)",
        503: "The LLM backend is unavailable",
        504: "The LLM backend timed out",
    }.items()
}
NDJSON = {"application/x-ndjson": {"schema": {"type": "object"}}}  # one object a line, the last with done: true

router = APIRouter(prefix="/api", tags=["ollama-compatible"], dependencies=[READ], responses=ERRORS)

VERSION = "0.12.6"  # the Ollama API version whose shapes these routes follow
DETAILS = ModelDetails(
    parent_model="", format="localrag", family="localrag", families=["localrag"], parameter_size="", quantization_level=""
)
OPEN = ConfigDict(extra="allow")  # Ollama clients send and read more fields than localrag uses


class Message(BaseModel):
    model_config = OPEN
    role: str
    content: str | None = ""


class Options(BaseModel):
    """The Ollama model options localrag passes on (others, e.g. num_ctx, are accepted and ignored)."""

    model_config = OPEN
    num_predict: int | None = Field(None, ge=-2)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: Annotated[list[Annotated[str, Field(max_length=MAX_NAME)]], Field(max_length=4)] | None = None
    seed: int | None = None

    def sampling(self) -> dict:
        tokens = self.num_predict if self.num_predict and self.num_predict > 0 else None  # -1, -2: no limit of its own
        return {"max_tokens": tokens, "temperature": self.temperature, "top_p": self.top_p, "stop": self.stop, "seed": self.seed}


class ChatRequest(Body):
    """Ollama's chat request; format, tools, keep_alive, ... are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"model": "localrag", "messages": [{"role": "user", "content": "How do I back up the index?"}], "stream": False}]
        },
    )
    model: str = Field(min_length=1, max_length=MAX_NAME)
    messages: list[Message] = Field([], max_length=MAX_MESSAGES)
    stream: StrictBool = True
    options: Options | None = None

    def sampling(self) -> dict:
        """History and sampling for LocalRAG.stream."""
        history = split_messages([{"role": m.role, "content": m.content or ""} for m in self.messages])[1]
        return {"history": history, **(self.options.sampling() if self.options else {})}

    def question(self) -> str | None:
        """The last user message with text; None for an empty chat (Ollama's way to load a model)."""
        question = next((m.content for m in reversed(self.messages) if m.role == "user" and (m.content or "").strip()), None)
        if question is None and self.messages:
            raise ApiError(422, "the conversation has no user message with text")
        return question

    def check_limits(self, config: Config):
        check_text(self.question() or "", config.api.max_question_length, ("body", "messages"))


class GenerateRequest(Body):
    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"model": "localrag", "prompt": "How do I back up the index?", "stream": False}]}
    )
    model: str = Field(min_length=1, max_length=MAX_NAME)
    prompt: str = Field("", max_length=HARD_MAX_TEXT)
    stream: StrictBool = True
    options: Options | None = None

    def sampling(self) -> dict:
        return self.options.sampling() if self.options else {}

    def check_limits(self, config: Config):
        check_text(self.prompt, config.api.max_question_length, ("body", "prompt"))


class ShowRequest(Body):
    model_config = OPEN
    model: str | None = Field(None, max_length=MAX_NAME)
    name: str | None = Field(None, max_length=MAX_NAME)  # older clients


class ChatPart(ollama.ChatResponse):
    """A chat answer or stream part; the final one carries `citations`."""

    model_config = OPEN


class GeneratePart(ollama.GenerateResponse):
    """A generate answer or stream part; the final one carries `citations`."""

    model_config = OPEN


class Listed(ollama.ListResponse.Model):
    name: str  # besides `model`, as Ollama's /api/tags has it (Open WebUI reads it)


class Tags(ollama.ListResponse):
    models: list[Listed]


def stamp(seconds: float | None = None) -> str:
    return datetime.fromtimestamp(seconds or time.time(), timezone.utc).isoformat().replace("+00:00", "Z")


def name_of(request: Request) -> str:
    name = request.app.state.rag.config.api.model_name
    return name if ":" in name else f"{name}:latest"


def shaped(response: BaseModel) -> dict:
    """The JSON an Ollama client reads: its field names, unset fields left out."""
    return response.model_dump(mode="json", by_alias=True, exclude_none=True)


@router.get("/version", summary="Ollama API version")
def version() -> dict:
    return {"version": VERSION}


@router.get("/tags", summary="Models: the one localrag serves", responses={200: {"model": Tags}})
def tags(request: Request):
    index = request.app.state.rag.index()
    name = name_of(request)
    modified = datetime.fromtimestamp(index.loaded_at or request.app.state.started, timezone.utc)
    digest = hashlib.sha256(f"{name}|{index.version}".encode()).hexdigest()
    return shaped(Tags(models=[Listed(name=name, model=name, modified_at=modified, size=0, digest=digest, details=DETAILS)]))


@router.post("/show", summary="Model details", responses={200: {"model": ollama.ShowResponse}})
def show(request: Request, body: ShowRequest = checked(ShowRequest)):
    status = request.app.state.llm_status.value
    rag = request.app.state.rag
    index = rag.index()
    shown = ollama.ShowResponse(
        license="",
        modelfile=f"# localrag: answers grounded in the index {rag.config.index.name!r}\n",
        parameters="",
        template="",
        details=DETAILS,
        model_info={
            "general.architecture": "localrag",
            "localrag.backend": status.get("backend"),
            "localrag.backend_model": status.get("model"),
            "localrag.context_length": status.get("context_window"),
            "localrag.index_version": index.version,
        },
        capabilities=["completion"],
        modified_at=datetime.fromtimestamp(index.loaded_at or request.app.state.started, timezone.utc),
    )
    return shaped(shown)


@router.post("/chat", summary="Chat answered by the RAG pipeline (NDJSON stream unless stream is false)", responses={200: {"model": ChatPart, "content": NDJSON}})
async def chat(request: Request, body: ChatRequest = checked(ChatRequest)):
    return await answer(request, Parts(body.model, ChatPart), body.question(), body.stream, body.sampling())


@router.post("/generate", summary="Generate answered by the RAG pipeline (NDJSON stream unless stream is false)", responses={200: {"model": GeneratePart, "content": NDJSON}})
async def generate(request: Request, body: GenerateRequest = checked(GenerateRequest)):
    return await answer(request, Parts(body.model, GeneratePart), body.prompt, body.stream, body.sampling())


async def answer(request: Request, parts: "Parts", question: str | None, stream: bool, options: dict):
    """The answer as one object or NDJSON parts; no question (an empty chat or prompt) loads the model, as Ollama does."""
    if not (question or "").strip():
        return shaped(parts.loaded())
    if not stream:
        result = await answer_of(request, "ollama", question, **options)
        if not result.complete:
            raise answer_error(result)
        return shaped(parts.final(result, result.answer))
    events = await answer_events(request, "ollama", question, **options)
    return StreamingResponse(parts.lines(events), media_type="application/x-ndjson")


class Parts:
    """The Ollama objects of one chat or generate call: text parts, then the final one with the counts."""

    def __init__(self, model: str, kind: type[ChatPart] | type[GeneratePart]):
        self.model, self.kind = model, kind
        self.started = time.perf_counter_ns()

    def part(self, text: str, **fields) -> ChatPart | GeneratePart:
        content = {"message": ollama.Message(role="assistant", content=text)} if self.kind is ChatPart else {"response": text}
        return self.kind(model=self.model, created_at=stamp(), **content, **fields)

    def loaded(self):
        return self.part("", done=True, done_reason="load")

    def final(self, answer, text: str = ""):
        timings = answer.timings
        first_token_ms = timings.get("first_token_ms") or 0
        prompt_ms = (timings.get("retrieval_ms") or 0) + (timings.get("context_ms") or 0) + first_token_ms
        llm_ns = int((timings.get("llm_ms") or 0) * 1e6)
        return self.part(
            text,
            done=True,
            done_reason="stop",
            total_duration=time.perf_counter_ns() - self.started,
            load_duration=0,
            prompt_eval_count=answer.prompt_tokens,
            prompt_eval_duration=int(prompt_ms * 1e6),
            eval_count=answer.completion_tokens or 0,
            eval_duration=max(llm_ns - int(first_token_ms * 1e6), 0),
            citations=[citation.to_dict() for citation in answer.citations],
            localrag={"query": answer.query, "context": [citation.to_dict() for citation in answer.context]},
        )

    async def lines(self, events):
        async with aclosing(events):
            async for item in events:
                if item.type == "token":
                    yield ndjson(shaped(self.part(item.text, done=False)))
                elif item.type == "error":
                    failure = event_error(item)
                    yield ndjson({"error": failure.message, "type": failure.type})
                    return
                elif item.type == "answer":
                    yield ndjson(shaped(self.final(item.answer)))

"""Ollama-compatible API: GET /api/version, GET /api/tags, POST /api/show, POST /api/chat and
POST /api/generate (NDJSON streaming by default, as Ollama does), so Ollama clients such as
Open WebUI can use localrag as a model.

The RAG pipeline answers the last user message (chat) or the prompt (generate); any model name is
accepted. Extra field on the final (`done: true`) object: `citations`. Errors are Ollama-style
{"error": "<message>"} bodies (plus `type` and `details`).
"""

import hashlib
import time
from contextlib import aclosing
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..answering import Answers
from ..auth import READ
from ..errors import ApiError, answer_error, llm_error
from ..limits import check_text
from ..sse import ndjson

router = APIRouter(prefix="/api", tags=["ollama-compatible"], dependencies=[READ])

VERSION = "0.12.6"  # the Ollama API version whose shapes these routes follow
DETAILS = {
    "parent_model": "",
    "format": "localrag",
    "family": "localrag",
    "families": ["localrag"],
    "parameter_size": "",
    "quantization_level": "",
}


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | None = ""


class ChatRequest(BaseModel):
    """Ollama's chat request; options, format, tools, keep_alive, ... are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"model": "localrag", "messages": [{"role": "user", "content": "How do I back up the index?"}], "stream": False}]
        },
    )
    model: str = Field(min_length=1)
    messages: list[Message] = []
    stream: bool = True


class GenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow", json_schema_extra={"examples": [{"model": "localrag", "prompt": "How do I back up the index?", "stream": False}]}
    )
    model: str = Field(min_length=1)
    prompt: str = ""
    stream: bool = True


class ShowRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    name: str | None = None  # older clients


def stamp(seconds: float | None = None) -> str:
    return datetime.fromtimestamp(seconds or time.time(), timezone.utc).isoformat().replace("+00:00", "Z")


def name_of(request: Request) -> str:
    name = request.app.state.rag.config.api.model_name
    return name if ":" in name else f"{name}:latest"


@router.get("/version", summary="Ollama API version")
def version() -> dict:
    return {"version": VERSION}


@router.get("/tags", summary="Models: the one localrag serves")
def tags(request: Request) -> dict:
    rag = request.app.state.rag
    name = name_of(request)
    modified = rag.searcher.loaded_at or request.app.state.started
    digest = hashlib.sha256(f"{name}|{rag.searcher.version}".encode()).hexdigest()
    return {"models": [{"name": name, "model": name, "modified_at": stamp(modified), "size": 0, "digest": digest, "details": DETAILS}]}


@router.post("/show", summary="Model details")
def show(body: ShowRequest, request: Request) -> dict:
    status = request.app.state.llm_status.value
    rag = request.app.state.rag
    return {
        "license": "",
        "modelfile": f"# localrag: answers grounded in the index {rag.config.index.name!r}\n",
        "parameters": "",
        "template": "",
        "details": DETAILS,
        "model_info": {
            "general.architecture": "localrag",
            "localrag.backend": status.get("backend"),
            "localrag.backend_model": status.get("model"),
            "localrag.context_length": status.get("context_window"),
            "localrag.index_version": rag.searcher.version,
        },
        "capabilities": ["completion"],
        "modified_at": stamp(rag.searcher.loaded_at or request.app.state.started),
    }


@router.post("/chat", summary="Chat answered by the RAG pipeline (NDJSON stream unless stream is false)")
async def chat(body: ChatRequest, request: Request):
    question = next((m.content for m in reversed(body.messages) if m.role == "user" and (m.content or "").strip()), None)
    if question is None:
        if body.messages:
            raise ApiError(422, "the conversation has no user message with text")
        return Reply(body.model, "chat").loaded()  # Ollama answers an empty chat by loading the model
    return await answer(request, Reply(body.model, "chat"), question, body.stream)


@router.post("/generate", summary="Generate answered by the RAG pipeline (NDJSON stream unless stream is false)")
async def generate(body: GenerateRequest, request: Request):
    if not body.prompt.strip():
        return Reply(body.model, "generate").loaded()
    return await answer(request, Reply(body.model, "generate"), body.prompt, body.stream)


async def answer(request: Request, reply: "Reply", question: str, stream: bool):
    check_text(question, request.app.state.rag.config.api.max_question_length, ("body", "messages" if reply.kind == "chat" else "prompt"))
    answers = Answers(request, "ollama")
    if not stream:
        result = await answers.ask(question)
        if not result.complete:
            raise answer_error(result)
        return reply.part(result.answer, reply.final(result))
    events = await answers.stream(question)
    return StreamingResponse(reply.lines(events), media_type="application/x-ndjson")


class Reply:
    """Ollama response objects for one chat or generate call."""

    def __init__(self, model: str, kind: str):
        self.model, self.kind = model, kind
        self.started = time.perf_counter_ns()

    def part(self, text: str, extra: dict) -> dict:
        content = {"message": {"role": "assistant", "content": text}} if self.kind == "chat" else {"response": text}
        return {"model": self.model, "created_at": stamp(), **content, **extra}

    def loaded(self) -> dict:
        return self.part("", {"done": True, "done_reason": "load"})

    def final(self, answer) -> dict[str, Any]:
        timings = answer.timings
        prompt_ns = int(
            ((timings.get("retrieval_ms") or 0) + (timings.get("context_ms") or 0) + (timings.get("first_token_ms") or 0)) * 1e6
        )
        llm_ns = int((timings.get("llm_ms") or 0) * 1e6)
        return {
            "done": True,
            "done_reason": "stop",
            "total_duration": time.perf_counter_ns() - self.started,
            "load_duration": 0,
            "prompt_eval_count": answer.prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": getattr(answer, "completion_tokens", None) or 0,
            "eval_duration": max(llm_ns - int((timings.get("first_token_ms") or 0) * 1e6), 0),
            "citations": [citation.to_dict() for citation in answer.citations],
        }

    async def lines(self, events):
        async with aclosing(events):
            async for item in events:
                if item.type == "token":
                    yield ndjson(self.part(item.text, {"done": False}))
                elif item.type == "error":
                    failure = llm_error(item.exception) if item.exception else ApiError(502, item.error or "the LLM failed", "llm_error")
                    yield ndjson({"error": failure.message, "type": failure.type})
                    return
                elif item.type == "answer":
                    yield ndjson(self.part("", self.final(item.answer)))

"""OpenAI-compatible chat: GET /v1/models, POST /v1/chat/completions (streamed or not).

The RAG pipeline answers the conversation's last user message (earlier turns and system messages
are not used; localrag's own grounded prompt is). Whatever `model` is asked for, localrag answers
and echoes the name back. Extra response field: `citations` (the passages the answer cites, as in
/ask), on the response and on the final stream chunk; `localrag` carries found/complete/timings.
Extra request fields: `top_k`, `where`, `filters` (as in /ask).
"""

import time
import uuid
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..answering import Answers
from ..auth import READ
from ..errors import ApiError, answer_error, llm_error
from ..limits import check_limit, check_text
from ..schemas import ERRORS, ErrorResponse, Filtered
from ..sse import HEADERS, event

router = APIRouter(prefix="/v1", tags=["openai-compatible"])


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content if part.type == "text" and part.text)
        return self.content or ""


class ChatCompletionRequest(Filtered):
    """OpenAI's chat completion request; unknown OpenAI fields (temperature, max_tokens, ...) are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"model": "localrag", "messages": [{"role": "user", "content": "How do I back up the index?"}]}]},
    )
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    top_k: int | None = Field(None, ge=1)

    def question(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user" and message.text().strip():
                return message.text()
        raise ApiError(422, "the conversation has no user message with text", details={"loc": ["body", "messages"]})


@router.get("/models", dependencies=[READ], summary="The one model localrag serves", responses=ERRORS)
def models(request: Request) -> dict:
    name = request.app.state.rag.config.api.model_name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": int(request.app.state.started), "owned_by": "localrag"}]}


@router.post(
    "/chat/completions",
    dependencies=[READ],
    summary="Chat completion answered by the RAG pipeline",
    responses={
        **ERRORS,
        200: {"description": "chat.completion, or with `stream: true` chat.completion.chunk events ending in `data: [DONE]`"},
        503: {"model": ErrorResponse, "description": "The LLM backend is unavailable"},
    },
)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    rag = request.app.state.rag
    question = body.question()
    check_text(question, rag.config.api.max_question_length, ("body", "messages"))
    check_limit(body.top_k, rag.config.search.max_limit, ("body", "top_k"))
    reply = Reply(body.model or rag.config.api.model_name)
    answers = Answers(request, "openai")
    if not body.stream:
        answer = await answers.ask(question, body.top_k, body.condition())
        if not answer.complete:
            failure = answer_error(answer)
            raise ApiError(failure.status, failure.message, failure.type, {"partial_answer": answer.answer})
        return reply.completion(answer)
    events = await answers.stream(question, body.top_k, body.condition())
    usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(reply.chunks(events, usage), media_type="text/event-stream", headers=HEADERS)


class Reply:
    """OpenAI response bodies for one completion."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def usage(self, answer) -> dict:
        completion = getattr(answer, "completion_tokens", None) or 0
        return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": completion, "total_tokens": answer.prompt_tokens + completion}

    def extras(self, answer) -> dict:
        return {
            "citations": [citation.to_dict() for citation in answer.citations],
            "localrag": {
                "found": answer.found,
                "complete": answer.complete,
                "backend": answer.backend,
                "model": answer.model,
                "timings": answer.timings,
            },
        }

    def completion(self, answer) -> dict:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer.answer}, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": self.usage(answer),
            **self.extras(answer),
        }

    def head(self) -> dict:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}

    def chunk(self, delta: dict, finish: str | None = None, **extra) -> bytes:
        return event(None, {**self.head(), "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra})

    async def chunks(self, events, usage: bool):
        yield self.chunk({"role": "assistant", "content": ""})
        async with aclosing(events):
            async for item in events:
                if item.type == "token":
                    yield self.chunk({"content": item.text})
                elif item.type == "error":
                    failure = llm_error(item.exception) if item.exception else ApiError(502, item.error or "the LLM failed", "llm_error")
                    yield event(None, {"error": {"message": failure.message, "type": failure.type, "code": failure.status, "param": None}})
                    return
                elif item.type == "answer":
                    yield self.chunk({}, "stop", **self.extras(item.answer))
                    if usage:
                        yield event(None, {**self.head(), "choices": [], "usage": self.usage(item.answer)})
        yield event(None, "[DONE]")

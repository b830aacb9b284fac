"""OpenAI-compatible chat: GET /v1/models, POST /v1/chat/completions (streamed or not).

The RAG pipeline answers the conversation's last user message; the turns before it make the
search query standalone and go into the prompt as history (system messages are not used:
localrag's own grounded prompt is). `max_tokens` (or `max_completion_tokens`), `temperature`,
`top_p`, `stop` and `seed` are passed to the LLM, within config.yml's limits. Whatever `model` is
asked for, localrag answers and echoes the name back. Extra response fields, on the response and
on the final stream chunk: `citations` (the passages the answer cites, as in /ask) and
`localrag` (the `query` searched, the other retrieved passages as `context`, found, complete,
timings). Extra request fields: `top_k`, `where`, `filters` (as in /ask).
"""

import time
import uuid
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from openai.types import CompletionUsage, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice, ChoiceDelta
from openai.types.shared import ErrorObject
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from rag.condense import split_messages
from rag.config import Config

from ..answering import answer as answer_of, answer_events
from ..auth import READ
from ..errors import ApiError, answer_error, event_error
from ..limits import check_limit, check_text, checked
from ..schemas import ERRORS, LLM_ERRORS, MAX_MESSAGES, MAX_NAME, Filtered
from ..sse import HEADERS, event, streamed

router = APIRouter(prefix="/v1", tags=["openai-compatible"])

MAX_PARTS = 100  # content parts of one message


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_PARTS)] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content if part.type == "text" and part.text)
        return self.content or ""


class ChatCompletionRequest(Filtered):
    """OpenAI's chat completion request; other OpenAI fields (tools, n, ...) are accepted and ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"model": "localrag", "messages": [{"role": "user", "content": "How do I back up the index?"}]}]},
    )
    model: str | None = Field(None, max_length=MAX_NAME)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None
    top_k: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | Annotated[list[Annotated[str, Field(max_length=MAX_NAME)]], Field(max_length=4)] | None = Field(None, max_length=MAX_NAME)
    seed: int | None = None

    def question(self) -> str:
        return self.split()[0]

    def split(self) -> tuple[str, list[dict]]:
        """(the last user message, the turns before it)."""
        question, history = split_messages([{"role": m.role, "content": m.text()} for m in self.messages])
        if not question.strip():
            raise ApiError(422, "the conversation has no user message with text", details={"loc": ["body", "messages"]})
        return question, history

    def options(self) -> dict:
        """History and sampling for LocalRAG.stream."""
        sampling = {"max_tokens": self.max_completion_tokens or self.max_tokens, "temperature": self.temperature, "top_p": self.top_p}
        return {"history": self.split()[1], "stop": self.stop, "seed": self.seed, **sampling}

    def check_limits(self, config: Config):
        check_text(self.question(), config.api.max_question_length, ("body", "messages"))
        check_limit(self.top_k, config.search.max_limit, ("body", "top_k"))


@router.get("/models", dependencies=[READ], summary="The one model localrag serves", responses=ERRORS)
def models(request: Request) -> dict:
    name = request.app.state.rag.config.api.model_name
    return {"object": "list", "data": [Model(id=name, object="model", created=int(request.app.state.started), owned_by="localrag")]}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    response_model_exclude_unset=True,
    dependencies=[READ],
    summary="Chat completion answered by the RAG pipeline",
    responses={
        **ERRORS,
        **streamed("chat.completion, or with `stream: true` chat.completion.chunk events ending in `data: [DONE]`"),
        **LLM_ERRORS,
    },
)
async def chat_completions(request: Request, body: ChatCompletionRequest = checked(ChatCompletionRequest)):
    completion = Completion(body.model or request.app.state.rag.config.api.model_name)
    question, options = body.question(), body.options()
    if not body.stream:
        answer = await answer_of(request, "openai", question, body.top_k, body.condition(), **options)
        if not answer.complete:
            failure = answer_error(answer)
            raise ApiError(failure.status, failure.message, failure.type, {"partial_answer": answer.answer})
        return completion.whole(answer)
    events = await answer_events(request, "openai", question, body.top_k, body.condition(), **options)
    usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(completion.chunks(events, usage), media_type="text/event-stream", headers=HEADERS)


class Completion:
    """The OpenAI objects of one chat completion: the whole one, or its chunks (one id and time)."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def usage(self, answer) -> CompletionUsage:
        completion = answer.completion_tokens or 0
        return CompletionUsage(prompt_tokens=answer.prompt_tokens, completion_tokens=completion, total_tokens=answer.prompt_tokens + completion)

    def extras(self, answer) -> dict:
        """localrag's own fields, which ride along on the response and the final chunk."""
        return {
            "citations": [citation.to_dict() for citation in answer.citations],
            "localrag": {
                "query": answer.query,
                "context": [citation.to_dict() for citation in answer.context],
                "found": answer.found,
                "complete": answer.complete,
                "backend": answer.backend,
                "model": answer.model,
                "timings": answer.timings,
            },
        }

    def whole(self, answer) -> ChatCompletion:
        message = ChatCompletionMessage(role="assistant", content=answer.answer)
        return ChatCompletion(
            id=self.id,
            object="chat.completion",
            created=self.created,
            model=self.model,
            choices=[Choice(index=0, message=message, finish_reason="stop", logprobs=None)],
            usage=self.usage(answer),
            **self.extras(answer),
        )

    def chunk(self, choices: list[ChunkChoice], **extra) -> bytes:
        data = ChatCompletionChunk(id=self.id, object="chat.completion.chunk", created=self.created, model=self.model, choices=choices, **extra)
        return event(None, data.to_dict())

    def delta(self, delta: ChoiceDelta, finish: str | None = None, **extra) -> bytes:
        return self.chunk([ChunkChoice(index=0, delta=delta, finish_reason=finish, logprobs=None)], **extra)

    async def chunks(self, events, usage: bool):
        yield self.delta(ChoiceDelta(role="assistant", content=""))
        async with aclosing(events):
            async for item in events:
                if item.type == "token":
                    yield self.delta(ChoiceDelta(content=item.text))
                elif item.type == "error":
                    failure = event_error(item)
                    error = ErrorObject(message=failure.message, type=failure.type, code=str(failure.status), param=None)
                    yield event(None, {"error": error.to_dict()})
                    return
                elif item.type == "answer":
                    yield self.delta(ChoiceDelta(), "stop", **self.extras(item.answer))
                    if usage:
                        yield self.chunk([], usage=self.usage(item.answer))
        yield event(None, "[DONE]")

"""POST /ask: a grounded answer with citations, as JSON or as Server-Sent Events."""

import logging
from contextlib import aclosing

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from rag.llm.errors import LLMError

from ..answering import Answers
from ..auth import READ
from ..errors import llm_error
from ..limits import check_limit, check_text
from ..schemas import ERRORS, AskRequest, AskResponse, ErrorResponse
from ..sse import HEADERS, event

router = APIRouter(tags=["answers"])
logger = logging.getLogger("api")

STREAM_EXAMPLE = (
    'event: token\ndata: {"text": "Copy the indexes folder"}\n\n'
    'event: token\ndata: {"text": " [1]."}\n\n'
    'event: citations\ndata: {"citations": [{"number": 1, "source": "guide/backup.md", "...": "..."}], "context": []}\n\n'
    'event: done\ndata: {"answer": "Copy the indexes folder [1].", "found": true, "complete": true, "timings": {"total_ms": 850.2}}\n\n'
)


@router.post(
    "/ask",
    response_model=AskResponse,
    dependencies=[READ],
    summary="Answer a question from the documents",
    responses={
        **ERRORS,
        200: {
            "description": "The answer (JSON), or with `stream: true` (or `Accept: text/event-stream`) Server-Sent Events",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": STREAM_EXAMPLE}},
        },
        503: {"model": ErrorResponse, "description": "The LLM backend is unavailable (`/search` still works)"},
        504: {"model": ErrorResponse, "description": "The LLM backend timed out"},
    },
)
async def ask(body: AskRequest, request: Request):
    """Retrieves passages, has the LLM answer from them and cites them.

    Streaming events: `token` {text} as the answer is written; `error` {type, message} if the LLM
    fails mid-answer; then `citations` {citations, context} and `done` (the answer without the
    passages: answer, found, complete, backend, model, timings, ...). Failures before the first
    token are plain HTTP errors (e.g. 503 when the LLM is unavailable)."""
    rag = request.app.state.rag
    check_text(body.question, rag.config.api.max_question_length, ("body", "question"))
    check_limit(body.top_k, rag.config.search.max_limit, ("body", "top_k"))
    answers = Answers(request, "ask")
    if not (body.stream or "text/event-stream" in request.headers.get("accept", "")):
        return (await answers.ask(body.question, body.top_k, body.condition())).to_dict()
    events = await answers.stream(body.question, body.top_k, body.condition())
    return StreamingResponse(sse(events), media_type="text/event-stream", headers=HEADERS)


async def sse(events):
    """Answer events as SSE: token..., [error], citations, done."""
    try:
        async with aclosing(events):
            async for item in events:
                if item.type == "token":
                    yield event("token", {"text": item.text})
                elif item.type == "error":
                    failure = llm_error(item.exception or LLMError(item.error))
                    yield event("error", {"type": failure.type, "message": failure.message, "details": failure.details})
                elif item.type == "answer":
                    answer = item.answer.to_dict()
                    yield event("citations", {"citations": answer.pop("citations"), "context": answer.pop("context")})
                    yield event("done", answer)
    except Exception as error:  # after the first byte there is no status code left to set
        logger.exception("answer stream failed")
        yield event("error", {"type": "internal_error", "message": f"{type(error).__name__}: {error}", "details": None})

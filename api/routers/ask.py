"""POST /ask: a grounded answer with citations, as JSON or as Server-Sent Events."""

import logging
from contextlib import aclosing

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from rag.answer import Answer

from ..answering import answer, answer_events
from ..auth import READ
from ..errors import event_error
from ..limits import checked
from ..schemas import ERRORS, LLM_ERRORS, AskRequest
from ..sse import HEADERS, event, streamed

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
    response_model=Answer,
    dependencies=[READ],
    summary="Answer a question from the documents",
    responses={
        **ERRORS,
        **streamed("The answer (JSON), or with `stream: true` (or `Accept: text/event-stream`) Server-Sent Events", STREAM_EXAMPLE),
        **LLM_ERRORS,
    },
)
async def ask(request: Request, body: AskRequest = checked(AskRequest)):
    """Retrieves passages, has the LLM answer from them and cites them.

    Streaming events: `token` {text} as the answer is written; `error` {type, message} if the LLM
    fails mid-answer; then `citations` {citations, context} and `done` (the answer without the
    passages: answer, found, complete, backend, model, timings, ...). Failures before the first
    token are plain HTTP errors (e.g. 503 when the LLM is unavailable)."""
    if not (body.stream or "text/event-stream" in request.headers.get("accept", "")):
        return await answer(request, "ask", body.question, body.top_k, body.condition(), **body.options())
    events = await answer_events(request, "ask", body.question, body.top_k, body.condition(), **body.options())
    return StreamingResponse(sse(events), media_type="text/event-stream", headers=HEADERS)


async def sse(events):
    """Answer events as SSE: token..., [error], citations, done."""
    try:
        async with aclosing(events):
            async for item in events:
                if item.type == "token":
                    yield event("token", {"text": item.text})
                elif item.type == "error":
                    failure = event_error(item)
                    yield event("error", {"type": failure.type, "message": failure.message, "details": failure.details})
                elif item.type == "answer":
                    answer = item.answer.to_dict()
                    yield event("citations", {"citations": answer.pop("citations"), "context": answer.pop("context")})
                    yield event("done", answer)
    except Exception as error:  # after the first byte there is no status code left to set
        logger.exception("answer stream failed")
        yield event("error", {"type": "internal_error", "message": f"{type(error).__name__}: {error}", "details": None})

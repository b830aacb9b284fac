"""Runs the library's answer pipeline off the event loop for /ask and the OpenAI/Ollama routes,
recording LLM metrics and the backend status.

The answer stream is primed before any response starts: a search error or an LLM that fails before
its first token becomes an ordinary HTTP error (e.g. 503), not a broken stream.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import anyio
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from rag.answer import Answer, Event
from rag.conversations import LOCAL
from rag.llm.errors import LLMError

END = object()


async def in_threads(iterator: Iterator, first=()) -> AsyncIterator:
    """Iterates a blocking iterator one item per worker-thread call; closes it however iteration ends
    (a client that disconnects stops the generation)."""
    try:
        for item in first:
            yield item
        while (item := await run_in_threadpool(next, iterator, END)) is not END:
            yield item
    finally:
        if hasattr(iterator, "close"):
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(iterator.close)


def owner(request: Request) -> str:
    """Whose conversations a request reads and writes: the API key's name (`local` when the API is open)."""
    return getattr(request.state, "api_key", None) or LOCAL


async def answer(request: Request, endpoint: str, question: str, top_k: int | None = None, where=None, **options) -> Answer:
    """The whole answer (options as for LocalRAG.stream); raises the LLM error when it fails before any text."""
    state = request.app.state
    try:
        result = await run_in_threadpool(state.rag.ask, question, top_k=top_k, where=where, owner=owner(request), **options)
    except LLMError as error:
        state.metrics.llm_failed(error)
        raise
    recorded(request, endpoint, result)
    return result


async def answer_events(request: Request, endpoint: str, question: str, top_k: int | None = None, where=None, **options) -> AsyncIterator[Event]:
    """Token events, possibly an error event, then the answer event. Raises (before any output)
    what the first step raises, and the LLM error if it fails before any text."""
    state = request.app.state
    events = await run_in_threadpool(state.rag.stream, question, top_k=top_k, where=where, owner=owner(request), **options)
    first = await run_in_threadpool(next, events, END)
    if first is END:
        raise RuntimeError("the answer stream ended without an event")
    if first.type == "error":
        events.close()
        state.metrics.llm_failed(first.exception)
        raise first.exception or LLMError(first.error or "the LLM failed")
    return follow(request, endpoint, events, first)


async def follow(request: Request, endpoint: str, events, first) -> AsyncIterator[Event]:
    state = request.app.state
    async with aclosing(in_threads(events, [first])) as stream:
        async for event in stream:
            if event.type == "error":
                state.metrics.llm_failed(event.exception)
                state.llm_status.failed(event.exception)
            elif event.type == "answer":
                recorded(request, endpoint, event.answer)
            yield event


def recorded(request: Request, endpoint: str, result: Answer):
    """Counts the answer in the metrics; a generated answer shows the backend works."""
    state = request.app.state
    if result.found and result.answer:
        state.llm_status.succeeded()
    state.metrics.answered(result, endpoint)

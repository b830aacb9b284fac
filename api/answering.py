"""Runs the library's answer pipeline off the event loop for /ask and the OpenAI/Ollama routes.

The answer stream is primed before any response starts: a search error or an LLM that fails before
its first token becomes an ordinary HTTP error (e.g. 503), not a broken stream.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing

import anyio
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from rag.answer import Answer, Event
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


class Answers:
    """Answers for one request, recording LLM metrics and the backend status."""

    def __init__(self, request: Request, endpoint: str):
        self.state = request.app.state
        self.rag = request.app.state.rag
        self.endpoint = endpoint

    async def ask(self, question: str, top_k: int | None = None, where: str | None = None) -> Answer:
        try:
            answer = await run_in_threadpool(self.rag.ask, question, top_k, where)
        except LLMError as error:
            self.state.metrics.llm_failed(error)
            raise
        await self.record(answer)
        return answer

    async def stream(self, question: str, top_k: int | None = None, where: str | None = None) -> AsyncIterator[Event]:
        """Token events, possibly an error event, then the answer event. Raises (before any
        output) what the first step raises, and the LLM error if it fails before any text."""
        events = await run_in_threadpool(self.rag.stream, question, top_k, where)
        first = await run_in_threadpool(next, events, END)
        if first is END:
            raise RuntimeError("the answer stream ended without an event")
        if first.type == "error":
            events.close()
            self.state.metrics.llm_failed(first.exception)
            raise first.exception or LLMError(first.error or "the LLM failed")
        return self.follow(events, first)

    async def follow(self, events, first) -> AsyncIterator[Event]:
        async with aclosing(in_threads(events, [first])) as stream:
            async for event in stream:
                if event.type == "error":
                    self.state.metrics.llm_failed(event.exception)
                    self.state.llm_status.failed(event.exception)
                elif event.type == "answer":
                    await self.record(event.answer)
                yield event

    async def record(self, answer: Answer):
        completion = None
        if answer.found and answer.answer:
            completion = await run_in_threadpool(self.count, answer.answer)
            self.state.llm_status.succeeded()
        answer.completion_tokens = completion
        self.state.metrics.answered(answer, self.endpoint, completion)

    def count(self, text: str) -> int | None:
        try:
            return self.rag.llm.count_tokens(text)
        except Exception:  # a count is nice to have, never worth failing an answer
            return None

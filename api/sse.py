"""Server-Sent Events and NDJSON framing."""

import json

from fastapi.sse import format_sse_event

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event(name: str | None, data) -> bytes:
    """One SSE event; data is JSON-encoded unless it is already a string."""
    return format_sse_event(event=name, data_str=data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, default=str))


def streamed(description: str, example: str | None = None) -> dict:
    """The OpenAPI 200 response of a route that answers JSON, or Server-Sent Events when asked to stream."""
    event = {"type": "object", "properties": {"event": {"type": "string"}, "data": {"type": "string"}}, "required": ["data"]}
    events = {"schema": event} | ({"example": example} if example else {})
    return {200: {"description": description, "content": {"text/event-stream": events}}}


def ndjson(data) -> bytes:
    return (json.dumps(data, ensure_ascii=False, default=str) + "\n").encode("utf-8")

"""Request limits: body size (a middleware), and bodies as dependencies: JSON only, parsed into
their model, checked against config.yml.

    app.add_middleware(BodyLimit, default=1 << 20, routes={("POST", "/documents"): 20 << 20})

    @router.post("/search")
    def search(request: Request, body: SearchRequest = checked(SearchRequest)): ...

A body larger than its route allows is refused with 413 before it is read: at once when its
Content-Length says so, else as soon as the bytes received pass the limit (and the connection is
closed, so the rest is never read). A body that is not `application/json` is refused with 415 (a
cross-site form can only send text/plain, urlencoded or multipart bodies); a value over a
configured limit (e.g. api.max_question_length, search.max_limit) is a 422 like any schema error.
"""

from email.message import Message
from typing import Annotated

from fastapi import Body, Depends, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from .errors import ApiError, body as error_body


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes (api.max_body_size; uploads: api.max_upload_size per file)")


class BodyLimit:
    """Limits request bodies to `default` bytes, or to routes[(method, path)]."""

    def __init__(self, app, default: int, routes: dict[tuple[str, str], int]):
        self.app, self.default, self.routes = app, default, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.routes.get((scope["method"], scope["path"]), self.default)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            error = BodyTooLarge(limit)
            response = JSONResponse(error_body(scope["path"], "payload_too_large", error.detail), 413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        received, exceeded = 0, False

        async def counted():
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)  # answered 413 by the app's error handler
            return message

        async def closing(message):
            if message["type"] == "http.response.start" and exceeded:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counted, closing)


def invalid(loc: tuple, message: str, type: str, value=None):
    raise RequestValidationError([{"type": type, "loc": loc, "msg": message, "input": value}])


def check_text(text: str, maximum: int, loc: tuple):
    if len(text) > maximum:
        invalid(loc, f"String should have at most {maximum} characters (api.max_question_length)", "string_too_long")


def check_limit(value: int | None, maximum: int, loc: tuple, key: str = "search.max_limit"):
    if value is not None and value > maximum:
        invalid(loc, f"Input should be less than or equal to {maximum} ({key})", "less_than_equal", value)


def is_json(content_type: str) -> bool:
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def json_only(request: Request):
    """415 unless the body is JSON; a request without a body (e.g. `curl -X POST /ingest`) may omit the type."""
    content_type = request.headers.get("content-type")
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    if (content_type is not None or has_body) and not is_json(content_type or ""):
        raise ApiError(415, "the request body must be JSON (Content-Type: application/json)", details={"content_type": content_type})


def checked(model: type, optional: bool = False):
    """A dependency giving the JSON body as `model` (or `model()` when optional and absent), after
    `model.check_limits(config)`."""
    if optional:

        def parse(request: Request, body: Annotated[model | None, Body()] = None, _=Depends(json_only)):
            return limited(request, body if body is not None else model())

    else:

        def parse(request: Request, body: Annotated[model, Body()], _=Depends(json_only)):
            return limited(request, body)

    return Depends(parse)


def limited(request: Request, body):
    body.check_limits(request.app.state.rag.config)
    return body

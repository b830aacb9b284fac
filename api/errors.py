"""One JSON error shape for every 4xx/5xx: {"error": {"type": ..., "message": ..., "details": ...}}.

Library exceptions map to statuses here, so routers just call the library. The Ollama-compatible
routes (/api/...) answer {"error": "<message>", "type": ..., "details": ...} instead, because Ollama
clients read `error` as a string.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from rag.conversations import ConversationNotFound
from rag.llm.errors import ContextOverflow, EmbeddedModelMissing, LLMError, LLMTimeout, LLMUnavailable, ModelNotFound
from rag.search import PassageNotFound, SearchError
from rag.service import DocumentNotFound
from rag.store import IndexLocked, IndexUnwritable
from rag.workflows import Busy, UnknownWorkflow, WorkflowError

logger = logging.getLogger("api")

TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    502: "llm_error",
    503: "unavailable",
    504: "timeout",
    507: "insufficient_storage",
}


class ApiError(Exception):
    """An error answered with `status` and the JSON error shape."""

    def __init__(self, status: int, message: str, type: str | None = None, details=None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.details, self.headers = status, message, details, headers
        self.type = type or TYPES.get(status, "error")


def body(path: str, type: str, message: str, details=None) -> dict:
    if path.startswith("/api/"):
        return {"error": message, "type": type, "details": details}
    return {"error": {"type": type, "message": message, "details": details}}


def respond(request: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(body(request.url.path, error.type, error.message, error.details), error.status, headers=error.headers)


def llm_error(error: LLMError) -> ApiError:
    """LLM failures: unreachable/missing model 503, timeout 504, prompt too long 422, others 502."""
    if isinstance(error, LLMUnavailable | ModelNotFound):
        return ApiError(503, str(error), "llm_unavailable", {"backend_error": type(error).__name__})
    if isinstance(error, LLMTimeout):
        return ApiError(504, str(error), "llm_timeout", {"backend_error": type(error).__name__})
    if isinstance(error, ContextOverflow):
        return ApiError(422, str(error), "context_overflow", {"backend_error": type(error).__name__})
    return ApiError(502, str(error), "llm_error", {"backend_error": type(error).__name__})


def event_error(event) -> ApiError:
    """The error of an `error` event of an answer stream (the LLM failed mid-answer)."""
    return llm_error(event.exception or LLMError(event.error or "the LLM failed"))


def answer_error(answer) -> ApiError:
    """The error of an answer the LLM could not finish (answer.complete is False)."""
    kinds = {kind.__name__: kind for kind in (LLMUnavailable, ModelNotFound, LLMTimeout, EmbeddedModelMissing, ContextOverflow)}
    return llm_error(kinds.get(answer.error_type or "", LLMError)(answer.error or "the LLM failed"))


def search_error(request: Request, error: SearchError) -> ApiError:
    """No index yet: 503; a bad filter or query: 400."""
    rag = getattr(request.app.state, "rag", None)
    if rag is not None and rag.index().version is None:
        return ApiError(503, str(error), "index_unavailable")
    return ApiError(400, str(error), "search_error")


# Library exceptions answered with a status of their own and their message
STATUSES = {
    IndexUnwritable: (507, "index_unwritable"),
    IndexLocked: (409, "index_locked"),
    Busy: (409, "workflow_busy"),
    UnknownWorkflow: (404, "not_found"),
    WorkflowError: (422, "workflow_error"),  # an invalid run request (e.g. MissingInput, a file outside the sources)
}


# "No such ..." exceptions (KeyErrors of the id asked for), answered 404
MISSING = {
    DocumentNotFound: "no document {!r} in the index",
    PassageNotFound: "no passage {!r} in the live index version",
    ConversationNotFound: "no conversation {!r}",
}


def answered_with(status: int, type: str):
    async def handler(request: Request, error: Exception):
        return respond(request, ApiError(status, str(error), type))

    return handler


def not_found(message: str):
    async def handler(request: Request, error: KeyError):
        return respond(request, ApiError(404, message.format(error.args[0] if error.args else "")))

    return handler


def allowed(request: Request) -> dict:
    """The Allow header of a 405: every method the routes of this path take (Starlette names only the first route's)."""
    routes = [route for route in request.app.routes if route.matches(request.scope)[0] == Match.PARTIAL]
    methods = {method for route in routes for method in getattr(route, "methods", None) or ()}
    return {"Allow": ", ".join(sorted(methods))}


def validation_details(error: RequestValidationError) -> tuple[str, list[dict]]:
    """A one-line message and the problems (location, message, type), without echoing inputs."""
    problems = [
        {"loc": [str(part) for part in item.get("loc", ())], "msg": item.get("msg", ""), "type": item.get("type", "")}
        for item in error.errors()
    ]
    summary = "; ".join(f"{'.'.join(p['loc'][1:] if len(p['loc']) > 1 else p['loc'])}: {p['msg']}" for p in problems[:5])
    return f"invalid request: {summary}", problems


def install(app: FastAPI):
    """Registers the handlers that turn every error into the JSON error shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return respond(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        message = error.detail if isinstance(error.detail, str) else TYPES.get(error.status_code, "error").replace("_", " ")
        details = None if isinstance(error.detail, str) else error.detail
        headers = allowed(request) if error.status_code == 405 else getattr(error, "headers", None)
        return respond(request, ApiError(error.status_code, message, details=details, headers=headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        message, problems = validation_details(error)
        return respond(request, ApiError(422, message, details=problems))

    @app.exception_handler(LLMError)
    async def llm_failed(request: Request, error: LLMError):
        request.app.state.llm_status.failed(error)
        return respond(request, llm_error(error))

    @app.exception_handler(SearchError)
    async def search_failed(request: Request, error: SearchError):
        return respond(request, search_error(request, error))

    for kind, (status, name) in STATUSES.items():
        app.add_exception_handler(kind, answered_with(status, name))
    for kind, message in MISSING.items():
        app.add_exception_handler(kind, not_found(message))

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(request, ApiError(500, f"internal error: {type(error).__name__}"))

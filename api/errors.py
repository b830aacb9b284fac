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

from rag.llm.errors import ContextOverflow, EmbeddedModelMissing, LLMError, LLMTimeout, LLMUnavailable, ModelNotFound
from rag.search import SearchError
from rag.service import DocumentNotFound
from rag.store import IndexLocked

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


def answer_error(answer) -> ApiError:
    """The error of an answer the LLM could not finish (answer.complete is False)."""
    kinds = {kind.__name__: kind for kind in (LLMUnavailable, ModelNotFound, LLMTimeout, EmbeddedModelMissing, ContextOverflow)}
    return llm_error(kinds.get(answer.error_type or "", LLMError)(answer.error or "the LLM failed"))


def search_error(request: Request, error: SearchError) -> ApiError:
    """No index yet: 503; a bad filter or query: 400."""
    rag = getattr(request.app.state, "rag", None)
    if rag is not None and rag.searcher.version is None:
        return ApiError(503, str(error), "index_unavailable")
    return ApiError(400, str(error), "search_error")


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
        return respond(request, ApiError(error.status_code, message, details=details, headers=getattr(error, "headers", None)))

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

    @app.exception_handler(DocumentNotFound)
    async def missing(request: Request, error: DocumentNotFound):
        return respond(request, ApiError(404, f"no document {error.args[0]!r} in the index"))

    @app.exception_handler(IndexLocked)
    async def locked(request: Request, error: IndexLocked):
        return respond(request, ApiError(409, str(error), "index_locked"))

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(request, ApiError(500, f"internal error: {type(error).__name__}"))

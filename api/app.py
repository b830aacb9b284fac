"""The FastAPI app: routers, API keys, CORS, trusted hosts, body limits, metrics, the JSON error shape, lifespan.

uvicorn api.app:create_app --factory        # config from $RAG_CONFIG or ./config.yml
create_app("path/to/config.yml")            # or a loaded rag.config.Config
"""

import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from rag.config import Config, load_config
from rag.llm.deadline import abort_calls
from rag.service import LocalRAG
from rag.watch import Watcher
from rag.workflows import Scheduler

from . import errors, mcp
from .auth import Keys
from .guard import SameOriginWrites, trusted_hosts
from .limits import BodyLimit
from .metrics import Metrics, MetricsMiddleware, StateCollector, multiprocess
from .routers import ask, conversations, documents, health, metrics, ollama, openai, search, web, workflows
from .routers.documents import MAX_FILES
from .status import LLMStatus

logger = logging.getLogger("api")

DESCRIPTION = """\
Private, local-first semantic search and grounded question answering over your own documents.

**API keys.** When `api.api_keys` is set in config.yml, every route except `/health`, `/ready`
and the docs needs a key, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`: 401
without a valid key, 403 when the key lacks the route's scope (`read`: search, ask, list;
`write`: upload, delete, ingest, run workflows). With no keys configured the API is open (local use).

**Limits.** JSON bodies up to `api.max_body_size` (413) with `Content-Type: application/json`
(415); uploads up to 20 files of `api.max_upload_size` each. A write (POST, PUT, PATCH, DELETE)
from a web page of another origin than this server and `api.cors_origins` gets 403; bound to
loopback, only localhost `Host` names are served (`api.allowed_hosts`).

**Errors.** Every 4xx/5xx body is `{"error": {"type", "message", "details"}}` (the
Ollama-compatible `/api/*` routes answer `{"error": "<message>", "type", "details"}`).
"""


def create_app(config: Config | str | Path | None = None, rag: LocalRAG | None = None) -> FastAPI:
    """The app for a config (path, Config, or None: $RAG_CONFIG / ./config.yml). Pass `rag` to
    serve an existing LocalRAG (not closed on shutdown); otherwise one is made at startup."""
    if not isinstance(config, Config):
        config = rag.config if rag is not None and config is None else load_config(config)
    settings = config.api

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = rag or LocalRAG(config)
        app.state.rag = service
        await run_in_threadpool(warm_up, service)
        app.state.llm_status.start(service)
        scheduler = start_scheduler(service, config)
        watcher = Watcher(service).start() if config.ingest.watch else None  # ingest.watch: sync the sources as they change
        try:
            async with mcp.serving(app, service):  # MCP over streamable HTTP at /mcp
                yield
        finally:
            abort_calls("the server is shutting down")  # no request or run waits on a hung LLM
            if watcher is not None:
                await run_in_threadpool(watcher.stop, 30)
            if scheduler is not None:
                await run_in_threadpool(scheduler.stop)
            app.state.llm_status.stop()
            if rag is None:
                service.close()
            if multiprocess():
                from prometheus_client import multiprocess as mp

                mp.mark_process_dead(os.getpid())

    app = FastAPI(
        title="localrag",
        version=health.VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        form_limits={"max_files": MAX_FILES},  # more files: 400
    )
    app.state.config = config
    app.state.keys = Keys(settings.api_keys)
    app.state.metrics = Metrics()
    app.state.metrics.add_collector(StateCollector(app))
    app.state.llm_status = LLMStatus()
    app.state.started = time.time()

    errors.install(app)
    for module in (health, search, ask, conversations, documents, openai, ollama, metrics, workflows, web):
        app.include_router(module.router)
    mcp.mount(app)

    # outermost last: the Host is checked first, then the body size, CORS preflights, cross-origin writes
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(SameOriginWrites, allowed=settings.cors_origins)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
        )
    uploads = MAX_FILES * settings.max_upload_size + settings.max_body_size  # the files and the form around them
    app.add_middleware(BodyLimit, default=settings.max_body_size, routes={("POST", "/documents"): uploads})
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(config), www_redirect=False)
    app.openapi = lambda: openapi(app, config)
    return app


def warm_up(service: LocalRAG):
    """Loads the live index version and the embedding model before the first request."""
    service.refresh(force=True)
    if service.index().version is not None:
        try:
            service.search("warm up", limit=1)
        except Exception as error:  # reported by the first real search instead
            logger.warning("warm-up search failed: %s", error)


def start_scheduler(service: LocalRAG, config: Config):
    """Runs the scheduled workflows (config.workflow) in this process."""
    if not config.workflow:
        return None
    try:
        scheduler = Scheduler(service)
        return scheduler if scheduler.start() else None
    except Exception as error:  # a broken schedule must not keep search from serving
        logger.error("workflow scheduler not started: %s", error)
        return None


def openapi(app: FastAPI, config: Config) -> dict:
    """The OpenAPI schema with the configured limits filled in."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.get("components", {}).get("schemas", {})
    limits = {
        ("SearchRequest", "query"): {"maxLength": config.api.max_question_length},
        ("SearchRequest", "limit"): {"maximum": config.search.max_limit},
        ("AskRequest", "question"): {"maxLength": config.api.max_question_length},
        ("AskRequest", "top_k"): {"maximum": config.search.max_limit},
        ("ChatCompletionRequest", "top_k"): {"maximum": config.search.max_limit},
    }
    for (model, field), values in limits.items():
        target = components.get(model, {}).get("properties", {}).get(field)
        if target is not None:
            for option in target.get("anyOf", [target]):
                if option.get("type") in ("string", "integer"):
                    option.update(values)
    app.openapi_schema = schema
    return schema

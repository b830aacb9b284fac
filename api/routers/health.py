"""Liveness, readiness and index status."""

import os
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..auth import READ
from ..schemas import ERRORS, Health, Ready

router = APIRouter(tags=["health"])

try:
    VERSION = version("localrag")
except PackageNotFoundError:
    VERSION = "0.0.0"


@router.head("/health", include_in_schema=False)
@router.get("/health", response_model=Health, summary="Liveness: the process answers")
def health():
    """Always 200 while the server runs (no key needed)."""
    return {"status": "ok", "version": VERSION}


@router.head("/ready", include_in_schema=False)
@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness: an index is loaded",
    responses={503: {"model": Ready, "description": "No index loaded yet (run `rag ingest`)"}},
)
async def ready(request: Request):
    """200 when an index version is loaded, else 503 (no key needed). Reports the LLM backend's
    status from the last background check, so a slow or absent LLM never delays it; `/search`
    works without an LLM."""
    rag = request.app.state.rag
    index = await run_in_threadpool(rag.index)
    body = {"ready": index.version is not None, "index": asdict(index), "llm": request.app.state.llm_status.value, "worker": os.getpid()}
    if not body["ready"]:
        body["error"] = {
            "type": "not_ready",
            "message": f"no index at {rag.config.index_dir}: run `rag ingest` or POST /ingest",
            "details": None,
        }
        return JSONResponse(body, status_code=503)
    return body


@router.get("/status", dependencies=[READ], summary="Index status: documents, chunks, size, last ingest", responses=ERRORS)
def status(request: Request) -> dict:
    return request.app.state.rag.status()

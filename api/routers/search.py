"""POST /search: ranked passages with their metadata."""

import time

from fastapi import APIRouter, Request

from ..auth import READ
from ..limits import checked
from rag.types import Hit

from ..schemas import ERRORS, ErrorResponse, SearchRequest, SearchResponse

router = APIRouter(tags=["search"])


@router.post(
    "/search",
    response_model=SearchResponse,
    dependencies=[READ],
    summary="Search the index",
    responses={**ERRORS, 503: {"description": "No index yet"}},
)
def search(request: Request, body: SearchRequest = checked(SearchRequest)):
    """Hybrid (default), dense or keyword search with optional metadata filters. Runs in a worker
    thread; during an ingest it keeps answering from the live index version."""
    rag = request.app.state.rag
    mode = body.mode or rag.config.search.mode
    started = time.perf_counter()
    hits = rag.search(body.query, limit=body.limit, mode=mode, where=body.condition())
    took = round((time.perf_counter() - started) * 1000, 2)
    return {
        "query": body.query,
        "mode": mode,
        "count": len(hits),
        "hits": [hit.to_dict() for hit in hits],
        "version": rag.index().version,
        "took_ms": took,
    }


@router.get(
    "/passages/{id:path}",
    response_model=Hit,
    dependencies=[READ],
    summary="One passage (chunk) by id, with its full text",
    responses={**ERRORS, 404: {"model": ErrorResponse, "description": "No such passage in the live index version"}},
)
def passage(id: str, request: Request):
    """`id` as in search hits and citations, e.g. `docs:guide/install.md#0001` (slashes allowed)."""
    return request.app.state.rag.passage(id)

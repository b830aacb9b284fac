"""POST /search: ranked passages with their metadata."""

import time

from fastapi import APIRouter, Request

from ..auth import READ
from ..limits import check_limit, check_text
from ..schemas import ERRORS, SearchRequest, SearchResponse

router = APIRouter(tags=["search"])


@router.post(
    "/search",
    response_model=SearchResponse,
    dependencies=[READ],
    summary="Search the index",
    responses={**ERRORS, 503: {"description": "No index yet"}},
)
def search(body: SearchRequest, request: Request):
    """Hybrid (default), dense or keyword search with optional metadata filters. Runs in a worker
    thread; during an ingest it keeps answering from the live index version."""
    rag = request.app.state.rag
    check_text(body.query, rag.config.api.max_question_length, ("body", "query"))
    check_limit(body.limit, rag.config.search.max_limit, ("body", "limit"))
    mode = body.mode or rag.config.search.mode
    started = time.perf_counter()
    hits = rag.search(body.query, limit=body.limit, mode=mode, where=body.condition())
    took = round((time.perf_counter() - started) * 1000, 2)
    return {
        "query": body.query,
        "mode": mode,
        "count": len(hits),
        "hits": [hit.to_dict() for hit in hits],
        "version": rag.searcher.version,
        "took_ms": took,
    }

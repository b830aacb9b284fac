"""GET /metrics in the Prometheus text format."""

from fastapi import APIRouter, Request, Response

from ..auth import READ
from ..schemas import ERRORS

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    dependencies=[READ],
    summary="Prometheus metrics",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}},
)
def metrics(request: Request):
    """HTTP requests and latency per route, ingestion counts, LLM latency and tokens, index and job
    gauges. With several workers the counters of every worker are summed (multiprocess mode)."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)

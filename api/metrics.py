"""Prometheus metrics: HTTP requests and latency per route, ingestion, LLM latency and tokens,
and index/job gauges read at scrape time.

With several uvicorn workers, `serve` sets PROMETHEUS_MULTIPROC_DIR so /metrics sums every
worker's counters (prometheus-client multiprocess mode); otherwise each process counts its own.
"""

import os
import time
from collections import Counter as Tally

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """The metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "localrag_http_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "localrag_http_request_duration_seconds",
            "HTTP request duration by route (streams: until the last byte).",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "localrag_http_requests_in_progress", "Requests being answered.", registry=registry, multiprocess_mode="livesum"
        )
        self.ingest_runs = Counter("localrag_ingest_runs", "Ingestion runs started by this API, by outcome.", ["state"], registry=registry)
        self.ingest_documents = Counter(
            "localrag_ingest_documents", "Documents handled by ingestion runs, by result.", ["result"], registry=registry
        )
        self.ingest_chunks = Counter(
            "localrag_ingest_chunks", "Chunks embedded (added) or deleted (removed).", ["change"], registry=registry
        )
        self.uploads = Counter("localrag_uploads", "Uploaded files, by result.", ["result"], registry=registry)
        self.answers = Counter("localrag_answers", "Answers by endpoint and outcome.", ["endpoint", "outcome"], registry=registry)
        self.llm_latency = Histogram(
            "localrag_llm_duration_seconds", "LLM generation time per answer.", ["backend"], buckets=LLM_BUCKETS, registry=registry
        )
        self.llm_first_token = Histogram(
            "localrag_llm_first_token_seconds", "Time to the first answer token.", ["backend"], buckets=LLM_BUCKETS, registry=registry
        )
        self.llm_tokens = Counter("localrag_llm_tokens", "LLM tokens: prompt and completion.", ["backend", "kind"], registry=registry)
        self.llm_errors = Counter("localrag_llm_errors", "LLM failures by error type.", ["type"], registry=registry)
        self.collectors = []

    def add_collector(self, collector):
        self.collectors.append(collector)
        self.registry.register(collector)

    # ---- recording ---------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float):
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def answered(self, answer, endpoint: str):
        outcome = "not_found" if not answer.found else "answered" if answer.complete else "incomplete"
        self.answers.labels(endpoint, outcome).inc()
        if not answer.found:
            return
        backend = answer.backend or "unknown"
        if answer.timings.get("llm_ms"):
            self.llm_latency.labels(backend).observe(answer.timings["llm_ms"] / 1000)
        if answer.timings.get("first_token_ms") is not None:
            self.llm_first_token.labels(backend).observe(answer.timings["first_token_ms"] / 1000)
        self.llm_tokens.labels(backend, "prompt").inc(answer.prompt_tokens or 0)
        if answer.completion_tokens:
            self.llm_tokens.labels(backend, "completion").inc(answer.completion_tokens)

    def llm_failed(self, error: Exception):
        self.llm_errors.labels(type(error).__name__).inc()

    def ingested(self, report: dict | None, error: Exception | None = None):
        self.ingest_runs.labels("failed" if error else "succeeded").inc()
        if report:
            for result, count in report.get("counts", {}).items():
                self.ingest_documents.labels(result).inc(count)
            self.ingest_chunks.labels("added").inc(report.get("chunks_added", 0))
            self.ingest_chunks.labels("removed").inc(report.get("chunks_removed", 0))

    # ---- exposition ----------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            for collector in self.collectors:
                registry.register(collector)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class StateCollector:
    """Gauges read at scrape time: index size and version, jobs by state, LLM availability."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        rag = getattr(self.app.state, "rag", None)
        if rag is None:
            return
        index = rag.index()
        yield GaugeMetricFamily("localrag_index_documents", "Documents in the live index version.", value=index.documents)
        yield GaugeMetricFamily("localrag_index_chunks", "Chunks in the live index version.", value=index.chunks)
        version = GaugeMetricFamily("localrag_index_version_info", "The live index version loaded by this process.", labels=["version"])
        version.add_metric([index.version or ""], 1)
        yield version
        jobs = GaugeMetricFamily("localrag_jobs", "Jobs on record (shared by all workers), by state.", labels=["state"])
        for state, count in sorted(Tally(job.get("state", "unknown") for job in rag.jobs.list()).items()):
            jobs.add_metric([state], count)
        yield jobs
        status = self.app.state.llm_status.value
        if status.get("available") is not None:
            yield GaugeMetricFamily(
                "localrag_llm_available", "1 if the LLM backend answered its last status check.", value=1 if status["available"] else 0
            )


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (e.g. /documents/{id:path})."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def record_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, record_status)
        finally:
            self.metrics.in_progress.dec()
            route = scope.get("route")
            self.metrics.request(scope["method"], getattr(route, "path", None) or "unmatched", status[0], time.perf_counter() - started)

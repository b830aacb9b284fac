"""Request and response bodies of the API (pydantic), with the examples shown in the OpenAPI docs."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.index import COLUMNS

Scalar = str | int | float | None
FILTER_COLUMNS = tuple(column for column in COLUMNS if column != "prefix")
HARD_MAX_TEXT = 100_000  # schema bound; the configured api.max_question_length is checked per request


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Filtered(Request):
    where: str | None = Field(
        None, description="A txtai SQL condition on metadata columns, e.g. `filetype = 'pdf' and page <= 3`.", examples=["filetype = 'md'"]
    )
    filters: dict[str, Scalar | list[Scalar]] | None = Field(
        None,
        description=f"Equality filters combined with AND; a list means any of. Columns: {', '.join(FILTER_COLUMNS)}.",
        examples=[{"collection": "docs", "filetype": ["md", "pdf"]}],
    )

    @field_validator("filters")
    @classmethod
    def known_columns(cls, value):
        for column, wanted in (value or {}).items():
            if column not in FILTER_COLUMNS:
                raise ValueError(f"unknown column {column!r}; filterable: {', '.join(FILTER_COLUMNS)}")
            for item in wanted if isinstance(wanted, list) else [wanted]:
                if isinstance(item, str) and "'" in item:
                    raise ValueError(f"{column}: values may not contain single quotes")
        return value

    def condition(self) -> str | None:
        """`where` and `filters` as one txtai SQL condition."""
        parts = [f"({self.where})"] if self.where and self.where.strip() else []
        for column, wanted in (self.filters or {}).items():
            if isinstance(wanted, list):
                values = [literal(item) for item in wanted if item is not None]
                alternatives = [f"{column} IN ({', '.join(values)})"] if values else []
                if None in wanted:
                    alternatives.append(f"{column} IS NULL")
                parts.append(f"({' OR '.join(alternatives)})" if alternatives else "1 = 0")
            else:
                parts.append(f"{column} IS NULL" if wanted is None else f"{column} = {literal(wanted)}")
        return " AND ".join(parts) or None


def literal(value) -> str:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else f"'{value}'"


# ---- search -------------------------------------------------------------------------------


class SearchRequest(Filtered):
    query: str = Field(min_length=1, max_length=HARD_MAX_TEXT, description="What to look for (at most api.max_question_length characters).")
    limit: int | None = Field(None, ge=1, description="Passages to return (default search.limit, at most search.max_limit).")
    mode: Literal["hybrid", "dense", "keyword"] | None = Field(None, description="Default search.mode.")

    @field_validator("query")
    @classmethod
    def query_not_blank(cls, value):
        return not_blank(value)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "How do I back up the index?", "limit": 3},
                {"query": "install requirements", "mode": "keyword", "filters": {"filetype": "md"}},
            ]
        },
    )


class HitModel(BaseModel):
    """One retrieved passage with what is needed to cite it."""

    id: str = Field(examples=["docs:guide/backup.md#0001"])
    score: float
    text: str
    source: str = Field(examples=["guide/backup.md"])
    document: str = Field(examples=["docs:guide/backup.md"])
    title: str
    heading: str = Field(examples=["Backups > Restore"])
    page: int | None
    chunk: int
    filetype: str
    start: int
    end: int
    extra: dict[str, Any] = {}


class SearchResponse(BaseModel):
    query: str
    mode: str
    count: int
    hits: list[HitModel]
    version: str | None = Field(description="The index version that answered.")
    took_ms: float


# ---- ask ----------------------------------------------------------------------------------


class AskRequest(Filtered):
    question: str = Field(min_length=1, max_length=HARD_MAX_TEXT, description="The question (at most api.max_question_length characters).")
    top_k: int | None = Field(None, ge=1, description="Passages to retrieve (default answer.top_k, at most search.max_limit).")
    stream: bool = Field(False, description="Answer as Server-Sent Events: `token`, `citations`, `done` (and `error`).")

    @field_validator("question")
    @classmethod
    def question_not_blank(cls, value):
        return not_blank(value)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How do I back up the index?"}, {"question": "How do I install it?", "stream": True}]},
    )


class CitationModel(BaseModel):
    number: int | None = Field(description="The passage's [n] in the answer; null: retrieved but left out by the token budget.")
    id: str
    source: str
    document: str
    title: str
    heading: str
    page: int | None
    chunk: int
    score: float
    snippet: str
    label: str = Field(examples=["guide/backup.md, Backups"])
    inferred: bool = False
    truncated: bool = False


class AskResponse(BaseModel):
    question: str
    answer: str
    citations: list[CitationModel] = Field(description="Passages the answer cites.")
    context: list[CitationModel] = Field(description="Retrieved passages the answer does not cite.")
    found: bool = Field(description="False: no passage was relevant; the answer says so.")
    complete: bool = Field(description="False: the LLM failed mid-answer; `answer` is the partial text and `error` says why.")
    error: str | None = None
    error_type: str | None = None
    backend: str
    model: str
    prompt_tokens: int
    dropped: int
    invalid_markers: list[int]
    timings: dict[str, float | None] = Field(
        examples=[{"retrieval_ms": 12.1, "context_ms": 3.2, "llm_ms": 850.0, "first_token_ms": 120.5, "total_ms": 866.0}]
    )


# ---- documents, ingestion, jobs -------------------------------------------------------------


class DocumentModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(examples=["uploads:report.pdf"])
    collection: str = Field(examples=["uploads"])
    source: str = Field(examples=["report.pdf"])
    hash: str
    title: str = ""
    filetype: str = ""
    chunks: int
    ingested_at: str


class DocumentList(BaseModel):
    count: int
    documents: list[DocumentModel]


class Deleted(BaseModel):
    id: str
    chunks_removed: int
    file_removed: bool = Field(description="True when the document was an upload and its file was deleted too.")


class Job(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed"]
    created_at: str
    progress: dict[str, Any] = {}
    params: dict[str, Any] = {}
    result: dict[str, Any] | None = Field(None, description="The ingest report: added, updated, removed, failed (path, reason), ...")
    error: str | None = None


class JobList(BaseModel):
    jobs: list[Job]


class UploadedFile(BaseModel):
    filename: str = Field(description="The name the client sent.")
    name: str = Field(description="The sanitized name it was saved under in the uploads folder.")
    document: str = Field(examples=["uploads:report.pdf"])
    size: int


class Accepted(BaseModel):
    job: Job
    files: list[UploadedFile] = []


class IngestRequest(Request):
    paths: list[str] | None = Field(
        None,
        description="Only these files or folders, inside a configured source (absolute or relative to config.yml). Default: every source.",
    )
    rebuild: bool = Field(False, description="Re-embed everything from scratch.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"paths": ["data/guide"]}, {"rebuild": True}]})


# ---- health -------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    model_config = ConfigDict(extra="allow")

    ready: bool
    index: dict[str, Any]
    llm: dict[str, Any] = Field(description="Backend status from the last background check (never blocks /ready).")
    worker: int = Field(description="Process id of the worker that answered (several uvicorn workers).")


class ErrorDetail(BaseModel):
    type: str = Field(examples=["validation_error"])
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body (the Ollama-compatible /api routes put the message in `error` as a string)."""

    error: ErrorDetail


ERRORS = {
    400: {"model": ErrorResponse, "description": "Bad request (e.g. an invalid `where` filter)"},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    403: {"model": ErrorResponse, "description": "The API key lacks the scope"},
    422: {"model": ErrorResponse, "description": "Invalid body or parameters (including the configured limits)"},
}

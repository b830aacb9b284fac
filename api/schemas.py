"""Request and response bodies of the API (pydantic), with the examples shown in the OpenAPI docs."""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

from rag.config import Config
from rag.filters import COLUMNS, MAX_COLUMNS, MAX_LENGTH, MAX_VALUES, Filter
from rag.manifest import Document
from rag.search import IndexInfo, checked_filter
from rag.types import Hit

from .limits import check_limit, check_text

# Bounds of every request besides its size (api.max_body_size); api.max_question_length and
# search.max_limit are checked per request (check_limits) and filled into the OpenAPI schema
HARD_MAX_TEXT = 100_000  # characters of a question or query
MAX_VALUE = 1_000  # characters of a filter value
MAX_PATHS = 100  # `paths` of POST /ingest
MAX_PATH = 4_096  # characters of a path
MAX_MESSAGES = 1_000  # messages of a chat (OpenAI, Ollama)
MAX_NAME = 200  # characters of a model name

Scalar = Annotated[str, Field(max_length=MAX_VALUE)] | int | float | None


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[str, Field(min_length=1, max_length=HARD_MAX_TEXT), AfterValidator(not_blank)]  # a question or query


class Request(BaseModel):
    """A request body; `check_limits` checks what config.yml bounds (the schema's own bounds are
    checked on parsing). Switches are StrictBool: "stream": 0 or "no" is an error, not false."""

    model_config = ConfigDict(extra="forbid")

    def check_limits(self, config: Config):
        """Raises a 422 RequestValidationError for a value over a configured limit."""


class Filtered(Request):
    where: str | None = Field(
        None,
        max_length=MAX_LENGTH,
        description="A condition on metadata columns in localrag's filter language: comparisons (=, !=, <, <=, >, >=), "
        "IN, LIKE, IS NULL, BETWEEN, combined with AND, OR, NOT and parentheses; values are 'text' or numbers. "
        f"Columns: {', '.join(COLUMNS)}.",
        examples=["filetype = 'pdf' and page <= 3"],
    )
    filters: dict[str, Scalar | Annotated[list[Scalar], Field(max_length=MAX_VALUES)]] | None = Field(
        None,
        max_length=MAX_COLUMNS,
        json_schema_extra={"propertyNames": {"enum": list(COLUMNS)}},
        description=f"Equality filters combined with AND; a list means any of. Columns: {', '.join(COLUMNS)}.",
        examples=[{"collection": "docs", "filetype": ["md", "pdf"]}],
    )

    @field_validator("filters")
    @classmethod
    def known_columns(cls, value):
        for column in value or {}:
            if column not in COLUMNS:
                raise ValueError(f"unknown column {column!r}; filterable: {', '.join(COLUMNS)}")
        return value

    def condition(self) -> Filter | None:
        """`where` and `filters` as one checked condition; SearchError (400) when `where` is not in the language."""
        return checked_filter(self.where, self.filters)


# ---- search -------------------------------------------------------------------------------


class SearchRequest(Filtered):
    query: Text = Field(description="What to look for (at most api.max_question_length characters).")
    limit: int | None = Field(None, ge=1, description="Passages to return (default search.limit, at most search.max_limit).")
    mode: Literal["hybrid", "dense", "keyword"] | None = Field(None, description="Default search.mode.")

    def check_limits(self, config: Config):
        check_text(self.query, config.api.max_question_length, ("body", "query"))
        check_limit(self.limit, config.search.max_limit, ("body", "limit"))

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "How do I back up the index?", "limit": 3},
                {"query": "install requirements", "mode": "keyword", "filters": {"filetype": "md"}},
            ]
        },
    )


class SearchResponse(BaseModel):
    query: str
    mode: str
    count: int
    hits: list[Hit]
    version: str | None = Field(description="The index version that answered.")
    took_ms: float


# ---- ask ----------------------------------------------------------------------------------


class Turn(BaseModel):
    """One earlier message of a conversation."""

    role: Literal["user", "assistant"]
    content: str = Field(max_length=HARD_MAX_TEXT)


class AskRequest(Filtered):
    question: Text = Field(description="The question (at most api.max_question_length characters).")
    top_k: int | None = Field(None, ge=1, description="Passages to retrieve (default answer.top_k, at most search.max_limit).")
    stream: StrictBool = Field(False, description="Answer as Server-Sent Events: `token`, `citations`, `done` (and `error`).")
    history: list[Turn] | None = Field(
        None, max_length=MAX_MESSAGES, description="The conversation so far, oldest first: makes a follow-up's search standalone."
    )
    conversation_id: str | None = Field(
        None, max_length=64, description="Continue this stored conversation of the API key (its turns come before `history`)."
    )
    remember: StrictBool = Field(False, description="Store this exchange (in a new conversation unless `conversation_id` is given).")

    def check_limits(self, config: Config):
        check_text(self.question, config.api.max_question_length, ("body", "question"))
        check_limit(self.top_k, config.search.max_limit, ("body", "top_k"))

    def options(self) -> dict:
        """The conversation options of LocalRAG.stream."""
        history = [turn.model_dump() for turn in self.history or []]
        return {"history": history, "conversation": self.conversation_id, "remember": self.remember}

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "How do I back up the index?"},
                {"question": "How do I install it?", "stream": True},
                {"question": "Which utility takes a base backup?", "remember": True},
                {"question": "How do I make it include the WAL files?", "conversation_id": "5f0c..."},
            ]
        },
    )



# ---- documents, ingestion, jobs -------------------------------------------------------------


class DocumentList(BaseModel):
    count: int
    documents: list[Document]


class Deleted(BaseModel):
    id: str
    chunks_removed: int
    file_removed: bool = Field(description="True when the document was an upload and its file was deleted too.")


class Job(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "interrupted"] = Field(
        description="interrupted: the server that ran it stopped before it ended."
    )
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
    paths: list[Annotated[str, Field(max_length=MAX_PATH, pattern=r"^[^\x00]*$")]] | None = Field(
        None,
        max_length=MAX_PATHS,
        description="Only these files or folders, inside a configured source (absolute or relative to config.yml). Default: every source.",
    )
    rebuild: StrictBool = Field(False, description="Re-embed everything from scratch.")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"paths": ["data/guide"]}, {"rebuild": True}]})


# ---- health -------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    model_config = ConfigDict(extra="allow")

    ready: bool
    index: IndexInfo
    llm: dict[str, Any] = Field(description="Backend status from the last background check (never blocks /ready).")
    worker: int = Field(description="Process id of the worker that answered (several uvicorn workers).")


class ErrorDetail(BaseModel):
    type: str = Field(examples=["validation_error"])
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body (the Ollama-compatible /api routes put the message in `error` as a string)."""

    error: ErrorDetail


class OllamaError(BaseModel):
    """The 4xx/5xx body of the Ollama-compatible /api routes."""

    error: str
    type: str
    details: Any = None


LLM_ERRORS = {
    503: {"model": ErrorResponse, "description": "The LLM backend is unavailable (`/search` still works)"},
    504: {"model": ErrorResponse, "description": "The LLM backend timed out"},
}
ERRORS = {
    400: {"model": ErrorResponse, "description": "Bad request (e.g. an invalid `where` filter)"},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    403: {"model": ErrorResponse, "description": "The API key lacks the scope, or a write from a web page of another origin"},
    413: {"model": ErrorResponse, "description": "The body is larger than api.max_body_size"},
    415: {"model": ErrorResponse, "description": "The body is not JSON (Content-Type: application/json)"},
    422: {"model": ErrorResponse, "description": "Invalid body or parameters (including the configured limits)"},
}

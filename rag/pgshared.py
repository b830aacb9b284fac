"""txtai's PostgreSQL parts on one connection, so a write commits (or vanishes) as a whole.

Stock txtai opens a connection for each part of an index (content, pgvector, pgtext), each
committed on its own by `save`: a reader can see a chunk's text before its vector, and a crash
between commits leaves strays. These subclasses take one SQLAlchemy session per index instance
from a registry, keyed by the `postgres.connection` token of the settings:

    content: rag.pgshared.Content
    backend: rag.pgshared.Vectors
    scoring: {method: rag.pgshared.BM25, postgres: *pg, ...}      (rag.pgbm25 options)
    postgres: &pg {url: postgresql+psycopg2://..., schema: localrag_default, connection: <unique per instance>,
                   create: true}   # false for a reader: no CREATE of schema, extension or BM25 tables

`commit(embeddings)` commits all of it at once; a reader calls it after each search too, so
it holds no locks between searches (an open read transaction blocks a writer's DDL).
"""

from sqlalchemy import StaticPool, create_engine, insert, text
from sqlalchemy.orm import Session
from txtai.ann.dense.pgvector import PGVector
from txtai.database import Client
from txtai.database.schema import Document, Section

from .pgbm25 import PGBM25

SESSIONS: dict[str, "Shared"] = {}


class Shared:
    """One engine, connection and session, with search_path set to the index's schema."""

    def __init__(self, settings: dict):
        self.engine = create_engine(settings["url"], poolclass=StaticPool, json_serializer=lambda x: x)
        self.connection = self.engine.connect()
        schema = settings.get("schema")
        if schema:
            if settings.get("create", True):  # readers create nothing (`create: false`)
                self.connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            self.connection.execute(text("SELECT set_config('search_path', :path, false)"), {"path": f'"{schema}", public'})
        self.connection.commit()
        # control_fully: session.commit() commits the connection, whoever began its transaction
        self.session = Session(self.connection, join_transaction_mode="control_fully")
        self.users = 0


def acquire(settings: dict) -> Shared:
    """The shared session of settings["connection"], opened on first use."""
    key = settings["connection"]
    if key not in SESSIONS:
        SESSIONS[key] = Shared(settings)
    SESSIONS[key].users += 1
    return SESSIONS[key]


def release(settings: dict):
    """Closes the shared session when its last user (content, vectors, scoring) closes."""
    shared = SESSIONS.get(settings["connection"])
    if shared:
        shared.users -= 1
        if shared.users <= 0:
            del SESSIONS[settings["connection"]]
            shared.session.close()
            shared.engine.dispose()


def commit(embeddings):
    """Commits every change of the index instance in one transaction (also ends a read)."""
    if isinstance(embeddings.scoring, PGBM25):
        embeddings.scoring.flush()
    embeddings.database.connection.commit()


class Content(Client):
    """txtai's SQL content store on the shared session. Rows are inserted BLOCK at a time with one
    multi-row statement each (txtai adds an ORM object per row and flushes them all at the end of
    the write: slow, and every row of the write held in the session)."""

    BLOCK = 5_000

    def connect(self, path=None):
        shared = acquire(self.config["postgres"])
        self.engine, self.dbconnection = shared.engine, shared.connection
        self.pending = {Document: [], Section: []}
        return shared.session

    def insertdocument(self, uid, data, tags, entry):
        self.add(Document, {"id": uid, "data": data, "tags": tags, "entry": entry})

    def insertsection(self, index, uid, text, tags, entry):
        self.add(Section, {"indexid": index, "id": uid, "text": text, "tags": tags, "entry": entry})

    def add(self, table, row: dict):
        self.pending[table].append(row)
        if len(self.pending[table]) >= self.BLOCK:
            self.flush(table)

    def flush(self, table):
        rows, self.pending[table] = self.pending[table], []
        if rows:
            self.connection.execute(insert(table), rows)

    def finalize(self):
        for table in self.pending:
            self.flush(table)
        super().finalize()

    def close(self):
        if self.engine:
            self.engine, self.dbconnection, self.connection = None, None, None
            release(self.config["postgres"])


class Vectors(PGVector):
    """txtai's pgvector index on the shared session (HNSW settings under `pgvector:`). Rows are
    inserted BLOCK at a time (txtai builds one list of every row: 10 GB at 1M chunks), and the HNSW
    index is built with `buildmemory` of maintenance_work_mem for the write's transaction (the
    server's default, 64 MB, does not hold the graph of 100k vectors, and pgvector then builds slowly)."""

    BLOCK = 10_000

    def index(self, embeddings):
        self.initialize(recreate=True)
        self.insert(embeddings, 0)
        self.createindex()
        self.config["offset"] = embeddings.shape[0]
        self.metadata(self.settings())

    def append(self, embeddings):
        self.insert(embeddings, self.config["offset"])
        self.config["offset"] += embeddings.shape[0]
        self.metadata()

    def insert(self, embeddings, offset: int):
        for start in range(0, embeddings.shape[0], self.BLOCK):
            block = embeddings[start : start + self.BLOCK]
            self.database.execute(self.table.insert(), [{"indexid": offset + start + x, "embedding": self.prepare(row)} for x, row in enumerate(block)])

    def createindex(self):
        self.database.execute(text("SELECT set_config('maintenance_work_mem', :memory, true)"), {"memory": self.setting("buildmemory", "512MB")})
        super().createindex()

    def connect(self):
        shared = acquire(self.config["postgres"])
        self.engine, self.connection, self.database = shared.engine, shared.connection, shared.session
        if self.config["postgres"].get("create", True):
            self.sqldialect(text("CREATE EXTENSION IF NOT EXISTS vector"))

    def schema(self):
        """The shared connection's search_path already names the schema."""

    def setting(self, name, default=None):
        """Settings under `pgvector:`, as for txtai's own backend (not under this class path)."""
        value = (self.config.get("pgvector") or {}).get(name)
        return default if value is None else value

    def close(self):
        if self.database:
            self.engine, self.connection, self.database = None, None, None
            release(self.config["postgres"])


class BM25(PGBM25):
    """BM25 in SQL (rag.pgbm25) on the shared session."""

    def connect(self):
        shared = acquire(self.config["postgres"])
        self.create = self.config["postgres"].get("create", True)
        return shared.engine, shared.connection, shared.session

    def close(self):
        if self.database:
            self.engine, self.connection, self.database = None, None, None
            release(self.config["postgres"])

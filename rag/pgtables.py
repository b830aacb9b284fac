"""localrag's own tables in PostgreSQL (jobs, conversations, workflow runs), next to the index.

With `index.store: postgres` these live in the index's schema, so every API replica on any machine
sees the same records. One engine per database and process is shared by all of them:

    engine = connect(config)                 # SQLAlchemy engine, statements run in schema_name(config)
    create(engine, metadata)                 # the tables of metadata, idempotently (any replica may race)
    beat = Heartbeat(engine, table)          # stamps `beat = now()` on the rows this process owns

Tables are declared without a schema; `connect` maps them into the index's schema
(schema_translate_map), so the same declarations serve SQLite for the local store.
"""

import logging
import os
import re
import threading

from sqlalchemy import Engine, MetaData, Table, create_engine, event, func, text

logger = logging.getLogger("rag.pgtables")

BEAT = 5.0  # seconds between heartbeats of an owner
STALE = 30.0  # seconds without a heartbeat after which an owner is taken for dead

ENGINES: dict[tuple, Engine] = {}
LOCK = threading.Lock()


def forget_connections():
    """In a forked child (uvicorn workers): new connections, never the parent's sockets."""
    for engine in ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=forget_connections)


def database_url(url: str) -> str:
    """A postgres URL for SQLAlchemy with psycopg2 (postgres:// and postgresql:// accepted)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def schema_name(config) -> str:
    """index.postgres.schema, or localrag_<index name> (lowercase, other characters as _)."""
    return config.index.postgres.schema_name or "localrag_" + re.sub(r"[^a-z0-9_]", "_", config.index.name.lower())


def connect(config) -> Engine:
    """The process's engine for the index's database, with its schema as the tables' schema."""
    settings = config.index.postgres
    schema = schema_name(config)
    key = (database_url(settings.url), schema, settings.pool_size, settings.timeout)
    with LOCK:
        if key not in ENGINES:
            engine = create_engine(
                key[0],
                pool_size=settings.pool_size,
                pool_pre_ping=True,
                connect_args={"options": f"-c statement_timeout={int(settings.timeout * 1000)}"},
            )
            ENGINES[key] = engine.execution_options(schema_translate_map={None: schema})
        return ENGINES[key]


def sqlite(path) -> Engine:
    """An SQLite engine for one file: foreign keys on, WAL, and `BEGIN IMMEDIATE` for a connection
    with execution option write=True (so a read-then-write never fails half-way on a busy file)."""
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 10})

    @event.listens_for(engine, "connect")
    def setup(connection, _):
        connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get("write") else "BEGIN")

    return engine


def create(engine: Engine, metadata: MetaData):
    """Creates the schema and the tables of metadata when missing. On PostgreSQL under an advisory
    lock, so replicas starting together do not collide on the catalog."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            schema = connection.get_execution_options().get("schema_translate_map", {}).get(None)
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"localrag-tables:{schema}"})
            if schema:
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        metadata.create_all(connection, checkfirst=True)


class Heartbeat:
    """Stamps `beat = now()` (the database's clock) every BEAT seconds on the rows of `table` that
    this process is working on; a row whose beat is older than STALE has lost its owner, whatever
    machine that owner ran on."""

    def __init__(self, engine: Engine, table: Table, every: float = BEAT):
        self.engine, self.table, self.every = engine, table, every
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, uid: str):
        with self.lock:
            self.ids.add(uid)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.loop, name="rag-heartbeat", daemon=True)
                self.thread.start()

    def discard(self, uid: str):
        with self.lock:
            self.ids.discard(uid)

    def stop(self):
        with self.lock:
            self.ids.clear()
        self.wake.set()

    def loop(self):
        while not self.wake.wait(self.every):
            with self.lock:
                ids = list(self.ids)
                if not ids:
                    self.thread = None
                    return
            try:
                with self.engine.begin() as connection:
                    connection.execute(self.table.update().where(self.table.c.id.in_(ids)).values(beat=func.now()))
            except Exception:  # the database is away: try again on the next beat
                logger.warning("heartbeat of %d %s row(s) failed", len(ids), self.table.name, exc_info=True)
        with self.lock:
            self.thread = None


def create_all(config):
    """Creates every localrag table (jobs, conversations, workflow runs) in the index's schema."""
    from .conversations import METADATA as conversations
    from .jobs import METADATA as jobs
    from .workflows.records import METADATA as runs

    engine = connect(config)
    for metadata in (jobs, conversations, runs):
        create(engine, metadata)

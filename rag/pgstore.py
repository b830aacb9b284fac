"""The index in PostgreSQL with pgvector: the store of `index.store: postgres` (rag.store's interface).

In the index's schema (index.postgres.schema, default localrag_<index name>):

    index_state        one row: live generation, write counter (the stamp), txtai config, manifest fields
    index_documents    the manifest: one record per document (rag.manifest.DocumentRecord)
    index_generations  the generation schemas that exist (live, being built, being dropped)

and one schema per generation, `<schema>__g<n>`, with txtai's content tables, the pgvector table
(HNSW) and the BM25 tables (rag.pgbm25), all on one connection per index instance (rag.pgshared).

A write (`begin` ... `publish`) runs in ONE transaction on that connection: chunks, vectors,
keyword postings, manifest records and the state row commit together, so readers never see part
of a document and a killed writer leaves the previous state. Writes change the live generation in
place (nothing is copied); a rebuild fills a new generation, switches `index_state.generation` to
it at publish and drops the old one. One writer at a time holds a session advisory lock; its
connection's application_name says who it is (`writer()`).

A reader's snapshot searches the live generation's tables, so a committed write is in its next
search; it ends its read transaction after every search, and follows a generation switch by itself.
"""

import json
import logging
import os
import queue
import socket
import tempfile
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import NullPool, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from txtai import Embeddings

from . import pgshared
from .clock import now
from .index import MODELS, Counted, OwnIndexSearch, portable, runtime
from .manifest import FORMAT, DocumentRecord, Manifest
from .pgbm25 import PGBM25
from .pgtables import database_url, schema_name
from .search import search_slots
from .store import IndexLocked, reported_unwritable
from .vectorcache import CachedVectors, embedded_text, text_key

logger = logging.getLogger("rag.pgstore")

LOCK_CLASS = 0x4C52  # first key of the writer's advisory lock; the second is the schema's hash
FIELDS = ("collection", "source", "hash", "title", "filetype", "chunks", "size", "mtime_ns", "ingested_at")
ENGINES: dict[tuple, object] = {}
ENGINES_LOCK = threading.Lock()
READY: set[tuple] = set()  # (database, schema) whose tables this process has made sure of
HELD: set[tuple] = set()  # (database, schema) whose write lock this process holds

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".index_state (
    id integer PRIMARY KEY CHECK (id = 1),
    generation bigint,
    writes bigint NOT NULL DEFAULT 0,
    config jsonb,
    format integer NOT NULL DEFAULT 1,
    fingerprint jsonb NOT NULL DEFAULT '{{}}',
    updated_at text
);
INSERT INTO "{s}".index_state (id) VALUES (1) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS "{s}".index_generations (
    generation bigint PRIMARY KEY, schema text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS "{s}".index_documents (
    id text PRIMARY KEY, collection text NOT NULL, source text NOT NULL, hash text, title text NOT NULL DEFAULT '',
    filetype text NOT NULL DEFAULT '', chunks integer NOT NULL, size bigint, mtime_ns bigint, ingested_at text
)
"""
UPSERT_RECORD = """
INSERT INTO "{s}".index_documents (id, {columns}) VALUES (:id, {values})
ON CONFLICT (id) DO UPDATE SET {updates}
""".format(
    s="{s}",
    columns=", ".join(FIELDS),
    values=", ".join(f":{name}" for name in FIELDS),
    updates=", ".join(f"{name} = excluded.{name}" for name in FIELDS),
)

# SQLSTATE of errors that mean the database cannot take the write (not a fault of the data written)
UNWRITABLE = {
    "25006": "the database is read-only",
    "42501": "permission denied",
    "53100": "the database's disk is full",
    "53200": "the database is out of memory",
    "53300": "the database has too many connections",
}
# SQLSTATE of a reader's search whose generation was dropped under it (a rebuild switched)
DEADLOCK = "40P01"
MOVED = {"42P01", "3F000", DEADLOCK}
DROP_TRIES = 5  # a drop cancelled by a deadlock with a search runs again, 0.1 s, 0.2 s, ... later


def pgcode(error: Exception) -> str | None:
    return getattr(getattr(error, "orig", error), "pgcode", None)


def unwritable(error: Exception) -> str | None:
    """The reason, for an error of a database that cannot take the write."""
    code = pgcode(error)
    if code in UNWRITABLE or (code or "").startswith("08"):
        detail = str(getattr(error, "orig", error)).strip().splitlines()[0]
        return f"{UNWRITABLE.get(code, 'the connection failed')} ({detail})"
    if code is None and (getattr(error, "connection_invalidated", False) or "could not connect" in str(error)):
        return "cannot connect to the database"
    return None


def with_options(url: str, **options) -> str:
    """The URL with libpq `options` (-c name=value) for every connection it opens."""
    parsed = make_url(url)
    value = " ".join([parsed.query.get("options", ""), *(f"-c {name}={setting}" for name, setting in options.items())]).strip()
    return parsed.update_query_dict({"options": value}).render_as_string(hide_password=False)


def display(url: str, schema: str) -> str:
    """Where the index is, for people: the URL without password or query secrets, and the schema."""
    parsed = make_url(url)
    query = {key: value for key, value in parsed.query.items() if "pass" not in key.lower()}
    shown = parsed._replace(drivername=parsed.get_backend_name(), password=None, query=query).render_as_string(hide_password=False)
    return f"{shown} schema {schema}"


class PostgresStore:
    """The index of one config in PostgreSQL (see the module docstring)."""

    def __init__(self, config):
        self.config = config
        self.settings = config.index.postgres
        self.url = database_url(self.settings.url)
        self.schema = schema_name(config)
        self.path = display(self.url, self.schema)
        self.key = (display(self.url, ""), self.schema)
        self.lock_key = zlib.crc32(self.schema.encode()) & 0x7FFFFFFF
        self.cached: tuple[str | None, dict] | None = None  # (stamp, {document: FIELDS values}) of the last manifest read

    # ---- connections ----------------------------------------------------

    @property
    def engine(self):
        """The process's pool for this database (small queries: state, manifest, size)."""
        key = (self.url, self.settings.pool_size, self.settings.timeout)
        with ENGINES_LOCK:
            if key not in ENGINES:
                ENGINES[key] = create_engine(
                    self.url,
                    pool_size=self.settings.pool_size,
                    pool_pre_ping=True,
                    connect_args={"options": f"-c statement_timeout={int(self.settings.timeout * 1000)}"},
                )
        return ENGINES[key]

    def index_url(self, reader: bool) -> str:
        """URL of an index instance's connection: ef_search for HNSW; readers also the statement timeout
        (a writer's HNSW build may take longer)."""
        options = {"hnsw.ef_search": self.settings.ef_search}
        if reader:
            options["statement_timeout"] = int(self.settings.timeout * 1000)
        return with_options(self.url, **options)

    def generation_schema(self, generation: int) -> str:
        return f"{self.schema}__g{generation}"

    def migrate(self):
        """Creates the index's tables when missing, and localrag's own (rag.pgtables: jobs,
        conversations, workflow runs). Idempotent; replicas may race."""
        self.create(force=True)
        from .pgtables import create_all

        create_all(self.config)

    def create(self, force: bool = False):
        """Creates the pgvector extension, the schema and the index's tables when missing (once per process)."""
        if self.key in READY and not force:
            return
        with self.engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": LOCK_CLASS + 1, "b": self.lock_key})
            if not connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first():
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            for statement in SCHEMA.format(s=self.schema).split(";"):
                connection.execute(text(statement))
        READY.add(self.key)

    # ---- reading --------------------------------------------------------

    def state(self, connection=None, config: bool = False) -> dict | None:
        """The state row ({generation, writes, ...}); None before the tables exist."""
        columns = "generation, writes, format, fingerprint, updated_at" + (", config" if config else "")
        sql = text(f'SELECT {columns} FROM "{self.schema}".index_state WHERE id = 1')
        try:
            if connection is not None:
                row = connection.execute(sql).mappings().first()
            else:
                with self.engine.connect() as own:
                    row = own.execute(sql).mappings().first()
        except DBAPIError as error:
            if pgcode(error) in ("42P01", "3F000"):
                return None
            raise
        return dict(row) if row else None

    def stamp(self) -> str | None:
        """Changes on every committed write: `g<generation>-w<writes>`; None before the first."""
        return stamp_of(self.state())

    def manifest(self, documents: list[str] | None = None) -> Manifest:
        """The live manifest, read in one snapshot of the database (empty before the first write).
        With `documents`, a partial one: their records, and the counts of the rest (a one-document
        write then reads and writes one record, whatever the size of the index)."""
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            state = self.state(connection)
            if not state or state["generation"] is None:
                return Manifest()
            records = self.records(connection, documents)
            if documents is not None:
                total = connection.execute(text(f'SELECT count(*), coalesce(sum(chunks), 0) FROM "{self.schema}".index_documents')).one()
        if documents is None:
            self.cached = (stamp_of(state), records)
        listed = {uid: DocumentRecord.model_construct(**dict(zip(FIELDS, values))) for uid, values in records.items()}
        manifest = Manifest(version=state["format"], fingerprint=state["fingerprint"], documents=listed, updated_at=state["updated_at"])
        if documents is not None:
            listed_chunks = sum(record.chunks for record in listed.values())
            manifest.scope = frozenset(documents)
            manifest.outside = (total[0] - len(listed), int(total[1]) - listed_chunks)
        return manifest

    def records(self, connection, documents: list[str] | None = None) -> dict:
        """Manifest records (id -> FIELDS values) as `connection` sees them: all, or those of documents."""
        sql = f'SELECT id, {", ".join(FIELDS)} FROM "{self.schema}".index_documents'
        if documents is None:
            rows = connection.execute(text(sql))
        else:
            rows = connection.execute(text(sql + " WHERE id = ANY(:ids)"), {"ids": list(documents)})
        return {row[0]: tuple(row[1:]) for row in rows}

    def size(self) -> int:
        """Bytes of the live generation's tables and indexes, and of the manifest."""
        state = self.state()
        if not state or state["generation"] is None:
            return 0
        sql = """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND (n.nspname = :generation OR (n.nspname = :schema AND c.relname = 'index_documents'))
        """
        with self.engine.connect() as connection:
            parameters = {"generation": self.generation_schema(state["generation"]), "schema": self.schema}
            return int(connection.execute(text(sql), parameters).scalar())

    def snapshot(self, settings: dict, previous: "PostgresSnapshot | None" = None) -> "PostgresSnapshot | None":
        """The live generation open for search (None before the first write). `previous` is kept when
        the generation is the same (its tables already show every commit): only its stamp moves."""
        state = self.state(config=True)
        if not state or state["generation"] is None:
            return None
        stamp = stamp_of(state)
        if isinstance(previous, PostgresSnapshot) and previous.store.key == self.key and previous.generation == state["generation"]:
            previous.moved(stamp)
            return previous
        return PostgresSnapshot(self, settings, state["generation"], stamp, state["config"])

    def open_index(self, settings: dict, generation: int, stored: dict | None, reader: bool) -> tuple[Embeddings | None, dict]:
        """A txtai Embeddings on a generation (None for a generation without an index) and its
        pgshared connection settings (the connection is open either way)."""
        connection = {
            "url": self.index_url(reader),
            "schema": self.generation_schema(generation),
            "connection": uuid.uuid4().hex,
            "create": not reader,  # a reader of a generation dropped meanwhile must not recreate it
        }
        pgshared.acquire(connection)
        if stored is None:
            return None, connection
        config = self.txtai_config(settings, connection, stored)
        with tempfile.TemporaryDirectory(prefix="localrag-pg-") as folder:  # txtai loads a config from a folder
            (Path(folder) / "config.json").write_text(json.dumps(config), encoding="utf-8")
            embeddings = Embeddings(models=MODELS).load(folder)
        return embeddings, connection

    def txtai_config(self, settings: dict, connection: dict, stored: dict | None = None) -> dict:
        """txtai settings of an index instance on a generation: content, vectors and BM25 on one
        connection (rag.pgshared). `stored`: the generation's saved config (offset, dimensions,
        BM25 language...), else a new index from settings and index.postgres."""
        active = runtime(settings)
        dropped = ("faiss", "backend", "scoring", "hybrid", "keyword", "content", "postgres", "pgvector")
        if stored is None:
            config = {key: value for key, value in active.items() if key not in dropped}
            config["pgvector"] = {"m": self.settings.m, "efconstruction": self.settings.ef_construction, "buildmemory": self.settings.build_memory}
            scoring = settings.get("scoring") if isinstance(settings.get("scoring"), dict) else {}
            if scoring or settings.get("hybrid") or settings.get("keyword"):
                keyword = {key: scoring[key] for key in ("k1", "b") if key in scoring}
                config["scoring"] = {"method": "rag.pgshared.BM25", "language": self.settings.language, "normalize": scoring.get("normalize", True), **keyword}
        else:
            config = {**stored, **{key: active[key] for key in ("path", "method", "vectorcache") if key in active}}
        config.update(content="rag.pgshared.Content", backend="rag.pgshared.Vectors", postgres=connection)
        if config.get("scoring"):
            config["scoring"] = {**config["scoring"], "postgres": connection}
        return config

    def cache_keys(self, settings: dict):
        """Vector cache keys of the live generation's passages (streamed)."""
        state = self.state()
        if not state or state["generation"] is None:
            return
        with self.engine.connect().execution_options(stream_results=True, yield_per=2000) as connection:
            try:
                rows = connection.execute(text(f'SELECT text FROM "{self.generation_schema(state["generation"])}".sections'))
            except DBAPIError as error:
                if pgcode(error) in ("42P01", "3F000"):
                    return
                raise
            for (passage,) in rows:
                if isinstance(passage, str):
                    yield text_key(embedded_text(passage, settings))

    # ---- writing --------------------------------------------------------

    @contextmanager
    def lock(self):
        """Holds the single-writer advisory lock; IndexLocked at once if another writer has it,
        IndexUnwritable when the database cannot take a write (then nothing of it is committed)."""
        with reported_unwritable(self.path, (DBAPIError,), unwritable), self.locked():
            yield self

    @contextmanager
    def locked(self):
        self.create()
        holder = f"pid {os.getpid()} since {now()} on {socket.gethostname()}"[:63]
        engine = create_engine(self.url, poolclass=NullPool)
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.execute(text("SELECT set_config('application_name', :name, false)"), {"name": holder})
            if not connection.execute(text("SELECT pg_try_advisory_lock(:a, :b)"), {"a": LOCK_CLASS, "b": self.lock_key}).scalar():
                raise IndexLocked(
                    f"index {self.path} is being written by another process ({self.holder() or 'unknown'}); "
                    "wait for it to finish and try again"
                )
            HELD.add(self.key)
            try:
                self.cleanup()
                yield
            finally:
                HELD.discard(self.key)
        finally:
            connection.close()  # ends the session: releases the lock
            engine.dispose()

    def holder(self) -> str | None:
        """application_name of the session holding the write lock (`pid N since ... on host`)."""
        sql = """
            SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :a AND l.objid = :b AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """
        with self.engine.connect() as connection:
            row = connection.execute(text(sql), {"a": LOCK_CLASS, "b": self.lock_key}).first()
        return (row[0] or "unknown") if row else None

    def writer(self) -> str | None:
        """Who holds the write lock when another process does; None when free or held here."""
        return None if self.key in HELD else self.holder()

    def cleanup(self):
        """Drops generation schemas that are not live: a killed rebuild's, or an old one whose drop
        failed. Needs the lock."""
        with self.engine.connect() as connection:
            live = (self.state(connection) or {}).get("generation")
            rows = connection.execute(text(f'SELECT generation FROM "{self.schema}".index_generations')).all()
        for (generation,) in rows:
            if generation != live:
                self.drop(generation)

    def drop(self, generation: int):
        """Drops a generation that is not live; left for the next writer if readers hold it too long.
        A search still running on it can deadlock with the drop (each takes its tables' locks one by
        one): PostgreSQL cancels the drop, which tries again once that search has ended."""
        for attempt in range(DROP_TRIES):
            try:
                with self.engine.begin() as connection:
                    connection.execute(text("SET LOCAL lock_timeout = '10s'"))
                    connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.generation_schema(generation)}" CASCADE'))
                    connection.execute(text(f'DELETE FROM "{self.schema}".index_generations WHERE generation = :g'), {"g": generation})
                return
            except DBAPIError as error:
                if pgcode(error) != DEADLOCK or attempt == DROP_TRIES - 1:
                    logger.warning("generation %s of %s not dropped yet: %s", generation, self.path, error)
                    return
                time.sleep(0.1 * (attempt + 1))

    def begin(self, settings: dict, rebuild: bool = False) -> "PostgresWrite":
        """A write on the live generation (or, with rebuild or none yet, a new one). Needs the lock."""
        return PostgresWrite(self, settings, rebuild)

    def new_generation(self) -> int:
        """Registers a new, empty generation (committed, so a killed writer's is found and dropped)."""
        with self.engine.begin() as connection:
            generation = connection.execute(
                text(f'SELECT coalesce(max(generation), 0) + 1 FROM "{self.schema}".index_generations')
            ).scalar()
            state = self.state(connection) or {}
            generation = max(generation, (state.get("generation") or 0) + 1)
            connection.execute(
                text(f'INSERT INTO "{self.schema}".index_generations (generation, schema) VALUES (:g, :s)'),
                {"g": generation, "s": self.generation_schema(generation)},
            )
        return generation


def close_index(embeddings: Embeddings | None, connection: dict | None):
    """Closes a txtai index instance of open_index and releases its connection (what it did not
    commit is rolled back)."""
    if embeddings is not None:
        embeddings.close()
    if connection:
        pgshared.release(connection)


def stamp_of(state: dict | None) -> str | None:
    if not state or state["generation"] is None:
        return None
    return f"g{state['generation']}-w{state['writes']}"


class PostgresSnapshot:
    """The live generation open for search. Thread-safe: searches run in parallel, each on a reader
    (a connection with its txtai index) of its own; readers are opened as searches need them, up to
    as many as searches run at once (rag.search.search_slots), and kept for the next searches."""

    def __init__(self, store: PostgresStore, settings: dict, generation: int, stamp: str, stored: dict | None):
        self.store, self.settings, self.generation, self.stamp, self.stored = store, settings, generation, stamp, stored
        self.readers = [PostgresReader(store, settings, generation, stored)]
        self.idle: queue.LifoQueue = queue.LifoQueue()
        self.idle.put(self.readers[0])
        self.lock = threading.Lock()
        self.most = search_slots()  # readers at most: as many as searches run at once
        self.loaded: tuple[str, Manifest] | None = None

    @property
    def embeddings(self) -> Embeddings | None:
        """The first reader's txtai index."""
        return self.readers[0].embeddings

    @property
    def manifest(self) -> Manifest:
        """The manifest of the stamp served, read when first asked for."""
        if self.loaded is None or self.loaded[0] != self.stamp:
            self.loaded = (self.stamp, self.store.manifest())
        return self.loaded[1]

    def moved(self, stamp: str):
        """A write committed on the same generation: the tables show it already."""
        self.stamp = stamp

    def search(self, sql: str, parameters: dict) -> list[dict]:
        """Rows of one txtai SQL query on an idle reader (see PostgresReader.search)."""
        reader = self.take()
        try:
            return reader.search(sql, parameters)
        finally:
            self.idle.put(reader)

    def take(self) -> "PostgresReader":
        """An idle reader, a new one while fewer are open than searches may run, else the next freed."""
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            if len(self.readers) < self.most:
                reader = PostgresReader(self.store, self.settings, self.generation, self.stored)
                self.readers.append(reader)
                return reader
        return self.idle.get()

    def close(self):
        for reader in self.readers:
            reader.close()


class PostgresReader:
    """One connection and its txtai index on a generation; one search at a time."""

    def __init__(self, store: PostgresStore, settings: dict, generation: int, stored: dict | None):
        self.store, self.settings, self.generation = store, settings, generation
        self.embeddings, self.connection = store.open_index(settings, generation, stored, reader=True)
        self.end(commit=False)  # a reader keeps nothing of its opening

    def search(self, sql: str, parameters: dict) -> list[dict]:
        """Rows of one txtai SQL query, in a read transaction ended before returning. If a rebuild
        switched generations and dropped this one meanwhile, the search runs again on the new one."""
        for attempt in range(2):
            if self.embeddings is None:
                return []
            try:
                rows = OwnIndexSearch(self.embeddings)([sql], parameters=[parameters])[0]
            except DBAPIError as error:
                self.end(commit=False)
                if attempt or pgcode(error) not in MOVED or not self.follow():
                    raise
                continue
            self.end(commit=True)
            return rows
        return []

    def follow(self) -> bool:
        """Reopens on the live generation when it is another one; True if it did."""
        state = self.store.state(config=True)
        if not state or state["generation"] in (None, self.generation):
            return False
        self.close()
        self.generation = state["generation"]
        self.embeddings, self.connection = self.store.open_index(self.settings, self.generation, state["config"], reader=True)
        self.end(commit=False)
        return True

    def end(self, commit: bool):
        """Ends the read transaction, so that no lock is held between searches."""
        shared = pgshared.SESSIONS.get(self.connection["connection"]) if self.connection else None
        if shared:
            shared.session.commit() if commit else shared.session.rollback()

    def close(self):
        close_index(self.embeddings, self.connection)
        self.embeddings, self.connection = None, None


class PostgresWrite:
    """One write: delete/add on the live generation (or a new one), committed whole by publish."""

    def __init__(self, store: PostgresStore, settings: dict, rebuild: bool):
        self.store, self.settings = store, settings
        with store.engine.connect() as connection:
            state = store.state(connection, config=True)
            self.live = state["generation"]
            stored = state["config"]
            if stored is not None and not rebuild:
                schema = store.generation_schema(self.live)
                empty = connection.execute(text(f'SELECT NOT EXISTS (SELECT 1 FROM "{schema}".vectors)')).scalar()
                stored = None if empty else stored  # txtai would index() anew: do it on a new generation
        self.stamp = stamp_of(state)
        self.fresh = rebuild or stored is None
        self.generation = store.new_generation() if self.fresh else self.live
        self.embeddings, self.connection = store.open_index(settings, self.generation, None if self.fresh else stored, reader=False)
        self.session = pgshared.SESSIONS[self.connection["connection"]].session

    def delete(self, ids: list[str]) -> int:
        """Deletes chunks by id; returns how many were there."""
        if not ids or self.embeddings is None:
            return 0
        return len(self.embeddings.delete(ids))

    def add(self, rows) -> int:
        """Upserts (id, data) rows; returns how many texts the model encoded (the rest came from the
        vector cache). The first rows of a new generation build its index (txtai index)."""
        rows = Counted(rows)
        if self.embeddings is None:
            self.embeddings = Embeddings(self.store.txtai_config(self.settings, self.connection), models=MODELS)
            self.embeddings.index(rows)
            if not self.embeddings.ann:  # no rows: nothing was built
                self.embeddings.close()
                self.embeddings = None
        else:
            model = self.embeddings.model
            before = model.encoded if isinstance(model, CachedVectors) else 0
            self.embeddings.upsert(rows)
            if isinstance(model, CachedVectors):
                return model.encoded - before
            return rows.count
        model = self.embeddings.model if self.embeddings else None
        return model.encoded if isinstance(model, CachedVectors) else rows.count

    def publish(self, manifest: Manifest) -> str:
        """Writes the manifest and the state, and commits the whole write; returns the new stamp."""
        schema = self.store.schema
        config = self.saved_config()
        if manifest.scope is not None:  # a partial manifest: only its scope's records change
            old = self.store.records(self.session, list(manifest.scope))
        elif self.store.cached and self.store.cached[0] == self.stamp:
            old = self.store.cached[1]
        else:
            old = self.store.records(self.session)
        new = {uid: tuple(getattr(record, name) for name in FIELDS) for uid, record in manifest.documents.items()}
        removed = [uid for uid in old if uid not in new]
        if removed:
            self.session.execute(text(f'DELETE FROM "{schema}".index_documents WHERE id = ANY(:ids)'), {"ids": removed})
        changed = [{"id": uid, **dict(zip(FIELDS, values))} for uid, values in new.items() if old.get(uid) != values]
        if changed:
            self.session.execute(text(UPSERT_RECORD.format(s=schema)), changed)
        row = self.session.execute(
            text(
                f'UPDATE "{schema}".index_state SET generation = :generation, writes = writes + 1, config = CAST(:config AS jsonb), '
                "format = :format, fingerprint = CAST(:fingerprint AS jsonb), updated_at = :updated RETURNING generation, writes"
            ),
            {
                "generation": self.generation,
                "config": json.dumps(config) if config is not None else None,
                "format": manifest.version or FORMAT,
                "fingerprint": json.dumps(manifest.fingerprint),
                "updated": manifest.updated_at,
            },
        ).mappings().first()
        if self.embeddings is not None and isinstance(self.embeddings.scoring, PGBM25):
            self.embeddings.scoring.flush()
        self.session.commit()
        stamp = stamp_of(dict(row))
        self.store.cached = (stamp, new) if manifest.scope is None else None
        self.close()
        if self.live is not None and self.live != self.generation:
            self.store.drop(self.live)
        return stamp

    def saved_config(self) -> dict | None:
        """The generation's txtai config for the state row: offset, dimensions, BM25 and HNSW
        settings; without connections, the vector cache or the model's local path."""
        if self.embeddings is None or not self.embeddings.config:
            return None
        config = portable(self.embeddings.config)
        for key in ("content", "backend", "postgres"):
            config.pop(key, None)
        if isinstance(config.get("scoring"), dict):
            config["scoring"] = {key: value for key, value in config["scoring"].items() if key != "postgres"}
        return config

    def close(self):
        """Closes the index instance; an uncommitted write is rolled back."""
        close_index(self.embeddings, self.connection)
        self.embeddings, self.connection = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()  # a new generation never published is dropped by the next writer

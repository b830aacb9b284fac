"""Stored conversations: the turns of each chat, kept per owner (the API key's name), so
`conversation_id` continues a chat across requests, processes, restarts and (on PostgreSQL) replicas.

    store = Conversations.open(config)   # SQLite in the index folder, or the index's PostgreSQL schema
    uid = store.create(owner="reader", title="Which utility takes a base backup?")
    store.append(uid, "reader", [Turn("user", "..."), Turn("assistant", "...", citations=[...])])
    store.get(uid, "reader").turns       # ConversationNotFound for another owner's id
    store.list("reader"); store.delete(uid, "reader")

One key cannot read, continue or delete another key's conversations: every call names its owner.
Conversations untouched for `retention_days` are deleted (at most once a minute, on write).
The same tables (SQLAlchemy Core) serve SQLite and PostgreSQL.
"""

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Column, Engine, Float, ForeignKey, Index, Integer, MetaData, Table, Text, delete, func, insert, select, update

from . import pgtables
from .clock import iso

LOCAL = "local"  # the owner when no API key is used (CLI, open API)
PURGE_EVERY = 60.0  # seconds between retention sweeps
FILE = "conversations.sqlite3"  # in the index folder, for the local store

METADATA = MetaData()
CONVERSATIONS = Table(
    "conversations",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Index("conversations_owner", "owner", "updated"),
)
TURNS = Table(
    "turns",
    METADATA,
    Column("conversation", Text, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("extra", Text, nullable=False),  # JSON: query and citations
    Column("created", Float, nullable=False),
)


class ConversationNotFound(KeyError):
    """No conversation with that id for this owner."""


@dataclass
class Turn:
    """One message of a conversation; an assistant turn also records what it was based on."""

    role: str  # user | assistant
    content: str
    query: str | None = None  # the standalone query searched for this question (assistant turns)
    citations: list[dict] = field(default_factory=list)  # cited passages (assistant turns)
    created_at: str | None = None


@dataclass
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: list[Turn] = field(default_factory=list)

    def history(self) -> list[dict]:
        """The turns as chat messages ({role, content}), oldest first."""
        return [{"role": turn.role, "content": turn.content} for turn in self.turns]


class Conversations:
    """The conversation store of one index: on an SQLite file (a path) or a database (an engine)."""

    def __init__(self, database: Engine | Path | str, retention_days: float | None = 30, max_turns: int = 200):
        self.path = None if isinstance(database, Engine) else Path(database)
        self.engine = database if isinstance(database, Engine) else pgtables.sqlite(self.path)
        self.retention = retention_days * 86400 if retention_days else None
        self.max_turns = max_turns
        self.purged = 0.0
        self.ready = False

    @classmethod
    def open(cls, config) -> "Conversations":
        """The conversations of config's index: in its PostgreSQL schema with index.store postgres,
        else in SQLite in the index folder."""
        settings = config.conversations
        database = pgtables.connect(config) if config.index.store == "postgres" else config.index_dir / FILE
        return cls(database, settings.retention_days, settings.max_turns)

    def connect(self, write: bool = False):
        """A transaction (`with store.connect() as db:`); write=True takes the write lock at once."""
        if not self.ready:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            pgtables.create(self.engine, METADATA)
            self.ready = True
        return self.engine.execution_options(write=write).begin()

    def create(self, owner: str, title: str) -> str:
        uid = uuid.uuid4().hex
        now = time.time()
        with self.connect(write=True) as db:
            db.execute(insert(CONVERSATIONS).values(id=uid, owner=owner, title=" ".join(title.split())[:120], created=now, updated=now))
        self.purge()
        return uid

    def append(self, uid: str, owner: str, turns: list[Turn]):
        """Adds turns at the end; the oldest turns beyond max_turns are dropped."""
        now = time.time()
        with self.connect(write=True) as db:
            mine = (CONVERSATIONS.c.id == uid) & (CONVERSATIONS.c.owner == owner)
            if db.execute(select(CONVERSATIONS.c.id).where(mine).with_for_update()).first() is None:
                raise ConversationNotFound(uid)
            last = db.execute(select(func.coalesce(func.max(TURNS.c.number), -1)).where(TURNS.c.conversation == uid)).scalar_one()
            rows = [
                {"conversation": uid, "number": number, "role": turn.role, "content": turn.content, "extra": extra(turn), "created": now}
                for number, turn in enumerate(turns, last + 1)
            ]
            if rows:
                db.execute(insert(TURNS), rows)
            db.execute(delete(TURNS).where(TURNS.c.conversation == uid, TURNS.c.number <= last + len(turns) - self.max_turns))
            db.execute(update(CONVERSATIONS).where(CONVERSATIONS.c.id == uid).values(updated=now))

    def get(self, uid: str, owner: str) -> Conversation:
        with self.connect() as db:
            row = db.execute(select(CONVERSATIONS).where(CONVERSATIONS.c.id == uid, CONVERSATIONS.c.owner == owner)).first()
            if row is None:
                raise ConversationNotFound(uid)
            turns = db.execute(select(TURNS).where(TURNS.c.conversation == uid).order_by(TURNS.c.number)).all()
        conversation = Conversation(row.id, row.title, iso(row.created), iso(row.updated))
        for turn in turns:
            data = json.loads(turn.extra)
            conversation.turns.append(Turn(turn.role, turn.content, data.get("query"), data.get("citations") or [], iso(turn.created)))
        return conversation

    def list(self, owner: str, limit: int = 50) -> list[Conversation]:
        """The owner's conversations, most recently updated first (without their turns)."""
        query = select(CONVERSATIONS).where(CONVERSATIONS.c.owner == owner).order_by(CONVERSATIONS.c.updated.desc()).limit(limit)
        with self.connect() as db:
            rows = db.execute(query).all()
        return [Conversation(row.id, row.title, iso(row.created), iso(row.updated)) for row in rows]

    def delete(self, uid: str, owner: str):
        with self.connect(write=True) as db:
            if not db.execute(delete(CONVERSATIONS).where(CONVERSATIONS.c.id == uid, CONVERSATIONS.c.owner == owner)).rowcount:
                raise ConversationNotFound(uid)

    def purge(self):
        """Deletes conversations untouched for longer than the retention (at most once a minute)."""
        now = time.time()
        if self.retention is None or now - self.purged < PURGE_EVERY:
            return
        self.purged = now
        with self.connect(write=True) as db:
            db.execute(delete(CONVERSATIONS).where(CONVERSATIONS.c.updated < now - self.retention))


def extra(turn: Turn) -> str:
    return json.dumps({"query": turn.query, "citations": turn.citations}, ensure_ascii=False, default=str)

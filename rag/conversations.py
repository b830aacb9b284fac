"""Stored conversations: the turns of each chat, kept per owner (the API key's name) in SQLite in
the index folder, so `conversation_id` continues a chat across requests, processes and restarts.

    store = Conversations(config.index_dir / "conversations.sqlite3", retention_days=30)
    uid = store.create(owner="reader", title="Which utility takes a base backup?")
    store.append(uid, "reader", [Turn("user", "..."), Turn("assistant", "...", citations=[...])])
    store.get(uid, "reader").turns       # ConversationNotFound for another owner's id
    store.list("reader"); store.delete(uid, "reader")

One key cannot read, continue or delete another key's conversations: every call names its owner.
Conversations untouched for `retention_days` are deleted (at most once a minute, on write).
"""

import json
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from .clock import iso

LOCAL = "local"  # the owner when no API key is used (CLI, open API)
PURGE_EVERY = 60.0  # seconds between retention sweeps

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    number INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, extra TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (conversation, number)
);
"""


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
    """The conversation store of one index."""

    def __init__(self, path: Path, retention_days: float | None = 30, max_turns: int = 200):
        self.path = Path(path)
        self.retention = retention_days * 86400 if retention_days else None
        self.max_turns = max_turns
        self.lock = threading.Lock()
        self.purged = 0.0
        self.ready = False

    def connect(self) -> sqlite3.Connection:
        if not self.ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        connection.execute("PRAGMA foreign_keys = ON")
        if not self.ready:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.executescript(SCHEMA)
            self.ready = True
        return connection

    def create(self, owner: str, title: str) -> str:
        uid = uuid.uuid4().hex
        now = time.time()
        with self.lock, closing(self.connect()) as db:
            db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)", (uid, owner, " ".join(title.split())[:120], now, now))
        self.purge()
        return uid

    def append(self, uid: str, owner: str, turns: list[Turn]):
        """Adds turns at the end; the oldest turns beyond max_turns are dropped."""
        now = time.time()
        with self.lock, closing(self.connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            if not db.execute("SELECT 1 FROM conversations WHERE id = ? AND owner = ?", (uid, owner)).fetchone():
                db.execute("ROLLBACK")
                raise ConversationNotFound(uid)
            (last,) = db.execute("SELECT COALESCE(MAX(number), -1) FROM turns WHERE conversation = ?", (uid,)).fetchone()
            for number, turn in enumerate(turns, last + 1):
                extra = json.dumps({"query": turn.query, "citations": turn.citations}, ensure_ascii=False, default=str)
                db.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)", (uid, number, turn.role, turn.content, extra, now))
            db.execute("DELETE FROM turns WHERE conversation = ? AND number <= ?", (uid, last + len(turns) - self.max_turns))
            db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, uid))
            db.execute("COMMIT")

    def get(self, uid: str, owner: str) -> Conversation:
        with closing(self.connect()) as db:
            row = db.execute("SELECT id, title, created, updated FROM conversations WHERE id = ? AND owner = ?", (uid, owner)).fetchone()
            if row is None:
                raise ConversationNotFound(uid)
            turns = db.execute("SELECT role, content, extra, created FROM turns WHERE conversation = ? ORDER BY number", (uid,)).fetchall()
        conversation = Conversation(row[0], row[1], iso(row[2]), iso(row[3]))
        for role, content, extra, created in turns:
            extra = json.loads(extra)
            conversation.turns.append(Turn(role, content, extra.get("query"), extra.get("citations") or [], iso(created)))
        return conversation

    def list(self, owner: str, limit: int = 50) -> list[Conversation]:
        """The owner's conversations, most recently updated first (without their turns)."""
        with closing(self.connect()) as db:
            rows = db.execute(
                "SELECT id, title, created, updated FROM conversations WHERE owner = ? ORDER BY updated DESC LIMIT ?", (owner, limit)
            ).fetchall()
        return [Conversation(uid, title, iso(created), iso(updated)) for uid, title, created, updated in rows]

    def delete(self, uid: str, owner: str):
        with self.lock, closing(self.connect()) as db:
            if not db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (uid, owner)).rowcount:
                raise ConversationNotFound(uid)

    def purge(self):
        """Deletes conversations untouched for longer than the retention (at most once a minute)."""
        now = time.time()
        if self.retention is None or now - self.purged < PURGE_EVERY:
            return
        self.purged = now
        with self.lock, closing(self.connect()) as db:
            db.execute("DELETE FROM conversations WHERE updated < ?", (now - self.retention,))

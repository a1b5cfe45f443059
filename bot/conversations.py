"""Conversations: the earlier turns a follow-up question leans on, kept in one SQLite file.

A transport names a conversation (a Discord thread, a reply chain, a DM channel, a terminal
session) by an id of its choosing; the service reads its recent turns before answering a
follow-up and records the new turn after. Only what a follow-up needs is kept: the
question, the answer text, the chunks and articles it cited, and when it was asked. A
conversation idle for longer than `idle_minutes` is over (its turns are deleted when next
touched and swept on writes), and only the last `max_turns` turns are kept.

Answers run in worker threads, so every call opens its own short transaction on one shared
connection guarded by a lock; the file survives restarts (WAL journal).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer_text TEXT NOT NULL,
    cited_chunk_ids TEXT NOT NULL,
    article_ids TEXT NOT NULL,
    asked_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id TEXT PRIMARY KEY,
    last_active REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_time ON conversations (last_active);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    linked_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id);
"""


@dataclass(frozen=True)
class Turn:
    """One question and the answer given, as a later follow-up needs them."""

    question: str
    answer_text: str
    cited_chunk_ids: tuple[str, ...]
    article_ids: tuple[str, ...]
    asked_at: float


class Conversations:
    """The turns of every live conversation, bounded in number and age."""

    def __init__(
        self,
        path: Path,
        idle_minutes: float,
        max_turns: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.idle_seconds = idle_minutes * 60.0
        self.max_turns = max_turns
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ reading

    def history(self, conversation_id: str) -> list[Turn]:
        """The conversation's turns, oldest first; [] when unknown or idle too long."""
        with self._lock:
            if not self._alive(conversation_id):
                return []
            rows = self._db.execute(
                "SELECT question, answer_text, cited_chunk_ids, article_ids, asked_at "
                "FROM turns WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        return [
            Turn(q, a, tuple(json.loads(c)), tuple(json.loads(ar)), t) for q, a, c, ar, t in rows
        ]

    def is_active(self, conversation_id: str) -> bool:
        with self._lock:
            return self._alive(conversation_id)

    def last_active(self, conversation_id: str) -> float | None:
        """When the conversation's last turn was recorded; None when unknown or expired."""
        with self._lock:
            if not self._alive(conversation_id):
                return None
            row = self._db.execute(
                "SELECT last_active FROM conversations WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
        return float(row[0]) if row else None

    def for_message(self, message_id: str) -> str | None:
        """The live conversation a bot answer message belongs to (for reply chains)."""
        with self._lock:
            row = self._db.execute(
                "SELECT conversation_id FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None or not self._alive(row[0]):
                return None
            return str(row[0])

    # ------------------------------------------------------------------ writing

    def add_turn(self, conversation_id: str, turn: Turn) -> None:
        """Record a turn; keeps the last `max_turns`, restarts an expired conversation."""
        now = self._clock()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if not self._alive(conversation_id):
                self._delete(conversation_id, keep_messages=True)
            row = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM turns WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            self._db.execute(
                "INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    int(row[0]) + 1,
                    turn.question,
                    turn.answer_text,
                    json.dumps(list(turn.cited_chunk_ids)),
                    json.dumps(list(turn.article_ids)),
                    turn.asked_at,
                ),
            )
            self._db.execute(
                "DELETE FROM turns WHERE conversation_id = ? AND seq NOT IN ("
                "SELECT seq FROM turns WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?)",
                (conversation_id, conversation_id, self.max_turns),
            )
            self._db.execute(
                "INSERT INTO conversations VALUES (?, ?) ON CONFLICT (conversation_id) "
                "DO UPDATE SET last_active = excluded.last_active",
                (conversation_id, now),
            )
            self._sweep(now)

    def link_message(self, message_id: str, conversation_id: str) -> None:
        """Remember that a bot message answered in this conversation (replies continue it)."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO messages VALUES (?, ?, ?) ON CONFLICT (message_id) "
                "DO UPDATE SET conversation_id = excluded.conversation_id, "
                "linked_at = excluded.linked_at",
                (message_id, conversation_id, self._clock()),
            )

    def forget(self, conversation_id: str) -> None:
        """End the conversation now: its turns and message links are deleted."""
        with self._lock, self._db:
            self._delete(conversation_id, keep_messages=False)

    # ------------------------------------------------------------------ internals

    def _alive(self, conversation_id: str) -> bool:
        row = self._db.execute(
            "SELECT last_active FROM conversations WHERE conversation_id = ?",
            (conversation_id,),
        ).fetchone()
        return row is not None and self._clock() - float(row[0]) <= self.idle_seconds

    def _delete(self, conversation_id: str, *, keep_messages: bool) -> None:
        self._db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
        self._db.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))
        if not keep_messages:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))

    def _sweep(self, now: float) -> None:
        """Delete every expired conversation: nothing is kept past its usefulness."""
        cutoff = now - self.idle_seconds
        expired = [
            r[0]
            for r in self._db.execute(
                "SELECT conversation_id FROM conversations WHERE last_active < ?", (cutoff,)
            )
        ]
        for cid in expired:
            self._delete(cid, keep_messages=False)
        self._db.execute(
            "DELETE FROM messages WHERE linked_at < ? AND conversation_id NOT IN "
            "(SELECT conversation_id FROM conversations)",
            (cutoff,),
        )

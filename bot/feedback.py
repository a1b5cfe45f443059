"""👍/👎 feedback on answers, kept in a small SQLite database (`FEEDBACK_DB`).

Users are never stored by id: `user_hash` is sha256(salt + user id) with a random salt
created once per database and kept in its `meta` table, so votes by the same person can be
grouped without the file naming anyone (and hashes from two databases cannot be joined).

Blocking; async callers use `asyncio.to_thread`. Each call opens its own connection, so one
store may be shared by threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .models import Answer, Citation

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,          -- ISO 8601, UTC
    user_hash TEXT NOT NULL,           -- sha256(salt + user id), hex
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,           -- JSON list of Citation.to_json()
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    index_version TEXT
);
"""


class FeedbackStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._salt: str | None = None
        self._init_lock = threading.Lock()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:  # one transaction, committed on success
                yield conn
        finally:
            conn.close()

    def _ensure(self, conn: sqlite3.Connection) -> str:
        """Create the tables and the salt on first use; return the salt."""
        if self._salt is not None:
            return self._salt
        with self._init_lock:
            conn.executescript(SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('salt', ?)",
                (secrets.token_hex(16),),
            )
            self._salt = conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]
        return self._salt

    def user_hash(self, user_id: int | str) -> str:
        with self._connect() as conn:
            salt = self._ensure(conn)
        return _hash(salt, user_id)

    def record(
        self,
        *,
        user_id: int | str,
        question: str,
        answer: str,
        citations: Sequence[Citation] | Sequence[dict[str, Any]],
        vote: int,
        index_version: str | None,
    ) -> int:
        """Store one vote (+1 or -1) and return its row id."""
        if vote not in (1, -1):
            raise ValueError(f"vote must be +1 or -1, not {vote!r}")
        cited = [c.to_json() if isinstance(c, Citation) else dict(c) for c in citations]
        with self._connect() as conn:
            salt = self._ensure(conn)
            cursor = conn.execute(
                "INSERT INTO feedback "
                "(created_at, user_hash, question, answer, citations, vote, index_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    datetime.now(UTC).isoformat(timespec="seconds"),
                    _hash(salt, user_id),
                    question,
                    answer,
                    json.dumps(cited, ensure_ascii=False),
                    vote,
                    index_version,
                ),
            )
            return int(cursor.lastrowid or 0)

    def record_answer(
        self, *, user_id: int | str, answer: Answer, vote: int, index_version: str | None
    ) -> int:
        return self.record(
            user_id=user_id,
            question=answer.question,
            answer=answer.text,
            citations=answer.citations,
            vote=vote,
            index_version=index_version,
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every vote, oldest first, with `citations` decoded."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            self._ensure(conn)
            cursor = conn.execute(
                "SELECT id, created_at, user_hash, question, answer, citations, vote, "
                "index_version FROM feedback ORDER BY id"
            )
            names = [d[0] for d in cursor.description]
            out = []
            for row in cursor:
                item = dict(zip(names, row, strict=True))
                item["citations"] = json.loads(item["citations"])
                out.append(item)
        return out

    def export_jsonl(self, out: TextIO) -> int:
        """Write one JSON object per vote to `out`; return how many were written."""
        count = 0
        for item in self.rows():
            out.write(json.dumps(item, ensure_ascii=True) + "\n")
            count += 1
        return count


def _hash(salt: str, user_id: int | str) -> str:
    return hashlib.sha256(f"{salt}{user_id}".encode()).hexdigest()


def export_feedback(db_path: Path, out: TextIO) -> int:
    """`python -m bot feedback export`: the database at `db_path` as JSON lines on `out`.

    A database that does not exist yet holds no votes: nothing is written (and no file is
    created), and 0 is returned.
    """
    return FeedbackStore(db_path).export_jsonl(out)

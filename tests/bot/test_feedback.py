"""The feedback store: votes in SQLite, users only as salted hashes, JSONL export."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.feedback import FeedbackStore, export_feedback
from bot.models import Answer, Citation

CITATION = Citation(
    n=1, article_id="harbour.txt", title="Harbour lights", source="harbour.txt",
    chunk_id="harbour.txt#0", start=0, end=9, quote="The lamps", score=0.8,
)  # fmt: skip
ANSWER = Answer(question="When?", text="On Tuesday [1].", found=True, citations=[CITATION])


def test_record_and_export(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "feedback.sqlite"  # the folder is created on first use
    store = FeedbackStore(db)
    first = store.record_answer(user_id=42, answer=ANSWER, vote=1, index_version="v1")
    second = store.record(
        user_id=43, question="Who?", answer="Nobody [1].", citations=[CITATION.to_json()],
        vote=-1, index_version=None,
    )  # fmt: skip
    assert second > first

    out = io.StringIO()
    assert store.export_jsonl(out) == 2
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["vote"] for r in rows] == [1, -1]
    assert rows[0]["question"] == "When?" and rows[0]["answer"] == "On Tuesday [1]."
    assert rows[0]["citations"] == [CITATION.to_json()]
    assert rows[0]["index_version"] == "v1" and rows[1]["index_version"] is None
    assert rows[0]["created_at"].endswith("+00:00")
    assert set(rows[0]) == {
        "id", "created_at", "user_hash", "question", "answer", "citations", "vote",
        "index_version",
    }  # fmt: skip


def test_users_are_stored_as_salted_hashes(tmp_path: Path) -> None:
    db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(db)
    store.record_answer(user_id=123456789, answer=ANSWER, vote=1, index_version=None)
    store.record_answer(user_id=123456789, answer=ANSWER, vote=-1, index_version=None)
    rows = store.rows()
    assert rows[0]["user_hash"] == rows[1]["user_hash"]  # same person groups together
    assert "123456789" not in rows[0]["user_hash"]
    assert rows[0]["user_hash"] != hashlib.sha256(b"123456789").hexdigest()  # salted
    with sqlite3.connect(db) as conn:
        salt = conn.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]
    assert rows[0]["user_hash"] == hashlib.sha256(f"{salt}123456789".encode()).hexdigest()
    # the salt belongs to the database: a new store object on the same file keeps it
    assert FeedbackStore(db).user_hash(123456789) == rows[0]["user_hash"]
    # another database has another salt
    assert FeedbackStore(tmp_path / "other.sqlite").user_hash(123456789) != rows[0]["user_hash"]


def test_votes_must_be_plus_or_minus_one(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    with pytest.raises(ValueError, match="vote"):
        store.record_answer(user_id=1, answer=ANSWER, vote=0, index_version=None)


def test_export_of_a_missing_database_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "absent" / "feedback.sqlite"
    out = io.StringIO()
    assert export_feedback(db, out) == 0
    assert out.getvalue() == ""
    assert not db.exists()


def test_concurrent_votes_from_threads(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite")

    def vote(i: int) -> None:
        store.record_answer(user_id=i, answer=ANSWER, vote=1 if i % 2 else -1, index_version="v")

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    out = io.StringIO()
    assert export_feedback(store.path, out) == 20

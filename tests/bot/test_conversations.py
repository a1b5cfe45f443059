"""The conversation store: bounded turns, idle expiry, restarts, forgetting, reply chains."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from bot.conversations import Conversations, Turn


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def turn(n: int, at: float = 0.0) -> Turn:
    return Turn(f"question {n}?", f"answer {n} [1]", (f"a.txt#{n}",), ("a.txt",), at)


def store(path: Path, clock: Clock, idle: float = 30, max_turns: int = 20) -> Conversations:
    return Conversations(path, idle_minutes=idle, max_turns=max_turns, clock=clock)


def test_turns_come_back_in_order_with_every_field(tmp_path: Path) -> None:
    c = store(tmp_path / "c.sqlite", Clock())
    assert c.history("t1") == [] and not c.is_active("t1") and c.last_active("t1") is None
    c.add_turn("t1", turn(1, 5.0))
    c.add_turn("t1", turn(2, 6.0))
    c.add_turn("other", turn(9))
    assert c.history("t1") == [turn(1, 5.0), turn(2, 6.0)]
    assert c.is_active("t1") and c.last_active("t1") == 1_000_000.0


def test_only_the_last_max_turns_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    c = store(path, Clock(), max_turns=3)
    for n in range(1, 8):
        c.add_turn("t", turn(n))
    assert [t.question for t in c.history("t")] == ["question 5?", "question 6?", "question 7?"]
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    assert rows == 3  # deleted, not merely hidden


def test_an_idle_conversation_expires_and_its_turns_are_deleted(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "c.sqlite"
    c = store(path, clock, idle=30)
    c.add_turn("old", turn(1))
    c.link_message("m1", "old")
    clock.now += 29 * 60
    assert c.is_active("old") and c.for_message("m1") == "old"
    clock.now += 2 * 60  # 31 minutes after the last turn
    assert c.history("old") == [] and not c.is_active("old")
    assert c.for_message("m1") is None and c.last_active("old") is None
    c.add_turn("new", turn(2))  # any write sweeps what has expired
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id='old'").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)
    # A question in an expired conversation starts it afresh.
    c.add_turn("old", turn(3))
    assert [t.question for t in c.history("old")] == ["question 3?"]


def test_conversations_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "c.sqlite"
    c = store(path, clock)
    c.add_turn("t", turn(1))
    c.link_message("answer-42", "t")
    c.close()
    again = store(path, clock)
    assert again.history("t") == [turn(1)]
    assert again.for_message("answer-42") == "t"


def test_forget_ends_a_conversation_and_its_reply_chain(tmp_path: Path) -> None:
    c = store(tmp_path / "c.sqlite", Clock())
    c.add_turn("t", turn(1))
    c.add_turn("u", turn(2))
    c.link_message("m", "t")
    c.forget("t")
    assert c.history("t") == [] and not c.is_active("t") and c.for_message("m") is None
    assert c.history("u") == [turn(2)]
    c.forget("never-seen")  # harmless


def test_link_message_maps_answers_to_conversations(tmp_path: Path) -> None:
    c = store(tmp_path / "c.sqlite", Clock())
    assert c.for_message("unknown") is None
    c.add_turn("t", turn(1))
    c.link_message("m1", "t")
    c.link_message("m2", "t")
    assert c.for_message("m1") == c.for_message("m2") == "t"


def test_concurrent_turns_from_worker_threads_are_all_recorded(tmp_path: Path) -> None:
    c = store(tmp_path / "c.sqlite", Clock(), max_turns=200)
    threads = [
        threading.Thread(target=lambda i=i: [c.add_turn(f"t{i % 3}", turn(n)) for n in range(20)])
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(c.history(f"t{i}")) for i in range(3)) == 120

"""`python -m bot ask` and the answer service, on the seed article and on our samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import BadQuestion
from bot.extractive import NOT_FOUND_TEXT
from bot.service import QAService
from bot.settings import Settings
from index.store import open_current

REPO = Path(__file__).resolve().parents[2]


def run_bot(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        input=stdin,
        timeout=180,
    )


@pytest.fixture
def service(seed_index: Path, embedder) -> QAService:
    return QAService(Settings(index_dir=seed_index), embedder=embedder)


def article_text(index_dir: Path, article_id: str) -> str:
    stored = open_current(index_dir)
    try:
        text = stored.article_text(article_id)
    finally:
        stored.close()
    assert text is not None
    return text


def test_ask_json_cites_cut_it_out_verbatim(seed_index: Path) -> None:
    proc = run_bot("ask", "--index", str(seed_index), "--json", "what did Obama say to Putin?")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"question", "answer", "found", "citations"}
    assert data["found"] is True
    assert "cut it out" in data["answer"]
    first = data["citations"][0]
    assert set(first) >= {"n", "article_id", "title", "source", "chunk_id", "start", "end",
                          "quote", "score"}  # fmt: skip
    assert first["n"] == 1 and "[1]" in data["answer"]
    assert first["article_id"] == "000_39a60bc8d7f6d11b.txt"
    text = article_text(seed_index, first["article_id"])
    assert text[first["start"] : first["end"]] == first["quote"]
    assert first["quote"] in text


def test_unrelated_question_is_not_answered(service: QAService) -> None:
    answer = service.answer("What is the boiling point of tungsten?")
    assert answer.found is False
    assert answer.text == NOT_FOUND_TEXT
    # closest sources are offered, but nothing is claimed from them
    assert all(f"[{c.n}]" not in answer.text for c in answer.citations)


@pytest.mark.parametrize(
    "question",
    ["", "   \t\n  ", "x" * 10_000, "\x00\x01\x02\x1b[31m", "?!?!", "\u200b\u200b"],
)
def test_bad_questions_get_a_clear_message(service: QAService, question: str) -> None:
    with pytest.raises(BadQuestion) as info:
        service.answer(question)
    message = str(info.value)
    assert message and "Traceback" not in message and len(message) < 200


def test_control_characters_inside_a_real_question_are_cleaned(service: QAService) -> None:
    answer = service.answer("what did\x00 Obama\x1b say to\tPutin?")
    assert answer.found and "cut it out" in answer.text


@pytest.mark.parametrize("question", ["", "   ", "x" * 10_000, "\x01\x02"])
def test_cli_bad_question_is_one_line_no_traceback(seed_index: Path, question: str) -> None:
    proc = run_bot("ask", "--index", str(seed_index), question)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")


def test_ask_batch_one_json_object_a_line(seed_index: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text(
        "what did Obama say to Putin?\n\nWhat is the boiling point of tungsten?\n"
        + "y" * 10_000
        + "\n",
        encoding="utf-8",
    )
    proc = run_bot("ask", "--index", str(seed_index), "--batch", str(questions))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["found"] for r in rows[:2]] == [True, False]
    assert "error" in rows[2]


def test_ask_without_index_is_one_line(tmp_path: Path) -> None:
    proc = run_bot("ask", "--index", str(tmp_path / "none"), "anything?")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no index") and "Traceback" not in proc.stderr


def test_terminal_demo_builds_index_and_answers_with_citation(tmp_path: Path) -> None:
    """The README's main command: no token, the shipped sample articles, a cited answer."""
    proc = run_bot(
        env={"ARTICLES_DIR": str(REPO / "articles"), "INDEX_DIR": str(tmp_path / "demo")},
        stdin="How much did the bridge repairs cost?\nWhat is the capital of Peru?\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert "No DISCORD_TOKEN" in proc.stderr
    assert "2.4 million euros" in proc.stdout and "[1]" in proc.stdout
    assert "Sources:" in proc.stdout
    assert NOT_FOUND_TEXT in proc.stdout


def test_env_example_documents_every_setting() -> None:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and line[:1] != "#"}
    expected = {name.upper() for name in Settings.model_fields}
    assert expected == names

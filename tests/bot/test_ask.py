"""`python -m bot ask` and the answer service, on the seed article and on our samples."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

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
        errors="surrogateescape",  # stdin may carry bytes that are not UTF-8
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
    assert set(data) == {"question", "answer", "found", "citations", "retrieved"}
    assert data["found"] is True
    top = data["retrieved"][0]
    assert set(top) == {"rank", "score", "chunk_id", "article_id", "title", "source", "start",
                        "end"}  # fmt: skip
    assert [r["rank"] for r in data["retrieved"]] == list(range(1, len(data["retrieved"]) + 1))
    assert data["citations"][0]["chunk_id"] in {r["chunk_id"] for r in data["retrieved"]}
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
    questions.write_bytes(
        b"what did Obama say to Putin?\n\nWhat is the boiling point of tungsten?\n"
        + b"y" * 10_000
        + b"\nqui est Poutine ? caf\xe9\nwho told Putin to cut it out?\n"
    )
    proc = run_bot("ask", "--index", str(seed_index), "--batch", str(questions))
    # A line that cannot be answered (too long, not UTF-8) is an object with its error; every
    # other line is answered, in order, and the batch itself succeeds.
    assert proc.returncode == 0, proc.stderr
    # One output line per input line: the blank one is an error too, never a silent skip.
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 6, proc.stdout
    assert rows[0]["found"] is True and rows[2]["found"] is False
    assert rows[1] == {"question": None, "line": 2, "error": "line 2 is blank"}
    assert "error" in rows[3] and "found" not in rows[3]
    assert rows[4] == {"question": None, "line": 5, "error": "line 5 is not valid UTF-8"}
    assert rows[5]["found"] is True and "cut it out" in rows[5]["answer"]


def test_ask_batch_conversations_in_file_order(seed_index: Path, tmp_path: Path) -> None:
    """JSON lines with one conversation id are one conversation; plain lines stand alone."""
    lines = [
        json.dumps({"question": "what did Obama say to Putin?", "conversation": "a"}),
        json.dumps({"question": "when was that?", "conversation": "b"}),  # b knows nothing
        json.dumps({"question": "what did the Kremlin say about it?", "conversation": "a"}),
        "when was that?",
        json.dumps({"question": "when was that?", "conversation": "a"}),
        '{"question": "unclosed',
        json.dumps({"conversation": "a"}),
        json.dumps({"question": "", "conversation": "a"}),
        json.dumps(["not", "an", "object"]),
    ]
    batch = tmp_path / "conv.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_bot("ask", "--index", str(seed_index), "--batch", str(batch), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == len(lines), proc.stdout
    a1, b1, a2, alone, a3, unclosed, no_question, empty, array = rows
    assert a1["conversation"] == "a" and a1["found"] and "cut it out" in a1["answer"]
    assert b1["conversation"] == "b" and not b1["found"]
    assert a2["found"] and "Kremlin" in a2["answer"]
    assert "conversation" not in alone and not alone["found"]
    assert a3["conversation"] == "a" and a3["found"] and "September" in a3["answer"]
    for row in (a1, a2, a3):
        assert {c["article_id"] for c in row["citations"]} == {"000_39a60bc8d7f6d11b.txt"}
        assert row["retrieved"] and row["retrieved"][0]["rank"] == 1
    for row in (unclosed, no_question, array):
        assert set(row) == {"question", "line", "error"} and row["question"] is None
    assert unclosed["line"] == 6 and "not valid JSON" in unclosed["error"]
    assert empty["conversation"] == "a" and "error" in empty and "found" not in empty


def test_ask_without_index_is_one_line(tmp_path: Path) -> None:
    proc = run_bot("ask", "--index", str(tmp_path / "none"), "anything?")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no index") and "Traceback" not in proc.stderr


def test_terminal_demo_builds_index_and_answers_with_citation(tmp_path: Path) -> None:
    """The README's main command: no token, the shipped sample articles, a cited answer."""
    proc = run_bot(
        env={"ARTICLES_DIR": str(REPO / "articles"), "INDEX_DIR": str(tmp_path / "demo")},
        stdin="How much did the bridge repairs cost?\nWhat is the capital of Peru?\n"
        "Who can pick the fruit from the orchard\udcff?\n",  # a byte that is not UTF-8
    )
    assert proc.returncode == 0, proc.stderr
    assert "No DISCORD_TOKEN" in proc.stderr
    assert "2.4 million euros" in proc.stdout and "[1]" in proc.stdout
    assert "Sources:" in proc.stdout
    assert NOT_FOUND_TEXT in proc.stdout
    assert "free to pick" in proc.stdout  # the bad byte cost one character, not the chat
    # The README opens with this very exchange: it must be what a fresh clone prints.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    example = readme.split("```\n", 2)[1]  # the first fenced block
    assert example.startswith("question> How much did the bridge repairs cost?\n"), example
    assert example.strip() + "\n" in proc.stdout, proc.stdout


def test_env_example_documents_every_setting() -> None:
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and line[:1] != "#"}
    expected = {name.upper() for name in Settings.model_fields}
    assert expected == names


# ------------------------------------------------------------------ settings and secrets

FLOAT_FIELDS = sorted(n for n, f in Settings.model_fields.items() if f.annotation is float)


def test_every_float_setting_refuses_nan_and_infinity() -> None:
    assert {"abstain_threshold", "hybrid_dense_weight", "llm_timeout"} <= set(FLOAT_FIELDS)
    for name in FLOAT_FIELDS:
        for bad in ("nan", "inf", "-inf"):
            with pytest.raises(ValidationError) as info:
                Settings(**{name: bad})
            assert [e["loc"] for e in info.value.errors()] == [(name,)], (name, bad)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("abstain_threshold", "-1"), ("abstain_threshold", "1.5"), ("llm_timeout", "0"),
        ("index_poll_seconds", "0"), ("discord_cooldown_seconds", "-1"), ("search_k", "0"),
        ("keep_versions", "0"), ("chunk_overlap_tokens", "200"), ("llm_base_url", "localhost"),
        ("discord_gateway_url", "https://not-a-websocket"),
    ],
)  # fmt: skip
def test_out_of_range_settings_are_refused(name: str, bad: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{name: bad})


@pytest.mark.parametrize("value", ["nan", "-1"])
def test_cli_refuses_a_bad_abstain_threshold(value: str) -> None:
    proc = run_bot("ask", "anything?", env={"ABSTAIN_THRESHOLD": value})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: invalid settings")
    assert "ABSTAIN_THRESHOLD" in proc.stderr and "Traceback" not in proc.stderr


PASSWORD = "hunter2-pw"
API_KEY = "sk-test-0123456789"
TOKEN = "MTIzNDU2Nzg5.fake.token-value"


def test_settings_repr_never_shows_a_secret() -> None:
    settings = Settings(
        llm_base_url=f"http://admin:{PASSWORD}@llm.example:8080/v1?api_key={API_KEY}",
        llm_api_key=API_KEY,
        discord_token=TOKEN,
    )
    for shown in (repr(settings), str(settings)):
        assert PASSWORD not in shown and API_KEY not in shown and TOKEN not in shown
        assert "llm.example:8080/v1" in shown  # the rest of the URL is still there to debug


def test_bad_url_setting_error_does_not_echo_the_password() -> None:
    proc = run_bot("ask", "x?", env={"LLM_BASE_URL": f"llm.example:{PASSWORD}@host/v1"})
    assert proc.returncode == 2 and "LLM_BASE_URL" in proc.stderr, proc.stderr
    assert PASSWORD not in proc.stderr


def test_no_secret_reaches_the_log_or_the_output(seed_index: Path) -> None:
    """The LLM endpoint is down (a closed port): the answer falls back, and the debug log of
    the attempt never shows the URL's password, the API key or the Discord token."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    env = {
        "LLM_BASE_URL": f"http://admin:{PASSWORD}@127.0.0.1:{port}/v1",
        "LLM_MODEL": "m",
        "LLM_API_KEY": API_KEY,
        "LLM_TIMEOUT": "5",
        "DISCORD_TOKEN": TOKEN,
    }
    proc = run_bot("-vv", "ask", "--index", str(seed_index), "what did Obama say to Putin?",
                   env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cut it out" in proc.stdout
    assert "127.0.0.1" in proc.stderr  # the attempt is logged...
    for secret in (PASSWORD, API_KEY, TOKEN):  # ...without its secrets
        assert secret not in proc.stderr + proc.stdout


# ------------------------------------------------------------------ start-up failures


def test_env_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"# settings\nLLM_MODEL=\xff\n")
    for args in (["ask", "x?"], ["run"]):
        proc = subprocess.run(
            [sys.executable, "-m", "bot", *args], cwd=tmp_path, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == "error: .env is not valid UTF-8 (line 2): save it as UTF-8\n"


def test_index_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for args in (["ask", "x?"], ["run"]):
        proc = run_bot(*args, env={"INDEX_DIR": str(tmp_path / "afile")})
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "INDEX_DIR" in proc.stderr
        assert "is a file, not a folder" in proc.stderr


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Discord's answer to a bad token: 401 on every call."""

    def do_GET(self) -> None:
        body = b'{"message": "401: Unauthorized", "code": 0}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_discord() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v10"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("api", ["refusing", "unreachable"])
def test_discord_refusal_or_absence_is_one_error_line(
    api: str, refusing_discord: str, seed_index: Path
) -> None:
    if api == "refusing":
        base, expected = refusing_discord, "Discord refused DISCORD_TOKEN"
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = f"http://127.0.0.1:{s.getsockname()[1]}/api/v10"
        expected = "cannot reach Discord"
    proc = run_bot(
        env={"DISCORD_TOKEN": TOKEN, "DISCORD_API_BASE_URL": base, "INDEX_DIR": str(seed_index)}
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == errors[0]

"""Progress output: a bar on a terminal, plain lines in a log, nothing with --quiet; and a
rebuild that reports every batch it embeds, so the bar moves as the work does."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.progress import ProgressBar, resolve_mode
from index.rebuild import rebuild
from index.settings import IndexSettings

REPO = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_auto_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert resolve_mode("auto", Terminal()) == "bar"
    assert resolve_mode("auto", io.StringIO()) == "lines"
    assert resolve_mode(True, io.StringIO()) == "lines"
    assert resolve_mode(False, Terminal()) == "off"
    with pytest.raises(ValueError, match="unknown progress mode"):
        resolve_mode("fancy")  # type: ignore[arg-type]


def test_plain_lines_carry_count_rate_and_time_left_and_are_spaced():
    out, clock = io.StringIO(), Clock()
    with ProgressBar(1000, "embedding", "chunk", "auto", out, line_seconds=10, clock=clock) as bar:
        for _ in range(10):  # 100 chunks every 4 s
            clock.now += 4
            bar.update(100)
    lines = out.getvalue().splitlines()
    # one line per 10 s at most (at 12, 24 and 36 s), then the closing line
    assert lines[:-1] == [
        "embedding: 300/1,000 chunks (30%), 25.0 chunks/s, about 28 s left",
        "embedding: 600/1,000 chunks (60%), 25.0 chunks/s, about 16 s left",
        "embedding: 900/1,000 chunks (90%), 25.0 chunks/s, about 4 s left",
    ]
    assert lines[-1] == "embedding: 1,000/1,000 chunks (100%), 25.0 chunks/s, done in 40 s"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_step_shorter_than_the_line_interval_writes_no_line():
    out, clock = io.StringIO(), Clock()
    with ProgressBar(100, "embedding", "chunk", "lines", out, line_seconds=10, clock=clock) as bar:
        for _ in range(4):
            clock.now += 2
            bar.update(25)
    assert out.getvalue() == ""


def test_a_bar_on_a_terminal_redraws_with_rate_and_eta():
    out = Terminal()
    with ProgressBar(50, "embedding", "chunk", "auto", out) as bar:
        for _ in range(5):
            bar.update(10)
    text = out.getvalue()
    assert "\r" in text and "embedding" in text and "50/50" in text
    assert "chunk/s" in text  # tqdm's rate; the ETA sits in the same [elapsed<left] block
    assert "<" in text


def test_off_writes_nothing():
    for stream in (io.StringIO(), Terminal()):
        with ProgressBar(10, "embedding", "chunk", "off", stream) as bar:
            bar.update(10)
        assert stream.getvalue() == ""


def _articles(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"note{i}.txt").write_text(
            f"Note number {i}\nThis short note {i} is about the number {i} and nothing else.",
            encoding="utf-8",
        )


def test_rebuild_reports_every_embedding_batch(tmp_path: Path, embedder):
    _articles(tmp_path / "articles", 7)
    settings = IndexSettings(
        articles_dir=tmp_path / "articles", index_dir=tmp_path / "index", embedding_batch_size=2
    )
    seen: list[tuple[int, int]] = []
    rebuild(
        settings,
        lambda: embedder,
        on_progress=lambda stage, done, total: (
            seen.append((done, total)) if stage == "embed" else None
        ),
    )
    assert seen == [(2, 7), (4, 7), (6, 7), (7, 7)]


def _cli(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # onnx: the same fp32 vectors without importing torch, twice (cached export)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMBEDDING_BACKEND": "onnx"}
    return subprocess.run(
        [sys.executable, "-m", "index", "rebuild", "--source", "articles", "--index", "I",
         "--full", *flags],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip


def test_cli_in_a_log_writes_no_bar_and_nothing_when_quiet(tmp_path: Path):
    """Not a terminal: no carriage returns or escapes; this small a job is quicker than a
    line's interval, so nothing at all (the lines are checked above with a clock)."""
    _articles(tmp_path / "articles", 3)
    logged = _cli(tmp_path)
    assert logged.returncode == 0, logged.stderr
    assert "\r" not in logged.stderr and "\x1b" not in logged.stderr
    assert all(
        line.startswith(("chunking: ", "embedding: ")) for line in logged.stderr.splitlines()
    )
    quiet = _cli(tmp_path, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr

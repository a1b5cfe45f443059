"""`python -m index` run as a user runs it: a subprocess, its exit code, stdout and stderr.

Each command that needs the model pays for loading it (seconds), so the tests that need one
are few and each checks several things.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from index.store import TMP_PREFIX, current_version_name, open_current, rebuild_lock

REPO = Path(__file__).resolve().parents[2]
OBAMA_QUESTION = "what did Obama say to Putin?"
REBUILD_KEYS = {"articles", "chunks", "added", "updated", "removed", "unchanged", "skipped"}
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HIT_KEYS = {
    "rank", "score", "chunk_id", "article_id", "title", "source", "start", "end", "text", "also_in"
}  # fmt: skip


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None):
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "index", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        errors="surrogateescape",  # stdin may carry bytes that are not UTF-8
        timeout=240,
    )


def assert_one_line_error(proc, code: int | None = None) -> str:
    """A failure is exactly one `error: ...` line on stderr, with no traceback."""
    assert proc.returncode != 0
    if code is not None:
        assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def copy_index(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_rebuild_search_and_stats_on_the_seed(tmp_path: Path, seeds_dir: Path):
    source = os.path.relpath(seeds_dir, tmp_path)  # as a user types it: ../shared/seeds
    first = run_cli("rebuild", "--source", source, "--index", "I", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert REBUILD_KEYS | {"seconds"} <= set(report)
    assert (report["articles"], report["added"], report["skipped"]) == (1, 1, [])
    assert report["chunks"] >= 1 and report["seconds"] > 0

    found = run_cli("search", "--index", "I", "--json", "-k", "1", OBAMA_QUESTION, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    data = json.loads(found.stdout)
    assert data["query"] == OBAMA_QUESTION
    [hit] = data["results"]
    assert set(hit) == HIT_KEYS
    assert hit["rank"] == 1 and "cut it out" in hit["text"]
    stored = open_current(tmp_path / "I")
    try:
        assert stored.article_text(hit["article_id"])[hit["start"] : hit["end"]] == hit["text"]
    finally:
        stored.close()

    second = run_cli("rebuild", "--source", source, "--index", "I", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert (again["added"], again["updated"], again["removed"], again["unchanged"]) == (0, 0, 0, 1)
    assert again["seconds"] < report["seconds"] / 3, (again["seconds"], report["seconds"])

    plain = run_cli("rebuild", "--source", source, "--index", "I", cwd=tmp_path)
    assert plain.returncode == 0 and "nothing changed" in plain.stdout

    stats = run_cli("stats", "--index", "I", "--json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    info = json.loads(stats.stdout)
    assert info["chunks_over_limit"] == 0
    assert (info["articles"], info["chunks"], info["index_type"]) == (1, report["chunks"], "flat")
    assert info["model"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_broken_files_are_listed_and_the_rest_indexed(tmp_path: Path, seeds_dir: Path):
    src = tmp_path / "mixed"
    shutil.copytree(seeds_dir, src)
    (src / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (src / "latin1.txt").write_bytes("Café news\nLe café était fermé.".encode("latin-1"))
    (src / "empty.md").write_bytes(b"")
    (src / "notes.md").write_text("# Tide tables\n\nHigh tide at the harbour is at 6:40.\n")
    (src / "evil\x1b]0;owned\x07\x1b[2J.txt").write_text("Owned\nThe screen is cleared.\n")
    good = [
        {"id": "glacier", "title": "Glacier retreat", "text": "The Aletsch glacier retreated "
         "by fifty metres last year, the largest loss since records began."},
        {"id": "lighthouse", "title": "Lighthouse keeper", "text": "The last lighthouse "
         "keeper of the island retired after forty years of tending the lamp."},
    ]  # fmt: skip
    lines = [
        json.dumps(good[0]),
        '{"id": "broken", "text": "no closing brace"',
        json.dumps(good[1]),
    ]
    (src / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    proc = run_cli("rebuild", "--source", "mixed", "--index", "I", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["articles"] == 4  # the seed, the Markdown note and two JSONL records
    [evil] = [s for s in report["skipped"] if s["path"].startswith("evil")]
    assert "control character" in evil["reason"]
    skipped = {(s["path"], s.get("line")): s["reason"] for s in report["skipped"] if s != evil}
    assert set(skipped) == {
        ("binary.txt", None),
        ("latin1.txt", None),
        ("empty.md", None),
        ("records.jsonl", 2),
    }
    assert all(reason.strip() for reason in skipped.values())
    assert "binary" in skipped[("binary.txt", None)]
    assert "UTF-8" in skipped[("latin1.txt", None)]
    assert "empty" in skipped[("empty.md", None)]
    assert "JSON" in skipped[("records.jsonl", 2)]

    # Each run names every skipped file on stderr exactly once, --quiet or not, JSON or not
    # (and still exits 0), with no control sequence from a file name reaching the terminal.
    plain = run_cli("rebuild", "--source", "mixed", "--index", "I", "--quiet", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    for run in (proc, plain):
        for name in ("binary.txt", "latin1.txt", "empty.md", "records.jsonl:2", "evil"):
            assert run.stderr.count(f"skipped {name}") == 1, run.stderr
        assert run.stderr.count("\n") == len(report["skipped"]), run.stderr
        assert not CONTROL.search(run.stderr + run.stdout), run.stderr

    stored = open_current(tmp_path / "I")
    try:
        ids = {a.id for a in stored.articles()}
        ids_expected = {"records.jsonl#glacier", "records.jsonl#lighthouse"}  # namespaced
        assert ids == {seed_id(seeds_dir), "notes.md"} | ids_expected
        assert "cut it out" in stored.article_text(seed_id(seeds_dir))
    finally:
        stored.close()


def seed_id(seeds_dir: Path) -> str:
    return next(seeds_dir.glob("*.txt")).name


def _synthetic_folder(folder: Path, articles: int) -> None:
    rng = random.Random(11)
    words = [
        "harbour", "glacier", "orchard", "lantern", "parliament", "meadow", "archive",
        "engine", "council", "river", "station", "market", "bridge", "school", "museum",
        "garden", "tunnel", "ferry", "festival", "library",
    ]  # fmt: skip
    for i in range(articles):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "."
            for _ in range(30)
        ]
        text = f"Report {i} on the {rng.choice(words)}\n" + " ".join(sentences)
        (folder / f"report{i:04d}.txt").write_text(text, encoding="utf-8")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigkilled_rebuild_leaves_the_previous_index_working(
    tmp_path: Path, seed_index: Path, seeds_dir: Path
):
    index = copy_index(seed_index, tmp_path / "I")
    published = current_version_name(index)
    big = tmp_path / "big"
    shutil.copytree(seeds_dir, big)
    _synthetic_folder(big, 300)

    log = tmp_path / "rebuild.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "index", "-v", "rebuild", "--full", "--source", "big",
             "--index", "I", "--json"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            # Once the model is up it chunks and embeds ~900 chunks (a minute or so): kill it
            # midway, or as soon as it starts writing the new version, whichever comes first.
            _wait_for(
                lambda: "loaded embedding model" in log.read_text() or proc.poll() is not None,
                120,
                "the rebuild to load its model",
            )
            vdir = index / "versions"
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline and proc.poll() is None:
                if any(p.name.startswith(TMP_PREFIX) for p in vdir.iterdir()):
                    break
                time.sleep(0.01)
            assert proc.poll() is None, "the rebuild ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert current_version_name(index) == published

    # `--batch` (here on stdin) answers one JSON object per line, from the old version; a
    # line that is not UTF-8 costs only itself.
    queries = [OBAMA_QUESTION, "the Kremlin aide", "the of and"]
    bad = "caf\udce9 not UTF-8"  # the byte 0xE9 on stdin
    batch = run_cli(
        "search", "--index", "I", "--batch", "-", "-k", "2", "--mode", "hybrid",
        cwd=tmp_path, stdin="\n".join([*queries[:2], bad, queries[2]]) + "\n\n",
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    answers = [json.loads(line) for line in batch.stdout.splitlines()]
    assert answers.pop(2) == {"query": None, "line": 3, "error": "line 3 is not valid UTF-8"}
    assert [a["query"] for a in answers] == queries
    for a in answers:
        assert set(a) == {"query", "results"} and 1 <= len(a["results"]) <= 2
        assert all(set(h) == HIT_KEYS for h in a["results"])
    assert "cut it out" in answers[0]["results"][0]["text"]

    stats = run_cli("stats", "--index", "I", "--json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["articles"] == 1

    # The lock died with the process; the next rebuild runs and sweeps any half-written version.
    source = os.path.relpath(seeds_dir, tmp_path)
    after = run_cli("rebuild", "--source", source, "--index", "I", "--json", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["unchanged"] == 1
    assert not [p for p in (index / "versions").iterdir() if p.name.startswith(TMP_PREFIX)]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["search", "--index", "I"], id="no-query"),
        pytest.param(["search", "--index", "I", "--bogus", "x"], id="unknown-option"),
        pytest.param(["search", "--index", "I", "-k", "0", "x"], id="k-zero"),
        pytest.param(["search", "--index", "I", "--mode", "fuzzy", "x"], id="bad-mode"),
        pytest.param(["search", "--index", "I", "   "], id="blank-query"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str]):
    assert_one_line_error(run_cli(*args, cwd=tmp_path), 2)


def test_missing_index_and_missing_source(tmp_path: Path):
    line = assert_one_line_error(run_cli("search", "--index", "nowhere", "x", cwd=tmp_path), 1)
    assert "rebuild" in line
    assert_one_line_error(run_cli("stats", "--index", "nowhere", cwd=tmp_path), 1)
    line = assert_one_line_error(
        run_cli("rebuild", "--source", "no-such-folder", "--index", "I", cwd=tmp_path), 1
    )
    assert "no-such-folder" in line


def test_invalid_setting_is_named(tmp_path: Path):
    proc = run_cli("stats", cwd=tmp_path, env={"CHUNK_TOKENS": "lots"})
    assert "CHUNK_TOKENS" in assert_one_line_error(proc, 2)


def test_model_mismatch_is_refused_before_loading_any_model(tmp_path: Path, seed_index: Path):
    copy_index(seed_index, tmp_path / "I")
    proc = run_cli(
        "search", "--index", "I", "x", cwd=tmp_path, env={"EMBEDDING_MODEL": "some/other"}
    )
    line = assert_one_line_error(proc, 1)
    # the index check, not a failed attempt to download some/other
    assert "built with embedding model" in line and "some/other" in line


def test_format_version_mismatch_is_refused(tmp_path: Path, seed_index: Path):
    index = copy_index(seed_index, tmp_path / "I")
    manifest = index / "versions" / current_version_name(index) / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    for args in (["search", "--index", "I", "x"], ["stats", "--index", "I"]):
        line = assert_one_line_error(run_cli(*args, cwd=tmp_path), 1)
        assert "format version 99" in line and "rebuild --full" in line


def test_concurrent_rebuild_is_refused(tmp_path: Path, seeds_dir: Path):
    with rebuild_lock(tmp_path / "I"):
        proc = run_cli("rebuild", "--source", str(seeds_dir), "--index", "I", cwd=tmp_path)
    assert "another rebuild" in assert_one_line_error(proc, 1)


def test_stats_reports_the_index_type(tmp_path: Path, seed_index: Path, seeds_dir: Path):
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    copy_index(seed_index, tmp_path / "I")
    settings = IndexSettings(articles_dir=seeds_dir, index_dir=tmp_path / "I", index_type="hnsw")

    def no_model():
        raise AssertionError("re-laying out the index must not need the model")

    assert rebuild(settings, no_model).published
    stats = run_cli("stats", "--index", "I", "--json", cwd=tmp_path)
    assert json.loads(stats.stdout)["index_type"] == "hnsw"
    text = run_cli("stats", "--index", "I", cwd=tmp_path)
    assert text.returncode == 0 and "hnsw" in text.stdout


def test_env_file_that_is_not_utf8_is_one_line(tmp_path: Path):
    (tmp_path / ".env").write_bytes(b"SEARCH_K=3\nLLM_MODEL=caf\xe9\n")
    for args in (["stats", "--index", "I"], ["search", "--index", "I", "x"]):
        line = assert_one_line_error(run_cli(*args, cwd=tmp_path), 2)
        assert ".env is not valid UTF-8 (line 2)" in line


def test_index_dir_that_is_a_file_is_named(tmp_path: Path, seeds_dir: Path):
    (tmp_path / "afile").write_text("not a folder")
    env = {"INDEX_DIR": "afile", "ARTICLES_DIR": str(seeds_dir)}
    for args in (["stats"], ["search", "x"], ["rebuild"]):
        line = assert_one_line_error(run_cli(*args, cwd=tmp_path, env=env), 2)
        assert "INDEX_DIR" in line and "afile is a file" in line
    # on the command line it is a usage error, with the same exit code
    assert_one_line_error(run_cli("stats", "--index", "afile", cwd=tmp_path), 2)


# ------------------------------------------------------------------ folders that refuse writes


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 200 KB tmpfs (root only): room for the seed index and little else."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    where = tmp_path / "disk"
    _mount_tmpfs(where, "200k")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_read_only_folder_and_full_disk_are_one_line_and_keep_serving(
    tmp_path: Path, small_disk: Path, seed_index: Path, seeds_dir: Path
):
    index = copy_index(seed_index, small_disk / "I")
    published = current_version_name(index)
    source = os.path.relpath(seeds_dir, tmp_path)

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        ro = run_cli("rebuild", "--full", "--source", source, "--index", str(index), cwd=tmp_path)
        line = assert_one_line_error(ro, 1)
        assert "read-only" in line.lower(), line
        # the terminal chat's first-run build into a read-only folder ends the same way
        bot = subprocess.run(
            [sys.executable, "-m", "bot"], input="anything?\n",
            cwd=tmp_path, capture_output=True, text=True, timeout=240,
            env={**os.environ, "PYTHONPATH": str(REPO), "INDEX_DIR": str(small_disk / "new"),
                 "ARTICLES_DIR": str(seeds_dir)},
        )  # fmt: skip
        assert bot.returncode == 1 and "Traceback" not in bot.stderr, bot.stderr
        last = bot.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "read-only" in last.lower(), bot.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)

    # fill the disk, leaving too little room for a new version
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * (200 * 1024))
    free = shutil.disk_usage(small_disk).free
    with open(filler, "r+b") as f:
        f.truncate(max(0, filler.stat().st_size - 8 * 1024))  # a little room: a lock, a start
    full = run_cli("rebuild", "--full", "--source", source, "--index", str(index), cwd=tmp_path)
    line = assert_one_line_error(full, 1)
    assert "space" in line, (line, free)
    assert current_version_name(index) == published
    leftovers = [p.name for p in (index / "versions").iterdir() if p.name.startswith(TMP_PREFIX)]
    assert not leftovers

    stored = open_current(index)  # the previous version still opens, verified, and serves
    try:
        assert "cut it out" in stored.article_text(seed_id(seeds_dir))
    finally:
        stored.close()


# ------------------------------------------------------------------ the shared error plumbing


def _failing_group(exc: BaseException) -> click.Group:
    from index.cli_common import OneLineErrors

    @click.group(cls=OneLineErrors)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise exc

    return group


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "I/versions/x"), "free some space"),
        (OSError(errno.EROFS, "Read-only file system", "I"), "writable folder"),
        (PermissionError(errno.EACCES, "Permission denied", "I/CURRENT"), "this user may"),
        (EOFError("No data left in file"), "ended early"),
        (ValueError("a bug\nover two lines\x1b[2J"), "unexpected ValueError: a bug; over two"),
        (RuntimeError("http://admin:hunter2@host/v1 failed"), "http://***@host/v1 failed"),
    ],
)  # fmt: skip
def test_every_failure_is_one_line_with_a_hint(exc: BaseException, expected: str) -> None:
    result = CliRunner().invoke(_failing_group(exc), ["boom"])
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr, result.stderr
    assert "hunter2" not in result.stderr and not CONTROL.search(result.stderr.rstrip("\n"))


def test_ctrl_c_is_interrupted_not_a_traceback() -> None:
    result = CliRunner().invoke(_failing_group(KeyboardInterrupt()), ["boom"])
    assert (result.exit_code, result.stderr) == (130, "error: interrupted\n")

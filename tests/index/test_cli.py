"""`python -m index` run as a user runs it: a subprocess, its exit code, stdout and stderr.

Each command that needs the model pays for loading it (seconds), so the tests that need one
are few and each checks several things.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.store import TMP_PREFIX, current_version_name, open_current, rebuild_lock

REPO = Path(__file__).resolve().parents[2]
OBAMA_QUESTION = "what did Obama say to Putin?"
REBUILD_KEYS = {"articles", "chunks", "added", "updated", "removed", "unchanged", "skipped"}
HIT_KEYS = {"rank", "score", "chunk_id", "article_id", "title", "source", "start", "end", "text"}


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
    skipped = {(s["path"], s.get("line")): s["reason"] for s in report["skipped"]}
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

    # The human-readable run names every skipped file on stderr (and still exits 0).
    plain = run_cli("rebuild", "--source", "mixed", "--index", "I", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    for name in ("binary.txt", "latin1.txt", "empty.md", "records.jsonl:2"):
        assert f"skipped {name}:" in plain.stderr

    stored = open_current(tmp_path / "I")
    try:
        ids = {a.id for a in stored.articles()}
        assert ids == {seed_id(seeds_dir), "notes.md", "glacier", "lighthouse"}
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

    # `--batch` (here on stdin) answers one JSON object per line, from the old version.
    queries = [OBAMA_QUESTION, "the Kremlin aide", "the of and"]
    batch = run_cli(
        "search", "--index", "I", "--batch", "-", "-k", "2", "--mode", "hybrid",
        cwd=tmp_path, stdin="\n".join(queries) + "\n\n",
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    answers = [json.loads(line) for line in batch.stdout.splitlines()]
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

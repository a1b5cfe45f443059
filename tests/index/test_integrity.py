"""Fault injection: every index file damaged in turn, and the folder itself made unusable.

Each case damages one file of a copy of one small index (built once per module) in one way,
then checks what a user sees: opening and searching raise `IndexDamaged`, both CLIs print one
`error: index damaged: ...` line naming the repair command (no traceback, exit 1), a plain
rebuild repairs it (logging why) and so does `rebuild --full`. The folder cases (a file, a
read-only mount, a full disk) check that the previous index keeps serving and nothing is left
behind; those mount a small tmpfs and are skipped where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from index.errors import REBUILD_FULL_HINT, IndexDamaged, IndexFolderError
from index.live import LiveIndex
from index.rebuild import rebuild
from index.search import Searcher
from index.settings import IndexSettings
from index.store import (
    current_version_name,
    open_current,
    published_versions,
    versions_dir,
)

REPO = Path(__file__).resolve().parents[2]

ARTICLES = {
    "bread.txt": "How sourdough bread is made\n"
    "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria. "
    "The baker feeds the starter with flour and water for days before mixing the dough.",
    "volcano.txt": "Volcano erupts in Iceland\n"
    "A fissure eruption began on the Reykjanes peninsula on Monday night. "
    "Lava fountains reached fifty metres and the nearby town was evacuated.",
    "chess.txt": "Chess champion retains title\n"
    "The world chess champion retained the title after a tense rapid tie-break.",
}
QUESTION = "what is sourdough leavened by?"

# Every file a version holds (checked against what the store writes, below).
VERSION_FILES = [
    "manifest.json",
    "meta.sqlite",
    "vectors.npy",
    "dense.faiss",
    "bm25/params.index.json",
    "bm25/vocab.index.json",
    "bm25/data.csc.index.npy",
    "bm25/indices.csc.index.npy",
    "bm25/indptr.csc.index.npy",
]
FILES = ["CURRENT", *VERSION_FILES]


def _corrupt(path: Path) -> None:
    """Same length, other bytes (non-UTF-8 among them)."""
    rng = random.Random(path.name)
    path.write_bytes(bytes(rng.randrange(128, 256) for _ in range(max(path.stat().st_size, 8))))


def _flip(path: Path) -> None:
    """One byte changed in the middle: only a checksum sees it."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


FAULTS: dict[str, Callable[[Path], None]] = {
    "corrupt": _corrupt,
    "flip": _flip,
    "truncate": _truncate,
    "empty": lambda path: path.write_bytes(b""),
    "delete": lambda path: path.unlink(),
}


def write_articles(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")


def settings_for(base: Path, **overrides) -> IndexSettings:
    return IndexSettings(articles_dir=base / "articles", index_dir=base / "index", **overrides)


class MemoEmbedder:
    """The real model, each distinct text embedded once: this suite rebuilds the same three
    articles a hundred times, and what it checks is the store, not the model's speed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self.tokenizer = inner.tokenizer
        self._seen: dict[tuple[str, str], np.ndarray] = {}

    def _encode(self, kind: str, texts) -> np.ndarray:
        fresh = [t for t in dict.fromkeys(texts) if (kind, t) not in self._seen]
        if fresh:
            encode = self.inner.encode_documents if kind == "doc" else self.inner.encode_queries
            for text, vector in zip(fresh, encode(fresh), strict=True):
                self._seen[kind, text] = vector
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._seen[kind, t] for t in texts])

    def encode_documents(self, texts, *, batch_size: int = 64, progress: bool = False):
        return self._encode("doc", list(texts))

    def encode_queries(self, texts):
        return self._encode("query", list(texts))


@pytest.fixture(scope="module")
def memo(embedder) -> MemoEmbedder:
    return MemoEmbedder(embedder)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, memo: MemoEmbedder) -> Path:
    base = tmp_path_factory.mktemp("pristine")
    write_articles(base / "articles")
    assert rebuild(settings_for(base), lambda: memo).published
    return base


@pytest.fixture
def copy(pristine: Path, tmp_path: Path) -> IndexSettings:
    """A private copy of the articles and their index."""
    shutil.copytree(pristine / "articles", tmp_path / "articles")
    shutil.copytree(pristine / "index", tmp_path / "index")
    return settings_for(tmp_path)


def file_path(settings: IndexSettings, name: str) -> Path:
    if name == "CURRENT":
        return settings.index_dir / "CURRENT"
    return versions_dir(settings.index_dir) / current_version_name(settings.index_dir) / name


def assert_serves(settings: IndexSettings, memo) -> None:
    stored = open_current(settings.index_dir, checksums=True)
    try:
        stored.verify()
        hits = Searcher(stored, memo).search(QUESTION, k=2)
        assert hits[0].article_id == "bread.txt"
    finally:
        stored.close()


def assert_one_line_error(stderr: str, exit_code: int, start: str, codes=(1,)) -> str:
    assert exit_code in codes, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: " + start), stderr
    assert "Traceback" not in stderr
    return lines[0]


def run_cli(module: str, *args: str, env: dict[str, str] | None = None):
    """A CLI in-process as a user would call it (stderr apart from stdout)."""
    from bot.cli import cli as bot_cli
    from index.cli import cli as index_cli

    group = {"index": index_cli, "bot": bot_cli}[module]
    return CliRunner(env=env).invoke(group, list(args), catch_exceptions=False)


def test_the_fault_list_covers_every_file_the_store_writes(pristine: Path):
    settings = settings_for(pristine)
    version = versions_dir(settings.index_dir) / current_version_name(settings.index_dir)
    written = {p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file()}
    assert written == set(VERSION_FILES)
    manifest = json.loads((version / "manifest.json").read_text())
    assert set(manifest["files"]) == written - {"manifest.json"}
    for rel, record in manifest["files"].items():
        assert record["size"] == (version / rel).stat().st_size
        assert len(record["sha256"]) == 64


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("name", FILES)
def test_damage_is_reported_in_one_line_and_every_rebuild_repairs_it(
    copy: IndexSettings, memo, caplog, name: str, fault: str, tmp_path: Path
):
    settings = copy
    spare = tmp_path / "spare"  # the same damage again, for the --full rebuild
    shutil.copytree(settings.index_dir, spare)
    FAULTS[fault](file_path(settings, name))
    shutil.rmtree(spare)
    shutil.copytree(settings.index_dir, spare)

    # the library: a typed error naming the file, whether opening or searching finds it
    with pytest.raises(IndexDamaged) as caught:
        stored = open_current(settings.index_dir)
        try:
            Searcher(stored, memo).search(QUESTION)
        finally:
            stored.close()
    message = str(caught.value)
    assert message.startswith("index damaged: ") and message.endswith(REBUILD_FULL_HINT)
    assert name.split("/")[0].removesuffix(".json") in message or "BM25" in message, message
    assert "\n" not in message

    # both CLIs: one line, exit 1
    index_arg = str(settings.index_dir)
    for module, args in (
        ("index", ["search", "--index", index_arg, QUESTION]),
        ("index", ["stats", "--index", index_arg]),
        ("bot", ["ask", "--index", index_arg, QUESTION]),
    ):
        result = run_cli(module, *args)
        line = assert_one_line_error(result.stderr, result.exit_code, "index damaged: ")
        assert line.endswith(REBUILD_FULL_HINT), line
        assert result.stdout == ""

    # a plain rebuild notices, says why, and rebuilds from scratch
    with caplog.at_level(logging.WARNING, logger="index.rebuild"):
        report = rebuild(settings, lambda: memo)
    assert report.published and report.full and report.unchanged == 0
    assert any("index damaged" in r.getMessage() for r in caplog.records)
    assert_serves(settings, memo)

    # so does --full, without reading the damaged version
    shutil.rmtree(settings.index_dir)
    shutil.copytree(spare, settings.index_dir)
    report = rebuild(settings, lambda: memo, full=True)
    assert report.published and report.articles == len(ARTICLES)
    assert_serves(settings, memo)
    assert not [p for p in versions_dir(settings.index_dir).iterdir() if p.name[0] == "."]


def test_large_versions_check_sizes_on_open_and_checksums_on_rebuild(
    copy: IndexSettings, memo, monkeypatch, caplog
):
    """Above FULL_CHECK_BYTES an open checks sizes and headers only (a CLI search must not
    hash gigabytes); a same-size corruption there is caught by the next rebuild."""
    from index import store

    monkeypatch.setattr(store, "FULL_CHECK_BYTES", 0)
    _flip(file_path(copy, "vectors.npy"))
    stored = open_current(copy.index_dir)  # sizes and headers are right
    stored.close()
    with pytest.raises(IndexDamaged, match=r"vectors\.npy does not match its checksum"):
        open_current(copy.index_dir, checksums=True)
    with caplog.at_level(logging.WARNING, logger="index.rebuild"):
        report = rebuild(copy, lambda: memo)
    assert report.published and report.full
    assert any("vectors.npy" in r.getMessage() for r in caplog.records)
    assert_serves(copy, memo)


@pytest.mark.parametrize(
    ("name", "fault", "what"),
    [
        ("vectors.npy", "empty", "vectors.npy"),  # was "error: aborted", rc 130
        ("meta.sqlite", "corrupt", "meta.sqlite"),  # was "file is not a database"
        ("CURRENT", "corrupt", "CURRENT"),  # was a UnicodeDecodeError
        ("dense.faiss", "flip", "dense.faiss"),  # was served, then searches failed
    ],
)
def test_damage_through_real_processes(
    copy: IndexSettings, name: str, fault: str, what: str, tmp_path: Path
):
    FAULTS[fault](file_path(copy, name))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    for module, command in (("index", "search"), ("bot", "ask")):
        proc = subprocess.run(
            [sys.executable, "-m", module, command, "--index", str(copy.index_dir), QUESTION],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        line = assert_one_line_error(proc.stderr, proc.returncode, "index damaged: ")
        assert what in line and line.endswith(REBUILD_FULL_HINT)


def test_index_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memo):
    write_articles(tmp_path / "articles")
    (tmp_path / "index").write_text("not a folder")
    monkeypatch.setenv("INDEX_DIR", str(tmp_path / "index"))
    for module, args in (
        ("index", ["rebuild"]),
        ("index", ["search", QUESTION]),
        ("index", ["stats"]),
        ("bot", ["ask", QUESTION]),
    ):
        result = run_cli(module, *args)  # settings may refuse it (2) before the store does (1)
        line = assert_one_line_error(result.stderr, result.exit_code, "", codes=(1, 2))
        assert "is a file, not a folder" in line, line
    # and when it becomes a file after the settings were read
    settings = IndexSettings.model_construct(
        articles_dir=tmp_path / "articles", index_dir=tmp_path / "index"
    )
    with pytest.raises(IndexFolderError, match="is a file, not a folder"):
        rebuild(settings, lambda: memo)
    with pytest.raises(IndexFolderError, match="is a file, not a folder"):
        open_current(settings.index_dir)
    assert (tmp_path / "index").read_text() == "not a folder"


# ---------------------------------------------------------------- read-only folder, full disk


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `path` (root only; skips the test where mounting is refused)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True, timeout=30)
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_read_only_folder(pristine: Path, tmp_path: Path, memo, monkeypatch):
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        shutil.copytree(pristine / "articles", tmp_path / "articles")
        shutil.copytree(pristine / "index", mnt / "index")
        settings = IndexSettings(articles_dir=tmp_path / "articles", index_dir=mnt / "index")
        (settings.articles_dir / "new.txt").write_text("A new article\nIt says something new.")
        before = listing(mnt)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, timeout=30)

        with pytest.raises(IndexFolderError, match="Read-only file system"):
            rebuild(settings, lambda: memo, full=True)
        monkeypatch.setattr("index.cli.load_embedder", lambda *args: memo)
        result = run_cli("index", "rebuild", "--source", str(settings.articles_dir),
                         "--index", str(settings.index_dir))  # fmt: skip
        assert "Read-only file system" in assert_one_line_error(
            result.stderr, result.exit_code, "cannot use the index folder"
        )
        assert listing(mnt) == before
        stored = open_current(settings.index_dir)  # readers need no write access
        try:
            assert Searcher(stored, memo).search(QUESTION)[0].article_id == "bread.txt"
        finally:
            stored.close()


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of `folder` up to `leave` free bytes."""
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(shutil.disk_usage(folder).free - leave, 0))
    return filler


@pytest.mark.parametrize("leave", [0, 12 * 1024, 48 * 1024])  # fails in numpy, in SQLite
def test_full_disk(pristine: Path, tmp_path: Path, memo, monkeypatch, leave: int):
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        shutil.copytree(pristine / "articles", tmp_path / "articles")
        shutil.copytree(pristine / "index", mnt / "index")
        settings = IndexSettings(articles_dir=tmp_path / "articles", index_dir=mnt / "index")
        published = current_version_name(settings.index_dir)
        before = listing(settings.index_dir)
        filler = _fill(mnt, leave)

        with pytest.raises(IndexFolderError, match="still served") as caught:
            rebuild(settings, lambda: memo, full=True)
        assert "space" in str(caught.value) or "full" in str(caught.value), caught.value
        assert listing(settings.index_dir) == before, "nothing left behind"
        assert_serves(settings, memo)

        monkeypatch.setattr("index.cli.load_embedder", lambda *args: memo)
        result = run_cli("index", "rebuild", "--full", "--source", str(settings.articles_dir),
                         "--index", str(settings.index_dir))  # fmt: skip
        assert_one_line_error(result.stderr, result.exit_code, "cannot write the index in")
        assert listing(settings.index_dir) == before
        assert current_version_name(settings.index_dir) == published

        filler.unlink()  # space again: the next rebuild works
        report = rebuild(settings, lambda: memo, full=True)
        assert report.published and report.version != published
        assert_serves(settings, memo)


# ---------------------------------------------------------------- readers and retention


READER = """
import sys, time
from pathlib import Path
import numpy as np
from index.store import open_current

root = Path(sys.argv[1])
mode = sys.argv[2]

def use(stored):
    vec = np.ascontiguousarray(stored.vectors[:1])
    _, ids = stored.dense.search(vec, 2)
    meta = stored.chunk_rows([int(i) for i in ids[0] if i >= 0])
    assert meta and all(m["text"] for m in meta.values())
    assert stored.lexical.scores("sourdough starter") is not None

if mode == "hold":
    stored = open_current(root)
    print("ready", stored.version, flush=True)
    sys.stdin.readline()
    use(stored)
    print("ok", flush=True)
else:
    deadline = time.monotonic() + float(mode)
    reads = failures = 0
    while time.monotonic() < deadline:
        try:
            stored = open_current(root)
            try:
                use(stored)
                time.sleep(0.002)
                use(stored)
            finally:
                stored.close()
            reads += 1
        except Exception as exc:
            failures += 1
            print("failure", type(exc).__name__, exc, file=sys.stderr, flush=True)
    print(reads, failures, flush=True)
"""


def start_reader(root: Path, mode: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", READER, str(root), mode],
        cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def add_article(settings: IndexSettings, i: int) -> None:
    (settings.articles_dir / f"note{i}.txt").write_text(f"Note {i}\nThe harbour note {i}.")


def test_retention_keeps_a_version_another_process_reads(copy: IndexSettings, memo):
    settings = copy.model_copy(update={"keep_versions": 1})
    reader = start_reader(settings.index_dir, "hold", settings.index_dir.parent)
    try:
        line = reader.stdout.readline().split()
        assert line[:1] == ["ready"], reader.stderr.read()
        held = line[1]
        versions = []
        for i in range(2):
            add_article(settings, i)
            report = rebuild(settings, lambda: memo)
            assert report.published
            versions.append(report.version)
        names = [p.name for p in published_versions(settings.index_dir)]
        assert names == [held, versions[1]], "the held version stays, the unheld one goes"
        out, err = reader.communicate("go\n", timeout=60)
        assert out.split() == ["ok"] and reader.returncode == 0, err
    finally:
        reader.kill()
        reader.wait(30)
    add_article(settings, 2)
    latest = rebuild(settings, lambda: memo).version
    assert [p.name for p in published_versions(settings.index_dir)] == [latest]


def test_keep_one_version_readers_never_fail_during_rebuilds(copy: IndexSettings, memo):
    settings = copy.model_copy(update={"keep_versions": 1})
    reader = start_reader(settings.index_dir, "6", settings.index_dir.parent)
    try:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 4:
            add_article(settings, i)
            assert rebuild(settings, lambda: memo).published
            i += 1
        out, err = reader.communicate(timeout=120)
    finally:
        reader.kill()
        reader.wait(30)
    reads, failures = (int(x) for x in out.split())
    assert failures == 0, err
    assert reads > 20 and i >= 3, (reads, i)
    # a version still being read at the last rebuild is kept; the next one removes it
    assert not rebuild(settings, lambda: memo).published
    assert len(published_versions(settings.index_dir)) == 1


def test_live_index_keeps_serving_when_a_new_version_is_damaged(copy: IndexSettings, memo, caplog):
    settings = copy.model_copy(update={"keep_versions": 1})
    live = LiveIndex(settings.index_dir, lambda: memo, poll_seconds=3600)
    first = live.get()
    add_article(settings, 0)
    second = rebuild(settings, lambda: memo).version
    assert (versions_dir(settings.index_dir) / first.version).is_dir(), "held: not deleted"
    _flip(versions_dir(settings.index_dir) / second / "dense.faiss")

    with caplog.at_level(logging.ERROR, logger="index.live"):
        for _ in range(3):
            assert live.get(force_check=True) is first
            assert first.search(QUESTION)[0].article_id == "bread.txt"
    errors = [r.getMessage() for r in caplog.records if r.name == "index.live"]
    assert len(errors) == 1 and "dense.faiss" in errors[0] and first.version in errors[0]

    (settings.index_dir / "CURRENT").write_bytes(b"\xff\xfe garbage")
    assert live.get(force_check=True) is first

    report = rebuild(settings, lambda: memo)  # heals: a plain rebuild starts afresh
    assert report.published and report.full
    third = live.get(force_check=True)
    assert third is not first and third.version == report.version
    assert third.search("lava fountains", k=1)[0].article_id == "volcano.txt"
    assert (versions_dir(settings.index_dir) / first.version).is_dir()
    del first  # the last reference: its lock goes with it, so the next rebuild may delete it
    gc.collect()
    add_article(settings, 1)
    latest = rebuild(settings, lambda: memo).version
    names = [p.name for p in published_versions(settings.index_dir)]
    assert names == [third.version, latest], "only the version `live` still serves is kept"
    assert live.get(force_check=True).version == latest
    del third
    gc.collect()
    assert not rebuild(settings, lambda: memo).published
    assert [p.name for p in published_versions(settings.index_dir)] == [latest]
    leftovers = [p for p in versions_dir(settings.index_dir).iterdir() if p.name[0] == "."]
    assert not leftovers


def test_a_damaged_index_with_nothing_to_fall_back_on_raises(copy: IndexSettings, memo):
    _corrupt(file_path(copy, "meta.sqlite"))
    with pytest.raises(IndexDamaged, match=r"meta\.sqlite"):
        LiveIndex(copy.index_dir, lambda: memo).get()


def test_verify_command_reads_every_checksum(copy: IndexSettings, monkeypatch):
    """`index verify` is the cron-able full check for indexes too large to hash on open."""
    from index import store

    monkeypatch.setattr(store, "FULL_CHECK_BYTES", 0)
    env = {"INDEX_DIR": str(copy.index_dir)}
    ok = run_cli("index", "verify", "--json", env=env)
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["ok"] is True and data["files"] >= 5 and data["bytes"] > 0
    _flip(file_path(copy, "vectors.npy"))  # same size: an ordinary open does not see it
    bad = run_cli("index", "verify", env=env)
    assert_one_line_error(bad.stderr, bad.exit_code, "index damaged: ")
    assert "vectors.npy" in bad.stderr and "rebuild --full" in bad.stderr

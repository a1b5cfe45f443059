"""A folder of hostile and broken files next to good articles, loaded and really rebuilt.

Every kind of file that once hung a rebuild, exhausted memory, aborted it or leaked a file from
outside the folder is built here by the test itself, beside good articles: every good article
must be indexed, every bad file reported exactly once with its reason, nothing may block
(each test has a timeout) and memory stays bounded however large the files claim to be.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from index.articles import load_articles
from index.models import Skipped

REPO = Path(__file__).resolve().parents[2]
MB = 1_000_000
PARAGRAPH = (
    "The harbour lights were switched on again on Tuesday evening after a winter of repairs, "
    "and a small crowd gathered on the pier to watch the lamps come on one by one."
)


@dataclass
class Corpus:
    root: Path
    good: set[str] = field(default_factory=set)  # article ids expected in the index
    bad: list[Skipped] = field(default_factory=list)  # expected reports, in any order

    def file(self, rel: str | bytes, content: str | bytes) -> Path:
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def _path(self, rel: str | bytes) -> Path:
        if isinstance(rel, bytes):  # a name that is not UTF-8 needs the bytes API
            return Path(os.fsdecode(os.fsencode(self.root) + b"/" + rel))
        return self.root / rel

    def link(self, rel: str, target: str | Path) -> None:
        os.symlink(target, self.root / rel)

    def expect(self, path: str, reason: str, line: int | None = None) -> None:
        self.bad.append(Skipped(path=path, reason=reason, line=line))


def article(title: str) -> str:
    return f"{title}\n{PARAGRAPH}\n"


def build_corpus(root: Path, *, large: bool) -> Corpus:
    """Good articles and at least 25 kinds of bad file; `large`: hazards at full size."""
    c = Corpus(root)
    root.mkdir(parents=True, exist_ok=True)

    # --- good articles, some in unusual but legitimate shapes
    c.file("good.txt", article("Harbour lights return"))
    c.file("good.md", f"---\ntitle: Ferry times\nid: ferry-1\n---\n{PARAGRAPH}\n")
    c.file("good.html", f"<html><head><title>Pier</title></head><body><p>{PARAGRAPH}</p>")
    c.file("good.json", json.dumps([{"id": 7, "text": PARAGRAPH}, {"text": PARAGRAPH}]))
    c.file("utf16.txt", article("Windows Notepad export").encode("utf-16"))
    c.file("x.txt/inner.txt", article("A folder named like a file is just a folder"))
    c.file("c#sharp.txt", article("A name with a hash"))
    c.file("/".join(["n"] * 300) + "/leaf.txt", article("Three hundred folders deep"))
    c.link("alias.txt", "good.txt")  # a link that stays inside the folder
    c.link("inner-link.md", "x.txt/inner.txt")
    line_words = 150_000 if large else 3_000
    one_line = " ".join(f"word{i % 97}" for i in range(line_words))
    c.file("one-line.txt", one_line)  # a megabyte with no line break: short title, all text
    spaces = " " * (4 * MB if large else 100_000)
    c.file("spaces.txt", f"Spaces\nA{spaces}B\n")  # once quadratic in the text cleaning
    c.good |= {
        "good.txt", "good.md#ferry-1", "good.html", "good.json#7", "good.json:2", "utf16.txt",
        "x.txt/inner.txt", "c%23sharp.txt", "/".join(["n"] * 300) + "/leaf.txt", "alias.txt",
        "inner-link.md", "one-line.txt", "spaces.txt", "mixed.jsonl:1", "ids.jsonl#a",
    }  # fmt: skip

    # --- things that are not regular files, or lead out of the folder
    os.mkfifo(root / "fifo.txt")
    c.expect("fifo.txt", "not a regular file (FIFO)")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(os.path.relpath(root / "socket.md"))  # relative: AF_UNIX paths are short
    c.expect("socket.md", "not a regular file (socket)")
    try:
        os.mknod(root / "device.txt", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    except OSError:
        pass  # not root, or no CAP_MKNOD here: the kind is covered by the link below
    else:
        c.expect("device.txt", "not a regular file (character device)")
    c.link("zero.txt", "/dev/zero")
    c.expect("zero.txt", "link points outside the articles folder")
    c.link("passwd.txt", "/etc/passwd")
    c.expect("passwd.txt", "link points outside the articles folder")
    c.link("etc", "/etc")
    c.expect("etc", "link points outside the articles folder")
    c.link("up", ".")
    c.expect("up", "link to a folder, not followed (its files are indexed where they are)")
    c.link("dangling.txt", "nowhere.txt")
    c.expect("dangling.txt", "broken link: its target does not exist")
    c.link("loop.txt", "loop.txt")
    c.expect("loop.txt", "link loop: too many levels of links")
    with open(root / "huge.txt", "wb") as handle:  # sparse: 50 MB claimed, nothing on disk
        handle.truncate(50 * MB)
    c.expect("huge.txt", "file is 50.0 MB, over MAX_ARTICLE_BYTES (5.0 MB)")
    if os.geteuid() != 0:  # root reads anything
        locked = c.file("locked.txt", article("Locked"))
        locked.chmod(0)
        c.expect("locked.txt", "cannot read file: Permission denied")

    # --- names that cannot become ids
    c.file(b"latin-\xe9t\xe9.txt", article("Named in Latin-1"))
    c.expect(
        "latin-\\xe9t\\xe9.txt", "file name is not valid UTF-8 (byte 0xe9): rename it to index it"
    )
    c.file("clear\x1b[2J.txt", article("Escape in the name"))
    c.expect(
        "clear\\u001b[2J.txt",
        "file name contains a control character (U+001B): rename it to index it",
    )
    c.file(b"dir-\xff/inside.txt", article("In a folder whose name is not UTF-8"))
    c.expect("dir-\\xff", "folder name is not valid UTF-8 (byte 0xff): its files are not indexed")

    # --- contents
    c.file("empty.txt", b"")
    c.expect("empty.txt", "empty file")
    c.file("bom-only.md", b"\xef\xbb\xbf")
    c.expect("bom-only.md", "empty file (only whitespace)")
    c.file("binary.txt", b"GIF89a\x00\x01\x02")
    c.expect("binary.txt", "binary file")
    c.file("utf16-no-bom.txt", "Title\nBody".encode("utf-16-le"))
    c.expect("utf16-no-bom.txt", "binary file")
    c.file("cut-utf16.txt", b"\xff\xfe" + "Ti".encode("utf-16-le") + b"\x00\xd8")
    c.expect("cut-utf16.txt", "not valid UTF-16 text (at byte offset 6)")
    c.file("latin1.txt", b"Title\nna\xefve\n")
    c.expect("latin1.txt", "not valid UTF-8 text (byte 0xef at offset 8)")
    c.file("deep.json", "[" * 1_500 + "]" * 1_500)
    c.expect("deep.json", "invalid JSON: nested too deeply")
    c.file("deep-object.json", '{"text": "t", "x": ' + '{"a": ' * 5_000 + "1" + "}" * 5_001)
    c.expect("deep-object.json", "invalid JSON: nested too deeply")
    c.file("long-number.json", '{"text": "t", "n": ' + "9" * 5_000 + "}")
    c.expect("long-number.json", "invalid JSON: a number too long to read")
    c.file("scalar.json", "42")
    c.expect("scalar.json", "JSON must hold an object or a list of objects")
    c.file("broken.json", '{"text": ')
    c.expect("broken.json", "invalid JSON: Expecting value", 1)
    c.file("text-object.json", json.dumps([{"text": {"nested": "no"}}]))
    c.expect("text-object.json", "record 1: record's 'text' is a JSON object, not a string")
    mixed = [
        json.dumps({"text": PARAGRAPH}),
        "[" * 1_500 + "]" * 1_500,
        '{"text": NaN}',
        json.dumps({"id": "x" * 300, "text": "t"}),
    ]
    c.file("mixed.jsonl", "\n".join(mixed) + "\n")
    c.expect("mixed.jsonl", "invalid JSON: nested too deeply", 2)
    c.expect("mixed.jsonl", "record's 'text' is a JSON number, not a string", 3)
    c.expect("mixed.jsonl", "record's 'id' is too long (300 characters, over 256)", 4)
    c.file("ids.jsonl", '{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n')
    c.expect("ids.jsonl", "duplicate id 'a' (first used on line 1)", 2)
    c.file("bad-yaml.md", "---\ntitle: fine\nkey: : x\n---\nBody.\n")
    c.expect(
        "bad-yaml.md", "invalid front matter: mapping values are not allowed in this context", 3
    )
    c.file("deep-yaml.md", "---\ntitle: " + "[" * 5_000 + "]" * 5_000 + "\n---\nBody.\n")
    c.expect("deep-yaml.md", "invalid front matter: exceeded maximum nesting depth", 2)
    c.file("open.md", "---\ntitle: never closed\n\nBody.\n")
    c.expect("open.md", "invalid front matter: no closing '---' line")
    c.file("meta-only.md", "---\ntitle: Nothing below\n---\n")
    c.expect("meta-only.md", "no text")
    c.file("blank.html", "<html><head><title>Nothing</title></head><body></body></html>")
    c.expect("blank.html", "no article text found in HTML")
    return c


def key(s: Skipped) -> tuple[str, int | None]:
    return s.path, s.line


def assert_reported_once(skipped: list[Skipped], corpus: Corpus) -> None:
    counts = Counter(key(s) for s in skipped)
    assert [k for k, n in counts.items() if n > 1] == []
    assert sorted(skipped, key=key) == sorted(corpus.bad, key=key)


@pytest.mark.timeout(120)
def test_every_good_article_is_loaded_and_every_bad_file_reported_once(tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "articles", large=True)
    assert len({s.path for s in corpus.bad}) >= 25

    started = time.perf_counter()
    result = load_articles(corpus.root)
    seconds = time.perf_counter() - started

    assert {a.id for a in result.articles} == corpus.good
    assert_reported_once(result.skipped, corpus)
    for a in result.articles:
        assert len(a.title) <= 200, a.id
        for value in (a.id, a.path, a.title, a.text):
            value.encode("utf-8")  # what the store will do with it
    [one_line] = [a for a in result.articles if a.id == "one-line.txt"]
    assert len(one_line.text) > 900_000 and len(one_line.title) <= 120
    passwd = [a for a in result.articles if "root:" in a.text]
    assert passwd == []
    assert seconds < 60, seconds


@pytest.mark.timeout(60)
def test_files_claiming_to_be_huge_or_endless_are_never_read(tmp_path: Path) -> None:
    root = tmp_path / "articles"
    root.mkdir()
    with open(root / "huge.txt", "wb") as handle:  # sparse: claims 50 MB, holds nothing
        handle.truncate(50 * MB)
    os.mkfifo(root / "fifo.md")
    os.symlink("/dev/zero", root / "zero.txt")
    os.symlink("/dev/urandom", root / "random.txt")
    expected = [
        ("fifo.md", "not a regular file (FIFO)"),
        ("huge.txt", "file is 50.0 MB, over MAX_ARTICLE_BYTES (1.0 MB)"),
        ("random.txt", "link points outside the articles folder"),
        ("zero.txt", "link points outside the articles folder"),
    ]
    try:  # /dev/zero itself inside the folder, where this may make device nodes
        os.mknod(root / "zero-device.txt", stat.S_IFCHR | 0o600, os.makedev(1, 5))
        os.symlink("zero-device.txt", root / "link-to-device.txt")
    except OSError:
        pass
    else:
        expected += [
            ("link-to-device.txt", "not a regular file (character device)"),
            ("zero-device.txt", "not a regular file (character device)"),
        ]
    (root / "ok.txt").write_text(article("Small and fine"))

    tracemalloc.start()
    try:
        result = load_articles(root, max_article_bytes=1 * MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [a.id for a in result.articles] == ["ok.txt"]
    assert sorted((s.path, s.reason) for s in result.skipped) == sorted(expected)
    assert peak < 1 * MB, peak  # nothing of the 50 MB or of the endless devices was read


@pytest.mark.timeout(60)
def test_a_file_over_the_cap_is_not_read_past_it(tmp_path: Path) -> None:
    root = tmp_path / "articles"
    root.mkdir()
    (root / "big.txt").write_text(article("Big") * 20_000)  # about 3.4 MB of real text
    (root / "fits.txt").write_text(article("Fits"))

    tracemalloc.start()
    try:
        result = load_articles(root, max_article_bytes=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert [a.id for a in result.articles] == ["fits.txt"]
    assert [(s.path, s.reason) for s in result.skipped] == [
        ("big.txt", "file is 3.4 MB, over MAX_ARTICLE_BYTES (100,000 bytes)")
    ]
    assert peak < 1 * MB, peak


@pytest.mark.timeout(300)
def test_a_real_rebuild_over_the_corpus(tmp_path: Path, embedder) -> None:
    from index.rebuild import rebuild
    from index.settings import IndexSettings
    from index.store import open_current

    corpus = build_corpus(tmp_path / "articles", large=False)
    settings = IndexSettings(articles_dir=corpus.root, index_dir=tmp_path / "index")

    report = rebuild(settings, lambda: embedder)

    assert report.published
    assert report.articles == report.added == len(corpus.good)
    assert_reported_once(report.skipped, corpus)
    stored = open_current(settings.index_dir)
    try:
        assert {a.id for a in stored.articles()} == corpus.good
    finally:
        stored.close()

    # the CLI's report of the same folder: JSON a program can read, names escaped
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "index", "rebuild", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    data = json.loads(proc.stdout.decode("utf-8"))  # strict UTF-8
    assert data["unchanged"] == len(corpus.good) and data["added"] == 0
    assert_reported_once([Skipped(**s) for s in data["skipped"]], corpus)

"""The article cache: a rebuild that reuses what unchanged files gave must give exactly what
one without it gives, re-read any file whose bytes changed, and survive a damaged cache.

Folders mix every cheap format (txt, md with and without front matter, HTML, JSON, JSONL
with a bad record) with broken files, and a site whose furniture repeats across articles, so
the corpus-level boilerplate step is exercised too.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from test_incremental import HashEmbedder

from index.article_cache import CACHE_FILE, ArticleCache
from index.articles import LoadResult, load_articles
from index.boilerplate import mark_boilerplate
from index.models import Article
from index.rebuild import content_hash, rebuild
from index.settings import IndexSettings
from index.store import open_current

BLURB = "The Valley Courier has covered the county since 1887 and is still family owned."
PITCH = "Please consider supporting our journalism with a donation today."


def _courier(i: int, story: str) -> str:
    return f"Courier story {i}\n\n{story}\n\n{BLURB}\n"


def write_folder(root: Path) -> None:
    files = {
        "plain.txt": "A plain title\n\nThe ferry ran late on Tuesday because of fog.\n",
        "notes.md": "# Harbour notes\n\nThe harbour master counted forty boats.\n",
        "front.md": (
            "---\ntitle: Front matter\nurl: https://example.org/front\ndate: 2024-03-01\n---\n"
            f"The council met on Monday to vote on the budget.\n\n{PITCH}\n"
        ),
        "page.html": (
            "<html><head><title>Library opens</title></head><body><article>"
            "<h1>Library opens</h1><p>The new library opened its doors on Saturday morning "
            "to a queue of readers that stretched around the block.</p><p>The mayor said "
            "the building had cost less than planned and opened two months early.</p>"
            "</article></body></html>"
        ),
        "records.jsonl": (
            '{"id": "r1", "title": "Orchard", "text": "Apples were picked early this year."}\n'
            "{not json\n"
            '{"title": "Quarry", "text": "The quarry closed after ninety years of work."}\n'
        ),
        "list.json": '[{"title": "Vineyard", "text": "The harvest was the largest in years."}]',
        "broken.json": '{"title": "cut off',
        "empty.txt": "   \n",
        "courier/0.txt": _courier(0, "The bridge reopened on Monday after repairs."),
        "courier/1.txt": _courier(1, "Rain is due at the weekend across the valley."),
        "courier/2.txt": _courier(2, "Bus fares rise by ten pence from April."),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "report.pdf").write_bytes(_pdf(["The water board met twice.", "Pipes were laid."]))


def _pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Water board report")
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def load_and_mark(root: Path, cache: ArticleCache | None) -> tuple[list[Article], LoadResult]:
    loaded = load_articles(root, cache=cache)
    return mark_boilerplate(loaded.articles, cache=cache), loaded


def with_cache(
    root: Path, index: Path, *, reuse: bool = True
) -> tuple[list[Article], LoadResult, int]:
    with ArticleCache.open(index, reuse=reuse) as cache:
        marked, loaded = load_and_mark(root, cache)
    return marked, loaded, cache.hits


def assert_same(root: Path, index: Path, *, hits: int | None = None) -> list[Article]:
    expected, expected_loaded = load_and_mark(root, None)
    marked, loaded, found = with_cache(root, index)
    assert marked == expected
    assert loaded.skipped == expected_loaded.skipped
    assert [content_hash(a) for a in marked] == [content_hash(a) for a in expected]
    if hits is not None:
        assert found == hits
    return marked


def test_cached_articles_boilerplate_and_hashes_equal_uncached(tmp_path: Path):
    root, index = tmp_path / "articles", tmp_path / "index"
    write_folder(root)
    index.mkdir()
    marked = assert_same(root, index, hits=0)  # cold: fills the cache
    by_id = {a.id: a for a in marked}
    assert {"broken.json", "empty.txt", "records.jsonl"} <= {
        s.path for s in load_articles(root).skipped
    }
    assert by_id["courier/0.txt"].boilerplate  # the site's blurb was found...
    assert by_id["front.md"].boilerplate  # ...and the pitch
    assert by_id["report.pdf"].pages == (0, by_id["report.pdf"].text.index("Pipes"))
    parsed_files = 10  # all but the two files that fail as a whole
    assert_same(root, index, hits=parsed_files)  # warm: every parse reused
    assert_same(root, index, hits=parsed_files)

    # the repetition signal changes for articles that did not: a courier story loses the
    # blurb, so the site repeats it in two articles only and it is no longer furniture
    (root / "courier/2.txt").write_text("Courier story 2\n\nBus fares rise in April.\n")
    marked = assert_same(root, index, hits=parsed_files - 1)
    assert {a.id: a for a in marked}["courier/0.txt"].boilerplate == ()
    (root / "courier/3.txt").write_text(_courier(3, "The school fete raised a record sum."))
    marked = assert_same(root, index, hits=parsed_files)
    assert {a.id: a for a in marked}["courier/0.txt"].boilerplate
    (root / "plain.txt").unlink()
    assert_same(root, index)


def test_a_file_rewritten_with_the_same_size_and_time_is_read_again(tmp_path: Path):
    root, index = tmp_path / "articles", tmp_path / "index"
    write_folder(root)
    index.mkdir()
    with_cache(root, index)
    path = root / "plain.txt"
    before = path.stat()
    text = path.read_text()
    path.write_text(text.replace("ferry", "train"))  # same length, different bytes
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    marked = assert_same(root, index)
    assert "train ran late" in {a.id: a for a in marked}["plain.txt"].text


def test_a_damaged_cache_costs_only_speed(tmp_path: Path):
    root, index = tmp_path / "articles", tmp_path / "index"
    write_folder(root)
    index.mkdir()
    with_cache(root, index)
    with sqlite3.connect(index / CACHE_FILE) as db:  # rows altered behind the checksums
        db.execute(  # still a BLOB: only the checksum tells
            "UPDATE files SET payload = CAST(replace(CAST(payload AS TEXT), 'ferry', 'FERRY') "
            "AS BLOB)"
        )
        db.execute("UPDATE blocks SET spans = '[[0, 5]]'")  # a TEXT where a BLOB was written
    db.close()
    assert_same(root, index, hits=9)  # the one file whose row was altered is parsed again
    assert_same(root, index, hits=10)  # and the damaged rows were written anew
    (index / CACHE_FILE).write_bytes(b"not a database at all" * 100)
    assert_same(root, index, hits=0)
    assert_same(root, index, hits=10)


def test_a_full_read_ignores_the_cache(tmp_path: Path):
    root, index = tmp_path / "articles", tmp_path / "index"
    write_folder(root)
    index.mkdir()
    with_cache(root, index)
    _, _, hits = with_cache(root, index, reuse=False)
    assert hits == 0
    assert_same(root, index, hits=10)  # the full read wrote it anew


def _stored(settings: IndexSettings) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    stored = open_current(settings.index_dir, checksums=True)
    try:
        articles = stored.articles()
        chunks = [(c.article_id, c.text) for a in articles for c in stored.stored_chunks(a)]
        return [(a.id, a.hash) for a in articles], chunks
    finally:
        stored.close()


def test_an_incremental_rebuild_through_the_cache_equals_a_full_one(tmp_path: Path):
    root = tmp_path / "articles"
    write_folder(root)
    cached = IndexSettings(articles_dir=root, index_dir=tmp_path / "cached")
    assert rebuild(cached, HashEmbedder).published
    assert (cached.index_dir / CACHE_FILE).is_file()
    (root / "courier/2.txt").unlink()  # the blurb stops being furniture in the others
    (root / "notes.md").write_text("# Harbour notes\n\nThe harbour master counted fifty boats.\n")
    report = rebuild(cached, HashEmbedder)
    assert report.removed == 1 and report.updated >= 3  # notes, and the two courier stories
    fresh = IndexSettings(articles_dir=root, index_dir=tmp_path / "fresh")
    assert rebuild(fresh, HashEmbedder, full=True).published
    assert _stored(cached) == _stored(fresh)


@pytest.mark.parametrize("reuse", [True, False])
def test_an_unwritable_cache_does_not_fail_the_read(tmp_path: Path, reuse: bool):
    root = tmp_path / "articles"
    write_folder(root)
    (tmp_path / "index").mkdir()
    (tmp_path / "index" / CACHE_FILE).mkdir()  # a folder where the file should be
    expected, _ = load_and_mark(root, None)
    marked, _, _ = with_cache(root, tmp_path / "index", reuse=reuse)
    assert marked == expected

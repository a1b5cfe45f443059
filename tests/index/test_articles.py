"""Loading the articles folder: every format, and every kind of broken file, reported not raised."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from index.articles import (
    SUPPORTED_SUFFIXES,
    LoadResult,
    load_articles,
    load_file,
    normalise_text,
    normalise_title,
)
from index.models import Article, Skipped

# The repo's sibling `shared/` folder (beside the checkout, locally and in CI).
SEEDS = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
SEED_FILE = "000_39a60bc8d7f6d11b.txt"

HARBOUR_PARAGRAPHS = [
    "The old harbour lights were switched on again on Tuesday evening after a winter of "
    "repairs, and a small crowd gathered on the pier to watch the lamps come on one by one.",
    "Volunteers from the maritime society spent four months replacing corroded brackets, "
    "rewiring each post and repainting the iron columns in their original dark green.",
    "The work was paid for by a community fund, and the organisers say the lights will stay "
    "on every night until midnight for the whole of the summer season.",
]

HARBOUR_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Harbour lights return | Coastal Gazette</title>
  <link rel="canonical" href="https://news.example.org/2021/harbour-lights">
  <meta name="date" content="2021-05-04">
</head>
<body>
  <nav><a href="/">Home</a> <a href="/weather">Weather</a> <a href="/about">About us</a></nav>
  <article>
    <h1>Harbour lights return</h1>
    {paragraphs}
  </article>
  <footer>All rights reserved by the Coastal Gazette.</footer>
</body>
</html>
"""


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    return path


def only_article(result: LoadResult) -> Article:
    assert result.skipped == []
    assert len(result.articles) == 1
    return result.articles[0]


def only_skipped(result: LoadResult) -> Skipped:
    assert result.articles == []
    assert len(result.skipped) == 1
    return result.skipped[0]


# --- the seed article -------------------------------------------------------------------------


@pytest.mark.skipif(not (SEEDS / SEED_FILE).is_file(), reason="shared/seeds not beside the repo")
def test_seed_article() -> None:
    articles, skipped = load_file(SEEDS / SEED_FILE, SEEDS)

    assert skipped == []
    [article] = articles
    assert article.title == (
        "Vladimir Putin was 'really clear' with Obama when confronted over US election hack"
    )
    assert "cut it out" in article.text
    assert not article.text.startswith("Vladimir Putin was 'really clear'")
    assert article.id == article.path == article.source == SEED_FILE
    assert article.url is None
    assert article.text == normalise_text(article.text)


# --- plain text -------------------------------------------------------------------------------


def test_txt_title_and_body_keep_line_structure(tmp_path: Path) -> None:
    write(
        tmp_path, "a.txt", "\n\n  Tide tables  \nFirst line of body.\nSecond line.\n\nNew para.\n"
    )

    article = only_article(load_articles(tmp_path))

    assert article.title == "Tide tables"
    assert article.text == "First line of body.\nSecond line.\n\nNew para."
    assert (article.id, article.path, article.source) == ("a.txt", "a.txt", "a.txt")
    assert article.url is None and article.date is None


def test_txt_with_only_a_title_uses_it_as_text(tmp_path: Path) -> None:
    write(tmp_path, "short.txt", "Just a headline\n\n")

    article = only_article(load_articles(tmp_path))

    assert article.title == article.text == "Just a headline"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    write(tmp_path, "bom.txt", b"\xef\xbb\xbfCaf\xc3\xa9 opening\nNew caf\xc3\xa9 on the quay.\n")

    article = only_article(load_articles(tmp_path))

    assert article.title == "Café opening"
    assert article.text == "New café on the quay."


# --- normalisation ----------------------------------------------------------------------------


def test_normalise_text() -> None:
    raw = "  One\r\ntwo\x00 \x07\t \rthree\n\n\n\n\nfour\x1b\u2028\tfive   \ufeff\n\n"
    assert normalise_text(raw) == "One\ntwo\nthree\n\nfour\u2028\tfive"


def test_normalise_text_composes_unicode_and_is_idempotent() -> None:
    decomposed = "Cafe\u0301 cre\x00\u0300me"
    once = normalise_text(decomposed)
    assert once == "Café crème"
    assert normalise_text(once) == once


def test_normalise_title_is_one_line() -> None:
    assert normalise_title("  A\ttitle\r\n over\x00 two lines ") == "A title over two lines"


def test_crlf_and_control_characters_in_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "win.txt",
        "Windows\x0c title\r\nline one  \r\nline\x01 two\r\n\r\n\r\n\r\nend\r\n",
    )

    article = only_article(load_articles(tmp_path))

    assert article.title == "Windows title"
    assert article.text == "line one\nline two\n\nend"


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_front_matter(tmp_path: Path) -> None:
    write(
        tmp_path,
        "posts/ferry.md",
        "---\n"
        "title: Ferry timetable changes\n"
        "url: https://blog.example.com/ferry\n"
        "date: 2023-02-01\n"
        "---\n"
        "# Not the title\n\nFrom March the *early* ferry leaves at 6:40.\n",
    )

    article = only_article(load_articles(tmp_path))

    assert article.title == "Ferry timetable changes"
    assert article.url == article.source == "https://blog.example.com/ferry"
    assert article.date == "2023-02-01"  # YAML parsed a date; stored as ISO text
    assert article.id == article.path == "posts/ferry.md"
    assert article.text == "# Not the title\n\nFrom March the *early* ferry leaves at 6:40."


def test_markdown_front_matter_id_is_the_article_id(tmp_path: Path) -> None:
    write(tmp_path, "x.markdown", "---\nid: 1234\n---\nSome body text.\n")

    article = only_article(load_articles(tmp_path))

    assert article.id == "1234"
    assert article.path == "x.markdown"
    assert article.title == "Some body text."  # no heading: the first line


def test_markdown_heading_is_the_title_without_front_matter(tmp_path: Path) -> None:
    write(tmp_path, "garden.md", "Intro line first.\n\n## Growing beans ##\n\nSow in May.\n")

    article = only_article(load_articles(tmp_path))

    assert article.title == "Growing beans"
    assert article.text.startswith("Intro line first.")


def test_markdown_malformed_front_matter_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "bad.md", "---\ntitle: fine\nkey: : x\n---\nBody.\n")

    skipped = only_skipped(load_articles(tmp_path))

    assert skipped == Skipped(
        path="bad.md",
        reason="invalid front matter: mapping values are not allowed in this context",
        line=3,
    )


def test_markdown_unclosed_front_matter_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "open.md", "---\ntitle: never closed\n\nBody.\n")

    skipped = only_skipped(load_articles(tmp_path))

    assert skipped.reason == "invalid front matter: no closing '---' line"


def test_markdown_with_only_front_matter_has_no_text(tmp_path: Path) -> None:
    write(tmp_path, "meta.md", "---\ntitle: Nothing below\n---\n\n")

    assert only_skipped(load_articles(tmp_path)).reason == "no text"


# --- HTML -------------------------------------------------------------------------------------


def test_html_canonical_url_title_and_date(tmp_path: Path) -> None:
    paragraphs = "\n    ".join(f"<p>{p}</p>" for p in HARBOUR_PARAGRAPHS)
    write(tmp_path, "web/harbour.html", HARBOUR_HTML.format(paragraphs=paragraphs))

    article = only_article(load_articles(tmp_path))

    assert article.title == "Harbour lights return"
    assert article.url == article.source == "https://news.example.org/2021/harbour-lights"
    assert article.date == "2021-05-04"
    assert article.id == article.path == "web/harbour.html"
    for paragraph in HARBOUR_PARAGRAPHS:
        assert paragraph in article.text
    assert "Weather" not in article.text  # navigation is boilerplate
    assert not article.text.startswith("Harbour lights return")  # the <h1> is the title
    assert article.text == normalise_text(article.text)


def test_html_declared_charset_is_honoured(tmp_path: Path) -> None:
    body = " ".join(HARBOUR_PARAGRAPHS) + " Le café du port est très apprécié."
    page = (
        '<html><head><meta charset="iso-8859-1"><title>Port café</title></head>'
        f"<body><article><p>{body}</p></article></body></html>"
    )
    write(tmp_path, "latin.htm", page.encode("iso-8859-1"))

    article = only_article(load_articles(tmp_path))

    assert article.title == "Port café"
    assert "très apprécié" in article.text
    assert article.url is None and article.source == "latin.htm"


def test_html_without_text_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, "blank.html", "<html><head><title>Nothing</title></head><body></body></html>")

    skipped = only_skipped(load_articles(tmp_path))

    assert skipped == Skipped(path="blank.html", reason="no article text found in HTML")


# --- JSON and JSONL ---------------------------------------------------------------------------


def test_json_single_record(tmp_path: Path) -> None:
    record = {"title": "Lighthouse keeper", "text": "She kept the light for 30 years.", "url": None}
    write(tmp_path, "one.json", json.dumps(record))

    article = only_article(load_articles(tmp_path))

    assert article.id == article.path == article.source == "one.json"
    assert article.title == "Lighthouse keeper"
    assert article.url is None


def test_json_list_ids_titles_and_bad_records(tmp_path: Path) -> None:
    long_first_line = "word " * 60
    records = [
        {"id": 7, "title": "Seven", "text": "Text seven.", "url": "https://e.example/7"},
        {"text": "No title here.\nSecond line.", "date": "2020-01-01"},
        "not an object",
        {"title": "No text"},
        {"text": long_first_line + "\nrest"},
    ]
    write(tmp_path, "many.json", json.dumps(records, indent=2))

    result = load_articles(tmp_path)

    assert [a.id for a in result.articles] == ["7", "many.json:2", "many.json:5"]
    seven, untitled, long_title = result.articles
    assert seven.source == seven.url == "https://e.example/7"
    assert untitled.title == "No title here."
    assert untitled.date == "2020-01-01"
    assert untitled.source == "many.json"
    assert len(long_title.title) <= 120
    assert long_title.title.startswith("word word")
    assert [(s.path, s.reason, s.line) for s in result.skipped] == [
        ("many.json", "record 3: record is a JSON string, not an object", None),
        ("many.json", "record 4: record has no 'text'", None),
    ]


@pytest.mark.parametrize("key", ["articles", "records", "data"])
def test_json_object_holding_a_list(tmp_path: Path, key: str) -> None:
    write(tmp_path, "wrapped.json", json.dumps({"source": "dump", key: [{"text": "Only one."}]}))

    article = only_article(load_articles(tmp_path))

    assert article.id == "wrapped.json:1"
    assert article.text == article.title == "Only one."


def test_json_that_does_not_parse(tmp_path: Path) -> None:
    write(tmp_path, "broken.json", '{\n  "text": "a",\n  oops\n}')

    skipped = only_skipped(load_articles(tmp_path))

    assert skipped.path == "broken.json"
    assert skipped.reason.startswith("invalid JSON: ")
    assert skipped.line == 3


def test_json_scalar_top_level(tmp_path: Path) -> None:
    write(tmp_path, "num.json", "42")

    reason = only_skipped(load_articles(tmp_path)).reason

    assert reason == "JSON must hold an object or a list of objects"


def test_jsonl_malformed_line_loses_only_that_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "title": "Alpha", "text": "First record."}),
        "",
        '{"id": "b", "title": "Broken", "text": "never closed"',
        json.dumps({"title": "Gamma", "text": "Third record.\r\nWith CRLF inside."}),
        json.dumps([1, 2]),
        json.dumps({"id": "d", "text": 5}),
        "   ",
        json.dumps({"id": "e", "text": "Line separator\u2028inside a string."}, ensure_ascii=False),
    ]
    write(tmp_path, "feed.jsonl", "\r\n".join(lines) + "\r\n")

    result = load_articles(tmp_path)

    assert [a.id for a in result.articles] == ["a", "feed.jsonl:4", "e"]
    assert result.articles[1].text == "Third record.\nWith CRLF inside."
    assert result.articles[2].text == "Line separator\u2028inside a string."
    assert [(s.path, s.line) for s in result.skipped] == [
        ("feed.jsonl", 3),
        ("feed.jsonl", 5),
        ("feed.jsonl", 6),
    ]
    assert result.skipped[0].reason.startswith("invalid JSON: ")
    assert result.skipped[1].reason == "record is a JSON array, not an object"
    assert result.skipped[2].reason == "record's 'text' is a JSON number, not a string"


def test_jsonl_blank_text_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "x.jsonl", json.dumps({"text": " \n\x00 "}) + "\n")

    skipped = only_skipped(load_articles(tmp_path))

    assert (skipped.reason, skipped.line) == ("no text", 1)


# --- duplicates -------------------------------------------------------------------------------


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.jsonl", json.dumps({"id": "x", "text": "first"}) + "\n")
    write(
        tmp_path,
        "b/c.jsonl",
        "\n".join(
            json.dumps({"id": i, "text": t}) for i, t in [("y", "y1"), ("x", "2"), ("y", "3")]
        ),
    )

    result = load_articles(tmp_path)

    assert [(a.id, a.text) for a in result.articles] == [("x", "first"), ("y", "y1")]
    assert result.skipped == [
        Skipped("b/c.jsonl", "duplicate article id 'x' (first seen in a.jsonl)", 2),
        Skipped("b/c.jsonl", "duplicate article id 'y' (first seen in b/c.jsonl)", 3),
    ]


def test_load_file_dedupes_within_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n')

    articles, skipped = load_file(path, tmp_path)

    assert [a.text for a in articles] == ["a"]
    assert skipped == [Skipped("d.jsonl", "duplicate article id '1' (first seen in d.jsonl)", 2)]


# --- broken files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("binary.txt", b"GIF89a\x00\x01\x02\x03 not text", "binary file"),
        ("utf16.md", "Title\nBody".encode("utf-16"), "binary file"),
        (
            "latin1.txt",
            b"Title\nna\xefve caf\xe9\n",
            "not valid UTF-8 text (byte 0xef at offset 8)",
        ),
        ("bom-latin1.txt", b"\xef\xbb\xbfT\n\xff", "not valid UTF-8 text (byte 0xff at offset 5)"),
        ("empty.txt", b"", "empty file"),
        ("empty.html", b"", "empty file"),
        ("spaces.txt", b" \n\t\r\n  ", "empty file (only whitespace)"),
        ("spaces.jsonl", b"\n\n", "empty file (only whitespace)"),
        ("controls.txt", b"\x01\x02\n\x1b", "no text"),
    ],
)
def test_broken_files_are_reported_not_raised(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    write(tmp_path, name, content)

    assert only_skipped(load_articles(tmp_path)) == Skipped(path=name, reason=reason)


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    # A folder named like an article: reading it fails with an OSError, as a locked file would.
    (tmp_path / "folder.txt").mkdir()
    write(tmp_path, "ok.txt", "Fine\nbody")

    articles, skipped = load_file(tmp_path / "folder.txt", tmp_path)

    assert articles == []
    [entry] = skipped
    assert entry.path == "folder.txt"
    assert entry.reason.startswith("cannot read file: ")


def test_skips_are_logged_as_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "bin.txt", b"\x00\x00")

    with caplog.at_level(logging.WARNING, logger="index.articles"):
        load_articles(tmp_path)

    assert any(
        r.levelno == logging.WARNING and "bin.txt" in r.getMessage() and "binary" in r.getMessage()
        for r in caplog.records
    )


def test_one_bad_file_does_not_stop_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "A\nalpha")
    write(tmp_path, "b.txt", b"\x00")
    write(tmp_path, "c.md", "# C\ngamma")

    result = load_articles(tmp_path)

    assert [a.id for a in result.articles] == ["a.txt", "c.md"]
    assert [s.path for s in result.skipped] == ["b.txt"]


# --- the walk ---------------------------------------------------------------------------------


def test_nested_folders_give_stable_sorted_ids(tmp_path: Path) -> None:
    for rel in ["z.txt", "b/2.txt", "a/deep/er/x.TXT", "a/1.txt", "b/10.txt", "a.txt"]:
        write(tmp_path, rel, f"Title of {rel}\nBody of {rel}")

    first = load_articles(tmp_path)
    second = load_articles(tmp_path)

    ids = [a.id for a in first.articles]
    assert ids == ["a.txt", "z.txt", "a/1.txt", "a/deep/er/x.TXT", "b/10.txt", "b/2.txt"]
    assert first == second
    assert all(a.path == a.id == a.source for a in first.articles)


def test_hidden_and_unsupported_files_are_ignored_silently(tmp_path: Path) -> None:
    write(tmp_path, "keep.txt", "Kept\nbody")
    write(tmp_path, ".hidden.txt", b"\x00 would be skipped if read")
    write(tmp_path, ".git/objects/a.txt", "Not an article\nbody")
    write(tmp_path, "sub/.cache/b.md", "# Nope")
    write(tmp_path, "notes.pdf", b"%PDF-1.4\x00\x00")
    write(tmp_path, "README", "no suffix")
    write(tmp_path, "image.png", b"\x89PNG\x00")

    result = load_articles(tmp_path)

    assert [a.id for a in result.articles] == ["keep.txt"]
    assert result.skipped == []


def test_root_inside_a_hidden_folder_is_still_walked(tmp_path: Path) -> None:
    root = tmp_path / ".articles"
    write(root, "a.txt", "A\nbody")

    assert [a.id for a in load_articles(root).articles] == ["a.txt"]


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_articles(tmp_path / "nope")


def test_root_that_is_a_file_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "A\nbody")

    with pytest.raises(NotADirectoryError, match="is not a folder"):
        load_articles(path)


def test_empty_root(tmp_path: Path) -> None:
    assert load_articles(tmp_path) == LoadResult(articles=[], skipped=[])


def test_load_file_rejects_a_path_outside_root(tmp_path: Path) -> None:
    path = write(tmp_path, "outside.txt", "A\nbody")

    with pytest.raises(ValueError, match="not inside"):
        load_file(path, tmp_path / "elsewhere")


def test_load_file_ignores_unsupported_types(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "a,b\n1,2")

    assert load_file(path, tmp_path) == ([], [])


def test_supported_suffixes() -> None:
    expected = {".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl"}
    assert expected == SUPPORTED_SUFFIXES

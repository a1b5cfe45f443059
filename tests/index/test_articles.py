"""Loading the articles folder: every format, and every kind of broken file, reported not raised."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from index.articles import (
    DEFAULT_MAX_ARTICLE_BYTES,
    DEFAULT_MAX_TITLE_CHARS,
    SUPPORTED_SUFFIXES,
    LoadResult,
    cap_title,
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


def test_markdown_front_matter_id_is_namespaced_by_the_file(tmp_path: Path) -> None:
    write(tmp_path, "x.markdown", "---\nid: 1234\n---\nSome body text.\n")

    article = only_article(load_articles(tmp_path))

    assert article.id == "x.markdown#1234"
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

    assert [a.id for a in result.articles] == ["many.json#7", "many.json:2", "many.json:5"]
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

    assert [a.id for a in result.articles] == ["feed.jsonl#a", "feed.jsonl:4", "feed.jsonl#e"]
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


def test_ids_are_per_file_and_duplicates_within_a_file_keep_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.jsonl", json.dumps({"id": "x", "text": "first"}) + "\n")
    write(
        tmp_path,
        "b/c.jsonl",
        "\n".join(
            json.dumps({"id": i, "text": t}) for i, t in [("y", "y1"), ("x", "2"), ("y", "3")]
        ),
    )
    records = [{"id": "z", "text": "one"}, {"text": "two"}, {"id": "z", "text": "three"}]
    write(tmp_path, "d.json", json.dumps(records))

    result = load_articles(tmp_path)

    assert [(a.id, a.text) for a in result.articles] == [
        ("a.jsonl#x", "first"),
        ("d.json#z", "one"),
        ("d.json:2", "two"),
        ("b/c.jsonl#y", "y1"),
        ("b/c.jsonl#x", "2"),
    ]
    assert result.skipped == [
        Skipped("d.json", "record 3: duplicate id 'z' (first used by record 1)"),
        Skipped("b/c.jsonl", "duplicate id 'y' (first used on line 1)", 3),
    ]


def test_load_file_dedupes_within_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "d.jsonl", '{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n')

    articles, skipped = load_file(path, tmp_path)

    assert [a.text for a in articles] == ["a"]
    assert skipped == [Skipped("d.jsonl", "duplicate id '1' (first used on line 1)", 2)]


# --- broken files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("binary.txt", b"GIF89a\x00\x01\x02\x03 not text", "binary file"),
        ("utf16-no-bom.md", "Title\nBody".encode("utf-16-le"), "binary file"),
        (
            "bad-utf16.txt",
            b"\xff\xfe" + "Title".encode("utf-16-le") + b"\x00\xd8",
            ("not valid UTF-16 text (at byte offset 12)"),
        ),
        ("bom-only.txt", b"\xef\xbb\xbf", "empty file (only whitespace)"),
        ("utf16-bom-only.txt", b"\xff\xfe", "empty file (only whitespace)"),
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


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.txt").mkdir()

    articles, skipped = load_file(tmp_path / "folder.txt", tmp_path)

    assert articles == []
    assert skipped == [Skipped("folder.txt", "not a regular file (folder)")]


def test_a_file_gone_before_it_is_read_is_reported(tmp_path: Path) -> None:
    articles, skipped = load_file(tmp_path / "gone.txt", tmp_path)

    assert articles == []
    assert skipped == [Skipped("gone.txt", "cannot read file: No such file or directory")]


def test_skips_are_logged_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # info, not warning: the report lists each skipped file, and the CLIs print the report
    write(tmp_path, "bin.txt", b"\x00\x00")

    with caplog.at_level(logging.INFO, logger="index.articles"):
        load_articles(tmp_path)

    [record] = [r for r in caplog.records if "bin.txt" in r.getMessage()]
    assert record.levelno == logging.INFO and "binary" in record.getMessage()


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
    write(tmp_path, "notes.docx", b"PK\x03\x04\x00\x00")
    write(tmp_path, "README", "no suffix")
    write(tmp_path, "image.png", b"\x89PNG\x00")

    result = load_articles(tmp_path)

    assert [a.id for a in result.articles] == ["keep.txt"]
    assert result.skipped == []


def test_root_inside_a_hidden_folder_is_still_walked(tmp_path: Path) -> None:
    root = tmp_path / ".articles"
    write(root, "a.txt", "A\nbody")

    assert [a.id for a in load_articles(root).articles] == ["a.txt"]


def test_root_given_through_a_link_is_walked(tmp_path: Path) -> None:
    write(tmp_path, "real/a.txt", "A\nbody")
    write(tmp_path, "real/sub/b.txt", "B\nbody")
    (tmp_path / "via").symlink_to("real")

    result = load_articles(tmp_path / "via")

    assert [a.id for a in result.articles] == ["a.txt", "sub/b.txt"]
    assert result.skipped == []


@pytest.mark.timeout(60)
def test_folders_nested_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    depth = 1_200  # past Python's default recursion limit of 1,000
    # made and removed one level at a time from inside (short paths, fast): makedirs and
    # shutil.rmtree, which pytest cleans up with, recurse once per level themselves
    for _ in range(depth):
        os.mkdir("d")
        os.chdir("d")
    Path("leaf.txt").write_text("Deep\nbody")
    os.chdir(tmp_path)
    try:
        result = load_articles(tmp_path)
    finally:
        os.chdir(tmp_path / ("d/" * depth))
        os.unlink("leaf.txt")
        for _ in range(depth):
            os.chdir("..")
            os.rmdir("d")

    assert [a.id for a in result.articles] == ["d/" * depth + "leaf.txt"]


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
    expected = {".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl", ".pdf"}
    assert expected == SUPPORTED_SUFFIXES


# --- encodings --------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_read(tmp_path: Path, codec: str) -> None:
    content = "Café on the quay\nIt opens at eight.\n"
    raw = content.encode(codec)
    if not codec.endswith("16") and not codec.endswith("32"):  # explicit order: add the mark
        raw = "\ufeff".encode(codec) + raw
    write(tmp_path, "windows.txt", raw)

    article = only_article(load_articles(tmp_path))

    assert (article.title, article.text) == ("Café on the quay", "It opens at eight.")


def test_utf16_json_and_html(tmp_path: Path) -> None:
    write(tmp_path, "a.json", json.dumps({"title": "Tea", "text": "Tea at four."}).encode("utf-16"))
    page = f"<html><head><title>Port</title></head><body><article><p>{HARBOUR_PARAGRAPHS[0]}"
    write(tmp_path, "b.html", (page + "</p></article></body></html>").encode("utf-16"))

    result = load_articles(tmp_path)

    assert result.skipped == []
    assert [(a.id, a.title) for a in result.articles] == [("a.json", "Tea"), ("b.html", "Port")]
    assert HARBOUR_PARAGRAPHS[0] in result.articles[1].text


# --- titles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "limit", "expected"),
    [
        ("Short title", 20, "Short title"),
        ("exactly ten", 11, "exactly ten"),
        ("The council approved the budget", 20, "The council…"),
        ("The council approved", 13, "The council…"),  # the cut falls just after a word
        ("x" * 50, 10, "xxxxxxxxx…"),  # one giant word is cut where it must be
        ("a " + "y" * 30, 10, "a yyyyyyy…"),  # the only space is too early to cut at
    ],
)
def test_cap_title(title: str, limit: int, expected: str) -> None:
    capped = cap_title(title, limit)

    assert capped == expected
    assert len(capped) <= limit


def test_txt_whose_first_line_is_a_paragraph_keeps_it_as_text(tmp_path: Path) -> None:
    paragraph = "The harbour lights were switched on again " * 10
    write(tmp_path, "p.txt", paragraph + "\nSecond paragraph.\n")

    article = only_article(load_articles(tmp_path, max_title_chars=100))

    assert article.text == paragraph.strip() + "\nSecond paragraph."
    assert article.title.startswith("The harbour lights were switched on again")
    assert article.title.endswith("…")
    assert len(article.title) <= 100


def test_a_megabyte_on_one_line_is_text_with_a_short_title(tmp_path: Path) -> None:
    line = " ".join(f"word{i % 97}" for i in range(150_000))[:1_000_000].strip()
    write(tmp_path, "one-line.txt", line)

    article = only_article(load_articles(tmp_path))

    assert article.text == line
    assert len(article.title) <= 120 and article.title.startswith("word0 word1 word2")


def test_long_titles_are_capped_in_every_format(tmp_path: Path) -> None:
    long = "A very long headline about the harbour " * 20
    write(tmp_path, "fm.md", f"---\ntitle: {long}\n---\nBody of the post.\n")
    write(tmp_path, "heading.md", f"# {long}\n\nBody of the post.\n")
    write(tmp_path, "first-line.md", f"{long}\n\nBody of the post.\n")
    write(tmp_path, "rec.json", json.dumps({"title": long, "text": "Body of the record."}))
    write(tmp_path, "rec2.jsonl", json.dumps({"text": long + "\nrest"}) + "\n")
    body = "".join(f"<p>{p}</p>" for p in HARBOUR_PARAGRAPHS)
    write(tmp_path, "page.html", f"<html><head><title>{long}</title></head><body>{body}</body>")

    result = load_articles(tmp_path, max_title_chars=60)

    assert result.skipped == []
    assert len(result.articles) == 6
    for article in result.articles:
        assert article.title.startswith("A very long headline about the harbour"), article.id
        assert len(article.title) <= 60 and article.title.endswith("…"), article.id


def test_heading_title_drops_only_a_closing_hash_run(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "# Learning C#\n\nText.\n")
    write(tmp_path, "b.md", "## Growing beans ##   \n\nText.\n")

    titles = [a.title for a in load_articles(tmp_path).articles]

    assert titles == ["Learning C#", "Growing beans"]


def test_settings_defaults_are_the_loader_defaults() -> None:
    from index.settings import IndexSettings

    settings = IndexSettings()

    assert settings.max_article_bytes == DEFAULT_MAX_ARTICLE_BYTES
    assert settings.max_title_chars == DEFAULT_MAX_TITLE_CHARS


# --- ids --------------------------------------------------------------------------------------


def test_no_file_can_take_over_another_files_id(tmp_path: Path) -> None:
    write(tmp_path, "victim.txt", "The real article\nIts text.")
    write(tmp_path, "a-evil.md", "---\nid: victim.txt\n---\nFake text.\n")
    write(tmp_path, "b-evil.json", json.dumps([{"id": "victim.txt", "text": "Fake again."}]))
    write(tmp_path, "c-evil.jsonl", json.dumps({"id": "victim.txt#0", "text": "Fake."}) + "\n")
    # a name that spells another file's namespaced id, and a position-style id
    write(tmp_path, "a-evil.md#victim.txt", "Named to collide\nBody.")
    write(tmp_path, "d.jsonl", json.dumps({"text": "Line one."}) + "\n")
    write(tmp_path, "e.jsonl", json.dumps({"id": "1", "text": "Own id one."}) + "\n")

    result = load_articles(tmp_path)

    assert result.skipped == []
    ids = {a.id: a.path for a in result.articles}
    assert ids == {
        "victim.txt": "victim.txt",
        "a-evil.md#victim.txt": "a-evil.md",
        "a-evil.md%23victim.txt": "a-evil.md#victim.txt",
        "b-evil.json#victim.txt": "b-evil.json",
        "c-evil.jsonl#victim.txt#0": "c-evil.jsonl",
        "d.jsonl:1": "d.jsonl",
        "e.jsonl#1": "e.jsonl",
    }
    assert load_articles(tmp_path) == result  # stable from one rebuild to the next


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"id": True, "text": "t"}, "record's 'id' is a JSON boolean, not a string or an integer"),
        ({"id": 1.5, "text": "t"}, "record's 'id' is a JSON number, not a string or an integer"),
        ({"id": [1], "text": "t"}, "record's 'id' is a JSON array, not a string or an integer"),
        ({"id": "x" * 300, "text": "t"}, "record's 'id' is too long (300 characters, over 256)"),
        ({"id": "a\x1b[2Jb", "text": "t"}, "record's 'id' contains a control character (U+001B)"),
    ],
)
def test_bad_record_ids_are_reported(tmp_path: Path, record: dict, reason: str) -> None:
    write(tmp_path, "r.jsonl", json.dumps(record) + "\n")

    assert only_skipped(load_articles(tmp_path)) == Skipped("r.jsonl", reason, 1)


def test_front_matter_id_with_a_control_character_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "x.md", '---\nid: "a\\tb"\n---\nBody.\n')

    reason = only_skipped(load_articles(tmp_path)).reason

    assert reason == "front matter 'id' contains a control character (U+0009)"


# --- odd JSON values --------------------------------------------------------------------------


def test_lone_surrogate_escapes_become_replacement_characters(tmp_path: Path) -> None:
    write(tmp_path, "s.jsonl", '{"title": "T\\ud800", "text": "Caf\\udce9 open.", "id": "k"}\n')

    article = only_article(load_articles(tmp_path))

    assert (article.title, article.text) == ("T\ufffd", "Caf\ufffd open.")
    article.text.encode("utf-8")  # storable


def test_nan_and_huge_values_are_not_metadata(tmp_path: Path) -> None:
    lines = [
        '{"title": NaN, "text": "First.", "date": Infinity, "url": 1e999}',
        json.dumps({"text": "Second.", "url": "https://e.example/" + "a" * 3000, "date": "d" * 99}),
        '{"text": NaN}',
        '{"text": "Fourth.", "n": ' + "9" * 5000 + "}",
    ]
    write(tmp_path, "v.jsonl", "\n".join(lines) + "\n")

    result = load_articles(tmp_path)

    assert [(a.title, a.url, a.date) for a in result.articles] == [
        ("First.", None, None),
        ("Second.", None, None),
    ]
    assert [(s.line, s.reason) for s in result.skipped] == [
        (3, "record's 'text' is a JSON number, not a string"),
        (4, "invalid JSON: a number too long to read"),
    ]


# --- text that used to make the cleaning quadratic ----------------------------------------------


@pytest.mark.timeout(30)
def test_long_runs_of_spaces_are_cleaned_in_linear_time(tmp_path: Path) -> None:
    spaces = " " * 2_000_000
    assert normalise_text("a" + spaces + "b\nc" + spaces) == "a" + spaces + "b\nc"
    write(tmp_path, "h.md", "# Harbour" + spaces + "lights\n\nText.\n")

    article = only_article(load_articles(tmp_path))

    assert article.title == "Harbour lights"

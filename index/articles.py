"""Load the articles folder into `Article` records, reporting what could not be read.

The folder is whatever an operator dropped there: plain text, Markdown, saved web pages and
JSON dumps, possibly with a few broken files among thousands of good ones. One bad file must
never stop a rebuild, so every problem with a file's content becomes a `Skipped` entry (and a
warning in the log) instead of an exception. Only a missing articles folder raises, because
then there is nothing to index at all.

Formats, chosen by the (case-insensitive) file suffix:

- `.txt`: the first non-empty line is the title, the rest is the text.
- `.md`, `.markdown`: optional YAML front matter (`title`, `url`, `date`, `id`); the body,
  Markdown left as is, is the text.
- `.html`, `.htm`: main text, title, date and canonical URL extracted by trafilatura.
- `.json`: one record, a list of records, or an object holding the list under `articles`,
  `records` or `data`. `.jsonl`: one record per line. A record is an object with a `text`
  string and optional `title`, `url`, `date` and `id`.

Article ids are stable across rebuilds so that an incremental rebuild can tell a changed
article from a new one: the path relative to the folder for single-article files, and for
JSON records their own `id`, else `"<path>:<n>"` where n is the 1-based line of a `.jsonl`
record or the 1-based position of a record in a `.json` list.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import frontmatter
import yaml

from index.models import Article, Skipped

if TYPE_CHECKING:
    from trafilatura.settings import Extractor

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl"}
)

# Bytes looked at when deciding a file is binary; a NUL in text files is vanishingly rare.
BINARY_SNIFF_BYTES = 8192
# Longest title made up from the first line of a record's text when the record has none.
MAX_DERIVED_TITLE = 120
# Keys under which a `.json` object may hold its list of records, tried in this order.
JSON_LIST_KEYS = ("articles", "records", "data")

_UTF8_BOM = b"\xef\xbb\xbf"
# C0 controls except \t and \n (\r is turned into \n first), DEL, and stray byte-order marks:
# invisible, and they would only confuse the tokenizer and the people reading citations.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufeff]")
_TRAILING_SPACE = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


@dataclass(slots=True)
class LoadResult:
    """Everything `load_articles` found: the articles to index and what it had to leave out."""

    articles: list[Article]
    skipped: list[Skipped]


class _Unreadable(Exception):
    """A file (or one record) cannot become an article; internal, it never escapes the module."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


# (article, line or record number it came from, for reporting a later duplicate)
_Loaded = tuple[Article, int | None]


def normalise_text(s: str) -> str:
    """Bring text to the one canonical form every article is stored in.

    Later stages cite character offsets into `Article.text`, so this must run exactly once,
    at load time, and nothing may change the text afterwards. Newlines become `\\n`, Unicode
    is NFC-composed, control characters other than tab and newline are dropped, trailing
    whitespace is cut from each line, paragraphs are separated by at most one blank line,
    and the whole is stripped.
    """
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    # controls go before composing: one between a letter and its accent would block it
    s = _CONTROL_CHARS.sub("", s)
    s = unicodedata.normalize("NFC", s)
    s = _TRAILING_SPACE.sub("", s)
    s = _BLANK_RUNS.sub("\n\n", s)
    return s.strip()


def normalise_title(s: str) -> str:
    """`normalise_text` for a title, which is shown on one line: all whitespace runs collapse."""
    return " ".join(normalise_text(s).split())


def load_articles(root: Path) -> LoadResult:
    """Load every supported file under `root`, recursively and in a deterministic order.

    Hidden files and folders (name starting with '.') and files of other types are ignored,
    not reported: they are not articles, so they are not broken ones either. Folders are
    walked in code-point order of names, a folder's files before its subfolders, so that
    "the first" of two articles sharing an id is the same on every machine; the later one is
    reported as skipped.

    Args:
        root: the articles folder.

    Returns:
        The articles, and the files or records that could not be loaded with the reason.

    Raises:
        FileNotFoundError: `root` does not exist.
        NotADirectoryError: `root` is not a folder.
    """
    if not root.exists():
        raise FileNotFoundError(f"Articles folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"Articles folder {str(root)!r} is not a folder.")

    articles: list[Article] = []
    skipped: list[Skipped] = []
    first_seen: dict[str, str] = {}
    for path in _walk(root, skipped):
        loaded, file_skipped = _load_file(path, _relpath(path, root))
        skipped.extend(file_skipped)
        articles.extend(_dedupe(loaded, first_seen, skipped))
    log.info("Loaded %d articles from %s (%d skipped)", len(articles), root, len(skipped))
    return LoadResult(articles=articles, skipped=skipped)


def load_file(path: Path, root: Path) -> tuple[list[Article], list[Skipped]]:
    """Load the articles of one file, e.g. for an incremental rebuild of changed files.

    Duplicate ids are only detected within this file; across files that is up to the caller
    (`load_articles` does it). A file of an unsupported type yields nothing, as in a walk.

    Args:
        path: the file, inside `root`.
        root: the articles folder, which ids and `Article.path` are relative to.

    Returns:
        The file's articles and its skipped records (or the whole file, skipped).

    Raises:
        ValueError: `path` is not inside `root`.
    """
    loaded, skipped = _load_file(path, _relpath(path, root))
    articles = _dedupe(loaded, {}, skipped)
    return articles, skipped


def _relpath(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{str(path)!r} is not inside the articles folder {str(root)!r}") from None


def _walk(root: Path, skipped: list[Skipped]) -> Iterator[Path]:
    """Yield candidate files; an unreadable subfolder is reported rather than aborting."""

    def on_error(error: OSError) -> None:
        where = Path(error.filename) if error.filename else root
        skipped.append(_skip(_relpath(where, root), _os_reason(error, "cannot list folder")))

    for folder, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(folder)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = base / name
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                log.debug("Ignoring %s: not an article file type", path)
                continue
            yield path


def _dedupe(
    loaded: list[_Loaded], first_seen: dict[str, str], skipped: list[Skipped]
) -> list[Article]:
    """Keep the first article of each id; `first_seen` maps id -> file, shared across calls."""
    kept: list[Article] = []
    for article, line in loaded:
        first = first_seen.get(article.id)
        if first is not None:
            reason = f"duplicate article id {article.id!r} (first seen in {first})"
            skipped.append(_skip(article.path, reason, line))
            continue
        first_seen[article.id] = article.path
        kept.append(article)
    return kept


def _skip(path: str, reason: str, line: int | None = None) -> Skipped:
    if line is None:
        log.warning("Skipping %s: %s", path, reason)
    else:
        log.warning("Skipping %s line %d: %s", path, line, reason)
    return Skipped(path=path, reason=reason, line=line)


def _os_reason(error: OSError, what: str) -> str:
    return f"{what}: {error.strerror or error}"


def _load_file(path: Path, rel: str) -> tuple[list[_Loaded], list[Skipped]]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        log.debug("Ignoring %s: not an article file type", path)
        return [], []
    skipped: list[Skipped] = []
    try:
        raw = _read(path)
        if suffix in (".html", ".htm"):
            loaded = [(_parse_html(raw.removeprefix(_UTF8_BOM), path, rel), None)]
        elif suffix == ".jsonl":
            loaded = _parse_jsonl(_decode(raw), rel, skipped)
        elif suffix == ".json":
            loaded = _parse_json(_decode(raw), rel, skipped)
        elif suffix == ".txt":
            loaded = [(_parse_txt(_decode(raw), rel), None)]
        else:
            loaded = [(_parse_markdown(_decode(raw), path, rel), None)]
    except _Unreadable as error:
        skipped.append(_skip(rel, error.reason, error.line))
        return [], skipped
    return loaded, skipped


def _read(path: Path) -> bytes:
    """Read the file and reject what is plainly not text, before any parser sees it."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise _Unreadable(_os_reason(error, "cannot read file")) from None
    if not raw:
        raise _Unreadable("empty file")
    if b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        raise _Unreadable("binary file")
    if not raw.removeprefix(_UTF8_BOM).strip():
        raise _Unreadable("empty file (only whitespace)")
    return raw


def _decode(raw: bytes) -> str:
    """Strict UTF-8, a byte-order mark allowed: guessing another encoding risks mojibake."""
    skip = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = skip + error.start  # in the file, so a hex editor finds it
        raise _Unreadable(
            f"not valid UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset})"
        ) from None


def _article(
    *,
    article_id: str,
    title: str,
    text: str,
    rel: str,
    url: str | None = None,
    date: str | None = None,
) -> Article:
    """Build an article from already-normalised title and text; the URL, if any, is cited."""
    return Article(
        id=article_id,
        title=title,
        text=text,
        source=url or rel,
        path=rel,
        url=url or None,
        date=date,
    )


def _parse_txt(content: str, rel: str) -> Article:
    text = normalise_text(content)
    if not text:
        raise _Unreadable("no text")
    first, _, body = text.partition("\n")
    title = normalise_title(first)
    # A title-only file is still worth finding, so its title doubles as its text.
    return _article(article_id=rel, title=title, text=body.strip() or title, rel=rel)


def _parse_markdown(content: str, path: Path, rel: str) -> Article:
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    meta, body = _split_front_matter(content)
    text = normalise_text(body)
    if not text:
        raise _Unreadable("no text")
    title = normalise_title(_scalar(meta.get("title")) or "") or _markdown_title(text, path)
    url = normalise_title(_scalar(meta.get("url")) or "") or None
    date = _scalar(meta.get("date"))
    record_id = _scalar(meta.get("id"))
    return _article(
        article_id=record_id or rel, title=title, text=text, rel=rel, url=url, date=date
    )


def _split_front_matter(content: str) -> tuple[dict[str, Any], str]:
    handler = frontmatter.detect_format(content, frontmatter.handlers)
    if handler is None:
        return {}, content
    boundary = handler.FM_BOUNDARY
    if boundary is not None and len(boundary.findall(content)) < 2:
        # python-frontmatter would fail with a bare "not enough values to unpack"
        raise _Unreadable(f"invalid front matter: no closing {handler.END_DELIMITER!r} line")
    try:
        post = frontmatter.loads(content, handler=handler)
    except yaml.YAMLError as error:
        raise _Unreadable(_yaml_reason(error), _yaml_line(error)) from None
    except ValueError as error:  # JSON/TOML front matter, or an impossible YAML date
        raise _Unreadable(f"invalid front matter: {_first_line(str(error))}") from None
    return dict(post.metadata), post.content


def _yaml_reason(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        return f"invalid front matter: {error.problem}"
    return f"invalid front matter: {_first_line(str(error))}"


def _yaml_line(error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None)
    # The front matter text handed to YAML starts on the opening '---' line, so YAML's
    # 0-based line is the file's 1-based line minus one.
    return mark.line + 1 if mark is not None else None


def _first_line(s: str) -> str:
    return s.strip().split("\n", 1)[0]


def _scalar(value: Any) -> str | None:
    """A front matter or JSON value as text: dates in ISO form, absent or empty as None."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, dt.date):  # also datetime, which YAML gives for timestamps
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _markdown_title(text: str, path: Path) -> str:
    heading = _ATX_HEADING.search(text)
    if heading:
        title = normalise_title(heading.group(1).strip("#"))
        if title:
            return title
    return normalise_title(text.partition("\n")[0]) or path.stem


@functools.lru_cache(maxsize=1)
def _html_extractor(day: str) -> Extractor:
    """One trafilatura configuration per `day`, not per file.

    Building it reads trafilatura's config file, and it fixes "today" as the latest date a page
    may carry, hence the key. Imported lazily: trafilatura is slow to import and most folders
    hold no HTML.
    """
    from trafilatura.settings import Extractor

    return Extractor(output_format="python", with_metadata=True, comments=False)


def _parse_html(raw: bytes, path: Path, rel: str) -> Article:
    from trafilatura import bare_extraction

    options = _html_extractor(dt.date.today().isoformat())
    try:
        # Bytes, not str: trafilatura honours the page's declared or detected charset.
        document = bare_extraction(raw, options=options)
    except Exception as error:  # a third-party parser on arbitrary input: contain it
        log.warning("trafilatura failed on %s", rel, exc_info=True)
        raise _Unreadable(f"could not parse HTML: {error}") from None
    if document is None or isinstance(document, dict):
        raise _Unreadable("no article text found in HTML")
    text = normalise_text(document.text or "")
    if not text:
        raise _Unreadable("no article text found in HTML")
    title = normalise_title(document.title or "") or path.stem
    first, _, rest = text.partition("\n")
    if rest.strip() and normalise_title(first) == title:
        # trafilatura keeps the page's <h1> in the text; the title is stored on its own.
        text = rest.strip()
    url = normalise_title(document.url or "") or None
    return _article(
        article_id=rel, title=title, text=text, rel=rel, url=url, date=document.date or None
    )


def _parse_json(content: str, rel: str, skipped: list[Skipped]) -> list[_Loaded]:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as error:
        raise _Unreadable(f"invalid JSON: {error.msg}", error.lineno) from None
    if isinstance(data, dict) and "text" not in data:
        for key in JSON_LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if isinstance(data, dict):
        return [(_record(data, rel, default_id=rel), None)]
    if not isinstance(data, list):
        raise _Unreadable("JSON must hold an object or a list of objects")
    loaded: list[_Loaded] = []
    for number, item in enumerate(data, start=1):
        try:
            loaded.append((_record(item, rel, default_id=f"{rel}:{number}"), None))
        except _Unreadable as error:
            skipped.append(_skip(rel, f"record {number}: {error.reason}"))
    return loaded


def _parse_jsonl(content: str, rel: str, skipped: list[Skipped]) -> list[_Loaded]:
    loaded: list[_Loaded] = []
    # split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings
    for number, line in enumerate(content.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise _Unreadable(f"invalid JSON: {error.msg}") from None
            loaded.append((_record(item, rel, default_id=f"{rel}:{number}"), number))
        except _Unreadable as error:
            skipped.append(_skip(rel, error.reason, number))
    if not loaded and not skipped:
        raise _Unreadable("no text")
    return loaded


def _record(item: object, rel: str, *, default_id: str) -> Article:
    if not isinstance(item, dict):
        raise _Unreadable(f"record is a JSON {_json_type(item)}, not an object")
    raw_text = item.get("text")
    if raw_text is None:
        raise _Unreadable("record has no 'text'")
    if not isinstance(raw_text, str):
        raise _Unreadable(f"record's 'text' is a JSON {_json_type(raw_text)}, not a string")
    text = normalise_text(raw_text)
    if not text:
        raise _Unreadable("no text")
    title = normalise_title(_scalar(item.get("title")) or "") or _derived_title(text)
    url = normalise_title(_scalar(item.get("url")) or "") or None
    return _article(
        article_id=_scalar(item.get("id")) or default_id,
        title=title,
        text=text,
        rel=rel,
        url=url,
        date=_scalar(item.get("date")),
    )


def _derived_title(text: str) -> str:
    """The first line of the text, cut at a word boundary to fit `MAX_DERIVED_TITLE`."""
    line = normalise_title(text.partition("\n")[0])
    if len(line) <= MAX_DERIVED_TITLE:
        return line
    cut = line[: MAX_DERIVED_TITLE - 1]
    if " " in cut[MAX_DERIVED_TITLE // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    if value is None:
        return "null"
    return names.get(type(value), "object" if isinstance(value, dict) else type(value).__name__)

"""Load the articles folder into `Article` records, reporting what could not be read.

The folder is whatever an operator dropped there: plain text, Markdown, saved web pages and
JSON dumps, possibly with a few broken files among thousands of good ones. One bad file must
never stop a rebuild, so every problem with a file's content becomes a `Skipped` entry (and a
warning in the log) instead of an exception. Only a missing articles folder raises, because
then there is nothing to index at all.

Formats, chosen by the (case-insensitive) file suffix:

- `.txt`: the first non-empty line is the title, the rest is the text.
- `.md`, `.markdown`: optional YAML front matter (`title`, `url`, `date`, `id`, and `pages`,
  the offsets where each page of a PDF starts in the text, as `index.sources` writes them
  for a fetched PDF); the body, Markdown left as is, is the text. Other keys (`author`,
  `site`, `fetched`, `feed`...) are kept in the file for people and `index.sources`.
- `.html`, `.htm`: main text, title, date and canonical URL extracted by trafilatura.
- `.pdf`: the text of each page (pypdf), the page offsets kept for citations; title and
  date from the document's metadata, else its first line and none.
- `.json`: one record, a list of records, or an object holding the list under `articles`,
  `records` or `data`. `.jsonl`: one record per line. A record is an object with a `text`
  string and optional `title`, `url`, `date` and `id`.

Article ids are stable across rebuilds so that an incremental rebuild can tell a changed
article from a new one, and namespaced by file so that no file can claim another's article:

- a single-article file: its path relative to the folder (`news/a.txt`);
- a record or Markdown file with its own `id`: `"<path>#<id>"`, its id is never global;
- a record without one: `"<path>:<n>"`, n the 1-based line of a `.jsonl` record or the
  1-based position of a record in a `.json` list.

In the `<path>` part of an id, `%` and `#` are written `%25` and `%23`, so an id's form tells
which kind it is and two different (file, record) pairs can never give the same id. Two
records of one file with the same own id are a duplicate, reported like a broken record.

What is read, and how: only regular files inside the folder, after resolving links (a link
that leads outside it is reported, never followed: `ln -s /etc/passwd a.txt` must not put
the password file in answers); never a FIFO, socket or device, which can block a read or
never end; at most `max_article_bytes` of a file; and a file's name must be valid UTF-8
without control characters (it becomes an id, stored as UTF-8 and shown to people: a file
whose name is not is reported, to be renamed, rather than indexed under an altered name that
matches no file). Each file is opened once, without following a final link, and what was
opened is checked (`fstat`, and where `/proc` exists the opened file's real location), so
swapping a file for a link or a FIFO between the checks and the read changes nothing.
Anything that still goes wrong while reading or parsing one file (a JSON nested thousands of
levels deep, a parser bug) skips that file with its reason; the rest is indexed.
"""

from __future__ import annotations

import codecs
import datetime as dt
import errno
import functools
import itertools
import json
import logging
import math
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.models import Article, Skipped

if TYPE_CHECKING:
    import yaml
    from trafilatura.settings import Extractor

    from index.article_cache import ArticleCache

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".txt", ".md", ".markdown", ".html", ".htm", ".json", ".jsonl", ".pdf"}
)

# Bytes looked at when deciding a file is binary; a NUL in text files is vanishingly rare.
BINARY_SNIFF_BYTES = 8192
# Longest title made up from the first line of the text when an article has none.
MAX_DERIVED_TITLE = 120
# Defaults of the `max_article_bytes` and `max_title_chars` settings (IndexSettings).
DEFAULT_MAX_ARTICLE_BYTES = 5_000_000
DEFAULT_MAX_TITLE_CHARS = 200
# A record's own id, a URL and a date are metadata: longer ones are not what they claim to be.
MAX_OWN_ID_CHARS = 256
MAX_URL_CHARS = 2048
MAX_DATE_CHARS = 64
# Keys under which a `.json` object may hold its list of records, tried in this order.
JSON_LIST_KEYS = ("articles", "records", "data")

_UTF8_BOM = b"\xef\xbb\xbf"
# UTF-32 first: its little-endian mark begins with UTF-16's.
_UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Never block on a FIFO or a device, never follow a final link (links are resolved and
# checked first), never let a terminal device become the controlling one.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)
_READ_BLOCK = 1 << 20
_FILE_KINDS = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)
# C0 and C1 controls except \t and \n (\r is turned into \n first), DEL, and stray byte-order
# marks: invisible, and they would only confuse the tokenizer and the people reading citations.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
# Matched only from the start of a run, possessively: a plain `[...]+$` retries from every
# space of a run that is not at a line end, quadratic in its length (minutes for a MB of it).
_TRAILING_SPACE = re.compile(
    r"(?<![ \t\f\v\u00a0\u2000-\u200b\u3000])[ \t\f\v\u00a0\u2000-\u200b\u3000]++$",
    re.MULTILINE,
)
_BLANK_RUNS = re.compile(r"\n{3,}")
# The heading's text runs to the end of its line (a closing '#' run is cut in code): a lazy
# group before optional trailing spaces backtracks quadratically over a long run of spaces.
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*)$", re.MULTILINE)


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


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    max_title: int


@dataclass(frozen=True, slots=True)
class _Loaded:
    """An article with where in its file it came from, for reporting a later duplicate."""

    article: Article
    line: int | None = None  # line of a `.jsonl` record
    record: int | None = None  # position of a record in a `.json` list
    own_id: str | None = None  # the id the file gave it, before namespacing


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


def load_articles(
    root: Path,
    *,
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
    max_title_chars: int = DEFAULT_MAX_TITLE_CHARS,
    cache: ArticleCache | None = None,
) -> LoadResult:
    """Load every supported file under `root`, recursively and in a deterministic order.

    Hidden files and folders (name starting with '.') and files of other types are ignored,
    not reported: they are not articles, so they are not broken ones either. Folders are
    walked in code-point order of names, a folder's files before its subfolders, so that
    reports and ids come out the same on every machine. Links to folders are reported and not
    followed (they could loop, or lead out of the folder).

    Args:
        root: the articles folder.
        max_article_bytes: a larger file is skipped with its reason, never read.
        max_title_chars: longer titles are cut at a word boundary.
        cache: what files gave before, by their bytes (`index.article_cache`): every file is
            still read and checked, only the parse of unchanged bytes is skipped. The result
            is the same with or without it.

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

    limits = _Limits(max_article_bytes, max_title_chars)
    real_root = os.path.realpath(root)
    articles: list[Article] = []
    skipped: list[Skipped] = []
    first_seen: dict[str, _Loaded] = {}
    for path, rel in _walk(root, real_root, skipped):
        loaded, file_skipped = _load_file(path, rel, real_root, limits, cache)
        skipped.extend(file_skipped)
        articles.extend(_dedupe(loaded, first_seen, skipped))
    log.info("Loaded %d articles from %s (%d skipped)", len(articles), root, len(skipped))
    return LoadResult(articles=articles, skipped=skipped)


def load_file(
    path: Path,
    root: Path,
    *,
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
    max_title_chars: int = DEFAULT_MAX_TITLE_CHARS,
) -> tuple[list[Article], list[Skipped]]:
    """Load the articles of one file, e.g. for an incremental rebuild of changed files.

    The same checks as in `load_articles` apply (a link leading out of `root`, a FIFO, a file
    over the size cap are skipped). A file of an unsupported type yields nothing, as in a walk.

    Args:
        path: the file, inside `root`.
        root: the articles folder, which ids and `Article.path` are relative to.
        max_article_bytes: a larger file is skipped with its reason, never read.
        max_title_chars: longer titles are cut at a word boundary.

    Returns:
        The file's articles and its skipped records (or the whole file, skipped).

    Raises:
        ValueError: `path` is not inside `root`.
    """
    limits = _Limits(max_article_bytes, max_title_chars)
    loaded, skipped = _load_file(path, _relpath(path, root), os.path.realpath(root), limits)
    articles = _dedupe(loaded, {}, skipped)
    return articles, skipped


def cap_title(title: str, max_chars: int) -> str:
    """`title` if it fits in `max_chars`, else cut at a word boundary and ended with '…'.

    Titles are shown on one line in every answer's sources, and a word cut in half reads as a
    typo; a title made of one giant word is cut where it must be.
    """
    if len(title) <= max_chars:
        return title
    cut = title[: max_chars - 1]
    if title[max_chars - 1] != " " and " " in cut[max_chars // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip() + "…"


def _relpath(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{str(path)!r} is not inside the articles folder {str(root)!r}") from None


def _walk(root: Path, real_root: str, skipped: list[Skipped]) -> Iterator[tuple[Path, str]]:
    """Yield `(path, path relative to root)` of candidate files; folder problems are reported.

    Iterative rather than recursive (as `os.walk` is on Python 3.11): a tree nested a few
    thousand folders deep must not exhaust the interpreter's stack.
    """
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        folder, rel_folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:
            skipped.append(_skip(rel_folder or ".", _os_reason(error, "cannot list folder")))
            continue
        subfolders: list[tuple[Path, str]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
                is_link = entry.is_symlink()
            except OSError:  # vanished meanwhile: reading it will say so, if it is an article
                is_folder = is_link = False
            if is_folder:
                problem = _name_problem(entry.name)
                if problem is not None:
                    skipped.append(_skip(rel, f"folder {problem}: its files are not indexed"))
                else:
                    subfolders.append((Path(entry.path), rel))
            elif Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
                yield Path(entry.path), rel
            elif is_link and os.path.isdir(entry.path):
                if _inside(os.path.realpath(entry.path), real_root):
                    reason = "link to a folder, not followed (its files are indexed where they are)"
                else:
                    reason = "link points outside the articles folder"
                skipped.append(_skip(rel, reason))
            else:
                log.debug("Ignoring %s: not an article file type", _printable(rel))
        stack.extend(reversed(subfolders))


def _dedupe(
    loaded: list[_Loaded], first_seen: dict[str, _Loaded], skipped: list[Skipped]
) -> list[Article]:
    """Keep the first article of each id; `first_seen` maps id -> its first, across calls.

    Ids are namespaced by file, so a duplicate is two records of one file sharing an id.
    """
    kept: list[Article] = []
    for item in loaded:
        article = item.article
        first = first_seen.get(article.id)
        if first is None:
            first_seen[article.id] = item
            kept.append(article)
            continue
        if first.article.path != article.path:  # cannot happen with namespaced ids; still safe
            reason = f"duplicate article id {article.id!r} (first seen in {first.article.path})"
        elif first.line is not None:
            reason = f"duplicate id {item.own_id!r} (first used on line {first.line})"
        elif first.record is not None:
            reason = f"duplicate id {item.own_id!r} (first used by record {first.record})"
        else:
            reason = f"duplicate id {item.own_id!r}"
        if item.record is not None:
            reason = f"record {item.record}: {reason}"
        skipped.append(_skip(article.path, reason, item.line))
    return kept


def _skip(path: str, reason: str, line: int | None = None) -> Skipped:
    path = _printable(path)
    # info, not warning: the caller reports each skipped file once (the CLIs print the report)
    if line is None:
        log.info("Skipping %s: %s", path, reason)
    else:
        log.info("Skipping %s line %d: %s", path, line, reason)
    return Skipped(path=path, reason=reason, line=line)


def _os_reason(error: OSError, what: str) -> str:
    return f"{what}: {error.strerror or error}"


# Characters a file name must not have to become an id: controls, and the stand-ins Python
# decodes undecodable (non-UTF-8) bytes of a name to.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _name_problem(name: str) -> str | None:
    found = _UNPRINTABLE.search(name)
    if found is None:
        return None
    code = ord(found.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"name is not valid UTF-8 (byte 0x{code - 0xDC00:02x})"
    return f"name contains a control character (U+{code:04X})"


def _printable(name: str) -> str:
    """`name` with controls and undecodable bytes escaped: safe in JSON, logs and terminals."""
    if _UNPRINTABLE.search(name) is None:
        return name

    def escape(found: re.Match[str]) -> str:
        code = ord(found.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, name)


def _inside(real_path: str, real_root: str) -> bool:
    return real_path == real_root or real_path.startswith(real_root.rstrip("/") + "/")


def _id_path(rel: str) -> str:
    """The path as the first part of an id: with no '#', so an id's parts cannot be confused."""
    return rel.replace("%", "%25").replace("#", "%23")


def _load_file(
    path: Path, rel: str, real_root: str, limits: _Limits, cache: ArticleCache | None = None
) -> tuple[list[_Loaded], list[Skipped]]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        log.debug("Ignoring %s: not an article file type", _printable(rel))
        return [], []
    skipped: list[Skipped] = []
    try:
        problem = _name_problem(rel)
        if problem is not None:
            raise _Unreadable(f"file {problem}: rename it to index it")
        raw = _read(path, real_root, limits.max_bytes, binary=suffix == ".pdf")
        if cache is None:
            loaded = _parse(raw, suffix, path, rel, limits, skipped)
        else:
            loaded = _parse_cached(raw, suffix, path, rel, limits, skipped, cache)
    except _Unreadable as error:
        return [], [_skip(rel, error.reason, error.line)]
    except RecursionError:
        return [], [_skip(rel, "nested too deeply to read")]
    except Exception as error:  # a parser on arbitrary input: whatever it does, skip the file
        log.debug("Loading %s failed", _printable(rel), exc_info=True)
        reason = f"could not load: {type(error).__name__}: {_first_line(str(error))[:200]}"
        return [], [_skip(rel, reason)]
    return loaded, skipped


def _parse(
    raw: bytes, suffix: str, path: Path, rel: str, limits: _Limits, skipped: list[Skipped]
) -> list[_Loaded]:
    if suffix == ".pdf":
        return [_Loaded(_parse_pdf(raw, path, rel, limits))]
    if suffix in (".html", ".htm"):
        if _unicode_bom(raw) is not None:  # trafilatura sniffs only byte-oriented charsets
            return [_Loaded(_parse_html(_decode(raw), path, rel, limits))]
        if not raw.removeprefix(_UTF8_BOM).strip():
            raise _Unreadable("empty file (only whitespace)")
        return [_Loaded(_parse_html(raw.removeprefix(_UTF8_BOM), path, rel, limits))]
    content = _decode(raw)
    if suffix == ".jsonl":
        return _parse_jsonl(content, rel, skipped, limits)
    if suffix == ".json":
        return _parse_json(content, rel, skipped, limits)
    if suffix == ".txt":
        return [_Loaded(_parse_txt(content, rel, limits))]
    return [_parse_markdown(content, path, rel, limits)]


def _parse_cached(
    raw: bytes,
    suffix: str,
    path: Path,
    rel: str,
    limits: _Limits,
    skipped: list[Skipped],
    cache: ArticleCache,
) -> list[_Loaded]:
    """`_parse` through the cache. A parse depends on the bytes, the path (ids, titles made
    from the name), the limits and, for a web page, the day (trafilatura's latest plausible
    date); a file that fails as a whole is not cached (it is reported again, parsed again)."""
    from index.article_cache import file_key

    variant = f"{rel}\0{limits.max_bytes}\0{limits.max_title}"
    if suffix in (".html", ".htm"):
        variant += "\0" + dt.date.today().isoformat()
    key = file_key(variant, raw)
    payload = cache.file(rel, key)
    if payload is not None:
        try:
            loaded = [_loaded_from_json(item) for item in payload["loaded"]]
            again = [Skipped(s["path"], s["reason"], s["line"]) for s in payload["skipped"]]
        except (KeyError, TypeError, ValueError):
            pass  # a payload of another shape: parse again
        else:
            for s in again:  # as `_skip` logged them when the file was parsed
                log.info("Skipping %s%s: %s", s.path, "" if s.line is None else f" line {s.line}",
                         s.reason)  # fmt: skip
            skipped.extend(again)
            return loaded
    before = len(skipped)
    loaded = _parse(raw, suffix, path, rel, limits, skipped)
    cache.put_file(rel, key, {
        "loaded": [_loaded_to_json(item) for item in loaded],
        "skipped": [{"path": s.path, "reason": s.reason, "line": s.line}
                    for s in skipped[before:]],
    })  # fmt: skip
    return loaded


def _loaded_to_json(item: _Loaded) -> dict[str, Any]:
    a = item.article
    return {
        "id": a.id, "title": a.title, "text": a.text, "source": a.source, "path": a.path,
        "url": a.url, "date": a.date, "pages": None if a.pages is None else list(a.pages),
        "boilerplate": None if a.boilerplate is None else [list(b) for b in a.boilerplate],
        "line": item.line, "record": item.record, "own_id": item.own_id,
    }  # fmt: skip


def _loaded_from_json(d: dict[str, Any]) -> _Loaded:
    pages, spans = d["pages"], d["boilerplate"]
    article = Article(
        id=d["id"], title=d["title"], text=d["text"], source=d["source"], path=d["path"],
        url=d["url"], date=d["date"], pages=None if pages is None else tuple(pages),
        boilerplate=None if spans is None else tuple((s, e) for s, e in spans),
    )  # fmt: skip
    return _Loaded(article, line=d["line"], record=d["record"], own_id=d["own_id"])


def _read(path: Path, real_root: str, max_bytes: int, *, binary: bool = False) -> bytes:
    """Read at most `max_bytes` of a regular file inside the folder, or say why not.

    The kind and size are checked on the path before opening, so a FIFO or a device is
    never even opened, and again on the open descriptor, which is what is actually read.
    """
    is_link = path.is_symlink()
    target = os.path.realpath(path)
    if not _inside(target, real_root):
        raise _Unreadable("link points outside the articles folder")
    try:
        _check_kind(os.stat(target), max_bytes)
        fd = os.open(target, _OPEN_FLAGS)
    except OSError as error:
        raise _Unreadable(_open_reason(error, is_link)) from None
    try:
        info = os.fstat(fd)
        _check_kind(info, max_bytes)
        _check_opened_inside(fd, real_root)
        raw = _read_at_most(fd, max_bytes + 1, info.st_size)
    except OSError as error:
        raise _Unreadable(_os_reason(error, "cannot read file")) from None
    finally:
        os.close(fd)
    if len(raw) > max_bytes:  # it grew since it was checked
        raise _Unreadable(f"file is over MAX_ARTICLE_BYTES ({_size(max_bytes)})")
    if not raw:
        raise _Unreadable("empty file")
    if not binary and _unicode_bom(raw) is None and b"\x00" in raw[:BINARY_SNIFF_BYTES]:
        raise _Unreadable("binary file")
    return raw


def _open_reason(error: OSError, is_link: bool) -> str:
    if is_link and error.errno == errno.ENOENT:
        return "broken link: its target does not exist"
    if error.errno == errno.ELOOP:
        return "link loop: too many levels of links"
    return _os_reason(error, "cannot read file")


def _check_kind(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "special file")
        raise _Unreadable(f"not a regular file ({kind})")
    if info.st_size > max_bytes:
        size, limit = _size(info.st_size), _size(max_bytes)
        if size == limit:
            size, limit = f"{info.st_size:,} bytes", f"{max_bytes:,} bytes"
        raise _Unreadable(f"file is {size}, over MAX_ARTICLE_BYTES ({limit})")


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"


def _check_opened_inside(fd: int, real_root: str) -> None:
    """Where `/proc` tells what was opened, check it: a folder on the way may have been
    swapped for a link after the path was resolved."""
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return  # no /proc (macOS, BSD): the resolved path checked before opening stands
    if where.startswith("/") and not _inside(where.removesuffix(" (deleted)"), real_root):
        raise _Unreadable("link points outside the articles folder")


def _read_at_most(fd: int, limit: int, size: int) -> bytes:
    """Up to `limit` bytes; `size` (from fstat) sizes the reads, since `os.read` allocates
    what it is asked for: one byte past it tells whether the file grew meanwhile."""
    parts: list[bytes] = []
    got = 0
    while got < limit:
        block = os.read(fd, min(_READ_BLOCK, limit - got, max(size + 1 - got, 8192)))
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def _unicode_bom(raw: bytes) -> str | None:
    return next((codec for bom, codec in _UNICODE_BOMS if raw.startswith(bom)), None)


def _decode(raw: bytes) -> str:
    """Strict UTF-8, a byte-order mark allowed; UTF-16 or UTF-32 only with their mark.

    Guessing another encoding risks mojibake; a UTF-16 mark is unambiguous (and what Windows
    editors write when saving "Unicode").
    """
    codec = _unicode_bom(raw)
    if codec is not None:
        try:
            text = raw.decode(codec)  # the codec reads the mark for the byte order, drops it
        except UnicodeDecodeError as error:
            raise _Unreadable(
                f"not valid {codec.upper()} text (at byte offset {error.start})"
            ) from None
    else:
        skip = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
        try:
            text = raw[skip:].decode("utf-8")
        except UnicodeDecodeError as error:
            offset = skip + error.start  # in the file, so a hex editor finds it
            raise _Unreadable(
                f"not valid UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset})"
            ) from None
    if not text.strip():
        raise _Unreadable("empty file (only whitespace)")
    return text


def _article(
    *,
    article_id: str,
    title: str,
    text: str,
    rel: str,
    url: str | None = None,
    date: str | None = None,
    pages: tuple[int, ...] | None = None,
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
        pages=pages,
    )


def _parse_txt(content: str, rel: str, limits: _Limits) -> Article:
    text = normalise_text(content)
    if not text:
        raise _Unreadable("no text")
    first, _, body = text.partition("\n")
    title = _line_start(first, limits.max_title)
    if len(title) > limits.max_title:
        # Not a title but a paragraph, or a whole file without a line break: it stays text,
        # and a short title is made from its start.
        return _article(
            article_id=_id_path(rel),
            title=_derived_title(text, limits.max_title),
            text=text,
            rel=rel,
        )
    # A title-only file is still worth finding, so its title doubles as its text.
    return _article(article_id=_id_path(rel), title=title, text=body.strip() or title, rel=rel)


def _parse_markdown(content: str, path: Path, rel: str, limits: _Limits) -> _Loaded:
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    meta, body = _split_front_matter(content)
    text = normalise_text(body)
    if not text:
        raise _Unreadable("no text")
    title = _title(meta.get("title"), limits) or _markdown_title(text, path, limits)
    own_id = _own_id(_scalar(meta.get("id")), "front matter 'id'")
    article = _article(
        article_id=_article_id(rel, own_id),
        title=title,
        text=text,
        rel=rel,
        url=_url(meta.get("url")),
        date=_date(meta.get("date")),
        pages=_pages(meta.get("pages"), text),
    )
    return _Loaded(article, own_id=own_id)


def _pages(value: Any, text: str) -> tuple[int, ...] | None:
    """Page start offsets from front matter, if they fit the text; else none (not an error:
    only citations' page numbers depend on them)."""
    if not isinstance(value, list) or not value or len(value) > 100_000:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    if value[0] != 0 or any(b < a for a, b in itertools.pairwise(value)):
        return None
    if value[-1] > len(text):
        return None
    return tuple(value)


def _parse_pdf(raw: bytes, path: Path, rel: str, limits: _Limits) -> Article:
    from index.sources.pdf import PdfError, read_pdf  # pypdf is imported only for PDFs

    try:
        pdf = read_pdf(raw)
    except PdfError as error:
        raise _Unreadable(error.reason) from None
    title = cap_title(pdf.title, limits.max_title) if pdf.title else ""
    return _article(
        article_id=_id_path(rel),
        title=title or _derived_title(pdf.text, limits.max_title) or path.stem,
        text=pdf.text,
        rel=rel,
        date=pdf.date,
        pages=pdf.pages,
    )


def _split_front_matter(content: str) -> tuple[dict[str, Any], str]:
    import frontmatter  # with YAML, 0.1 s of imports that a bot serving the index never needs
    import yaml

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
    except RecursionError:
        raise _Unreadable("invalid front matter: nested too deeply") from None
    except ValueError as error:  # JSON/TOML front matter, or an impossible YAML date
        raise _Unreadable(f"invalid front matter: {_first_line(str(error))}") from None
    if not isinstance(post.metadata, dict):
        raise _Unreadable("invalid front matter: not a mapping of keys to values")
    return dict(post.metadata), post.content


def _yaml_reason(error: yaml.YAMLError) -> str:
    import yaml

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


# JSON "\ud800" escapes and YAML "\ud800" give strings no UTF-8 encoder (SQLite's included)
# accepts; they become U+FFFD, as a decoder with errors="replace" would make them.
_SURROGATES = re.compile("[\ud800-\udfff]")


def _scalar(value: Any) -> str | None:
    """A front matter or JSON value as text: dates in ISO form, absent or empty as None."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # JSON NaN, Infinity, 1e999
        return None
    if isinstance(value, dt.date):  # also datetime, which YAML gives for timestamps
        return value.isoformat()
    text = _SURROGATES.sub("\ufffd", str(value)).strip()
    return text or None


def _title(value: Any, limits: _Limits) -> str:
    return cap_title(normalise_title(_scalar(value) or ""), limits.max_title)


def _url(value: Any) -> str | None:
    """A URL to cite; one too long to be a real link is ignored rather than cut."""
    url = normalise_title(_scalar(value) or "")
    return url if url and len(url) <= MAX_URL_CHARS else None


def _date(value: Any) -> str | None:
    date = _scalar(value)
    return date if date and len(date) <= MAX_DATE_CHARS else None


def _own_id(value: str | None, what: str) -> str | None:
    """An id given by the file itself, checked: it becomes part of a stored, shown id."""
    if value is None:
        return None
    if len(value) > MAX_OWN_ID_CHARS:
        size = f"{len(value):,} characters, over {MAX_OWN_ID_CHARS}"
        raise _Unreadable(f"{what} is too long ({size})")
    found = _UNPRINTABLE.search(value)
    if found is not None:
        raise _Unreadable(f"{what} contains a control character (U+{ord(found.group()):04X})")
    return value


def _article_id(rel: str, own_id: str | None) -> str:
    return f"{_id_path(rel)}#{own_id}" if own_id is not None else _id_path(rel)


def _heading_title(text: str) -> str | None:
    """The first ATX heading's text, without a closing run of '#' (CommonMark's rule)."""
    heading = _ATX_HEADING.search(text)
    if heading is None:
        return None
    title = heading.group(1).rstrip(" \t")
    unclosed = title.rstrip("#")
    if not unclosed or unclosed[-1] in " \t":
        title = unclosed
    return normalise_title(title) or None


def _markdown_title(text: str, path: Path, limits: _Limits) -> str:
    heading = _heading_title(text)
    if heading:
        return cap_title(heading, limits.max_title)
    return _derived_title(text, limits.max_title) or path.stem


@functools.lru_cache(maxsize=1)
def _html_extractor(day: str) -> Extractor:
    """One trafilatura configuration per `day`, not per file.

    Building it reads trafilatura's config file, and it fixes "today" as the latest date a page
    may carry, hence the key. Imported lazily: trafilatura is slow to import and most folders
    hold no HTML.
    """
    from trafilatura.settings import Extractor

    return Extractor(output_format="python", with_metadata=True, comments=False)


def _parse_html(raw: bytes | str, path: Path, rel: str, limits: _Limits) -> Article:
    from trafilatura import bare_extraction

    options = _html_extractor(dt.date.today().isoformat())
    try:
        # Bytes where possible: trafilatura honours the page's declared or detected charset.
        document = bare_extraction(raw, options=options)
    except Exception as error:  # a third-party parser on arbitrary input: contain it
        log.debug("trafilatura failed on %s", _printable(rel), exc_info=True)
        raise _Unreadable(f"could not parse HTML: {_first_line(str(error))[:200]}") from None
    if document is None or isinstance(document, dict):
        raise _Unreadable("no article text found in HTML")
    text = normalise_text(document.text or "")
    if not text:
        raise _Unreadable("no article text found in HTML")
    full_title = normalise_title(document.title or "")
    first, _, rest = text.partition("\n")
    if rest.strip() and full_title and normalise_title(first) == full_title:
        # trafilatura keeps the page's <h1> in the text; the title is stored on its own.
        text = rest.strip()
    return _article(
        article_id=_id_path(rel),
        title=cap_title(full_title, limits.max_title) or path.stem,
        text=text,
        rel=rel,
        url=_url(document.url),
        date=_date(document.date),
    )


def _json_loads(content: str) -> object:
    try:
        return json.loads(content)
    except json.JSONDecodeError as error:
        raise _Unreadable(f"invalid JSON: {error.msg}", error.lineno) from None
    except RecursionError:
        raise _Unreadable("invalid JSON: nested too deeply") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        raise _Unreadable("invalid JSON: a number too long to read") from None


def _parse_json(content: str, rel: str, skipped: list[Skipped], limits: _Limits) -> list[_Loaded]:
    data = _json_loads(content)
    if isinstance(data, dict) and "text" not in data:
        for key in JSON_LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if isinstance(data, dict):
        return [_record(data, rel, _id_path(rel), limits)]
    if not isinstance(data, list):
        raise _Unreadable("JSON must hold an object or a list of objects")
    loaded: list[_Loaded] = []
    for number, item in enumerate(data, start=1):
        try:
            record = _record(item, rel, f"{_id_path(rel)}:{number}", limits)
        except _Unreadable as error:
            skipped.append(_skip(rel, f"record {number}: {error.reason}"))
            continue
        loaded.append(_Loaded(record.article, record=number, own_id=record.own_id))
    return loaded


def _parse_jsonl(content: str, rel: str, skipped: list[Skipped], limits: _Limits) -> list[_Loaded]:
    loaded: list[_Loaded] = []
    # split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings
    for number, line in enumerate(content.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            try:
                item = _json_loads(line)
            except _Unreadable as error:
                raise _Unreadable(error.reason) from None  # the line number is the file's
            record = _record(item, rel, f"{_id_path(rel)}:{number}", limits)
        except _Unreadable as error:
            skipped.append(_skip(rel, error.reason, number))
            continue
        loaded.append(_Loaded(record.article, line=number, own_id=record.own_id))
    if not loaded and not skipped:
        raise _Unreadable("no text")
    return loaded


def _record(item: object, rel: str, default_id: str, limits: _Limits) -> _Loaded:
    if not isinstance(item, dict):
        raise _Unreadable(f"record is a JSON {_json_type(item)}, not an object")
    raw_text = item.get("text")
    if raw_text is None:
        raise _Unreadable("record has no 'text'")
    if not isinstance(raw_text, str):
        raise _Unreadable(f"record's 'text' is a JSON {_json_type(raw_text)}, not a string")
    raw_id = item.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, int | str)):
        raise _Unreadable(
            f"record's 'id' is a JSON {_json_type(raw_id)}, not a string or an integer"
        )
    own_id = _own_id(_scalar(raw_id), "record's 'id'")
    text = normalise_text(_SURROGATES.sub("\ufffd", raw_text))
    if not text:
        raise _Unreadable("no text")
    article = _article(
        article_id=f"{_id_path(rel)}#{own_id}" if own_id is not None else default_id,
        title=_title(item.get("title"), limits) or _derived_title(text, limits.max_title),
        text=text,
        rel=rel,
        url=_url(item.get("url")),
        date=_date(item.get("date")),
    )
    return _Loaded(article, own_id=own_id)


def _derived_title(text: str, max_title: int) -> str:
    """The first line of (normalised) text, cut at a word boundary to fit `MAX_DERIVED_TITLE`."""
    limit = min(MAX_DERIVED_TITLE, max_title)
    return cap_title(_line_start(text.partition("\n")[0], limit), limit)


def _line_start(line: str, max_chars: int) -> str:
    """`normalise_title(line)` for a line of normalised text, but only as far as a title
    `max_chars` long can need: a line may be a whole megabyte-long file."""
    words = line.split(None, max_chars)
    if len(words) > max_chars:  # the rest, unsplit: the words before it fill the title
        words[-1] = "…"
    return " ".join(words)


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    if value is None:
        return "null"
    return names.get(type(value), "object" if isinstance(value, dict) else type(value).__name__)

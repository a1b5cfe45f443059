"""Fetched articles as files in the articles folder: names, front matter, duplicates, pruning.

Each fetched article is one Markdown file under `ARTICLES_DIR/web/<host>/`, named from its
canonical URL (a readable slug plus a hash of the whole URL), so fetching the same article
again finds the same file, and the folder remains something a person can read, back up,
edit or delete. The front matter holds what the loader reads (`title`, `url`, `date`,
`pages`) and what sources need (`author`, `site`, `fetched`, `feed`, `sha256` of the text).

The same text under another URL is the same article (a tracking parameter, a mirror, an
AMP copy): it is found by its text hash and not added again. A file is replaced only when
a new version was fetched and read in full, atomically, so a failed refresh leaves the
previous version in place and indexed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import frontmatter
import yaml

from .pages import Extracted

log = logging.getLogger(__name__)

WEB_FOLDER = "web"
SLUG_CHARS = 60
Status = Literal["added", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class Saved:
    """What saving an article did: its file (relative to the articles folder) and status."""

    status: Status
    path: str
    title: str
    url: str


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def article_path(canonical_url: str) -> str:
    """`web/<host>/<slug>-<hash>.md`, relative to the articles folder, from the URL alone."""
    parts = urlsplit(canonical_url)
    host = re.sub(r"[^a-z0-9.-]+", "-", (parts.hostname or "site").lower()).strip(".-") or "site"
    segments = [s for s in parts.path.split("/") if s]
    last = segments[-1] if segments else "index"
    last = re.sub(r"\.(html?|php|aspx?|pdf|txt)$", "", last, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-")[:SLUG_CHARS].strip("-")
    digest = hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:12]
    return f"{WEB_FOLDER}/{host}/{slug or 'page'}-{digest}.md"


def render(extracted: Extracted, meta: dict[str, Any]) -> str:
    """The article file's content: YAML front matter, then the text."""
    front: dict[str, Any] = {
        "title": extracted.title,
        "url": extracted.url,
        "date": extracted.date,
        "author": extracted.author,
        "site": extracted.site,
        "kind": extracted.kind,
        **meta,
        "sha256": text_hash(extracted.text),
    }
    if extracted.pages:
        front["pages"] = list(extracted.pages)
    front = {k: v for k, v in front.items() if v is not None}
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1_000_000)
    return f"---\n{head}---\n\n{extracted.text}\n"


class Library:
    """The fetched articles of one articles folder, indexed by URL and by text."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_url: dict[str, str] = {}
        self.by_hash: dict[str, str] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        for rel, meta in self._scan():
            self._remember(rel, meta)

    def _scan(self) -> Iterator[tuple[str, dict[str, Any]]]:
        folder = self.root / WEB_FOLDER
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*.md")):
            if path.is_symlink() or not path.is_file() or path.name.startswith("."):
                continue
            meta = read_front_matter(path)
            if meta is not None:
                yield path.relative_to(self.root).as_posix(), meta

    def _remember(self, rel: str, meta: dict[str, Any]) -> None:
        self.meta[rel] = meta
        if isinstance(meta.get("url"), str):
            self.by_url[meta["url"]] = rel
        if isinstance(meta.get("sha256"), str):
            self.by_hash.setdefault(meta["sha256"], rel)

    def find(self, url: str) -> str | None:
        """The file of the article at `url` (canonical or as fetched), if there is one."""
        rel = self.by_url.get(url)
        if rel is not None:
            return rel
        for rel, meta in self.meta.items():
            if meta.get("source") == url:
                return rel
        return None

    def save(self, extracted: Extracted, meta: dict[str, Any]) -> Saved:
        """Write `extracted` as an article file, unless the folder already holds it."""
        rel = article_path(extracted.url)
        digest = text_hash(extracted.text)
        previous = self.meta.get(rel)
        if previous is not None and previous.get("sha256") == digest:
            return Saved("unchanged", rel, str(previous.get("title") or extracted.title),
                         extracted.url)  # fmt: skip
        twin = self.by_hash.get(digest)
        if previous is None and twin is not None and twin != rel:
            title = str(self.meta[twin].get("title") or extracted.title)
            return Saved("unchanged", twin, title, str(self.meta[twin].get("url") or ""))
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        content = render(extracted, meta)
        try:
            tmp.write_text(content, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written = read_front_matter(path) or {}
        self._remember(rel, written)
        return Saved("updated" if previous is not None else "added", rel, extracted.title,
                     extracted.url)  # fmt: skip

    def prune(self, days: int, now: dt.datetime | None = None) -> list[str]:
        """Delete articles that came from a feed or sitemap and are older than `days` days.

        Age is the article's date, else when it was fetched. Articles added by hand (no
        `feed` in their front matter) are never pruned.
        """
        now = now or dt.datetime.now(dt.UTC)
        cutoff = now - dt.timedelta(days=days)
        removed: list[str] = []
        for rel, meta in sorted(self.meta.items()):
            if not meta.get("feed"):
                continue
            when = parse_date(meta.get("date")) or parse_date(meta.get("fetched"))
            if when is None or when >= cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()
            removed.append(rel)
        for rel in removed:
            meta = self.meta.pop(rel)
            if self.by_url.get(str(meta.get("url"))) == rel:
                del self.by_url[str(meta.get("url"))]
            if self.by_hash.get(str(meta.get("sha256"))) == rel:
                del self.by_hash[str(meta.get("sha256"))]
        return removed


def read_front_matter(path: Path) -> dict[str, Any] | None:
    """The front matter of an article file, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(256_000)
        post = frontmatter.loads(head if head.count("\n---") >= 1 else "")
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None
    meta = dict(post.metadata) if isinstance(post.metadata, dict) else None
    if meta is not None and isinstance(meta.get("date"), dt.date):
        meta["date"] = meta["date"].isoformat()
    return meta


def parse_date(value: Any) -> dt.datetime | None:
    """An ISO date or datetime as an aware datetime (UTC when it has no zone), else None."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        try:
            when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

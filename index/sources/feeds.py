"""RSS/Atom feeds and sitemaps -> the page URLs they list, and what a refresh remembers.

feedparser reads RSS 0.9x/1.0/2.0 and Atom from the bytes `fetch` got (it never fetches
anything itself when given bytes). Sitemaps are read with lxml with entities, DTDs and
network access off. The refresh state (`RefreshState`, a JSON file in the articles
folder's hidden `.sources/`) keeps each feed's ETag and Last-Modified for conditional GETs
and each entry's last seen update, so a refresh fetches only what is new or changed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from .fetch import FetchError, check_url

log = logging.getLogger(__name__)

STATE_FILE = ".sources/state.json"
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


class FeedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Entry:
    """A page a feed or sitemap lists; `updated` is its own stamp, compared as text."""

    url: str
    updated: str | None = None
    title: str | None = None


def parse_feed(body: bytes, base_url: str) -> list[Entry]:
    """The entries of an RSS or Atom feed, in the feed's order (newest first, usually).

    Raises:
        FeedError: not a feed.
    """
    import feedparser

    parsed = feedparser.parse(body, response_headers={"content-location": base_url})
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FeedError(f"not an RSS or Atom feed{f' ({problem})' if problem else ''}")
    entries: list[Entry] = []
    for item in parsed.entries:
        link = item.get("link") or _first_link(item)
        url = _page_url(link, base_url)
        if url is None:
            continue
        # plain dict lookups: FeedParserDict maps a missing "updated" to "published", warning
        updated = dict.get(item, "updated") or dict.get(item, "published")
        entries.append(Entry(url, str(updated) if updated else None, item.get("title")))
    return entries


def _first_link(item: Any) -> str | None:
    for link in item.get("links", []):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return str(link["href"])
    return None


def parse_sitemap(body: bytes, base_url: str) -> tuple[list[Entry], list[str]]:
    """(pages, nested sitemaps) of a sitemap or a sitemap index.

    Raises:
        FeedError: not a sitemap.
    """
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True,
    )  # fmt: skip
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"not a sitemap: {exc}") from None
    if root is None:
        raise FeedError("not a sitemap: empty document")
    tag = etree.QName(root).localname
    if tag not in ("urlset", "sitemapindex"):
        raise FeedError(f"not a sitemap: the document is <{tag}>")
    pages: list[Entry] = []
    nested: list[str] = []
    for node in root:
        if not isinstance(node.tag, str):
            continue
        loc = _child_text(node, "loc")
        url = _page_url(loc, base_url)
        if url is None:
            continue
        if tag == "sitemapindex":
            nested.append(url)
        else:
            pages.append(Entry(url, _child_text(node, "lastmod")))
    return pages, nested


def _child_text(node: Any, name: str) -> str | None:
    for child in node:
        if isinstance(child.tag, str) and child.tag.split("}")[-1] == name:
            return (child.text or "").strip() or None
    return None


def _page_url(link: str | None, base_url: str) -> str | None:
    if not link:
        return None
    try:
        return check_url(urljoin(base_url, link.strip()))
    except FetchError:
        return None


class RefreshState:
    """ETags, Last-Modified stamps and seen entries, kept between refreshes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, dict[str, Any]]] = {"feeds": {}, "entries": {}}
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # none yet, or damaged: the next refresh fetches everything once
        if isinstance(loaded, dict):
            for key in ("feeds", "entries"):
                if isinstance(loaded.get(key), dict):
                    self.data[key] = loaded[key]

    @classmethod
    def for_folder(cls, articles_dir: Path) -> RefreshState:
        return cls(articles_dir / STATE_FILE)

    def feed(self, url: str) -> dict[str, Any]:
        return self.data["feeds"].setdefault(url, {})

    def entry(self, url: str) -> dict[str, Any]:
        return self.data["entries"].setdefault(url, {})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

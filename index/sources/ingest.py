"""Adding URLs and refreshing feeds: fetch, extract, write article files; one report each.

These functions only change the articles folder; the caller rebuilds the index afterwards
(once for a whole refresh), so `rebuild` stays the one way into the index. One URL that
fails, for whatever reason, is reported with its reason and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..settings import IndexSettings
from .feeds import Entry, FeedError, RefreshState, parse_feed, parse_sitemap
from .fetch import Fetched, Fetcher, FetchError, FetchPolicy
from .library import Library, utc_now
from .pages import ExtractError, extract
from .sourcesfile import Source, SourcesFile

log = logging.getLogger(__name__)

Status = Literal["added", "updated", "unchanged", "failed"]
MAX_NESTED_SITEMAPS = 20


@dataclass(slots=True)
class Outcome:
    """What became of one URL."""

    url: str
    status: Status
    title: str | None = None
    path: str | None = None
    reason: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.status == "failed":
            return {"url": self.url, "reason": self.reason}
        return {"url": self.url, "title": self.title, "path": self.path}


@dataclass(slots=True)
class FeedOutcome:
    """What a refresh did with one feed, sitemap or page of the sources file."""

    url: str
    kind: str
    status: Literal["fetched", "not_modified", "failed"]
    entries: int = 0
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "kind": self.kind, "status": self.status,
                                "entries": self.entries}  # fmt: skip
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@dataclass(slots=True)
class SourcesReport:
    """Every URL's outcome, and for a refresh every source's and what was pruned."""

    outcomes: list[Outcome] = field(default_factory=list)
    feeds: list[FeedOutcome] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    def with_status(self, status: Status) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def changed(self) -> bool:
        """Whether the articles folder changed, so the index needs a rebuild."""
        return bool(self.pruned) or any(o.status in ("added", "updated") for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [o.to_json() for o in self.with_status("added")],
            "updated": [o.to_json() for o in self.with_status("updated")],
            "unchanged": [o.to_json() for o in self.with_status("unchanged")],
            "failed": [o.to_json() for o in self.with_status("failed")],
        }


def fetch_policy(settings: IndexSettings) -> FetchPolicy:
    return FetchPolicy(
        allow_private=settings.fetch_allow_private,
        timeout=settings.fetch_timeout_seconds,
        max_bytes=settings.fetch_max_bytes,
    )


def add_urls(
    settings: IndexSettings, urls: Sequence[str], *, policy: FetchPolicy | None = None
) -> SourcesReport:
    """Fetch each URL and write its article into the articles folder."""
    settings.articles_dir.mkdir(parents=True, exist_ok=True)
    library = Library(settings.articles_dir)
    report = SourcesReport()
    with Fetcher(policy or fetch_policy(settings)) as fetcher:
        for url in dict.fromkeys(urls):
            report.outcomes.append(fetch_article(fetcher, library, settings, url))
    return report


def fetch_article(
    fetcher: Fetcher,
    library: Library,
    settings: IndexSettings,
    url: str,
    *,
    feed: str | None = None,
    seen: dict[str, Any] | None = None,
) -> Outcome:
    """Fetch, extract and save one article; never raises for a bad URL or page.

    `seen` is what a previous refresh recorded for this URL (ETag, Last-Modified, file):
    the request is then conditional and a 304 costs nothing.
    """
    seen = seen or {}
    try:
        fetched = fetcher.get(url, etag=seen.get("etag"), last_modified=seen.get("last_modified"))
        if fetched.not_modified:
            path = seen.get("path")
            meta = library.meta.get(path or "")
            if meta is not None:
                return Outcome(
                    url,
                    "unchanged",
                    str(meta.get("title") or ""),
                    path,
                    etag=fetched.etag or seen.get("etag"),
                    last_modified=fetched.last_modified or seen.get("last_modified"),
                )
            fetched = fetcher.get(url)  # we lost the file: fetch it whole
        extracted = extract(fetched, max_title_chars=settings.max_title_chars)
        size = len(extracted.text.encode("utf-8"))
        if size > settings.max_article_bytes - 10_000:  # room for the front matter
            raise ExtractError(
                f"article text is {size:,} bytes, over MAX_ARTICLE_BYTES "
                f"({settings.max_article_bytes:,})"
            )
        meta: dict[str, Any] = {"fetched": utc_now()}
        if _plain(fetched.url) != extracted.url:
            meta["source"] = fetched.url
        if feed is not None:
            meta["feed"] = feed
        saved = library.save(extracted, meta)
    except (FetchError, ExtractError) as exc:
        log.info("not added: %s: %s", url, exc.reason)
        return Outcome(url, "failed", reason=exc.reason)
    except OSError as exc:
        return Outcome(url, "failed", reason=f"cannot write the article: {exc.strerror or exc}")
    except Exception as exc:  # one broken page must not stop the others
        log.warning("adding %s failed unexpectedly", url, exc_info=True)
        return Outcome(url, "failed", reason=f"unexpected {type(exc).__name__}: {exc}"[:300])
    return Outcome(url, saved.status, saved.title, saved.path, etag=fetched.etag,
                   last_modified=fetched.last_modified)  # fmt: skip


def _plain(url: str) -> str:
    from .pages import strip_fragment

    return strip_fragment(url)


def refresh_sources(
    settings: IndexSettings,
    sources: SourcesFile,
    *,
    prune_days: int | None = None,
    policy: FetchPolicy | None = None,
) -> SourcesReport:
    """Pull new and changed entries of every source; prune old feed articles if asked.

    A source that fails is reported and the others go on; an article whose refresh fails
    keeps its previous file (and so stays indexed).
    """
    settings.articles_dir.mkdir(parents=True, exist_ok=True)
    library = Library(settings.articles_dir)
    state = RefreshState.for_folder(settings.articles_dir)
    report = SourcesReport()
    with Fetcher(policy or fetch_policy(settings)) as fetcher:
        for source in sources.sources:
            if source.kind == "page":
                outcome = fetch_article(
                    fetcher, library, settings, source.url, seen=state.entry(source.url)
                )
                _remember(state, outcome)
                report.outcomes.append(outcome)
                report.feeds.append(FeedOutcome(
                    source.url, "page", "failed" if outcome.status == "failed" else "fetched",
                    1, outcome.reason,
                ))  # fmt: skip
                continue
            report.feeds.append(_refresh_feed(fetcher, library, settings, source, state, report))
    try:
        state.save()
    except OSError as exc:
        log.warning("could not save the refresh state in %s: %s", state.path, exc)
    if prune_days is not None:
        report.pruned = library.prune(prune_days)
    return report


def _refresh_feed(
    fetcher: Fetcher,
    library: Library,
    settings: IndexSettings,
    source: Source,
    state: RefreshState,
    report: SourcesReport,
) -> FeedOutcome:
    recorded = state.feed(source.url)
    try:
        fetched = fetcher.get(
            source.url, etag=recorded.get("etag"), last_modified=recorded.get("last_modified")
        )
        if fetched.not_modified:
            recorded["checked"] = utc_now()
            return FeedOutcome(source.url, source.kind, "not_modified")
        entries = _entries(fetcher, source, fetched)
    except (FetchError, FeedError) as exc:
        log.info("refresh of %s failed: %s", source.url, exc.reason)
        return FeedOutcome(source.url, source.kind, "failed", reason=exc.reason)
    if source.include:
        entries = [e for e in entries if source.include in e.url]
    entries = entries[: source.max_entries or settings.refresh_max_entries]
    for entry in entries:
        seen = state.entry(entry.url)
        path = seen.get("path")
        if (
            path
            and entry.updated is not None
            and seen.get("updated") == entry.updated
            and path in library.meta
        ):
            continue  # listed before with the same stamp: nothing new to fetch
        outcome = fetch_article(fetcher, library, settings, entry.url, feed=source.url,
                                seen=seen)  # fmt: skip
        if outcome.status != "failed":
            seen["updated"] = entry.updated
        _remember(state, outcome)
        report.outcomes.append(outcome)
    recorded.update(etag=fetched.etag, last_modified=fetched.last_modified, checked=utc_now())
    return FeedOutcome(source.url, source.kind, "fetched", entries=len(entries))


def _entries(fetcher: Fetcher, source: Source, fetched: Fetched) -> list[Entry]:
    if fetched.kind not in ("xml", "html", "text"):
        raise FeedError(f"a {fetched.media_type} document is not a feed or sitemap")
    if source.kind == "feed":
        return parse_feed(fetched.body, fetched.final_url)
    pages, nested = parse_sitemap(fetched.body, fetched.final_url)
    for url in nested[:MAX_NESTED_SITEMAPS]:  # a sitemap index: one level deep
        try:
            inner = fetcher.get(url)
            more, _ = parse_sitemap(inner.body, inner.final_url)
        except (FetchError, FeedError) as exc:
            log.info("nested sitemap %s skipped: %s", url, exc.reason)
            continue
        pages.extend(more)
    return pages


def _remember(state: RefreshState, outcome: Outcome) -> None:
    if outcome.status == "failed":
        return
    seen = state.entry(outcome.url)
    seen.update(path=outcome.path, etag=outcome.etag, last_modified=outcome.last_modified,
                checked=utc_now())  # fmt: skip

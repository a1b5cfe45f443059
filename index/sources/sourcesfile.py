"""The sources file (`SOURCES_FILE`, TOML): the feeds, sitemaps and pages to keep fresh.

    # sources.toml
    [[feed]]                      # RSS or Atom
    url = "https://news.example.org/rss.xml"

    [[sitemap]]                   # sitemap.xml, or a sitemap index (one level deep)
    url = "https://docs.example.org/sitemap.xml"
    include = "/guides/"          # optional: only page URLs containing this

    [[page]]                      # a single page, fetched again on each refresh
    url = "https://example.org/about"

Any entry may set `max_entries` (default `REFRESH_MAX_ENTRIES`): the newest entries a
refresh looks at. A mistake in the file is one error naming the entry, before any fetch.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .fetch import FetchError, check_url

MAX_SOURCES_FILE_BYTES = 1_000_000


class SourcesFileError(Exception):
    """The sources file cannot be read or is not valid; the message names where."""


class Source(BaseModel):
    """One feed, sitemap or page of the sources file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["feed", "sitemap", "page"]
    url: str
    include: str | None = Field(None, max_length=500)
    max_entries: int | None = Field(None, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            return check_url(value)
        except FetchError as exc:
            raise ValueError(exc.reason) from None


class SourcesFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    sources: tuple[Source, ...] = ()

    @property
    def feeds(self) -> list[Source]:
        """Feeds and sitemaps: what a background refresh follows."""
        return [s for s in self.sources if s.kind in ("feed", "sitemap")]


def load_sources_file(path: Path) -> SourcesFile:
    """Read and check `path`.

    Raises:
        SourcesFileError: missing, too large, not TOML, or an entry is wrong.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourcesFileError(f"cannot read SOURCES_FILE {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_SOURCES_FILE_BYTES:
        raise SourcesFileError(f"SOURCES_FILE {path} is over {MAX_SOURCES_FILE_BYTES:,} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SourcesFileError(f"SOURCES_FILE {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourcesFileError(f"SOURCES_FILE {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"feed", "sitemap", "page"})
    if unknown:
        raise SourcesFileError(
            f"SOURCES_FILE {path}: unknown table {unknown[0]!r} (use [[feed]], [[sitemap]] "
            "or [[page]])"
        )
    sources: list[Source] = []
    for kind in ("feed", "sitemap", "page"):
        entries = data.get(kind, [])
        if not isinstance(entries, list):
            raise SourcesFileError(f"SOURCES_FILE {path}: write [[{kind}]], not [{kind}]")
        for number, entry in enumerate(entries, 1):
            if not isinstance(entry, dict):
                raise SourcesFileError(f"SOURCES_FILE {path}: {kind} {number} is not a table")
            try:
                sources.append(Source(kind=kind, **entry))
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or kind}: "
                    f"{e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()
                )
                raise SourcesFileError(
                    f"SOURCES_FILE {path}: {kind} {number}: {problems}"
                ) from None
    return SourcesFile(sources=tuple(sources))

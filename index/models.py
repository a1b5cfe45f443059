"""The records that cross module boundaries inside `index/` and out to `bot/`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Article:
    """One article as loaded from disk.

    `id` is stable across rebuilds (path relative to the articles folder; a record's or front
    matter's own id namespaced by that path, `path#id`, so no file can claim another's), so
    incremental rebuilds can tell a changed article from a new one.
    """

    id: str
    title: str
    text: str
    source: str  # what a citation points at: the URL when known, else the relative path
    path: str  # file the article came from, relative to the articles folder
    url: str | None = None
    date: str | None = None
    # Spans of `text` that are not the article (pitches, share bars, bylines...), kept out of
    # chunks and answers; None until `index.boilerplate.mark_boilerplate` has looked.
    boilerplate: tuple[tuple[int, int], ...] | None = None
    # PDFs: where each page starts in `text` (page i + 1 at offset pages[i]), for "p. 4".
    pages: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file, or one record of a file, that could not be indexed, and why."""

    path: str
    reason: str
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A window of an article's text; `start`/`end` are character offsets into `Article.text`."""

    article_id: str
    ordinal: int
    start: int
    end: int
    text: str
    tokens: int  # word pieces of the embedded input (title + text), special tokens included

    @property
    def id(self) -> str:
        return chunk_id(self.article_id, self.ordinal)


def chunk_id(article_id: str, ordinal: int) -> str:
    return f"{article_id}#{ordinal}"


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result; `text` is exactly `article.text[start:end]`."""

    rank: int
    score: float
    chunk_id: str
    article_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    url: str | None = None
    dense_score: float | None = None
    lexical_score: float | None = None
    # Other articles whose copy of this passage (the same story syndicated under another
    # headline) was collapsed into this hit.
    also_in: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "chunk_id": self.chunk_id,
            "article_id": self.article_id,
            "title": self.title,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "also_in": list(self.also_in),
        }


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild did; `to_json` is the `rebuild --json` contract."""

    articles: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    version: str | None = None
    published: bool = False
    full: bool = False
    incremental: bool = False
    """Written as changes to the previous version's files rather than whole."""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: plan, chunk, embed, sqlite, vectors, bm25, ann, checksums, publish."""

    def to_json(self) -> dict[str, Any]:
        return {
            "articles": self.articles,
            "chunks": self.chunks,
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "skipped": [s.to_json() for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "version": self.version,
            "published": self.published,
            "full": self.full,
            "incremental": self.incremental,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
        }

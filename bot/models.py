"""What an answer is, as every transport (terminal, Discord, JSON) sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from index.models import Hit


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered source: `quote` is exactly `article.text[start:end]`, checked before use."""

    n: int
    article_id: str
    title: str
    source: str
    chunk_id: str
    start: int
    end: int
    quote: str
    score: float
    url: str | None = None  # the article's address
    date: str | None = None  # the article's date, shown with the citation
    page: int | None = None  # a PDF's page holding the quote
    link: str | None = None  # the passage itself: `url#:~:text=...` (`citations.passage_link`)

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "article_id": self.article_id,
            "title": self.title,
            "source": self.source,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "quote": self.quote,
            "score": round(self.score, 6),
            "url": self.link or self.url,
            "date": self.date,
            "page": self.page,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """`text` carries `[n]` markers; `[n]` refers to every citation numbered `n`.

    Numbers are per article (`citations.number_by_article`): several quotes from one article
    share its number, and the citations are listed in number order.

    When `found` is False the text says the articles do not answer the question and the
    citations are the closest sources offered instead (nothing is claimed from them); a reply
    to small talk ("hi", "thanks") is not found and has no citations.
    """

    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    answerer: str = "extractive"  # or "llm", or "chitchat" for a reply to small talk
    seconds: float = 0.0
    # The passages the answer was chosen from, after conversation handling (best first).
    retrieved: tuple[Hit, ...] = ()
    conversation: str | None = None  # the conversation id the question was asked in
    # A follow-up as an LLM rewrote it to stand alone for the search (`condense.py`).
    standalone_question: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "found": self.found,
            "citations": [c.to_json() for c in self.citations],
        }

"""PDF text, page by page, with where each page starts in the article text.

A citation of a PDF names its page ("p. 4"), so the text is kept as one article (a sentence
may run across a page break, and the article is what people cite) and the character offset
where each page starts is kept beside it (`Article.pages`). Offsets are into the normalised
text, so they stay true after loading.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from dataclasses import dataclass

from index.articles import normalise_text, normalise_title

log = logging.getLogger(__name__)

MAX_PAGES = 5_000  # a larger PDF is refused: a book scan is not an article
PAGE_SEPARATOR = "\n\n"
_PDF_DATE = re.compile(r"^D:(\d{4})(\d{2})?(\d{2})?")


class PdfError(Exception):
    """A PDF that yields no text, with the reason in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PdfText:
    """The text of a PDF; page `i + 1` starts at `text[pages[i]]`."""

    text: str
    pages: tuple[int, ...]
    title: str | None = None
    author: str | None = None
    date: str | None = None


def read_pdf(raw: bytes, *, max_pages: int = MAX_PAGES) -> PdfText:
    """Extract each page's text with pypdf.

    Pages with no text (scans, blank pages) keep their number: the next page with text
    starts where it would have, so page numbers stay those of the document.

    Raises:
        PdfError: not a PDF, encrypted, too many pages, or no text at all.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not raw.lstrip()[:5].startswith(b"%PDF"):
        raise PdfError("not a PDF file")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise PdfError("encrypted PDF")
        count = len(reader.pages)
        if count > max_pages:
            raise PdfError(f"PDF has {count:,} pages, over {max_pages:,}")
        texts = [normalise_text(page.extract_text() or "") for page in reader.pages]
        meta = reader.metadata
    except PdfError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise PdfError(f"could not read PDF: {detail}") from None
    parts: list[str] = []
    starts: list[int] = []
    length = 0
    for page_text in texts:
        if parts and page_text:
            length += len(PAGE_SEPARATOR)
        starts.append(length)
        if page_text:
            parts.append(page_text)
            length += len(page_text)
    text = PAGE_SEPARATOR.join(parts)
    if not text:
        raise PdfError("no text in PDF (a scan without a text layer?)")
    assert len(text) == length
    title = author = date = None
    if meta is not None:
        title = normalise_title(str(meta.title or "")) or None
        author = normalise_title(str(meta.author or "")) or None
        date = _pdf_date(meta.get("/CreationDate"))
    return PdfText(text=text, pages=tuple(starts), title=title, author=author, date=date)


def page_of(pages: tuple[int, ...] | list[int], offset: int) -> int:
    """The 1-based page holding character `offset`."""
    page = 0
    for i, start in enumerate(pages):
        if start <= offset:
            page = i
        else:
            break
    return page + 1


def _pdf_date(value: object) -> str | None:
    """A PDF date (`D:20240131...`) as an ISO date, or None."""
    match = _PDF_DATE.match(str(value or ""))
    if match is None:
        return None
    year, month, day = match.group(1), match.group(2) or "01", match.group(3) or "01"
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None

"""Where a citation is made, and checked.

A citation is a span of an article's text: the quote shown to the user is cut from the
retrieved passage by character offsets and then compared with the article as stored, so a
quote that does not occur verbatim at its offsets is never shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from index.models import Hit

from .models import Citation


def cite(n: int, hit: Hit, start: int, end: int) -> Citation:
    """Cite article characters `[start, end)`, which must lie inside `hit`'s passage."""
    if not (hit.start <= start < end <= hit.end):
        raise ValueError(
            f"span {start}-{end} is outside passage {hit.chunk_id} ({hit.start}-{hit.end})"
        )
    quote = hit.text[start - hit.start : end - hit.start]
    return Citation(
        n=n,
        article_id=hit.article_id,
        title=hit.title,
        source=hit.source,
        chunk_id=hit.chunk_id,
        start=start,
        end=end,
        quote=quote,
        score=hit.score,
        url=hit.url,
    )


def verified(citations: Sequence[Citation], article_text: Callable[[str], str | None]) -> bool:
    """True when every quote occurs verbatim in its article at its offsets."""
    texts: dict[str, str | None] = {}
    for c in citations:
        if c.article_id not in texts:
            texts[c.article_id] = article_text(c.article_id)
        text = texts[c.article_id]
        if text is None or text[c.start : c.end] != c.quote:
            return False
    return True

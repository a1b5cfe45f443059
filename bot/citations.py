"""Where a citation is made, and checked.

A citation is a span of an article's text: the quote shown to the user is cut from the
retrieved passage by character offsets and then compared with the article as stored, so a
quote that does not occur verbatim at its offsets is never shown. Numbering is per article:
several quotes from one article sit under one number (`number_by_article`).

A citation of an article with a web address links to the quoted passage itself
(`passage_link`): a URL text fragment (`#:~:text=start,end`, WICG "URL Fragment Text
Directives") makes the browser scroll to and highlight the quote; a PDF's link opens its
page (`#page=4`, which PDF viewers honour; browsers do not search PDFs for text fragments).
`with_details` adds these links, the article's date and a PDF's page to an answer's
citations, from what the index stores.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import quote as percent_encode
from urllib.parse import urlsplit, urlunsplit

from index.errors import IndexError_
from index.models import Hit
from index.sources.pdf import page_of
from index.store import ArticleDetails

from .models import Answer, Citation


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


log = logging.getLogger(__name__)

FRAGMENT_WORDS = 5  # words at each end of a long quote (`text=start,end`)
WHOLE_QUOTE_WORDS = 10  # a quote up to this many words is matched whole
MAX_FRAGMENT_CHARS = 600  # keep links short enough for an embed field


def text_directive(quote: str) -> str | None:
    """`text=...` matching `quote`, percent-encoded per the WICG text fragments spec.

    A short quote is given whole; a longer one as `textStart,textEnd`, its first and last
    words, which the browser highlights with everything between them. Each term is
    percent-encoded with `-`, `,` and `&` encoded too, since they delimit the directive.
    """
    words = quote.split()
    if not words:
        return None
    if len(words) <= WHOLE_QUOTE_WORDS:
        terms = [" ".join(words)]
    else:
        terms = [" ".join(words[:FRAGMENT_WORDS]), " ".join(words[-FRAGMENT_WORDS:])]
    encoded = [percent_encode(t, safe="").replace("-", "%2D") for t in terms]
    directive = "text=" + ",".join(encoded)
    return directive if len(directive) <= MAX_FRAGMENT_CHARS else None


def passage_link(url: str | None, quote: str, page: int | None = None) -> str | None:
    """A link to `quote` in the article at `url`: a text fragment, or a PDF page.

    An existing fragment (`#section`) is kept, the directive follows it after `:~:` as the
    spec allows; None when the article has no http(s) address.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if page is not None:
        return urlunsplit((*parts[:4], f"page={page}"))
    directive = text_directive(quote)
    if directive is None:
        return url
    fragment = parts.fragment.split(":~:", 1)[0]
    return urlunsplit((*parts[:4], f"{fragment}:~:{directive}"))


def with_details(
    answer: Answer, details: Callable[[Sequence[str]], Mapping[str, ArticleDetails]]
) -> Answer:
    """`answer` with each citation's article date, PDF page and passage link filled in.

    Details that cannot be read leave the citations as they were: a date or a link is worth
    less than the answer itself.
    """
    if not answer.citations:
        return answer
    try:
        found = details([c.article_id for c in answer.citations])
    except IndexError_ as exc:
        log.warning("citation details unavailable: %s", exc)
        found = {}
    cited = []
    for c in answer.citations:
        d = found.get(c.article_id)
        page = page_of(d.pages, c.start) if d is not None and d.pages else None
        cited.append(
            replace(
                c,
                date=d.date if d is not None else c.date,
                page=page,
                link=passage_link(c.url, c.quote, page),
            )
        )
    return replace(answer, citations=cited)


_MARKER_RUN = re.compile(r"\[(\d{1,3})\](?:\s*\[\d{1,3}\])*")
_MARKER = re.compile(r"\[(\d{1,3})\]")


def number_by_article(answer: Answer) -> Answer:
    """`answer` with one number per article: every quote from one article cites the same `[n]`.

    Articles are numbered in the order the text first cites them (then, for citations the
    text does not mention, such as the closest sources of a not-found answer, in list
    order); the citations keep their order within an article and several may share `n`.
    Markers in the text are rewritten to match, and a run such as `[1][2]` whose numbers now
    name one article becomes `[1]`. Applied after either answerer, so both number alike.
    """
    if not answer.citations:
        return answer
    by_n: dict[int, Citation] = {}
    for c in answer.citations:
        by_n.setdefault(c.n, c)
    order: list[str] = []
    for m in _MARKER.finditer(answer.text):
        c = by_n.get(int(m.group(1)))
        if c is not None and c.article_id not in order:
            order.append(c.article_id)
    for c in answer.citations:
        if c.article_id not in order:
            order.append(c.article_id)
    number = {article: i for i, article in enumerate(order, 1)}
    new_n = {n: number[c.article_id] for n, c in by_n.items()}

    def rewrite(m: re.Match[str]) -> str:
        olds = [int(x) for x in _MARKER.findall(m.group())]
        if any(n not in new_n for n in olds):
            return m.group()  # not (only) our markers: leave the text as written
        return "".join(f"[{n}]" for n in sorted({new_n[n] for n in olds}))

    text = _MARKER_RUN.sub(rewrite, answer.text)
    # Quotes from one article follow each other (in text order); exact repeats are dropped.
    seen: set[tuple[str, int, int]] = set()
    citations: list[Citation] = []
    for c in sorted(answer.citations, key=lambda c: new_n[c.n]):
        key = (c.article_id, c.start, c.end)
        if key in seen:
            continue
        seen.add(key)
        citations.append(replace(c, n=new_n[c.n]))
    return replace(answer, text=text, citations=citations)

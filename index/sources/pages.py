"""A fetched page, PDF or text file -> its main text and metadata, ready to become an article.

HTML goes through trafilatura, which drops navigation, ads, share bars and comments and
finds the title, author, date, site name and canonical URL. The canonical URL names the
article (its file name comes from it), so one a page claims is believed only on the page's
own site: a page must not be able to overwrite another site's article by claiming its URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from index.articles import cap_title, normalise_text, normalise_title

from .fetch import Fetched
from .pdf import PdfError, read_pdf

log = logging.getLogger(__name__)

MAX_META_CHARS = 300


class ExtractError(Exception):
    """A fetched resource with no article in it, with the reason in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Extracted:
    """An article's text and what is known about it."""

    url: str  # canonical
    title: str
    text: str
    kind: str  # html, pdf, text
    date: str | None = None
    author: str | None = None
    site: str | None = None
    pages: tuple[int, ...] | None = None


def extract(fetched: Fetched, *, max_title_chars: int = 200) -> Extracted:
    """The article in `fetched` (HTML, PDF or plain text).

    Raises:
        ExtractError: nothing that reads as an article (feeds are not articles either).
    """
    url = strip_fragment(fetched.final_url)
    if fetched.kind == "html":
        return _html(fetched.body, url, max_title_chars)
    if fetched.kind == "pdf":
        try:
            pdf = read_pdf(fetched.body)
        except PdfError as exc:
            raise ExtractError(exc.reason) from None
        title = pdf.title or _first_line(pdf.text) or _name_from_url(url)
        return Extracted(
            url=url,
            title=cap_title(title, max_title_chars),
            text=pdf.text,
            kind="pdf",
            date=pdf.date,
            author=_meta(pdf.author),
            site=urlsplit(url).hostname,
            pages=pdf.pages,
        )
    if fetched.kind == "text":
        text = normalise_text(_decode_text(fetched.body))
        if not text:
            raise ExtractError("empty text")
        first, _, rest = text.partition("\n")
        title = normalise_title(first)
        body = rest.strip() if len(title) <= max_title_chars and rest.strip() else text
        return Extracted(
            url=url,
            title=cap_title(title, max_title_chars) or _name_from_url(url),
            text=body,
            kind="text",
            site=urlsplit(url).hostname,
        )
    raise ExtractError(f"a {fetched.media_type} document is a feed or sitemap, not an article")


def strip_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/",
                       parts.query, ""))  # fmt: skip


def same_site(a: str, b: str) -> bool:
    """Whether two URLs are on one host (a leading `www.` aside)."""
    ha = (urlsplit(a).hostname or "").removeprefix("www.")
    hb = (urlsplit(b).hostname or "").removeprefix("www.")
    return bool(ha) and ha == hb


def _html(body: bytes, url: str, max_title_chars: int) -> Extracted:
    from trafilatura import bare_extraction
    from trafilatura.settings import Extractor

    options = Extractor(
        output_format="python", with_metadata=True, comments=False, url=url, precision=True
    )
    try:
        document = bare_extraction(_without_ads(body), options=options)
    except Exception as exc:  # a third-party parser on arbitrary input: contain it
        log.debug("trafilatura failed on %s", url, exc_info=True)
        raise ExtractError(f"could not parse HTML: {str(exc)[:200]}") from None
    if document is None or isinstance(document, dict):
        raise ExtractError("no article text found on the page")
    # trafilatura writes one block a line; a blank line between keeps them paragraphs in the
    # Markdown file (where single line breaks read as hard wrapping)
    text = normalise_text("\n\n".join((document.text or "").splitlines()))
    if not text:
        raise ExtractError("no article text found on the page")
    title = normalise_title(document.title or "")
    first, _, rest = text.partition("\n")
    if rest.strip() and title and normalise_title(first) == title:
        text = rest.strip()  # trafilatura keeps the <h1> in the text
    canonical = url
    claimed = (document.url or "").strip()
    if claimed.lower().startswith(("http://", "https://")) and same_site(claimed, url):
        canonical = strip_fragment(claimed)
    return Extracted(
        url=canonical,
        title=cap_title(title, max_title_chars) or _name_from_url(canonical),
        text=text,
        kind="html",
        date=_meta(document.date),
        author=_meta(document.author),
        site=_meta(document.sitename) or urlsplit(canonical).hostname,
    )


_AD_TOKENS = frozenset(
    {"ad", "ads", "advert", "adverts", "advertisement", "sponsored", "sponsor", "promo",
     "promoted", "adslot"}
)  # fmt: skip
_AD_PREFIXES = ("ad-", "ads-", "advert", "sponsor", "promo-", "dfp-", "gpt-ad")


def _is_ad(element: object) -> bool:
    get = getattr(element, "get", None)
    if get is None:
        return False
    tokens = f"{get('class') or ''} {get('id') or ''}".lower().split()
    return any(t in _AD_TOKENS or t.startswith(_AD_PREFIXES) for t in tokens)


def _without_ads(body: bytes) -> bytes | str:
    """The page without elements marked as ads by their class or id.

    trafilatura keeps an ad that sits between two paragraphs of the article (a common
    layout); the markup usually says what it is, so it goes before extraction.
    """
    from lxml import etree, html

    try:
        tree = html.fromstring(body)
    except (etree.ParserError, ValueError):
        return body
    doomed = [el for el in tree.iter() if isinstance(el.tag, str) and _is_ad(el)]
    if not doomed:
        return body
    for element in doomed:
        parent = element.getparent()
        if parent is not None:
            element.drop_tree()
    # text, not bytes: the page's declared charset was applied when parsing
    return html.tostring(tree, encoding="unicode")


def _meta(value: object) -> str | None:
    text = normalise_title(str(value or ""))
    return text[:MAX_META_CHARS] or None


def _first_line(text: str) -> str:
    return normalise_title(text.partition("\n")[0])[:200]


def _name_from_url(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    return path.rsplit("/", 1)[-1] or urlsplit(url).hostname or url


def _decode_text(raw: bytes) -> str:
    """UTF-8 (or UTF-16 with its mark); a stray bad byte costs one character, not the page."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    return raw.decode("utf-8-sig", errors="replace")

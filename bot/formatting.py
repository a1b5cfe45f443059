"""How an `Answer` looks on Discord (embeds) and in a terminal (plain text).

Pure functions only: no I/O, no client. Discord's limits are enforced here, once, so that a
long answer or an odd article title can never make a send fail with a 400:

- embed title 256, description 4,096, at most 25 fields, field name 256, field value 1,024,
  footer 2,048 and 6,000 characters for the whole embed;
- message content 2,000 (`split_message`).

Article text (quotes, titles, file names, and answer text, which quotes articles or an LLM
that read them) is the writer's, not ours, so Discord shows it as text, never as Markdown
(`md_text`):

- every character Discord reads as formatting is escaped with a backslash, so a masked link
  `[the official desk](http://evil.example)` shows its brackets and its address;
- web addresses are shown whole as `<url>`: visible, so no link hides where it goes, and
  in angle brackets, so a message never unfurls a preview of them;
- mentions are broken with a zero-width space (`discord.utils.escape_mentions`), on top of
  sending everything with `AllowedMentions.none()`, so `@everyone` neither pings nor looks
  like a ping; control characters and bidi overrides are removed (`index.display`);
- limits are applied to the escaped text, one article character at a time, so escaping never
  pushes a field over its limit and a cut never leaves a dangling backslash or half a URL.

`discord.utils.escape_markdown` is not used for this: it escapes only the first bracket of
its greedy `[...](...)` match, so in `[a](x) [b](y)` the second link stays live, and it does
not escape `<@id>`, `<t:...>`, `[` alone or list markers.

Our own source links (`[title](url)` to the article's recorded address, or to the quoted
passage itself when the citation has a passage link) stay links, with the title escaped and
the address http(s) only; see `source_link`. Each source shows its article's date, when
known (news goes stale: a reader must see how old a claim is), and a PDF's page ("p. 4").
The terminal gets the same text with control sequences removed (`answer_text`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from index.display import printable

from .models import Answer, Citation

if TYPE_CHECKING:  # discord is imported where an embed is made: the terminal never needs it
    import discord

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
MESSAGE_LIMIT = 2000

QUOTE_CHARS = 300  # a short blockquote per quote; the whole passage is one click away
MIN_QUOTE_CHARS = 40  # below this a quote says nothing: leave it out instead
LINK_TEXT_CHARS = 200  # a title as link text
SOURCES_PER_PAGE = 10
ELLIPSIS = "…"
NO_ANSWER_TEXT = "The articles do not answer that."

_COLOURS = {
    "FOUND_COLOUR": "green",
    "NOT_FOUND_COLOUR": "orange",
    "INFO_COLOUR": "blurple",
    "ERROR_COLOUR": "red",
}


def __getattr__(name: str) -> Any:
    """The embed colours, made on first use: importing discord costs the terminal chat's
    start-up ~0.5 s, and only Discord embeds need them."""
    if name in _COLOURS:
        import discord

        return getattr(discord.Colour, _COLOURS[name])()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ArticleLike(Protocol):
    """What `/sources` needs from an indexed article (`index.store.StoredArticle` fits)."""

    @property
    def title(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def url(self) -> str | None: ...


def shown_date(date: str | None) -> str | None:
    """An article date as shown: the day of an ISO timestamp, else the text as given."""
    if not date or not date.strip():
        return None
    date = date.strip()
    if re.match(r"\d{4}-\d{2}-\d{2}", date):
        return date[:10]
    return truncate(one_line(date), 30)


def source_details(date: str | None, pages: Sequence[int] = ()) -> str:
    """The "2016-12-16, p. 4" of a source's heading; empty when neither is known."""
    bits = []
    day = shown_date(date)
    if day:
        bits.append(day)
    if pages:
        bits.append(("p. " if len(pages) == 1 else "pp. ") + ", ".join(str(n) for n in pages))
    return ", ".join(bits)


# ------------------------------------------------------------------------------ text helpers


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary, ending with "…".

    For our own plain text; article text for Discord goes through `md_text`, which cuts the
    escaped text safely.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit == 1:
        return ELLIPSIS
    # The last word boundary that leaves room for the ellipsis (a space right at the cut
    # counts: then the whole word before it fits).
    space = max(text.rfind(" ", 0, limit), text.rfind("\n", 0, limit))
    # ...unless it is too far back: then cut inside the word.
    cut = text[:space] if space >= limit // 2 else text[: limit - 1]
    return cut.rstrip() + ELLIPSIS


def one_line(text: str) -> str:
    """`text` printable on one line: controls removed, runs of whitespace made one space."""
    return " ".join(printable(text).split())


# What Discord autolinks in text (it also links `steam://`); such a run is shown as `<url>`.
# It stops at brackets and backslashes, which are escaped as text instead: a raw `]` in an
# autolink could otherwise pair with a `[` before it into a masked link.
_URL = re.compile(r"(?:https?|steam)://[^\s<>\[\]\\]+", re.IGNORECASE)
# Text that reads as a web address, which must never be the visible text of a link elsewhere.
_URL_LIKE = re.compile(r"\b[a-z][a-z0-9+.-]*://|\bwww\.", re.IGNORECASE)
# Trailing characters that close a sentence or markup rather than belong to the address.
_URL_TAIL = ".,:;!?'\"*_~|"
# Characters that start or end formatting anywhere in a line; `#` and `>` only do at the
# start of a line, but escaping them everywhere is cheap and simpler to check.
_MARKDOWN = frozenset("\\*_~|`[]()<>#")
# List markers at the start of a line (`- `, `+ `, `1. `, `-# ` subtext): the marker's last
# character is escaped.
_LIST_MARKER = re.compile(r"^[ \t]*([-+]|\d{1,9}[.)])(?=[ \t#]|$)", re.MULTILINE)


def _trim_url(url: str) -> str:
    """`url` without trailing punctuation and unbalanced closing brackets."""
    while url:
        last = url[-1]
        if last in _URL_TAIL or (
            (last == ")" and url.count(")") > url.count("("))
            or (last == "]" and url.count("]") > url.count("["))
        ):
            url = url[:-1]
        else:
            break
    return url


def _md_tokens(text: str, limit: int | None = None) -> Iterator[str]:
    """Each character of `text` as the Markdown that shows it literally; a URL is one token."""
    text = printable(text)
    if limit is not None:
        # Escaping only lengthens text, so what lies past `limit` characters cannot be shown;
        # an address running into the cut cannot fit either (it is one token, `<...>`).
        text = text[: limit + 1]
    pos = 0
    for match in _URL.finditer(text):
        url = _trim_url(match.group())
        if "://" not in url or url.endswith("://"):
            continue  # nothing left of the address: plain text
        yield from _escaped(text[pos : match.start()], pos == 0 or text[pos - 1] == "\n")
        yield f"<{url}>"
        pos = match.start() + len(url)
    yield from _escaped(text[pos:], pos == 0 or text[pos - 1] == "\n")


def _escaped(segment: str, at_line_start: bool) -> Iterator[str]:
    """Each character of `segment` (text between addresses), escaped where it is markup."""
    import discord

    segment = discord.utils.escape_mentions(segment)
    markers = {
        m.end(1) - 1
        for m in _LIST_MARKER.finditer(segment)
        if at_line_start or m.start() > 0  # the segment's start is mid-line after an address
    }
    for i, ch in enumerate(segment):
        yield "\\" + ch if ch in _MARKDOWN or i in markers else ch


def md_text(text: str, limit: int | None = None) -> str:
    """`text` as Discord Markdown that shows it literally, at most `limit` characters.

    A longer text is cut at a word boundary (inside a word only when the boundary is far
    back) and ends with "…". The cut is between escaped characters, so it never leaves a
    backslash escaping the ellipsis, and never inside an address (which is then left out).
    """
    if limit is not None and limit <= 0:
        return ""
    out: list[str] = []
    used = 0
    for token in _md_tokens(text, limit):
        if limit is not None and used + len(token) > limit:
            break
        out.append(token)
        used += len(token)
    else:
        return "".join(out)
    assert limit is not None
    while out and used + len(ELLIPSIS) > limit:
        used -= len(out.pop())
    # Back to the last word boundary, unless that is less than half the room.
    length = used
    for i in range(len(out) - 1, -1, -1):
        length -= len(out[i])
        if out[i].isspace():
            if length >= limit // 2:
                del out[i:]
            break
    while out and out[-1].isspace():
        out.pop()
    return "".join(out) + ELLIPSIS


def safe_url(url: str | None) -> str | None:
    """`url` ready to be a link target, or None when it must not be one.

    Only http(s) with a host, no user name or password (`https://bank.example@evil.example`
    reads as the bank's), no control or space characters inside; the path, query and fragment
    are percent-encoded so that nothing in them can end the Markdown link early.
    """
    if not url:
        return None
    url = url.strip()
    # A space may be an encoding slip (it is percent-encoded below); a control, format or
    # surrogate character never is.
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    if not re.fullmatch(r"[a-z0-9.\-_:\[\]]+", host):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    safe = "/%!$&'*+,;=:@-._~"
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            quote(parts.path, safe=safe),
            quote(parts.query, safe=safe + "?"),
            quote(parts.fragment, safe=safe + "?"),
        )
    )


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split `text` into pieces of at most `limit` characters.

    Breaks at the last paragraph break that fits, else the last line break, else the last
    space, and only cuts inside a word when a single word is longer than `limit` (never
    right after a backslash, which would then escape nothing). Empty pieces are dropped, so
    an empty text gives an empty list.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if len(rest) <= limit:
            pieces.append(rest)
            break
        window = rest[: limit + 1]  # a separator right after the limit still counts
        cut = -1
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > 0:
                cut = at
                break
        if cut <= 0:
            cut = limit
            backslashes = len(rest[:cut]) - len(rest[:cut].rstrip("\\"))
            if backslashes % 2 and cut > 1:
                cut -= 1  # keep the escape with the character it escapes
        head, rest = rest[:cut], rest[cut:]
        head = head.rstrip()
        if head:
            pieces.append(head)
        rest = rest.lstrip()
    return pieces


def code_span(text: str, limit: int = 300) -> str:
    """`text` on one line in inline code style, where Discord reads no Markdown or mentions.

    For file names and the like; backticks inside would end the span early, so they become
    apostrophes.
    """
    shown = truncate(one_line(text).replace("`", "'"), limit) or " "
    return f"`{shown}`"


def blockquote(text: str, limit: int = QUOTE_CHARS) -> str:
    """A one-line Markdown blockquote of (the start of) `text`, escaped; `limit` excludes `> `."""
    short = md_text(" ".join(text.split()), limit)
    return "> " + short if short else ""


def source_link(title: str, url: str | None, source: str, limit: int = FIELD_VALUE_LIMIT) -> str:
    """`[title](url)` when the article has a web address, else the title and `source`.

    The title is escaped (it cannot close the link or open another). No link is masked by
    a title that itself reads as an address ("https://bank.example" over a link elsewhere
    is the oldest phishing trick): then the title and the address are shown side by side.
    An address that is not http(s) is never a link: the source is shown in code style.
    """
    label = title if title.strip() else source
    href = safe_url(url)
    if href is not None and not _URL_LIKE.search(label):
        room = min(LINK_TEXT_CHARS, limit - len(href) - 4)
        if room >= 10:
            return f"[{md_text(label, room)}]({href})"
    where = f"<{href}>" if href is not None else code_span(source)
    if len(where) + 13 <= limit:
        return f"{md_text(label, min(LINK_TEXT_CHARS, limit - len(where) - 3))} — {where}"
    return md_text(label, limit)  # an address too long for the room: the title alone


# ------------------------------------------------------------------------------ sources


@dataclass(frozen=True, slots=True)
class SourceGroup:
    """One source as shown: an article, its number(s) and every quote taken from it."""

    numbers: tuple[int, ...]
    title: str
    source: str
    url: str | None  # the link shown: the first quote's passage link, else the article's
    quotes: tuple[str, ...]
    date: str | None = None
    pages: tuple[int, ...] = ()

    @property
    def details(self) -> str:
        return source_details(self.date, self.pages)

    @property
    def label(self) -> str:
        return "[" + ", ".join(str(n) for n in self.numbers) + "]"


def group_citations(citations: Sequence[Citation]) -> list[SourceGroup]:
    """One entry per numbered source, in order of first citation, quotes in citation order.

    Citations sharing a number are one source (several quotes from one article). Should two
    numbers name the same article, it is still listed once, as `[1, 3]`, rather than twice;
    the same quote twice is shown once.
    """
    groups: list[list[Citation]] = []
    by_number: dict[int, int] = {}
    by_article: dict[str, int] = {}
    for c in citations:
        at = by_number.get(c.n)
        if at is None and c.article_id:
            at = by_article.get(c.article_id)
        if at is None:
            at = len(groups)
            groups.append([])
        groups[at].append(c)
        by_number.setdefault(c.n, at)
        if c.article_id:
            by_article.setdefault(c.article_id, at)
    result = []
    for members in groups:
        first = members[0]
        quotes: list[str] = []
        seen: set[tuple[str, int, int, str]] = set()
        for c in members:
            key = (c.article_id, c.start, c.end, c.quote)
            if key not in seen:
                seen.add(key)
                quotes.append(c.quote)
        result.append(
            SourceGroup(
                numbers=tuple(sorted({c.n for c in members})),
                title=first.title,
                source=first.source,
                url=first.link or first.url,
                quotes=tuple(quotes),
                date=first.date,
                pages=tuple(sorted({c.page for c in members if c.page is not None})),
            )
        )
    return result


def _quote_lines(quotes: Sequence[str], quote_chars: int, room: int) -> str:
    """Blockquote lines for `quotes`, each at most `quote_chars`, all within `room`."""
    lines: list[str] = []
    used = 0
    for i, text in enumerate(quotes):
        share = min(quote_chars, (room - used) // (len(quotes) - i) - 3)  # "> " and "\n"
        if share < MIN_QUOTE_CHARS:
            break
        line = blockquote(text, share)
        if line:
            lines.append(line)
            used += len(line) + 1
    return "\n".join(lines)


# ------------------------------------------------------------------------------ answer embed


def _source_heading(group: SourceGroup) -> tuple[str, str]:
    """Field name `[n] title`, and a link to the article (else its source in code style)."""
    prefix = group.label + " "
    details = f" · {md_text(group.details, 60)}" if group.details else ""
    room = FIELD_NAME_LIMIT - len(prefix) - len(details)
    name = prefix + md_text(one_line(group.title or group.source), room) + details
    if group.url:
        link = source_link(group.title, group.url, group.source, limit=FIELD_VALUE_LIMIT // 2)
    else:  # the title is in the field's name already
        link = code_span(group.source)
    return name, link


def _source_fields(
    groups: Sequence[SourceGroup], headings: Sequence[tuple[str, str]], quote_chars: int
) -> list[tuple[str, str]]:
    """(name, value) per source: the heading's link, then the quotes within `quote_chars`."""
    fields = []
    for group, (name, link) in zip(groups, headings, strict=True):
        quotes = _quote_lines(group.quotes, quote_chars, FIELD_VALUE_LIMIT - len(link) - 1)
        fields.append((name, f"{link}\n{quotes}" if quotes else link))
    return fields


def embed_size(embed: discord.Embed) -> int:
    """Characters Discord counts against the 6,000 limit of one embed."""
    total = len(embed.title or "") + len(embed.description or "")
    total += len(embed.footer.text or "") + len(embed.author.name or "")
    for f in embed.fields:
        total += len(f.name or "") + len(f.value or "")
    return total


def _description(answer: Answer, limit: int) -> str:
    """The answer text, escaped, within `limit`, with the "Closest sources" lead-in if any."""
    suffix = ""
    if not answer.found and answer.citations:
        suffix = "\n\n**Closest sources** (they may not answer the question):"
    if len(suffix) > limit // 2:
        suffix = ""
    text = answer.text.strip()
    body = md_text(text, limit - len(suffix)) if text else truncate(NO_ANSWER_TEXT, limit)
    return body + suffix


def answer_embed(answer: Answer) -> discord.Embed:
    """The answer as one embed: text with `[n]` markers, then one field per numbered source.

    A not-found answer is orange, says the articles do not cover the question (the answer
    text does) and lists the closest sources under "Closest sources" instead of "Sources".
    """
    colour = __getattr__("FOUND_COLOUR" if answer.found else "NOT_FOUND_COLOUR")
    title = md_text(one_line(answer.question), TITLE_LIMIT) or None
    description = _description(answer, DESCRIPTION_LIMIT)
    groups = group_citations(answer.citations)
    shown = groups[:FIELD_COUNT_LIMIT]

    footer_bits = [f"{len(groups)} source{'s' if len(groups) != 1 else ''}"]
    if answer.answerer:
        footer_bits.append(one_line(answer.answerer))
    if answer.seconds:
        footer_bits.append(f"{answer.seconds:.1f} s")

    # Shrink quotes first, then drop trailing sources, then shorten the text, until it fits.
    headings = [_source_heading(g) for g in shown]
    for quote_chars in (QUOTE_CHARS, 150, 60, 0):
        fields = _source_fields(shown, headings, quote_chars)
        embed = _build(title, description, colour, fields, footer_bits, len(groups))
        if embed_size(embed) <= EMBED_TOTAL_LIMIT:
            return embed
    while fields:
        fields = fields[:-1]
        embed = _build(title, description, colour, fields, footer_bits, len(groups))
        if embed_size(embed) <= EMBED_TOTAL_LIMIT:
            return embed
    budget = EMBED_TOTAL_LIMIT - embed_size(_build(title, "", colour, [], footer_bits, len(groups)))
    return _build(title, _description(answer, budget), colour, [], footer_bits, len(groups))


def _build(
    title: str | None,
    description: str,
    colour: discord.Colour,
    fields: Sequence[tuple[str, str]],
    footer_bits: list[str],
    total_sources: int,
) -> discord.Embed:
    import discord

    embed = discord.Embed(title=title, description=description, colour=colour)
    for name, value in fields:
        embed.add_field(name=name, value=value, inline=False)
    bits = list(footer_bits)
    if total_sources > len(fields):
        bits.append(f"{total_sources - len(fields)} not shown")
    embed.set_footer(text=truncate(" · ".join(bits), FOOTER_LIMIT))
    return embed


def answer_text(answer: Answer) -> str:
    """Plain text for a terminal: the answer, a blank line, then "Sources:" and each source.

    Each numbered source is listed once with every quote the answer takes from it, and
    nothing from an article can reach the terminal as a control sequence::

        Obama told Putin to "cut it out" [1].

        Sources:
        [1] Vladimir Putin was 'really clear' … — https://example.com/article
            "…told Mr Putin to "cut it out" following allegations…"
    """
    lines = [printable(answer.text.strip())]
    groups = group_citations(answer.citations)
    if groups:
        lines += ["", "Sources:"]
        for group in groups:
            details = f" ({group.details})" if group.details else ""
            where = one_line(group.url or group.source)
            lines.append(f"{group.label} {one_line(group.title)}{details} — {where}")
            for text in group.quotes:
                quote = one_line(text)
                if quote:
                    lines.append(f'    "{quote}"')
    return "\n".join(lines)


# ------------------------------------------------------------------------------ other embeds


def sources_page(
    articles: Sequence[ArticleLike],
    *,
    query: str | None = None,
    page: int = 1,
    per_page: int = SOURCES_PER_PAGE,
) -> discord.Embed:
    """One page of the indexed articles, optionally filtered by a title/source substring."""
    needle = (query or "").strip().casefold()
    matches = [
        a
        for a in articles
        if not needle or needle in a.title.casefold() or needle in a.source.casefold()
    ]
    pages = max(1, math.ceil(len(matches) / per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    lines: list[str] = []
    used = 0
    for i, a in enumerate(matches[start : start + per_page], start=start + 1):
        day = shown_date(getattr(a, "date", None))
        line = f"{i}. {source_link(one_line(a.title), a.url, a.source, limit=360)}"
        if day:
            line += f" · {md_text(day, 30)}"
        if used + len(line) + 1 > DESCRIPTION_LIMIT:
            break  # whole lines only: a cut line could end inside a link
        lines.append(line)
        used += len(line) + 1
    if not matches:
        description = (
            f"No indexed article matches “{md_text(one_line(query or ''), 100)}”."
            if needle
            else "The index holds no articles yet."
        )
    else:
        description = "\n".join(lines)
    heading = (
        f"Indexed articles matching “{md_text(one_line(query or ''), 80)}”"
        if needle
        else "Indexed articles"
    )
    import discord

    embed = discord.Embed(
        title=f"{heading} ({len(matches):,})",
        description=description,
        colour=__getattr__("INFO_COLOUR"),
    )
    embed.set_footer(text=f"Page {page} of {pages}")
    return embed


def title_choices(titles: Sequence[str], current: str, limit: int = 25) -> list[str]:
    """Up to `limit` distinct titles containing `current` (prefix matches first), ≤100 chars.

    Choices are shown as plain text (no Markdown), on one line and without control characters.
    """
    needle = current.strip().casefold()
    seen: set[str] = set()
    prefix: list[str] = []
    inside: list[str] = []
    for title in titles:
        short = truncate(one_line(title), 100)
        if not short or short in seen:
            continue
        folded = title.casefold()
        if not needle or folded.startswith(needle):
            prefix.append(short)
        elif needle in folded:
            inside.append(short)
        else:
            continue
        seen.add(short)
    return (prefix + inside)[:limit]


_MENTION = re.compile(r"<@!?(\d+)>")


def strip_mention(text: str, user_id: int) -> str:
    """`text` without mentions of `user_id` (`<@id>` or `<@!id>`), whitespace tidied."""
    cleaned = _MENTION.sub(lambda m: "" if int(m.group(1)) == user_id else m.group(0), text)
    return " ".join(cleaned.split())


def help_embed(*, cooldown_seconds: float, answer_mentions: bool) -> discord.Embed:
    """What the bot does and how to use it."""
    import discord

    embed = discord.Embed(
        title="Article Q&A",
        description=(
            "I answer questions from a fixed collection of articles and cite where each "
            "answer comes from: every `[n]` in an answer points to a numbered source with "
            "the exact passage quoted, so you can check it. When the articles do not "
            "cover a question I say so and show the closest sources instead of guessing."
        ),
        colour=__getattr__("INFO_COLOUR"),
    )
    embed.add_field(
        name="Commands",
        value=(
            "`/ask question [private]`: ask a question (`private` shows the answer only to you)\n"
            "`/sources [query] [page]`: list the indexed articles\n"
            "`/reindex`: rebuild the index from the articles folder (server managers and "
            "bot admins)\n"
            "`/add url`: add an article by its address (server managers and bot admins)\n"
            "`/help`: this message"
        ),
        inline=False,
    )
    usage = "Send me a direct message with your question and I will answer it there."
    if answer_mentions:
        usage += " In a server channel, mention me followed by your question."
    embed.add_field(name="Direct messages", value=usage, inline=False)
    if cooldown_seconds > 0:
        embed.set_footer(text=f"One question every {cooldown_seconds:g} s per person.")
    embed.add_field(
        name="Feedback",
        value="Use 👍 / 👎 under an answer to tell us whether it helped.",
        inline=False,
    )
    return embed

"""How an `Answer` looks on Discord (embeds) and in a terminal (plain text).

Pure functions only: no I/O, no client. Discord's limits are enforced here, once, so that a
long answer or an odd article title can never make a send fail with a 400:

- embed title 256, description 4,096, at most 25 fields, field name 256, field value 1,024,
  footer 2,048 and 6,000 characters for the whole embed;
- message content 2,000 (`split_message`).

Article text is shown verbatim (quotes must match the article): mentions in it are made
harmless by sending every message with `AllowedMentions.none()`, not by rewriting the text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Protocol

import discord

from .models import Answer, Citation

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
MESSAGE_LIMIT = 2000

QUOTE_CHARS = 300  # a short blockquote per source; the whole passage is one click away
SOURCES_PER_PAGE = 10
ELLIPSIS = "…"

FOUND_COLOUR = discord.Colour.green()
NOT_FOUND_COLOUR = discord.Colour.orange()
INFO_COLOUR = discord.Colour.blurple()
ERROR_COLOUR = discord.Colour.red()


class ArticleLike(Protocol):
    """What `/sources` needs from an indexed article (`index.store.StoredArticle` fits)."""

    @property
    def title(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def url(self) -> str | None: ...


# ------------------------------------------------------------------------------ text helpers


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary, ending with "…"."""
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


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split `text` into pieces of at most `limit` characters.

    Breaks at the last paragraph break that fits, else the last line break, else the last
    space, and only cuts inside a word when a single word is longer than `limit`. Empty
    pieces are dropped, so an empty text gives an empty list.
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
            head, rest = rest[:limit], rest[limit:]
        else:
            head, rest = rest[:cut], rest[cut:]
        head = head.rstrip()
        if head:
            pieces.append(head)
        rest = rest.lstrip()
    return pieces


def _link_url(url: str) -> str:
    """A URL that survives inside Markdown's `(...)`."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _link_text(title: str) -> str:
    """A title that cannot close a Markdown link early or render as formatting."""
    return discord.utils.escape_markdown(title).replace("[", "\\[").replace("]", "\\]")


def source_link(title: str, url: str | None, source: str, limit: int = FIELD_VALUE_LIMIT) -> str:
    """`[title](url)` when there is a URL, else the title and `source` in code style."""
    if url:
        link = f"[{_link_text(truncate(title, 200))}]({_link_url(url)})"
        if len(link) <= limit:
            return link
        # A URL too long for the field: show the title alone rather than a broken link.
        return truncate(_link_text(title), limit)
    return truncate(f"{_link_text(truncate(title, 200))} — {_code(source)}", limit)


def _code(text: str, limit: int = 300) -> str:
    """`text` in inline code style (backticks inside it would end the span early)."""
    return "`" + truncate(text.replace("`", "'"), limit) + "`"


def blockquote(text: str, limit: int = QUOTE_CHARS) -> str:
    """A Markdown blockquote of (the start of) `text`, every line prefixed with `> `."""
    short = truncate(" ".join(text.split()), limit)
    return "> " + short if short else ""


# ------------------------------------------------------------------------------ answer embed


def _citation_field(c: Citation, quote_chars: int) -> tuple[str, str]:
    """Name `[n] title`; value: a link to the article (else its source in code style), quote."""
    name = truncate(f"[{c.n}] {c.title}", FIELD_NAME_LIMIT)
    if c.url:
        link = source_link(c.title, c.url, c.source, limit=FIELD_VALUE_LIMIT // 2)
    else:  # the title is in the field's name already
        link = _code(c.source)
    quote = blockquote(c.quote, quote_chars) if quote_chars > 0 else ""
    value = f"{link}\n{quote}" if quote else link
    return name, truncate(value, FIELD_VALUE_LIMIT)


def embed_size(embed: discord.Embed) -> int:
    """Characters Discord counts against the 6,000 limit of one embed."""
    total = len(embed.title or "") + len(embed.description or "")
    total += len(embed.footer.text or "") + len(embed.author.name or "")
    for f in embed.fields:
        total += len(f.name or "") + len(f.value or "")
    return total


def answer_embed(answer: Answer) -> discord.Embed:
    """The answer as one embed: text with `[n]` markers, then one field per numbered source.

    A not-found answer is orange, says the articles do not cover the question (the answer
    text does) and lists the closest sources under "Closest sources" instead of "Sources".
    """
    colour = FOUND_COLOUR if answer.found else NOT_FOUND_COLOUR
    title = truncate(answer.question, TITLE_LIMIT) if answer.question else None
    description = answer.text.strip() or "The articles do not answer that."
    if not answer.found and answer.citations:
        description += "\n\n**Closest sources** (they may not answer the question):"
    description = truncate(description, DESCRIPTION_LIMIT)
    citations = list(answer.citations)
    shown = citations[:FIELD_COUNT_LIMIT]

    footer_bits = [f"{len(citations)} source{'s' if len(citations) != 1 else ''}"]
    if answer.answerer:
        footer_bits.append(answer.answerer)
    if answer.seconds:
        footer_bits.append(f"{answer.seconds:.1f} s")

    # Shrink quotes first, then drop trailing sources, then shorten the text, until it fits.
    for quote_chars in (QUOTE_CHARS, 150, 60, 0):
        embed = _build(title, description, colour, shown, quote_chars, footer_bits)
        if embed_size(embed) <= EMBED_TOTAL_LIMIT:
            return embed
    while shown:
        shown = shown[:-1]
        embed = _build(title, description, colour, shown, 0, footer_bits, len(citations))
        if embed_size(embed) <= EMBED_TOTAL_LIMIT:
            return embed
    budget = EMBED_TOTAL_LIMIT - embed_size(_build(title, "", colour, [], 0, footer_bits))
    return _build(title, truncate(description, budget), colour, [], 0, footer_bits)


def _build(
    title: str | None,
    description: str,
    colour: discord.Colour,
    citations: Sequence[Citation],
    quote_chars: int,
    footer_bits: list[str],
    total_sources: int | None = None,
) -> discord.Embed:
    embed = discord.Embed(title=title, description=description, colour=colour)
    for c in citations:
        name, value = _citation_field(c, quote_chars)
        embed.add_field(name=name, value=value, inline=False)
    bits = list(footer_bits)
    if total_sources is not None and total_sources > len(citations):
        bits.append(f"{total_sources - len(citations)} not shown")
    embed.set_footer(text=truncate(" · ".join(bits), FOOTER_LIMIT))
    return embed


def answer_text(answer: Answer) -> str:
    """Plain text for a terminal: the answer, a blank line, then "Sources:" and each source.

    ::

        Obama told Putin to "cut it out" [1].

        Sources:
        [1] Vladimir Putin was 'really clear' … — https://example.com/article
            "…told Mr Putin to "cut it out" following allegations…"
    """
    lines = [answer.text.strip()]
    if answer.citations:
        lines += ["", "Sources:"]
        for c in answer.citations:
            lines.append(f"[{c.n}] {c.title} — {c.source}")
            quote = " ".join(c.quote.split())
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
    lines = []
    for i, a in enumerate(matches[start : start + per_page], start=start + 1):
        lines.append(f"{i}. {source_link(a.title, a.url, a.source, limit=380)}")
    if not matches:
        description = (
            f"No indexed article matches “{truncate(query or '', 100)}”."
            if needle
            else "The index holds no articles yet."
        )
    else:
        description = truncate("\n".join(lines), DESCRIPTION_LIMIT)
    heading = (
        f"Indexed articles matching “{truncate(query or '', 80)}”" if needle else "Indexed articles"
    )
    embed = discord.Embed(
        title=truncate(f"{heading} ({len(matches):,})", TITLE_LIMIT),
        description=description,
        colour=INFO_COLOUR,
    )
    embed.set_footer(text=f"Page {page} of {pages}")
    return embed


def title_choices(titles: Sequence[str], current: str, limit: int = 25) -> list[str]:
    """Up to `limit` distinct titles containing `current` (prefix matches first), ≤100 chars."""
    needle = current.strip().casefold()
    seen: set[str] = set()
    prefix: list[str] = []
    inside: list[str] = []
    for title in titles:
        short = truncate(title, 100)
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
    embed = discord.Embed(
        title="Article Q&A",
        description=(
            "I answer questions from a fixed collection of articles and cite where each "
            "answer comes from: every `[n]` in an answer points to a numbered source with "
            "the exact passage quoted, so you can check it. When the articles do not "
            "cover a question I say so and show the closest sources instead of guessing."
        ),
        colour=INFO_COLOUR,
    )
    embed.add_field(
        name="Commands",
        value=(
            "`/ask question [private]`: ask a question (`private` shows the answer only to you)\n"
            "`/sources [query] [page]`: list the indexed articles\n"
            "`/reindex`: rebuild the index from the articles folder (server managers and "
            "bot admins)\n"
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

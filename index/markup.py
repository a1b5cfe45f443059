"""The block structure of an article's text: paragraphs, list items, headings, code, tables.

Articles arrive as hard-wrapped plain text, Markdown, one-paragraph-a-line news dumps or text
extracted from HTML, and all are stored verbatim (citations quote offsets into them). What
differs is where a line break is a boundary: between two list items, before a heading or at
a blank line it is; inside a hard-wrapped sentence it is not. This module finds the blocks,
each as a span of the original text with the Markdown markers ("# ", "- ", "1. ", fences)
left outside it, so that sentences can be split within a block and never across two.

Markdown is read only as far as it shapes text into units (CommonMark's block structure, not
its inline syntax): a link `[text](url)` inside a sentence stays part of the sentence, since
a quote must match the stored text character for character.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["paragraph", "item", "quote", "heading", "code", "table", "media"]

PROSE_KINDS: frozenset[str] = frozenset({"paragraph", "item", "quote"})
"""Blocks whose sentences can be quoted as an answer; headings, code, tables and images
label or illustrate the prose around them and are context, never an answer."""

_PHYSICAL = re.compile(r"[^\n]*\S[^\n]*(?:\n[^\n]*\S[^\n]*)*")  # lines between blank lines
_LINE = re.compile(r"[^\n]+")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+|$)")
_ATX_CLOSE = re.compile(r"[ \t]+#+[ \t]*$|^#+[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"([ \t]*)([-*+•‣◦▪–]|\d{1,3}[.)])[ \t]+(?=\S)")
_QUOTE = re.compile(r" {0,3}>[ \t]?")
_TABLE = re.compile(
    r"[ \t]*\|.*\|[ \t]*$"  # a row
    r"|[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)+\|?$"  # the delimiter row
)
_MEDIA = re.compile(r"[ \t]*!\[[^\]]*\]\([^)]*\)[ \t]*$")
_ENDS_SENTENCE = re.compile(r"""[.!?:;…]["'”’)\]]*$""")
_WRAP_MIN, _WRAP_MAX = 60, 120  # widths text is hard-wrapped at (e-mail 72, READMEs 80)
_FULL_BREAKS = 0.6  # share of a wrapped run's line breaks where the next word did not fit
_HEADING_MAX = 120  # longest line read as a setext heading


@dataclass(frozen=True, slots=True)
class Block:
    """One structural unit; `start`/`end` are offsets into the text, markers excluded."""

    kind: BlockKind
    start: int
    end: int


def blocks(text: str, start: int = 0, end: int | None = None) -> list[Block]:
    """The blocks of `text[start:end]`, in order; blank lines and rules are not blocks."""
    end = len(text) if end is None else end
    out: list[Block] = []
    fence: tuple[str, int] | None = None  # (fence marker, start of the fenced block)
    for physical in _PHYSICAL.finditer(text, start, end):
        lines = [(m.start(), m.end()) for m in _LINE.finditer(text, *physical.span())]
        width = _wrap_width(text, lines)
        current: Block | None = None  # the block still open to continuation lines
        for i, (s, e) in enumerate(lines):
            line = text[s:e]
            if fence is not None:
                marker, fence_start = fence
                stripped = line.strip()
                if stripped.startswith(marker) and not stripped.strip(marker[0]):
                    out.append(Block("code", fence_start, e))
                    fence = None
                continue
            opened, current = _open_block(text, s, e, current, out)
            if opened is _FENCE_OPENED:
                fence = (_FENCE.match(line).group(1), s)  # type: ignore[union-attr]
                continue
            if opened is not None:
                continue
            if current is not None and current.kind != "table":
                prev = text[lines[i - 1][0] : lines[i - 1][1]]
                if _continues(prev, line, width, current.kind):
                    current = Block(current.kind, current.start, e)
                    continue
            _close(current, out)
            current = Block("paragraph", s + len(line) - len(line.lstrip()), e)
        _close(current, out)
    if fence is not None:
        # An unclosed fence is more likely a stray line of backticks than code running to
        # the end of the article: drop the fence line alone and read on.
        after = text.find("\n", fence[1], end)
        if after != -1:
            out.extend(blocks(text, after + 1, end))
    return [b for b in out if b.end > b.start]


_FENCE_OPENED = Block("code", -1, -1)  # sentinel: the line opened a code fence


def _close(block: Block | None, out: list[Block]) -> None:
    if block is not None:
        out.append(block)


def _open_block(
    text: str, s: int, e: int, current: Block | None, out: list[Block]
) -> tuple[Block | None, Block | None]:
    """Handle a line that opens (or is) a block of its own kind.

    Returns `(opened, current)`: `opened` is not None when the line was consumed (the
    `_FENCE_OPENED` sentinel for a fence), and `current` is the block now open.
    """
    line = text[s:e]
    if _FENCE.match(line):
        _close(current, out)
        return _FENCE_OPENED, None
    if m := _ATX.match(line):
        _close(current, out)
        content = _ATX_CLOSE.sub("", line[m.end() :]).rstrip()
        heading = Block("heading", s + m.end(), s + m.end() + len(content))
        out.append(heading)
        return heading, None
    if _SETEXT.match(line) and current is not None and current.kind == "paragraph":
        # only a short unpunctuated line is a heading: a long one over a "----" separator
        # is more likely a paragraph of a plain-text dump
        above = text[current.start : current.end]
        heading = (
            "\n" not in above and len(above) <= _HEADING_MAX and not _ENDS_SENTENCE.search(above)
        )
        _close(Block("heading", current.start, current.end) if heading else current, out)
        return current, None
    if _RULE.match(line):
        _close(current, out)
        return Block("paragraph", s, s), None
    if _MEDIA.match(line):
        _close(current, out)
        media = Block("media", s + len(line) - len(line.lstrip()), e)
        out.append(media)
        return media, None
    if _TABLE.match(line):
        if current is not None and current.kind == "table":
            table = Block("table", current.start, e)
        else:
            _close(current, out)
            table = Block("table", s, e)
        return table, table
    if m := _ITEM.match(line):
        _close(current, out)
        item = Block("item", s + m.end(), e)
        return item, item
    if m := _QUOTE.match(line):
        if current is not None and current.kind == "quote":
            quote = Block("quote", current.start, e)
        else:
            _close(current, out)
            quote = Block("quote", s + m.end(), e)
        return quote, quote
    return None, current


def _wrap_width(text: str, lines: list[tuple[int, int]]) -> int | None:
    """The width a run of lines was hard-wrapped at, or None when it does not look wrapped.

    A wrapper breaks a line only when the next word would not fit, so in wrapped text most
    breaks are "full": the line plus the next line's first word exceeds the width. Lines of
    a one-paragraph-a-line dump can be just as short, but their breaks fall anywhere.
    """
    if len(lines) <= 2:
        return None  # one line's width says nothing about a wrapping width
    widths = [e - s for s, e in lines]
    width = max(widths[:-1])
    if not _WRAP_MIN <= width <= _WRAP_MAX:
        return None
    full = sum(
        1
        for (s, e), (ns, ne) in itertools.pairwise(lines)
        if (e - s) + 1 + len(text[ns:ne].split(maxsplit=1)[0]) > width
    )
    return width if full >= _FULL_BREAKS * (len(lines) - 1) else None


def _continues(prev: str, line: str, width: int | None, kind: str) -> bool:
    """Whether `line` carries on the sentence of `prev` rather than starting a new unit.

    In a one-paragraph-a-line dump a line that lacks final punctuation is a title or a
    standfirst and the next line is new; in hard-wrapped prose it is the middle of a
    sentence. A full line that ends a sentence is joined as well: the sentence splitter
    cuts there anyway, and joining keeps "Mr." at the end of a wrapped line with its name.
    """
    if kind == "item" and line[:1] in " \t":
        return True  # an indented continuation of a list item
    if not _ENDS_SENTENCE.search(prev.rstrip()):
        first = line.lstrip()[:1]
        if width is not None or first.islower():
            return True
        # Two wrapped lines give no width to measure; a line of wrapping length that stops
        # mid-sentence before a number ("...and cost\n14 million pounds") runs on, where a
        # short title line before a capitalised standfirst does not.
        return first.isdigit() and len(prev.rstrip()) >= _WRAP_MIN
    if width is None:
        return False
    return len(prev.rstrip()) + 1 + len(line.split(maxsplit=1)[0]) > width

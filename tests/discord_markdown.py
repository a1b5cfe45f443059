"""How Discord shows the Markdown our formatting writes, for tests to compare with articles.

A small model of Discord's reading of text, covering what `bot.formatting.md_text` relies
on: a backslash before punctuation shows the punctuation; `<scheme:/...>` is an autolink
showing its address; a zero-width space (what `discord.utils.escape_mentions` inserts after
`@`) shows nothing. Anything else that Discord would read as markup is reported by
`live_markup`.
"""

from __future__ import annotations

import re

_AUTOLINK = re.compile(r"<([^: >]+:/[^ >]+)>")
# Characters that start or end formatting, a link or a mention when not escaped.
MARKUP = frozenset("\\*_~|`[]()<>#")
ZWSP = "\u200b"


def _walk(md: str) -> list[tuple[str, bool]]:
    """(shown text, was it plain) for each piece of `md`, left to right."""
    pieces: list[tuple[str, bool]] = []
    i = 0
    while i < len(md):
        ch = md[i]
        if ch == "\\" and i + 1 < len(md) and not md[i + 1].isalnum() and not md[i + 1].isspace():
            pieces.append((md[i + 1], False))
            i += 2
        elif ch == "<" and (m := _AUTOLINK.match(md, i)):
            pieces.append((m.group(1), False))
            i = m.end()
        elif ch == ZWSP:
            pieces.append(("", False))
            i += 1
        else:
            pieces.append((ch, True))
            i += 1
    return pieces


def rendered(md: str) -> str:
    """The text a reader sees for `md` (escapes resolved, autolinks as their address)."""
    return "".join(text for text, _ in _walk(md))


def live_markup(md: str) -> list[str]:
    """Markup characters in `md` that Discord would act on (not escaped, not in an autolink),
    plus line-start list markers (`- `, `+ `, `1. `) and live mentions."""
    pieces = _walk(md)
    problems = [text for text, plain in pieces if plain and text in MARKUP]
    plain_text = "".join(text if plain else "\0" for text, plain in pieces)
    for line in md.split("\n"):
        stripped = line.lstrip(" \t>")
        if re.match(r"([-+]|\d+[.)])([ \t#]|$)", stripped):
            problems.append(f"list marker in {line[:40]!r}")
    if re.search(r"@(everyone|here)|<@[!&]?\d", plain_text):
        problems.append("live mention")
    return problems

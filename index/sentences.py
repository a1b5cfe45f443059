"""Sentence boundaries with character offsets into the original text.

Chunking and the extractive answerer both need sentences they can point back to verbatim,
so this returns spans, never rewritten strings.

Sentences are split within the blocks of `index.markup` (paragraphs with hard-wrapped lines
joined, list items, headings...) and never across two of them, so a line break inside a
wrapped sentence is not a boundary while one between list items or before a heading is.
Within a block, `sentencex` (rule-based, compiled) handles abbreviations ("U.S.", "e.g."),
decimals, URLs and sentences glued by a missing space ("difference.Russian"); an opening
quotation mark it leaves at the end of the first of two glued sentences is moved to the
second.

`sentence_spans` gives every unit (what the chunker packs); `answer_spans` only those that
can be quoted as an answer: headings, code, tables and images are context, not answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sentencex

from .markup import PROSE_KINDS, Block, BlockKind, blocks

_OPENING_QUOTES = "“‘«„"
_UNSPLIT_KINDS = frozenset({"code", "table", "media"})  # one unit each: not prose


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence (or a whole code block, table or image line) and the block it belongs to."""

    start: int
    end: int
    kind: BlockKind
    block: int  # ordinal of its block: sentences of one block share it

    @property
    def answerable(self) -> bool:
        return self.kind in PROSE_KINDS


def sentences(text: str, start: int = 0, end: int | None = None) -> list[Sentence]:
    """Every unit of `text[start:end]`, in order, with the kind of its block.

    The lines around a window are read too (to the blank lines that bound its paragraphs),
    so a window of an article, such as a chunk, gets the units the whole article has, cut
    to the window where a sentence crosses its edge.
    """
    end = len(text) if end is None else end
    lo = text.rfind("\n\n", 0, start) + 1 if start > 0 else 0
    hi = text.find("\n\n", end) if end < len(text) else -1
    hi = len(text) if hi == -1 else hi
    out: list[Sentence] = []
    for i, block in enumerate(blocks(text, lo, hi)):
        for s, e in block_sentences(text, block):
            if cut := _cut(text, s, e, start, end):
                out.append(Sentence(*cut, block.kind, i))
    return out


def _cut(text: str, s: int, e: int, start: int, end: int) -> tuple[int, int] | None:
    """Sentence `s:e` cut to the window `start:end` and stripped; None when nothing is left."""
    s, e = max(s, start), min(e, end)
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return (s, e) if e > s else None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans `(s, e)` of the sentences in `text[start:end]`, stripped of surrounding spaces.

    Headings, list items, code blocks and tables are units of their own; Markdown markers
    ("# ", "- ") are left outside the spans.
    """
    return [(u.start, u.end) for u in sentences(text, start, end)]


def answer_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the sentences of `text[start:end]` that may be quoted as an answer.

    Those of paragraphs, list items and block quotes; headings, code, tables and images are
    left out. Offsets are into `text`, like `sentence_spans`. Given the whole article and a
    passage's offsets (`answer_spans(article_text, hit.start, hit.end)`) the passage's lines
    are read in the context of their paragraph, which is what tells a wrapped line from a
    new one; given the passage text alone, the passage is its own context.
    """
    return [(u.start, u.end) for u in sentences(text, start, end) if u.answerable]


def pack_spans(spans: list[tuple[int, int]]) -> bytes:
    """Spans as stored with an article (little-endian int32 pairs), split once at build."""
    return np.asarray(spans, dtype="<i4").reshape(-1, 2).tobytes()


def unpack_spans(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<i4").reshape(-1, 2)


def window(text: str, spans: np.ndarray, start: int, end: int) -> list[tuple[int, int]]:
    """The units of `text[start:end]` from the stored `sentence_spans(text)` of the whole text.

    What `sentence_spans(text, start, end)` finds, cut and stripped the same way, without
    splitting again: the whole text's blocks are the context a window is read in.
    """
    first = int(np.searchsorted(spans[:, 1], start, side="right"))
    stop = int(np.searchsorted(spans[:, 0], end, side="left"))
    cuts = (_cut(text, s, e, start, end) for s, e in spans[first:stop].tolist())
    return [c for c in cuts if c is not None]


def block_sentences(text: str, block: Block) -> list[tuple[int, int]]:
    """The sentence spans of one block."""
    s, e = block.start, block.end
    if block.kind in _UNSPLIT_KINDS:
        return [(s, e)]
    segment = text[s:e].replace("\n", " ")  # same length: offsets stay valid
    spans: list[tuple[int, int]] = []
    for b in sentencex.get_sentence_boundaries("en", segment):
        a, z = s + b["start_index"], s + b["end_index"]
        while a < z and text[a].isspace():
            a += 1
        while z > a and text[z - 1].isspace():
            z -= 1
        if z > a:
            spans.append((a, z))
    return _move_opening_quotes(text, spans)


def _move_opening_quotes(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Give a quotation mark that opens the next sentence back to it.

    Glued sentences ('said.“The' or 'said."The') are cut after the mark; it opens the second
    sentence when it is an opening mark or, for a straight quote, when the marks before it in
    the block are balanced.
    """
    out = list(spans)
    for i in range(len(out) - 1):
        (a, z), (na, nz) = out[i], out[i + 1]
        if z - a < 2 or z != na or text[z - 2] not in ".!?":
            continue
        mark = text[z - 1]
        opens = mark in _OPENING_QUOTES or (
            mark == '"' and text.count('"', out[0][0], z - 1) % 2 == 0
        )
        if opens:
            out[i], out[i + 1] = (a, z - 1), (z - 1, nz)
    return out

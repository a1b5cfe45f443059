"""Sentence boundaries with character offsets into the original text.

Chunking and the extractive answerer both need sentences they can point back to verbatim,
so this returns spans, never rewritten strings. Lines are split first: titles, list items
and headings rarely end with punctuation, and a sentence never spans a line break in the
articles we index. `sentencex` (rule-based, compiled) then handles abbreviations, quotes and
glued sentences such as "difference.Russian".
"""

from __future__ import annotations

import re

import sentencex

_LINE = re.compile(r"[^\n]+")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans `(s, e)` of the sentences in `text[start:end]`, stripped of surrounding spaces."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text, start, end):
        base = line.start()
        segment = line.group()
        if not segment.strip():
            continue
        for b in sentencex.get_sentence_boundaries("en", segment):
            s, e = base + b["start_index"], base + b["end_index"]
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if e > s:
                spans.append((s, e))
    return spans

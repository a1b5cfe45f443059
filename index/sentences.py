"""Sentence boundaries with character offsets into the original text.

Chunking and the extractive answerer both need sentences they can point back to verbatim,
so this returns spans, never rewritten strings.

Line breaks are ambiguous: in plain-text news dumps each line is a paragraph or a heading
that may lack final punctuation (a title, a standfirst), while Markdown and e-mail text is
hard-wrapped, so one sentence runs over several lines. A line break therefore ends a
sentence unless the text around it looks wrapped: the line does not end a sentence and
either the next line starts in lower case or the block is made of similar-length lines
(hard wrapping at a fixed width). `sentencex` (rule-based, compiled) then handles
abbreviations, quotes and glued sentences such as "difference.Russian" within each segment.
"""

from __future__ import annotations

import itertools
import re
import statistics

import sentencex

_BLOCK = re.compile(r"[^\n]+(?:\n[^\n]+)*")  # lines separated by single newlines
_LINE = re.compile(r"[^\n]+")
_ENDS_SENTENCE = re.compile(r"""[.!?:;…]["'”’)\]]*\s*$""")
_STARTS_ITEM = re.compile(r"\s*([-*+•>#|]|\d+[.)]\s)")
_WRAP_MIN, _WRAP_MAX = 40, 110  # line widths typical of hard-wrapped prose


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans `(s, e)` of the sentences in `text[start:end]`, stripped of surrounding spaces."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for block in _BLOCK.finditer(text, start, end):
        for s, e in _segments(text, block.start(), block.end()):
            segment = text[s:e].replace("\n", " ")  # same length: offsets stay valid
            if not segment.strip():
                continue
            for b in sentencex.get_sentence_boundaries("en", segment):
                a, z = s + b["start_index"], s + b["end_index"]
                while a < z and text[a].isspace():
                    a += 1
                while z > a and text[z - 1].isspace():
                    z -= 1
                if z > a:
                    spans.append((a, z))
    return spans


def _segments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Runs of lines of one block that belong together (wrapped lines are joined)."""
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text, start, end)]
    if len(lines) <= 1:
        return lines
    widths = [e - s for s, e in lines[:-1]]
    wrapped_block = _WRAP_MIN <= statistics.median(widths) <= _WRAP_MAX and (
        max(widths) <= _WRAP_MAX
    )
    segments: list[tuple[int, int]] = []
    seg_start = lines[0][0]
    for (s, e), (ns, ne) in itertools.pairwise(lines):
        line, nxt = text[s:e], text[ns:ne]
        joined = (
            not _ENDS_SENTENCE.search(line)
            and not _STARTS_ITEM.match(nxt)
            and not _STARTS_ITEM.match(line)
            and (nxt.lstrip()[:1].islower() or wrapped_block)
        )
        if not joined:
            segments.append((seg_start, e))
            seg_start = ns
    segments.append((seg_start, lines[-1][1]))
    return segments

"""How much of an answering sentence to quote: all of it, or its answering clauses.

A sentence that answers is quoted whole, even a long one (Obama's 69-word sentence to Putin
holds both "cut it out" and "serious consequences"), up to a hard character limit that
keeps it inside the transports' limits (a Discord embed field holds 1,024 characters). Past
that limit the sentence is trimmed to the run of its clauses that holds most of the
question's terms, within the answer's word cap, and the cut sides are marked with an
ellipsis. Cuts fall at clause boundaries (punctuation, or before a conjunction) outside
quotation marks, so no quote is cut mid-way; only a single clause longer than the cap is cut
at word boundaries, never inside a word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from index.lexical import document_terms

ELLIPSIS = "\u2026"

_CLAUSE_END = re.compile(r"[,;:\u2014\u2013](?=\s)|\s[\u2014\u2013-]{1,2}\s|\.{3}|\u2026")
_CONJUNCTION = re.compile(
    r"\s(?=(?:and|but|while|whereas|although|though|because|which|who|after|before|when|"
    r"following|as|so|yet|or|if|unless|until)\s)"
)
_WORD = re.compile(r"\S+")
_TRIM = " \t\n,;:\u2014\u2013-"


@dataclass(frozen=True, slots=True)
class Excerpt:
    """Offsets `[start, end)` into the sentence, and whether text was left out on each side."""

    start: int
    end: int
    cut_before: bool = False
    cut_after: bool = False

    def display(self, sentence: str) -> str:
        """The excerpt as shown in an answer: one line, an ellipsis where text was left out."""
        text = " ".join(sentence[self.start : self.end].split())
        return f"{ELLIPSIS if self.cut_before else ''}{text}{ELLIPSIS if self.cut_after else ''}"


def excerpt(
    sentence: str, terms: Iterable[str], *, max_words: int, max_chars: int, whole: bool = True
) -> Excerpt:
    """The part of `sentence` to quote for a question with content `terms`.

    Args:
        whole: the sentence may be quoted whole when it fits `max_chars` (the first answer
            sentence); otherwise it must also fit `max_words`.
    """
    lead = len(sentence) - len(sentence.lstrip())
    tail = len(sentence.rstrip())
    n_words = len(sentence.split())
    if tail - lead <= max_chars and (whole or n_words <= max_words):
        return Excerpt(lead, tail)
    wanted = set(terms)
    bounds = _clause_bounds(sentence)
    outside = _outside_quotes(sentence)
    best: tuple[tuple[int, int, int], int, int] | None = None
    for i in range(len(bounds) - 1):
        for j in range(i + 1, len(bounds)):
            s, e = _tidy(sentence, bounds[i], bounds[j])
            if e <= s:
                continue
            words = len(sentence[s:e].split())
            if words > max_words or e - s > max_chars:
                break
            hits = len(wanted & set(document_terms(sentence[s:e])))
            safe = int(outside[bounds[i]] and outside[bounds[j]])
            key = (safe, hits, words)
            if best is None or key > best[0]:
                best = (key, s, e)
    if best is not None and best[0][1] > 0:
        _, s, e = best
    else:
        s, e = _word_window(sentence, wanted, max_words, max_chars)
    return Excerpt(s, e, cut_before=s > lead, cut_after=e < tail)


def _clause_bounds(sentence: str) -> list[int]:
    """Positions where a clause starts or ends: the sentence ends and clause breaks."""
    cuts = {0, len(sentence)}
    cuts.update(m.end() for m in _CLAUSE_END.finditer(sentence))
    cuts.update(m.start() for m in _CONJUNCTION.finditer(sentence))
    return sorted(cuts)


def _outside_quotes(sentence: str) -> list[bool]:
    """For each position (and the end), whether it lies outside double quotation marks."""
    out = [True] * (len(sentence) + 1)
    depth = 0
    for i, ch in enumerate(sentence):
        out[i] = depth == 0
        if ch == "\u201c":
            depth = 1
        elif ch == "\u201d":
            depth = 0
        elif ch == '"':
            depth = 1 - depth
    out[len(sentence)] = depth == 0
    return out


def _tidy(sentence: str, s: int, e: int) -> tuple[int, int]:
    """`[s, e)` without the spaces and clause punctuation at its edges."""
    while s < e and sentence[s] in _TRIM:
        s += 1
    while e > s and sentence[e - 1] in _TRIM:
        e -= 1
    return s, e


def _word_window(sentence: str, terms: set[str], max_words: int, max_chars: int) -> tuple[int, int]:
    """The window of whole words, within both caps, that holds most of `terms`."""
    spans = [(m.start(), m.end()) for m in _WORD.finditer(sentence)]
    if not spans:
        return 0, len(sentence)
    hits = [1 if set(document_terms(sentence[s:e])) & terms else 0 for s, e in spans]
    best_key, best_span = (-1, -1), (spans[0][0], spans[0][1])
    for i in range(len(spans)):
        total = 0
        for j in range(i, min(len(spans), i + max_words)):
            if spans[j][1] - spans[i][0] > max_chars:
                break
            total += hits[j]
            if (total, j - i) > best_key:
                best_key, best_span = (total, j - i), (spans[i][0], spans[j][1])
    return best_span

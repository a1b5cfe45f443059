"""Where chunk boundaries are chosen.

Chunks are windows of whole sentences, sized in the embedder's own word pieces so that the
embedded input (title + chunk) never exceeds the model's `max_seq_length`: anything past it
would be silently cut by the model and be invisible to search. Consecutive windows overlap
by whole sentences, so a fact that straddles a boundary is still whole in one chunk. Each
chunk keeps character offsets into the article text, which is what lets a citation quote and
point at the exact passage.

Chunks are packed from clean units only: the sentences of `index.sentences` minus the
article's boilerplate spans (`index.boilerplate`), and a window never reaches across a
boilerplate span, so a chunk's text (what is embedded, indexed for BM25 and handed to the
answerer) holds none of it while still being one verbatim slice of the article. Headings
stay in as context for the section they open, but a window does not end on one.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .boilerplate import boilerplate_of
from .embedder import Tokenizer, document_input
from .models import Article, Chunk
from .sentences import Sentence, sentences

TITLE_TOKEN_CAP = 48  # a long title must not crowd out the passage it labels
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_BACKOFF = 16  # word pieces searched back for a word start when a sentence must be cut
# Characters per word piece beyond which a unit is cut by length: a "word" of hundreds of
# letters is one [UNK] piece to the tokenizer, and without this a megabyte with no space
# would become one chunk, embedded as nothing and quoted whole.
MAX_CHARS_PER_TOKEN = 12


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    max_tokens: int
    overlap_tokens: int
    max_seq_length: int

    def as_dict(self) -> dict[str, int]:
        return {
            "chunk_tokens": self.max_tokens,
            "chunk_overlap_tokens": self.overlap_tokens,
            "max_seq_length": self.max_seq_length,
        }


def embedding_title(title: str, tokenizer: Tokenizer) -> str:
    """The title as embedded: cut after TITLE_TOKEN_CAP word pieces, at a word boundary."""
    enc = tokenizer(title, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if len(offsets) <= TITLE_TOKEN_CAP:
        return title
    return title[: offsets[TITLE_TOKEN_CAP][0]].rstrip()


def _units(
    text: str, spans: list[tuple[int, int]], tokenizer: Tokenizer, budget: int
) -> list[tuple[int, int, int]]:
    """Sentence spans with their word-piece counts; sentences over budget are cut in pieces."""
    if not spans:
        return []
    enc = tokenizer(
        [text[s:e] for s, e in spans], add_special_tokens=False, return_offsets_mapping=True
    )
    units: list[tuple[int, int, int]] = []
    for (s, e), offsets in zip(spans, enc["offset_mapping"], strict=True):
        n = len(offsets)
        if n <= budget:
            units.append((s, e, max(n, 1)))
            continue
        sentence = text[s:e]
        i = 0
        while i < n:
            j = min(i + budget, n)
            if j < n:
                # Back off to a token that starts a word, so no word is split across chunks.
                k = j
                while k > i + budget - _BACKOFF and k > i + 1:
                    start_char = offsets[k][0]
                    if start_char > 0 and sentence[start_char - 1].isspace():
                        break
                    k -= 1
                else:
                    k = j
                j = k
            cut_start = s + offsets[i][0]
            cut_end = s + offsets[j - 1][1]
            units.append((cut_start, cut_end, j - i))
            i = j
    return _cap_chars(text, units, budget * MAX_CHARS_PER_TOKEN)


def _cap_chars(
    text: str, units: list[tuple[int, int, int]], max_chars: int
) -> list[tuple[int, int, int]]:
    """Cut units longer than `max_chars` characters, at a space where one is near."""
    if all(e - s <= max_chars for s, e, _ in units):
        return units
    out: list[tuple[int, int, int]] = []
    for s, e, n in units:
        length = e - s
        while e - s > max_chars:
            cut = s + max_chars
            space = text.rfind(" ", s + max_chars * 3 // 4, cut)
            cut = space if space > s else cut
            out.append((s, cut, _weight(n * (cut - s) // length, cut - s)))
            s = cut
            while s < e and text[s].isspace():
                s += 1
        if e > s:
            out.append((s, e, _weight(n * (e - s) // length, e - s)))
    return out


def _weight(pieces: int, chars: int) -> int:
    """Word pieces a unit counts for when packing: never fewer than its length allows, so a
    window of [UNK]-only pieces is still bounded in characters."""
    return max(1, pieces, -(-chars // MAX_CHARS_PER_TOKEN))


def chunk_article(article: Article, tokenizer: Tokenizer, config: ChunkerConfig) -> list[Chunk]:
    """Split an article into overlapping sentence windows that fit the embedder."""
    title = embedding_title(article.title, tokenizer)
    title_tokens = len(tokenizer(title, add_special_tokens=False)["input_ids"]) if title else 0
    budget = min(config.max_tokens, config.max_seq_length - SPECIAL_TOKENS - title_tokens)
    budget = max(budget, 8)
    text = article.text
    runs = clean_runs(article)
    while True:
        overlap = min(config.overlap_tokens, budget // 2)
        chunks = []
        for run in runs:
            units = _units(text, [(u.start, u.end) for u in run], tokenizer, budget)
            headings = _heading_units(run, units)
            for a, b in _pack(units, budget, overlap, headings):
                chunks.append((text[units[a][0] : units[b][1]], units[a][0], units[b][1]))
        counts = _token_counts(tokenizer, [document_input(title, c[0]) for c in chunks])
        # A word cut mid-way re-tokenises on its own into more pieces than it had in its
        # sentence, so a chunk can overshoot by a few: shrink the budget and cut again.
        excess = max(counts, default=0) - config.max_seq_length
        if excess <= 0 or budget <= 8:
            break
        budget = max(budget - excess, 8)
    return [
        Chunk(article.id, i, start, end, chunk_text, tokens)
        for i, ((chunk_text, start, end), tokens) in enumerate(zip(chunks, counts, strict=True))
    ]


def clean_runs(article: Article) -> list[list[Sentence]]:
    """The article's sentences outside its boilerplate, in runs that no boilerplate splits."""
    excluded = boilerplate_of(article)
    runs: list[list[Sentence]] = []
    run: list[Sentence] = []
    k = 0  # first excluded span that may still lie at or after the current sentence
    for u in sentences(article.text):
        while k < len(excluded) and excluded[k][1] <= u.start:
            if run and excluded[k][0] >= run[-1].end:
                runs.append(run)  # a boilerplate span lies between the run and `u`
                run = []
            k += 1
        if k < len(excluded) and excluded[k][0] < u.end:
            continue  # overlaps boilerplate
        run.append(u)
    if run:
        runs.append(run)
    if not runs and excluded:
        # All of it looks like furniture: more likely a misjudged short article than a page
        # worth nothing, and an article must stay findable.
        return [sentences(article.text)]
    return runs


def _heading_units(run: list[Sentence], units: list[tuple[int, int, int]]) -> set[int]:
    """Indices of the units that are (pieces of) headings."""
    heads = [(u.start, u.end) for u in run if u.kind == "heading"]  # sorted, disjoint
    if not heads:
        return set()
    starts = [a for a, _ in heads]
    found = set()
    for i, (s, e, _) in enumerate(units):
        k = bisect.bisect_right(starts, s) - 1
        if k >= 0 and e <= heads[k][1]:
            found.add(i)
    return found


def _pack(
    units: list[tuple[int, int, int]], budget: int, overlap: int, headings: set[int] = frozenset()
) -> list[tuple[int, int]]:
    """Greedy windows `(first_unit, last_unit)`; each next window re-takes trailing sentences
    of the previous one worth at most `overlap` tokens, always moving forward. A window that
    would end on a heading ends before it, so the heading opens the next window instead."""
    windows: list[tuple[int, int]] = []
    first = 0
    while first < len(units):
        total = 0
        last = first
        while last < len(units) and total + units[last][2] <= budget:
            total += units[last][2]
            last += 1
        last = max(last - 1, first)
        if last < len(units) - 1:
            while last > first and last in headings:
                last -= 1
        windows.append((first, last))
        if last == len(units) - 1:
            break
        nxt = last + 1
        carried = 0
        # carry no more than leaves room for the next new unit: else the next window would
        # end where this one does and repeat a part of it
        carry = min(overlap, budget - units[nxt][2])
        while nxt - 1 > first and carried + units[nxt - 1][2] <= carry:
            nxt -= 1
            carried += units[nxt][2]
        first = nxt
    return windows


def _token_counts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]


def embedding_inputs(title: str, chunks: Sequence[Chunk], tokenizer: Tokenizer) -> list[str]:
    """The exact strings embedded for an article's chunks (the counts above refer to them)."""
    t = embedding_title(title, tokenizer)
    return [document_input(t, c.text) for c in chunks]

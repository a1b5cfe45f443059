"""Search over a published index: dense (FAISS), lexical (BM25) and their fusion.

Hybrid search scores every candidate from either side on both signals exactly (cosine from
the stored vectors, BM25 from the per-query score array) and blends them linearly. Rank
fusion that ignores scores (plain RRF) lets a weak second list drag down a confident first
one; a score blend keeps a strong lexical match on top while dense similarity breaks ties
and rescues paraphrases. Overlapping windows of one article are collapsed to the best one,
so k results are k different passages.

Passages are then shaped (`passages="shaped"`, the default) for what a reader needs,
because a chunk is a unit of indexing, not of evidence. In news the answer to a question
is often two consecutive sentences, and a chunk boundary can fall between them (long
sentences leave the chunker's overlap empty), so:

- each returned passage is its chunk widened by a sentence on either side, within the
  article's indexed text (never into boilerplate, never over a passage already returned),
  still one verbatim slice `article.text[start:end]`;
- hybrid ranking adds a focus term, the idf-weighted share of the question's terms found
  in the passage's best two-sentence window, so the passage holding the whole evidence
  outranks one holding half of it and a long passage that mentions everything once;
- near-duplicate passages of different articles (one wire story syndicated under several
  headlines, with other boilerplate) are collapsed into the first, which lists the
  others in `Hit.also_in`, so k results are not k copies of one story.

`passages="chunks"` returns bare chunks, ranked as before shaping existed (the benchmark's
reference).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import Stemmer

from .embedder import Embedder
from .lexical import query_terms
from .models import Hit, chunk_id
from .sentences import sentences
from .store import StoredIndex

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
Passages = Literal["shaped", "chunks"]
PASSAGES: tuple[Passages, ...] = ("shaped", "chunks")
MIN_CANDIDATES = 50
RERANK_DEPTH = 20  # candidates (at least) whose passages are shaped and re-scored
WIDEN_SENTENCES = 1  # sentences added on either side of a chunk
FOCUS_WINDOW = 2  # evidence in news is one sentence or two consecutive ones
FOCUS_WEIGHT = 0.15  # against a hybrid score in [0, 1]
SHINGLE = 4  # words per shingle when comparing passages of different articles
DUPLICATE_SHARE = 0.6  # share of the shorter passage's shingles found in the other
ARTICLE_CACHE = 256
MERGE_ADJACENT = False
MAX_MERGED_WORDS = 100000

# The tokenisation of bm25s (lower case, words of two or more characters) and the stemmer
# of `index.lexical`, so a passage's terms are the ones BM25 matched the question against.
_WORD = re.compile(r"(?u)\b\w\w+\b")
_STEMMER = Stemmer.Stemmer("english")


@dataclass(slots=True)
class _Candidate:
    row: int
    meta: dict[str, Any]
    score: float
    dense: float | None
    lexical: float | None
    units: list[tuple[int, int]]  # sentence spans of its connected text, article offsets
    core: tuple[int, int]  # first and last unit of the chunk itself


class Searcher:
    """A published index plus the embedder that can query it."""

    def __init__(
        self,
        stored: StoredIndex,
        embedder: Embedder,
        dense_weight: float = 0.5,
        passages: Passages = "shaped",
    ):
        stored.check_model(embedder.name)
        if passages not in PASSAGES:
            raise ValueError(f"unknown passages {passages!r}: expected one of {PASSAGES}")
        self.stored = stored
        self.embedder = embedder
        self.dense_weight = dense_weight
        self.passages = passages
        # a published version never changes, so an article's text can be kept
        self._article_text = functools.lru_cache(maxsize=ARTICLE_CACHE)(stored.article_text)

    @property
    def version(self) -> str:
        return self.stored.version

    def term_weights(self, query: str) -> dict[str, float]:
        """idf of the query's content terms in this index (empty without a lexical index)."""
        lexical = self.stored.lexical
        return lexical.idf(query_terms(query)) if lexical is not None else {}

    def search(self, query: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        return self.search_batch([query], k, mode)[0]

    def search_batch(
        self, queries: Sequence[str], k: int = 5, mode: Mode = "hybrid"
    ) -> list[list[Hit]]:
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}: expected one of {', '.join(MODES)}")
        if not queries:
            return []
        n = self.stored.size
        if n == 0 or k <= 0:
            return [[] for _ in queries]
        depth = min(n, max(MIN_CANDIDATES, 4 * k))
        qvecs = self.embedder.encode_queries(list(queries)) if mode != "lexical" else None
        dense_ids: np.ndarray | None = None
        if qvecs is not None:
            _, dense_ids = self.stored.dense.search(qvecs, depth)
        results: list[list[Hit]] = []
        for qi, query in enumerate(queries):
            lex = (
                self.stored.lexical.scores(query)
                if mode != "dense" and self.stored.lexical
                else None
            )
            candidates: set[int] = set()
            if dense_ids is not None:
                candidates.update(int(i) for i in dense_ids[qi] if i >= 0)
            if lex is not None:
                top = np.argpartition(-lex, min(depth, n) - 1)[:depth]
                candidates.update(int(i) for i in top if lex[i] > 0)
            if not candidates:
                results.append([])
                continue
            rows = np.fromiter(sorted(candidates), dtype=np.int64)
            dense = (
                np.asarray(self.stored.vectors[rows] @ qvecs[qi], dtype=np.float32)
                if qvecs is not None
                else None
            )
            lexical = lex[rows] if lex is not None else None
            scores = fuse(mode, dense, lexical, self.dense_weight)
            order = np.argsort(-scores, kind="stable")
            if self.passages == "chunks":
                results.append(self._hits(rows[order], scores[order], dense, lexical, order, k))
            else:
                focus = mode == "hybrid"
                results.append(self._shaped(query, rows, scores, dense, lexical, order, k, focus))
        return results

    def _hits(
        self,
        rows: np.ndarray,
        scores: np.ndarray,
        dense: np.ndarray | None,
        lexical: np.ndarray | None,
        order: np.ndarray,
        k: int,
    ) -> list[Hit]:
        meta = self.stored.chunk_rows(rows[: max(4 * k, 20)].tolist())
        kept: list[Hit] = []
        spans: dict[str, list[tuple[int, int]]] = {}
        for pos, row in enumerate(rows[: max(4 * k, 20)].tolist()):
            m = meta.get(row)
            if m is None:
                continue
            taken = spans.setdefault(m["article_id"], [])
            if any(m["start"] < e and s < m["end"] for s, e in taken):
                continue  # an overlapping window of a passage already returned
            taken.append((m["start"], m["end"]))
            o = int(order[pos])
            kept.append(
                _hit(
                    len(kept) + 1,
                    float(scores[pos]),
                    m,
                    (m["start"], m["end"], m["text"]),
                    float(dense[o]) if dense is not None else None,
                    float(lexical[o]) if lexical is not None else None,
                )
            )
            if len(kept) == k:
                break
        return kept

    def _shaped(
        self,
        query: str,
        rows: np.ndarray,
        scores: np.ndarray,
        dense: np.ndarray | None,
        lexical: np.ndarray | None,
        order: np.ndarray,
        k: int,
        focus: bool,
    ) -> list[Hit]:
        """The top k passages: chunks widened, re-scored on focus, duplicates collapsed."""
        top = order[: max(4 * k, RERANK_DEPTH)]
        top_rows = [int(rows[i]) for i in top]
        n = self.stored.size
        near = {r + d for r in top_rows for d in (-1, 1) if 0 <= r + d < n}
        meta = self.stored.chunk_rows(sorted(set(top_rows) | near))
        cands: list[_Candidate] = []
        for i, row in zip(top.tolist(), top_rows, strict=True):
            m = meta.get(row)
            text = self._article_text(m["article_id"]) if m is not None else None
            if m is None or text is None:
                continue
            units, core = _connected_units(row, m, meta, text)
            cands.append(
                _Candidate(
                    row,
                    m,
                    float(scores[i]),
                    float(dense[i]) if dense is not None else None,
                    float(lexical[i]) if lexical is not None else None,
                    units,
                    core,
                )
            )
        if focus and cands:
            weights = self.term_weights(query)
            total = sum(weights.values())
            if total > 0:
                for c in cands:
                    a, b = _widened(c, WIDEN_SENTENCES)
                    text = self._article_text(c.meta["article_id"]) or ""
                    c.score += FOCUS_WEIGHT * _focus(text, c.units[a : b + 1], weights) / total
                cands.sort(key=lambda c: -c.score)  # stable: ties keep the fused order
        kept: list[Hit] = []
        shingles: list[set[tuple[str, ...]]] = []
        spans: dict[str, list[tuple[int, int]]] = {}
        for c in cands:
            m = c.meta
            taken = spans.setdefault(m["article_id"], [])
            span = _free_span(c, taken)
            if span is None:
                continue  # nothing that a passage already returned does not hold
            start, end = span
            text = self._article_text(m["article_id"]) or ""
            passage = text[start:end]
            sh = _shingles(passage)
            dup = next(
                (
                    j
                    for j, other in enumerate(shingles)
                    if kept[j].article_id != m["article_id"] and _near_duplicate(sh, other)
                ),
                None,
            )
            if dup is not None:
                if m["article_id"] not in kept[dup].also_in:
                    kept[dup] = replace(kept[dup], also_in=(*kept[dup].also_in, m["article_id"]))
                continue
            if MERGE_ADJACENT:
                j = next(
                    (
                        j
                        for j, h in enumerate(kept)
                        if h.article_id == m["article_id"]
                        and (not text[h.end : start].strip() or not text[end : h.start].strip())
                        and len(text[min(start, h.start) : max(end, h.end)].split())
                        <= MAX_MERGED_WORDS
                    ),
                    None,
                )
                if j is not None:
                    h = kept[j]
                    taken.remove((h.start, h.end))
                    s2, e2 = min(start, h.start), max(end, h.end)
                    taken.append((s2, e2))
                    kept[j] = replace(h, start=s2, end=e2, text=text[s2:e2])
                    shingles[j] = _shingles(text[s2:e2])
                    continue
            taken.append((start, end))
            shingles.append(sh)
            kept.append(_hit(len(kept) + 1, c.score, m, (start, end, passage), c.dense, c.lexical))
            if len(kept) == k:
                break
        return kept


def _hit(
    rank: int,
    score: float,
    m: dict[str, Any],
    span: tuple[int, int, str],
    dense: float | None,
    lexical: float | None,
) -> Hit:
    start, end, text = span
    return Hit(
        rank=rank,
        score=score,
        chunk_id=chunk_id(m["article_id"], m["ordinal"]),
        article_id=m["article_id"],
        title=m["title"],
        source=m["source"],
        start=start,
        end=end,
        text=text,
        url=m["url"],
        dense_score=dense,
        lexical_score=lexical,
    )


def _connected_units(
    row: int, m: dict[str, Any], meta: dict[int, dict[str, Any]], text: str
) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Sentence spans of a chunk and of the neighbouring chunks it runs on into.

    Chunks never hold boilerplate, so text is only reached into through a neighbouring
    chunk of the same article that overlaps this one or is separated from it by nothing but
    white space: a boilerplate span between two chunks ends the reach.
    """
    lo, hi = m["start"], m["end"]
    prev, nxt = meta.get(row - 1), meta.get(row + 1)
    if _runs_on(prev, m, text):
        lo = min(lo, prev["start"])  # type: ignore[index]
    if _runs_on(m, nxt, text):
        hi = max(hi, nxt["end"])  # type: ignore[index]
    units = [(u.start, u.end) for u in sentences(text, lo, hi) if u.end > u.start]
    inside = [i for i, (s, e) in enumerate(units) if s >= m["start"] and e <= m["end"]]
    if not inside:  # a chunk cut inside one sentence: the chunk is its own unit
        units = (
            [u for u in units if u[1] <= m["start"]]
            + [(m["start"], m["end"])]
            + [u for u in units if u[0] >= m["end"]]
        )
        at = next(i for i, u in enumerate(units) if u == (m["start"], m["end"]))
        return units, (at, at)
    return units, (inside[0], inside[-1])


def _runs_on(first: dict[str, Any] | None, then: dict[str, Any] | None, text: str) -> bool:
    """Whether chunk `then` continues chunk `first` with no other text between them."""
    if first is None or then is None or first["article_id"] != then["article_id"]:
        return False
    return first["end"] >= then["start"] or not text[first["end"] : then["start"]].strip()


def _widened(c: _Candidate, by: int) -> tuple[int, int]:
    a, b = c.core
    return max(a - by, 0), min(b + by, len(c.units) - 1)


def _free_span(c: _Candidate, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The chunk widened by WIDEN_SENTENCES, less the sentences already returned.

    The longest run of the widened sentences that overlap no returned passage and include
    one of the chunk's own; None when every sentence of the chunk was returned already. A
    chunk overlapping a better one thus still contributes the sentences only it holds.
    """
    a, b = _widened(c, WIDEN_SENTENCES)
    best: tuple[int, int] | None = None
    run_start: int | None = None
    for i in range(a, b + 2):
        free = i <= b and not any(c.units[i][0] < te and ts < c.units[i][1] for ts, te in taken)
        if free and run_start is None:
            run_start = i
        elif not free and run_start is not None:
            last = i - 1
            own = run_start <= c.core[1] and last >= c.core[0]
            if own and (best is None or last - run_start > best[1] - best[0]):
                best = (run_start, last)
            run_start = None
    if best is None:
        return None
    return c.units[best[0]][0], c.units[best[1]][1]


def _terms(text: str) -> set[str]:
    return set(_STEMMER.stemWords(_WORD.findall(text.lower())))


def _focus(text: str, units: list[tuple[int, int]], weights: dict[str, float]) -> float:
    """The idf weight of the question's terms in the best window of FOCUS_WINDOW sentences."""
    terms = [_terms(text[s:e]) & weights.keys() for s, e in units]
    best = 0.0
    for i in range(max(len(terms) - FOCUS_WINDOW + 1, 1)):
        found = set().union(*terms[i : i + FOCUS_WINDOW]) if terms else set()
        best = max(best, sum(weights[t] for t in found))
    return best


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 0))}


def _near_duplicate(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> bool:
    """Most of the shorter passage's word sequences recur in the other: one story twice."""
    small = min(len(a), len(b))
    return small > 0 and len(a & b) >= DUPLICATE_SHARE * small


def fuse(
    mode: Mode, dense: np.ndarray | None, lexical: np.ndarray | None, dense_weight: float
) -> np.ndarray:
    """One score per candidate; hybrid blends cosine with BM25 scaled by the query's best."""
    if mode == "dense" or lexical is None:
        assert dense is not None or lexical is not None
        return dense if dense is not None else lexical  # type: ignore[return-value]
    if mode == "lexical" or dense is None:
        return lexical
    top = float(lexical.max())
    lex_norm = lexical / top if top > 0 else lexical
    return dense_weight * dense + (1.0 - dense_weight) * lex_norm

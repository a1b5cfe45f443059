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
- a lower-ranked chunk that overlaps or adjoins a returned passage adds the sentences only
  it holds to that passage (up to MAX_PASSAGE_WORDS) instead of being dropped, so when
  both halves of the evidence rank high they come back whole, as one passage;
- a passage whose text another returned article already holds (one wire story syndicated
  under several headlines, with other boilerplate) is collapsed into that article's hit,
  which lists the copies in `Hit.also_in`, so k results are not k copies of one story
  (`index.copies`).

Shaping is a per-result cost, so what it needs of an article is made once at build time and
stored with it (`StoredIndex.shaping`): its sentence spans and a filter of its words. A
version or store without them is shaped from the article's text, with the same results.

`passages="chunks"` returns bare chunks, ranked as before shaping existed (the benchmark's
reference).

Where candidates come from is pluggable (`Retriever`): by default the FAISS and BM25 indexes
of a `StoredIndex`, scored here; a store that searches by itself (`index.milvus_store`, hybrid
search inside Milvus) is its own retriever. Shaping is the same for every store.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from . import copies
from .embedder import Embedder
from .lexical import query_terms
from .models import Hit, chunk_id
from .sentences import sentences, window
from .store import ArticleDetails, ArticleShaping, StoredArticle, StoredIndex

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
Passages = Literal["shaped", "chunks"]
PASSAGES: tuple[Passages, ...] = ("shaped", "chunks")
MIN_CANDIDATES = 50
WIDEN_SENTENCES = 1  # sentences added on either side of a chunk
MAX_PASSAGE_WORDS = 300  # neighbouring chunks are merged into one passage up to this size
ARTICLE_CACHE = 256
UNIT_CACHE = 20_000
SAMPLE_STRIDE = 64  # scores sampled to estimate the lexical cut-off (`top_rows`)


@dataclass(frozen=True, slots=True)
class Candidates:
    """One query's candidate chunk rows with their scores, in any order.

    `scores` ranks them (higher is better); `dense` and `lexical` are each candidate's cosine
    and BM25 score where the retriever knows them (None where it does not).
    """

    rows: np.ndarray
    scores: np.ndarray
    dense: np.ndarray | None
    lexical: np.ndarray | None


@runtime_checkable
class Retriever(Protocol):
    """Where a searcher's candidates come from."""

    def candidates(
        self,
        queries: Sequence[str],
        qvecs: np.ndarray | None,
        depth: int,
        mode: Mode,
        dense_weight: float,
    ) -> list[Candidates | None]:
        """Up to `depth` candidates per query (None: nothing matched); qvecs unless lexical."""
        ...

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 idf of each term over the chunks."""
        ...


class IndexReader(Protocol):
    """What searching and answering read from a published index, whichever store holds it.

    Chunk rows are integers whose neighbours (row +- 1) are the article's previous and next
    chunks; a row that does not exist is simply absent from `chunk_rows`.
    """

    @property
    def version(self) -> str: ...
    @property
    def size(self) -> int: ...
    def check_embedder(self, embedder: Any) -> None: ...
    def article_text(self, article_id: str) -> str | None: ...
    def shaping(self, article_ids: Sequence[str]) -> dict[str, ArticleShaping]: ...
    def chunk_rows(self, rows: Sequence[int], text: bool = True) -> dict[int, dict[str, Any]]: ...
    def article_details(self, article_ids: Sequence[str]) -> dict[str, ArticleDetails]: ...
    def articles(self) -> list[StoredArticle]: ...
    def close(self) -> None: ...


class DenseLexical:
    """Candidates from a FAISS `StoredIndex`: FAISS and BM25 tops, scored exactly, blended.

    Every candidate from either side gets both signals exactly (cosine from the stored
    vectors, BM25 from the per-query score array), blended by `fuse`.
    """

    def __init__(self, stored: StoredIndex) -> None:
        self.stored = stored

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        lexical = self.stored.lexical
        return lexical.idf(terms) if lexical is not None else {}

    def candidates(
        self,
        queries: Sequence[str],
        qvecs: np.ndarray | None,
        depth: int,
        mode: Mode,
        dense_weight: float,
    ) -> list[Candidates | None]:
        dense_ids: np.ndarray | None = None
        if qvecs is not None:
            _, dense_ids = self.stored.dense_search(qvecs, depth)
        out: list[Candidates | None] = []
        for qi, query in enumerate(queries):
            lex = (
                self.stored.lexical.scores(query)
                if mode != "dense" and self.stored.lexical
                else None
            )
            found: set[int] = set()
            if dense_ids is not None:
                found.update(int(i) for i in dense_ids[qi] if i >= 0)
            if lex is not None:
                found.update(top_rows(lex, depth).tolist())
            if not found:
                out.append(None)
                continue
            rows = np.fromiter(sorted(found), dtype=np.int64)
            dense = (
                np.asarray(self.stored.vectors[rows] @ qvecs[qi], dtype=np.float32)
                if qvecs is not None
                else None
            )
            lexical = lex[rows] if lex is not None else None
            out.append(Candidates(rows, fuse(mode, dense, lexical, dense_weight), dense, lexical))
        return out


class Searcher:
    """A published index plus the embedder that can query it."""

    def __init__(
        self,
        stored: IndexReader,
        embedder: Embedder,
        dense_weight: float = 0.5,
        passages: Passages = "shaped",
    ):
        stored.check_embedder(embedder)
        if passages not in PASSAGES:
            raise ValueError(f"unknown passages {passages!r}: expected one of {PASSAGES}")
        self.stored = stored
        self.retriever: Retriever = (
            stored if isinstance(stored, Retriever) else DenseLexical(stored)  # type: ignore[arg-type]
        )
        self.embedder = embedder
        self.dense_weight = dense_weight
        self.passages = passages
        # a published version never changes, so an article's text can be kept
        self._article_text = functools.lru_cache(maxsize=ARTICLE_CACHE)(stored.article_text)
        self._article_shingles = functools.lru_cache(maxsize=ARTICLE_CACHE)(
            lambda article_id: copies.shingles(self._article_text(article_id) or "")
        )
        self._article_words = functools.lru_cache(maxsize=ARTICLE_CACHE)(
            lambda article_id: set(copies.words(self._article_text(article_id) or ""))
        )
        self._shaping = functools.lru_cache(maxsize=4 * ARTICLE_CACHE)(
            lambda article_id: stored.shaping([article_id]).get(article_id)
        )
        self._unit_cache: dict[int, tuple[list[tuple[int, int]], tuple[int, int]]] = {}

    @property
    def version(self) -> str:
        return self.stored.version

    def term_weights(self, query: str) -> dict[str, float]:
        """idf of the query's content terms in this index (empty without a lexical index)."""
        return self.retriever.idf(query_terms(query))

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
        found = self.retriever.candidates(queries, qvecs, depth, mode, self.dense_weight)
        results: list[list[Hit]] = []
        for candidates in found:
            if candidates is None or not len(candidates.rows):
                results.append([])
                continue
            rows, scores = candidates.rows, candidates.scores
            dense, lexical = candidates.dense, candidates.lexical
            order = np.argsort(-scores, kind="stable")
            if self.passages == "chunks":
                results.append(self._hits(rows[order], scores[order], dense, lexical, order, k))
            else:
                results.append(self._shaped(rows, scores, dense, lexical, order, k))
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
        rows: np.ndarray,
        scores: np.ndarray,
        dense: np.ndarray | None,
        lexical: np.ndarray | None,
        order: np.ndarray,
        k: int,
    ) -> list[Hit]:
        """The top k passages: chunks widened, runs of chunks merged, duplicates collapsed."""
        top = order[: max(4 * k, 20)]
        best_rows = [int(rows[i]) for i in top]
        near = {r + d for r in best_rows for d in (-1, 1) if r + d >= 0}
        meta = self.stored.chunk_rows(sorted(set(best_rows) | near), text=False)
        kept: list[Hit] = []
        for i, row in zip(top.tolist(), best_rows, strict=True):
            m = meta.get(row)
            text = self._article_text(m["article_id"]) if m is not None else None
            if m is None or text is None:
                continue
            units, core = self._units(row, m, meta, text)
            mine = [h for h in kept if h.article_id == m["article_id"]]
            span = _free_span(units, core, [(h.start, h.end) for h in mine])
            if span is None:
                continue  # every sentence of it is in a passage already returned
            start, end = span
            dup = self._copy_of(text[start:end], m["article_id"], kept)
            if dup is not None:  # the same story under another headline
                if m["article_id"] not in kept[dup].also_in:
                    kept[dup] = replace(kept[dup], also_in=(*kept[dup].also_in, m["article_id"]))
                continue
            j = next((kept.index(h) for h in mine if _joins(h, start, end, text)), None)
            if j is not None:  # the rest of a passage already returned: one longer passage
                h = kept[j]
                s, e = min(start, h.start), max(end, h.end)
                kept[j] = replace(h, start=s, end=e, text=text[s:e])
                continue
            kept.append(
                _hit(
                    len(kept) + 1,
                    float(scores[i]),
                    m,
                    (start, end, text[start:end]),
                    float(dense[i]) if dense is not None else None,
                    float(lexical[i]) if lexical is not None else None,
                )
            )
            if len(kept) == k:
                break
        return kept

    def _copy_of(self, passage: str, article_id: str, kept: list[Hit]) -> int | None:
        """Index of the first kept hit of another article that already holds `passage`."""
        return copies.copy_of(
            passage,
            article_id,
            [h.article_id for h in kept],
            lambda other: shape.word_filter if (shape := self._shaping(other)) else None,
            self._article_words,
            self._article_shingles,
        )

    def _units(
        self, row: int, m: dict[str, Any], meta: dict[int, dict[str, Any]], text: str
    ) -> tuple[list[tuple[int, int]], tuple[int, int]]:
        """`_connected_units` of a chunk, kept: popular passages are asked about again."""
        found = self._unit_cache.get(row)
        if found is None:
            if len(self._unit_cache) >= UNIT_CACHE:
                self._unit_cache.clear()
            shape = self._shaping(m["article_id"])
            spans = shape.sentences if shape is not None else None
            found = self._unit_cache[row] = _connected_units(row, m, meta, text, spans)
        return found


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
    row: int,
    m: dict[str, Any],
    meta: dict[int, dict[str, Any]],
    text: str,
    spans: np.ndarray | None = None,
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
    units = (
        window(text, spans, lo, hi)  # split once, at build time
        if spans is not None
        else [(u.start, u.end) for u in sentences(text, lo, hi) if u.end > u.start]
    )
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


def _free_span(
    units: list[tuple[int, int]], core: tuple[int, int], taken: list[tuple[int, int]]
) -> tuple[int, int] | None:
    """The chunk widened by WIDEN_SENTENCES, less the sentences already returned.

    The longest run of the widened sentences that overlap no returned passage and include
    one of the chunk's own; None when every sentence of the chunk was returned already. A
    chunk overlapping a better one thus still contributes the sentences only it holds.
    """
    a, b = max(core[0] - WIDEN_SENTENCES, 0), min(core[1] + WIDEN_SENTENCES, len(units) - 1)
    best: tuple[int, int] | None = None
    run_start: int | None = None
    for i in range(a, b + 2):
        free = i <= b and not any(units[i][0] < te and ts < units[i][1] for ts, te in taken)
        if free and run_start is None:
            run_start = i
        elif not free and run_start is not None:
            last = i - 1
            own = run_start <= core[1] and last >= core[0]
            if own and (best is None or last - run_start > best[1] - best[0]):
                best = (run_start, last)
            run_start = None
    if best is None:
        return None
    return units[best[0]][0], units[best[1]][1]


def _joins(hit: Hit, start: int, end: int, text: str) -> bool:
    """Whether span start:end continues `hit` (nothing but space between) within the cap."""
    touching = not text[hit.end : start].strip() or not text[end : hit.start].strip()
    return touching and len(text[min(start, hit.start) : max(end, hit.end)].split()) <= (
        MAX_PASSAGE_WORDS
    )


def top_rows(scores: np.ndarray, depth: int) -> np.ndarray:
    """Rows of the `depth` highest positive scores (fewer when fewer are positive).

    A partial sort of a million scores costs more than the rest of the search, so the
    cut-off is first estimated from every SAMPLE_STRIDE-th score, and only the scores at or
    above it are partly sorted. Whenever that leaves at least `depth` rows, the `depth`
    best are among them; otherwise the whole array is partly sorted.
    """
    n = len(scores)
    depth = min(depth, n)
    if depth <= 0:
        return np.zeros(0, dtype=np.int64)
    if n >= 8 * SAMPLE_STRIDE * depth:
        sample = scores[::SAMPLE_STRIDE]
        keep = 4 * depth // SAMPLE_STRIDE + 1  # ~4 x depth rows expected above the cut-off
        cut = np.partition(sample, len(sample) - keep)[len(sample) - keep]
        if cut > 0:
            above = np.flatnonzero(scores >= cut)
            if len(above) >= depth:
                return above[np.argpartition(-scores[above], depth - 1)[:depth]]
    top = np.argpartition(-scores, depth - 1)[:depth]
    return top[scores[top] > 0]


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

"""Search over a published index: dense (FAISS), lexical (BM25) and their fusion.

Hybrid search scores every candidate from either side on both signals exactly (cosine from
the stored vectors, BM25 from the per-query score array) and blends them linearly. Rank
fusion that ignores scores (plain RRF) lets a weak second list drag down a confident first
one; a score blend keeps a strong lexical match on top while dense similarity breaks ties
and rescues paraphrases. Overlapping windows of one article are collapsed to the best one,
so k results are k different passages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .embedder import Embedder
from .lexical import query_terms
from .models import Hit, chunk_id
from .store import StoredIndex

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
MIN_CANDIDATES = 50


class Searcher:
    """A published index plus the embedder that can query it."""

    def __init__(self, stored: StoredIndex, embedder: Embedder, dense_weight: float = 0.5):
        stored.check_model(embedder.name)
        self.stored = stored
        self.embedder = embedder
        self.dense_weight = dense_weight

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
            results.append(self._hits(rows[order], scores[order], dense, lexical, order, k))
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
                Hit(
                    rank=len(kept) + 1,
                    score=float(scores[pos]),
                    chunk_id=chunk_id(m["article_id"], m["ordinal"]),
                    article_id=m["article_id"],
                    title=m["title"],
                    source=m["source"],
                    start=m["start"],
                    end=m["end"],
                    text=m["text"],
                    url=m["url"],
                    dense_score=float(dense[o]) if dense is not None else None,
                    lexical_score=float(lexical[o]) if lexical is not None else None,
                )
            )
            if len(kept) == k:
                break
        return kept


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

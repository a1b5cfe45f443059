"""BM25 rebuilt from stored term counts, so an incremental rebuild never re-tokenises.

BM25 scores depend on collection-wide statistics (document count, mean length, each term's
document frequency), so one changed article changes every stored score, and bm25s can only
rebuild its index from the documents' tokens: tokenising and stemming 100k chunks costs tens
of seconds. What does not change is each chunk's own term counts, so the store keeps them
(`terms` and `vocab` tables of meta.sqlite) and this module recomputes the whole score matrix
from them in a few vectorised passes, writing it in bm25s's own file format (what
`index.lexical.LexicalIndex.load` reads).

Scores are bm25s's defaults exactly (method and idf "lucene", k1 1.5, b 0.75, float32), so a
full and an incremental rebuild over the same articles score every chunk alike. The matrix
is indexed by chunk row; rows of removed chunks (holes left by an incremental rebuild) hold
no term and score 0, and the statistics count only the chunks that exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp

from .lexical import _tokenize

log = logging.getLogger(__name__)

TERM_DTYPE = np.dtype("<i4")  # term ids and counts, as stored in meta.sqlite blobs


@dataclass(frozen=True, slots=True)
class RowTerms:
    """One chunk's distinct term ids and how often each occurs (stop words removed)."""

    ids: np.ndarray
    counts: np.ndarray

    def blobs(self) -> tuple[bytes, bytes]:
        return (
            self.ids.astype(TERM_DTYPE, copy=False).tobytes(),
            self.counts.astype(TERM_DTYPE, copy=False).tobytes(),
        )

    @classmethod
    def from_blobs(cls, ids: bytes, counts: bytes) -> RowTerms:
        a, b = np.frombuffer(ids, dtype=TERM_DTYPE), np.frombuffer(counts, dtype=TERM_DTYPE)
        if len(a) != len(b):
            raise ValueError("term ids and counts differ in length")
        return cls(a, b)


def count_terms(documents: Sequence[str], vocab: dict[str, int]) -> list[RowTerms]:
    """Tokenise documents as `LexicalIndex` does, extending `vocab` with new terms in place."""
    out: list[RowTerms] = []
    for tokens in _tokenize(documents, "en"):
        ids = np.fromiter(
            (vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int64, count=len(tokens)
        )
        unique, counts = np.unique(ids, return_counts=True)
        out.append(RowTerms(unique, counts))
    return out


def build_bm25(
    rows: np.ndarray, terms: Sequence[RowTerms], vocab: dict[str, int], size: int
) -> bm25s.BM25:
    """The BM25 index of the chunks `rows` (ascending, < `size`) with their term counts.

    Args:
        rows: the chunk rows that exist; the others score 0 and count for nothing.
        vocab: term -> id, as `count_terms` assigned them (terms no chunk holds any more
            are left out of the index, as a fresh build would).
        size: the number of rows (the length of every score array).
    """
    retriever = bm25s.BM25()
    if (retriever.method, retriever.idf_method) != ("lucene", "lucene"):
        raise RuntimeError("bm25s's default BM25 variant changed: update index.lexical_terms")
    k1, b = retriever.k1, retriever.b
    lengths = np.fromiter((len(t.ids) for t in terms), dtype=np.int64, count=len(terms))
    ids = _concat((t.ids for t in terms), TERM_DTYPE)
    tf = _concat((t.counts for t in terms), TERM_DTYPE)
    doc_len = np.fromiter((int(t.counts.sum()) for t in terms), dtype=np.int64, count=len(terms))
    n_docs = len(terms)
    avg_len = doc_len.mean() if n_docs else 0.0
    df = np.bincount(ids, minlength=len(vocab)) if len(vocab) else np.zeros(0, np.int64)
    kept = np.flatnonzero(df)  # terms that some chunk holds, in vocabulary order
    column = np.full(len(df), -1, dtype=np.int64)
    column[kept] = np.arange(len(kept))
    idf = np.log(1 + (n_docs - df[kept] + 0.5) / (df[kept] + 0.5)).astype(np.float32)
    entry_len = np.repeat(doc_len, lengths).astype(np.float64)
    tfc = tf.astype(np.float32) / (k1 * ((1 - b) + b * entry_len / avg_len) + tf)
    cols = column[ids]
    scores = (idf[cols] * tfc).astype(np.float32)
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.add.at(indptr, np.asarray(rows, dtype=np.int64) + 1, lengths)
    indptr = np.cumsum(indptr)
    matrix = sp.csr_matrix((scores, cols, indptr), shape=(size, len(kept) + 1)).tocsc()
    matrix.sort_indices()
    names = {i: t for t, i in vocab.items()}
    vocab_dict = {names[int(i)]: c for c, i in enumerate(kept)}
    vocab_dict.setdefault("", len(kept))  # bm25s keeps an empty token last
    retriever.scores = {
        "data": matrix.data.astype(np.float32),
        "indices": matrix.indices.astype(np.int32),
        "indptr": matrix.indptr.astype(np.int32 if matrix.nnz < 2**31 else np.int64),
        "num_docs": size,
    }
    retriever.vocab_dict = vocab_dict
    retriever.nonoccurrence_array = None  # lucene needs none
    retriever.unique_token_ids_set = set(vocab_dict.values())
    return retriever


def save_bm25(retriever: bm25s.BM25, folder: Path) -> None:
    retriever.save(str(folder), show_progress=False)


def _concat(parts: Iterable[np.ndarray], dtype: np.dtype) -> np.ndarray:
    arrays = list(parts)
    return np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, dtype=np.int64)

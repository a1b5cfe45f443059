"""BM25 over chunks (title + text), via bm25s.

Dense vectors miss rare names and numbers that a question shares word for word with the
passage; BM25 catches them. Scores for the whole collection are computed per query (sparse,
proportional to the postings of the query's terms), which lets hybrid search give every
candidate an exact lexical score instead of guessing for those outside BM25's own top k.
The postings are memory-mapped: a million-chunk index opens at once and a query reads only
the pages of its own terms.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

# Words that carry no topic in a question; bm25s's English list keeps many of them.
QUESTION_WORDS = [
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how",
    "did", "does", "do", "done", "say", "said", "tell", "told", "many", "much",
]  # fmt: skip

# PyStemmer objects must not be called from two threads at once, and answers run in worker
# threads: one stemmer per thread.
_local = threading.local()
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def _tokenize(texts: Sequence[str], stopwords: list[str] | str) -> list[list[str]]:
    return bm25s.tokenize(
        list(texts),
        stopwords=stopwords,
        stemmer=_stemmer(),
        return_ids=False,
        show_progress=False,
    )


def query_terms(text: str) -> list[str]:
    """Stemmed content terms of a question (also used by the answerer for overlap)."""
    return _tokenize([text], _query_stopwords())[0]


def document_terms(text: str) -> list[str]:
    return _tokenize([text], "en")[0]


def _query_stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return [*STOPWORDS_EN, *QUESTION_WORDS]


class LexicalIndex:
    """A BM25 index whose document order is the chunk rows of the metadata database."""

    def __init__(self, retriever: bm25s.BM25, size: int) -> None:
        self._retriever = retriever
        self.size = size
        self._stopwords = _query_stopwords()

    @classmethod
    def build(cls, documents: Sequence[str]) -> LexicalIndex:
        retriever = bm25s.BM25()
        tokens = bm25s.tokenize(
            list(documents), stopwords="en", stemmer=_stemmer(), show_progress=False
        )
        retriever.index(tokens, show_progress=False)
        return cls(retriever, len(documents))

    def save(self, folder: Path) -> None:
        self._retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        """Memory-map the postings: a query reads only its terms' pages, shared by processes."""
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        return cls(retriever, size)

    def check(self, *, thorough: bool = True) -> None:
        """Raise ValueError unless the loaded arrays can be the BM25 index of `size` chunks.

        It turns a file that parses but was not written for this collection into an error
        here rather than an IndexError, or silently wrong scores, at a user's question.
        `thorough` adds one pass over the postings (cheap next to a small index, but
        gigabytes read at a million chunks, where the checksum at rebuild covers them).
        """
        scores = self._retriever.scores
        data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
        vocab = self._retriever.vocab_dict
        if scores.get("num_docs") != self.size:
            raise ValueError(f"it indexes {scores.get('num_docs')} chunks, not {self.size}")
        if len(data) != len(indices) or len(indptr) not in (len(vocab), len(vocab) + 1):
            raise ValueError("its arrays do not fit together")
        if len(indptr) and (np.any(np.diff(indptr) < 0) or indptr[0] < 0 or indptr[-1] > len(data)):
            raise ValueError("its postings offsets are out of order")
        if (
            thorough
            and len(indices)
            and (int(indices.min()) < 0 or int(indices.max()) >= self.size)
        ):
            raise ValueError("a posting names a chunk that does not exist")
        if any(not 0 <= i < len(vocab) for i in vocab.values()):
            raise ValueError("its vocabulary names a term that does not exist")

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25 idf of each term in the collection; a term it never saw gets the highest."""
        vocab = self._retriever.vocab_dict
        indptr = self._retriever.scores["indptr"]
        stop = len(self._retriever.scores["data"])  # bm25s's indptr may omit the last end
        n = max(self.size, 1)
        out: dict[str, float] = {}
        for t in terms:
            i = vocab.get(t)
            df = 0
            if i is not None and i < len(indptr):
                df = int((indptr[i + 1] if i + 1 < len(indptr) else stop) - indptr[i])
            out[t] = float(np.log(1 + (n - df + 0.5) / (df + 0.5)))
        return out

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every document for `query`, or None when it has no usable term."""
        if self.size == 0:
            return None
        terms = _tokenize([query], self._stopwords)[0]
        vocab = self._retriever.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return None
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)

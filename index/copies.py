"""Syndicated copies: whether another article already holds a passage's text.

One wire story runs under several headlines with different boilerplate, so search would
return k copies of one passage. A passage is a copy of another article when that article's
whole text holds DUPLICATE_SHARE of the passage's shingles (SHINGLE consecutive words): its
whole text, not only its returned passage, since a copy's best passage may be another part
of the same story.

Shingling an article's whole text is what made this expensive: with a million passages the
articles a query returns are rarely cached, and tokenising ten of them cost more than the
search itself. So each article's distinct words are also kept, at build time, as a Bloom
filter (`word_filter`, ~1.5 bytes per distinct word, in the index's metadata). A filter
never denies a word the article has, so "fewer than DUPLICATE_SHARE of the passage's
shingles have all their words in the filter" proves the article is no copy without reading
its text; the rare article that passes (a real copy, or a story on the same topic) is
then judged exactly, on its text. An index without filters (written before them, or a
store that keeps none) is judged on the text alone, with the same answers.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

SHINGLE = 4  # words per shingle when comparing passages of different articles
DUPLICATE_SHARE = 0.6  # share of a passage's shingles found in another returned article
FILTER_BITS_PER_WORD = 12  # at least; with 3 hashes <= 1% of absent words taken for present
FILTER_HASHES = 3
_SEED = 0x9E3779B9

_WORD = re.compile(r"(?u)\b\w\w+\b")  # words as bm25s tokenises them


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(text: str) -> set[tuple[str, ...]]:
    found = words(text)
    # zip over shifted lists: the same shingles as slicing at each offset, without a list
    # slice per word (whole articles are shingled when a copy is judged on its text)
    return set(zip(*(found[i:] for i in range(SHINGLE)), strict=False))


@functools.lru_cache(maxsize=1 << 17)
def _word_hash(word: str) -> int:
    """Two stable 32-bit hashes of a word in one int (Python's own is salted per process)."""
    encoded = word.encode()
    return zlib.crc32(encoded) | (zlib.crc32(encoded, _SEED) | 1) << 32


def _hashes(distinct: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    both = np.fromiter(map(_word_hash, distinct), dtype=np.uint64, count=len(distinct))
    return both & np.uint64(0xFFFFFFFF), both >> np.uint64(32)


def _positions(h1: np.ndarray, h2: np.ndarray, bits: int) -> np.ndarray:
    """Bit positions of each word (one row per word), by double hashing."""
    steps = np.arange(FILTER_HASHES, dtype=np.uint64)
    return (h1[:, None] + steps[None, :] * h2[:, None]) % np.uint64(bits)


def word_filter(text: str) -> bytes:
    """The Bloom filter of the distinct words of `text`, as stored for an article."""
    distinct = set(words(text))
    # a power of two: a passage compared with many articles meets few sizes (`Passage._where`)
    bits = max(64, 1 << math.ceil(math.log2(max(len(distinct) * FILTER_BITS_PER_WORD, 1))))
    flags = np.zeros(bits, dtype=bool)
    if distinct:
        flags[_positions(*_hashes(list(distinct)), bits).ravel().astype(np.intp)] = True
    return np.packbits(flags, bitorder="little").tobytes()


class Passage:
    """A passage's shingles, prepared once to be compared with several articles."""

    def __init__(self, text: str) -> None:
        found = words(text)
        at: dict[str, int] = {}
        ids = np.array([at.setdefault(w, len(at)) for w in found], dtype=np.int64)
        # distinct shingles as rows of word ids: the same set as `shingles(text)`
        self._grid = _distinct_rows(ids) if len(at) < 1 << 16 else _distinct_rows_big(ids)
        self.size = len(self._grid)
        self.need = DUPLICATE_SHARE * self.size
        self._vocab = list(at)
        self._found = found
        self._bits: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @functools.cached_property
    def shingles(self) -> set[tuple[str, ...]]:
        found = self._found
        return set(zip(*(found[i:] for i in range(SHINGLE)), strict=False))

    @functools.cached_property
    def _hashes(self) -> tuple[np.ndarray, np.ndarray]:
        return _hashes(self._vocab)

    def _where(self, bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Byte and bit of each of the vocabulary's filter positions, per filter size."""
        found = self._bits.get(bits)
        if found is None:
            positions = _positions(*self._hashes, bits).astype(np.intp)
            found = self._bits[bits] = (positions >> 3, (positions & 7).astype(np.uint8))
        return found

    def _enough(self, present: np.ndarray) -> bool:
        """Whether the shingles whose words are all `present` (per vocab word) are enough."""
        return int(present[self._grid].all(axis=1).sum()) >= self.need

    def may_be_in(self, word_filter: bytes) -> bool:
        """False only when the filter's article cannot hold enough of the shingles."""
        return self.may_be_in_each([word_filter])[0]

    def may_be_in_each(self, word_filters: Sequence[bytes]) -> list[bool]:
        """`may_be_in` for several articles, those with filters of one size in one step."""
        out = [True] * len(word_filters)
        by_size: dict[int, list[int]] = {}
        for i, f in enumerate(word_filters):
            if f:
                by_size.setdefault(len(f), []).append(i)
        for size, which in by_size.items():
            flags = np.frombuffer(b"".join(word_filters[i] for i in which), dtype=np.uint8)
            byte, bit = self._where(size * 8)
            # (articles, words, hashes) -> (articles, words): every hash's bit is set
            flags = flags.reshape(len(which), size)
            present = ((flags[:, byte] >> bit) & 1).all(axis=2)
            held = present[:, self._grid].all(axis=2).sum(axis=1)
            for i, n in zip(which, held.tolist(), strict=True):
                out[i] = n >= self.need
        return out

    def may_be_in_words(self, article_words: set[str]) -> bool:
        """The same bound from the article's word set (when it has no stored filter)."""
        present = np.fromiter((w in article_words for w in self._vocab), dtype=bool)
        return self._enough(present)

    def is_in(self, article_shingles: set[tuple[str, ...]]) -> bool:
        return len(self.shingles & article_shingles) >= self.need


def _distinct_rows(ids: np.ndarray) -> np.ndarray:
    """The distinct SHINGLE-grams of `ids` (each < 2**16): each packed into one int64."""
    if len(ids) < SHINGLE:
        return np.zeros((0, SHINGLE), dtype=np.intp)
    n = len(ids) - SHINGLE + 1
    keys = np.zeros(n, dtype=np.int64)
    for i in range(SHINGLE):
        keys |= ids[i : i + n] << (16 * (SHINGLE - 1 - i))
    keys = np.unique(keys)
    shifts = 16 * np.arange(SHINGLE - 1, -1, -1, dtype=np.int64)
    return ((keys[:, None] >> shifts) & 0xFFFF).astype(np.intp)


def _distinct_rows_big(ids: np.ndarray) -> np.ndarray:
    rows = set(zip(*(ids[i:].tolist() for i in range(SHINGLE)), strict=False))
    return np.array(sorted(rows), dtype=np.intp).reshape(-1, SHINGLE)


def copy_of(
    passage: str,
    article_id: str,
    others: Iterable[str],
    word_filter_of: Callable[[str], bytes | None],
    words_of: Callable[[str], set[str]],
    shingles_of: Callable[[str], set[tuple[str, ...]]],
) -> int | None:
    """Position in `others` (article ids) of the first other article that holds `passage`.

    `word_filter_of` gives an article's stored filter (None when it has none); `words_of`
    and `shingles_of` its words and shingles, made from its text only when needed.
    """
    firsts: dict[str, int] = {}  # each other article at its first position, in order
    for j, other in enumerate(others):
        if other != article_id:
            firsts.setdefault(other, j)
    if not firsts:
        return None
    mine = Passage(passage)
    if not mine.size:
        return None
    ids = list(firsts)
    stored = [word_filter_of(other) for other in ids]
    possible = mine.may_be_in_each([f or b"" for f in stored])
    for other, kept_filter, maybe in zip(ids, stored, possible, strict=True):
        if kept_filter is not None and not maybe:
            continue
        if kept_filter is None and not mine.may_be_in_words(words_of(other)):
            continue
        if mine.is_in(shingles_of(other)):
            return firsts[other]
    return None

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
from collections.abc import Callable, Iterable

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
def _word_hashes(word: str) -> tuple[int, int]:
    """Two stable 32-bit hashes of a word (Python's own hash is salted per process)."""
    encoded = word.encode()
    return zlib.crc32(encoded), zlib.crc32(encoded, _SEED) | 1


def _hashes(distinct: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.array([_word_hashes(w) for w in distinct], dtype=np.uint64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


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
        flags[_positions(*_hashes(distinct), bits).ravel().astype(np.intp)] = True
    return np.packbits(flags, bitorder="little").tobytes()


class Passage:
    """A passage's shingles, prepared once to be compared with several articles."""

    def __init__(self, text: str) -> None:
        found = words(text)
        at: dict[str, int] = {}
        ids = [at.setdefault(w, len(at)) for w in found]
        # distinct shingles as rows of word ids: the same set as `shingles(text)`
        distinct = set(zip(*(ids[i:] for i in range(SHINGLE)), strict=False))
        self._grid = np.array(sorted(distinct), dtype=np.intp).reshape(-1, SHINGLE)
        self.size = len(distinct)
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
        flags = np.frombuffer(word_filter, dtype=np.uint8)
        if not len(flags):
            return True
        byte, bit = self._where(len(flags) * 8)
        present = ((flags[byte] >> bit) & 1).all(axis=1)
        return self._enough(present)

    def may_be_in_words(self, article_words: set[str]) -> bool:
        """The same bound from the article's word set (when it has no stored filter)."""
        present = np.fromiter((w in article_words for w in self._vocab), dtype=bool)
        return self._enough(present)

    def is_in(self, article_shingles: set[tuple[str, ...]]) -> bool:
        return len(self.shingles & article_shingles) >= self.need


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
    mine: Passage | None = None
    seen: set[str] = set()
    for j, other in enumerate(others):
        if other == article_id or other in seen:
            continue
        seen.add(other)
        if mine is None:  # made once, and only when there is another article to compare
            mine = Passage(passage)
            if not mine.size:
                return None
        stored = word_filter_of(other)
        if stored is not None:
            if not mine.may_be_in(stored):
                continue
        elif not mine.may_be_in_words(words_of(other)):
            continue
        if mine.is_in(shingles_of(other)):
            return j
    return None

"""The default answerer: offline, no LLM, every word of the answer quoted from an article.

It ranks the sentences of the retrieved passages by how well they answer the question and
quotes the best one or two, each followed by its citation marker. A sentence's score blends:

* its embedding similarity to the question (paraphrase);
* idf-weighted overlap of the question's content terms (names, numbers, rare words), with
  idf taken over the candidate sentences, so that a term every candidate shares (the topic)
  counts less than the one that singles out the answer;
* the retrieval score of its passage (context the sentence alone lacks);
* whether it holds the kind of thing the question asks for (a year for "when", a number for
  "how many", a name for "who") beyond the words of the question itself;
* for "what did X say" and "who said" questions, whose words it reports (`speakers.py`):
  X's own quotes and reported speech rank above other people's accounts of them.

The best sentence is quoted whole up to a hard character limit, even past the word cap (a
long sentence that answers is worth reading in full); further sentences must fit the word
cap, and a sentence past the character limit is trimmed to its answering clauses
(`quoting.py`).

Abstention: when the evidence is weak (`abstention.py`: how close the best sentences are and
how much of the question's weight the passages and sentences hold), it says the articles do
not answer and offers the closest sources instead of inventing an answer. The model and its
threshold are calibrated by `benchmarks/calibrate_abstention.py`.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from index.embedder import Embedder
from index.lexical import document_terms, query_terms
from index.models import Hit
from index.sentences import answer_spans

from . import abstention
from .citations import cite
from .models import Answer, Citation
from .quoting import Excerpt, excerpt
from .speakers import SpeechQuestion, speech_question, speech_score, speeches

NOT_FOUND_TEXT = (
    "The indexed articles don't say. These are the closest passages I found; they may not "
    "answer your question."
)
NO_ARTICLES_TEXT = "The index holds no articles yet, so I can't answer that."

_YEAR = re.compile(r"\b(1\d{3}|20\d{2})s?\b")
_NUMBER = re.compile(r"\d")
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|"
    r"December|century|centuries|decade|BC|AD|BCE|CE|Monday|Tuesday|Wednesday|Thursday|"
    r"Friday|Saturday|Sunday)\b"
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z\-]+")


@dataclass(frozen=True, slots=True)
class Weights:
    """Blend of the sentence features; tuned on SQuAD (benchmarks/squad_quality.py)."""

    dense: float = 1.0
    overlap: float = 1.0
    passage: float = 0.3
    answer_type: float = 0.15
    speaker: float = 0.75  # whose words: X's own (+1) over others' accounts of X (-1)
    second_ratio: float = 0.85  # a second sentence must score at least this share of the best
    max_passages: int = 5
    max_candidates: int = 24  # sentences embedded per question


@dataclass(frozen=True, slots=True)
class _Candidate:
    hit_index: int
    start: int
    end: int
    text: str
    speech: float = 0.0  # fit of the sentence's speaker to a speech question
    attribution: tuple[int, int] | None = None  # article offsets of its attributing sentence


@dataclass(frozen=True, slots=True)
class Scored:
    candidate: _Candidate
    score: float
    dense: float
    overlap: float
    typed: float = 0.0  # has the kind of answer asked for (a year for "when", ...)

    @property
    def text(self) -> str:
        return self.candidate.text

    @property
    def hit_index(self) -> int:
        return self.candidate.hit_index


class ExtractiveAnswerer:
    def __init__(
        self,
        max_sentences: int = 2,
        max_words: int = 60,
        abstain_threshold: float = 0.25,
        weights: Weights | None = None,
        cache_size: int = 20_000,
        max_quote_chars: int = 600,
    ) -> None:
        self.max_sentences = max_sentences
        self.max_words = max_words
        self.max_quote_chars = max_quote_chars
        self.abstain_threshold = abstain_threshold
        self.weights = weights or Weights()
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ public

    def answer(
        self,
        question: str,
        hits: Sequence[Hit],
        embedder: Embedder,
        idf: Mapping[str, float] | None = None,
        extra: Sequence[Hit] = (),
    ) -> Answer:
        """Quote the sentences that answer `question` from `hits`, or abstain.

        Args:
            idf: collection idf of the question's terms (`Searcher.term_weights`): a rare
                word of the question missing from the passages is strong evidence that the
                articles are about something else.
            extra: more candidate passages found another way (`speaker_passages`); they
                add sentences to choose from but no retrieval weight, and do not count as
                evidence that the articles cover the question.
        """
        if not hits:
            return Answer(question, NO_ARTICLES_TEXT, found=False)
        hits = list(hits[: self.weights.max_passages])
        if extra:
            floor = min(h.score for h in hits)
            hits += [replace(h, score=floor) for h in extra]
        ranked = self.rank_sentences(question, hits, embedder)
        evidence = self.evidence(question, hits, ranked, idf)
        if not ranked or evidence < self.abstain_threshold:
            return self._not_found(question, hits, ranked)
        chosen = self._choose(ranked)
        who_said = (sq := speech_question(question)) is not None and sq.kind == "who"
        parts: list[str] = []
        citations: list[Citation] = []
        for n, s in enumerate(chosen, start=1):
            c = s.candidate
            if who_said and n == 1:
                c = self._with_attribution(c, hits[c.hit_index])
            part = self._excerpt(question, c, whole=n == 1)
            start, end = c.start + part.start, c.start + part.end
            citations.append(cite(n, hits[c.hit_index], start, end))
            parts.append(f"{part.display(c.text)} [{n}]")
        return Answer(question, " ".join(parts), found=True, citations=citations)

    def evidence(
        self,
        question: str,
        hits: Sequence[Hit],
        ranked: Sequence[Scored],
        idf: Mapping[str, float] | None = None,
    ) -> float:
        """Probability that the passages answer the question (`abstention.py`)."""
        return abstention.evidence(question, hits, ranked, idf)

    @staticmethod
    def coverage(
        question: str, hits: Sequence[Hit], idf: Mapping[str, float] | None = None
    ) -> float:
        """idf-weighted share of the question's content terms found in the top passages."""
        terms = set(query_terms(question))
        if not terms:
            return 0.0
        present: set[str] = set()
        for h in hits[:3]:
            present.update(document_terms(f"{h.title}\n{h.text}"))
        weight = {t: (idf or {}).get(t, 1.0) for t in terms}
        total = sum(weight.values()) or 1.0
        return sum(w for t, w in weight.items() if t in present) / total

    def rank_sentences(
        self, question: str, hits: Sequence[Hit], embedder: Embedder
    ) -> list[Scored]:
        candidates = _candidates(hits, speech_question(question))
        if not candidates:
            return []
        q_terms = query_terms(question)
        term_sets = [set(document_terms(c.text)) for c in candidates]
        overlap = _weighted_overlap(q_terms, term_sets)
        passage = _passage_prior(hits)
        w = self.weights
        if len(candidates) > w.max_candidates:
            # Embedding is the cost of an answer: embed only the lexically likeliest.
            cheap = [w.overlap * o + w.passage * passage[c.hit_index] + w.speaker * c.speech
                     for c, o in zip(candidates, overlap, strict=True)]  # fmt: skip
            keep = sorted(np.argsort(cheap)[::-1][: w.max_candidates].tolist())
            candidates = [candidates[i] for i in keep]
            term_sets = [term_sets[i] for i in keep]
            overlap = [overlap[i] for i in keep]
        vectors = self._vectors(embedder, [question, *(c.text for c in candidates)])
        dense = vectors[1:] @ vectors[0]
        wanted = _answer_type(question)
        q_words = {x.lower().strip(".,;:!?\"'()") for x in question.split()}
        scored = []
        for c, d, o, ts in zip(candidates, dense, overlap, term_sets, strict=True):
            typed = _has_answer_type(c.text, wanted, q_words)
            novelty = 1.0 if ts - set(q_terms) else 0.0  # a sentence must add something
            score = (
                w.dense * float(d)
                + w.overlap * o
                + w.passage * passage[c.hit_index]
                + w.answer_type * typed
                + w.speaker * c.speech
            ) * (0.5 + 0.5 * novelty)
            scored.append(Scored(c, score, float(d), o, typed))
        scored.sort(key=lambda s: -s.score)
        return scored

    # ------------------------------------------------------------------ internals

    def _vectors(self, embedder: Embedder, texts: list[str]) -> np.ndarray:
        """Embeddings of sentences, cached: popular passages come back question after
        question, and embedding their sentences is most of an answer's cost."""
        key = embedder.name
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for t in dict.fromkeys(texts):
                v = self._cache.get((key, t))
                if v is not None:
                    self._cache.move_to_end((key, t))
                    found[t] = v
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = embedder.encode_queries(missing)
            found.update(zip(missing, fresh, strict=True))
            if self.cache_size > 0:
                with self._cache_lock:
                    for t, v in zip(missing, fresh, strict=True):
                        self._cache[(key, t)] = v
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return np.vstack([found[t] for t in texts])

    def _choose(self, ranked: Sequence[Scored]) -> list[Scored]:
        best = ranked[0]
        chosen = [best]
        words = _word_count(best.candidate.text)
        for s in ranked[1 : 1 + 4 * self.max_sentences]:
            if len(chosen) >= self.max_sentences:
                break
            if s.score < self.weights.second_ratio * best.score:
                break
            n = _word_count(s.candidate.text)
            if words + n > self.max_words:
                continue
            if any(_overlaps(s.candidate, c.candidate) for c in chosen):
                continue
            chosen.append(s)
            words += n
        return chosen

    def _excerpt(self, question: str, c: _Candidate, *, whole: bool) -> Excerpt:
        """What to quote of a sentence: all of it, or its answering clauses (`quoting.py`)."""
        return excerpt(
            c.text,
            query_terms(question),
            max_words=self.max_words,
            max_chars=self.max_quote_chars,
            whole=whole,
        )

    def _with_attribution(self, c: _Candidate, hit: Hit) -> _Candidate:
        """For "who said": the sentence run up to the one that names its speaker, when the
        quotation is attributed in a later sentence of its paragraph and the run fits."""
        if c.attribution is None or c.attribution[1] <= c.end:
            return c
        end = c.attribution[1]
        if not (hit.start <= c.start < end <= hit.end) or end - c.start > self.max_quote_chars:
            return c
        text = hit.text[c.start - hit.start : end - hit.start]
        return _Candidate(c.hit_index, c.start, end, text, c.speech, c.attribution)

    def _not_found(self, question: str, hits: Sequence[Hit], ranked: Sequence[Scored]) -> Answer:
        citations: list[Citation] = []
        seen: set[int] = set()
        for s in ranked:
            i = s.candidate.hit_index
            if i in seen:
                continue
            seen.add(i)
            part = self._excerpt(question, s.candidate, whole=False)
            start, end = s.candidate.start + part.start, s.candidate.start + part.end
            citations.append(cite(len(citations) + 1, hits[i], start, end))
            if len(citations) == 3:
                break
        return Answer(question, NOT_FOUND_TEXT, found=False, citations=citations)


def speaker_passages(
    question: str,
    hits: Sequence[Hit],
    passages_of: Callable[[str], Sequence[Hit]],
    limit: int = 2,
) -> list[Hit]:
    """For "what did X say": passages of the top articles where X speaks, not yet retrieved.

    Retrieval ranks passages by the question's words, so the passage holding X's own quote
    can lose to the one where somebody else recounts it (and a search for X's name would
    fold it into its overlapping neighbour). The top articles' other passages are read for
    X's attributed words instead.

    Args:
        passages_of: every passage of an article, in order (from the index).
    """
    sq = speech_question(question)
    if sq is None or sq.kind != "say" or not hits:
        return []
    taken = [(h.article_id, h.start, h.end) for h in hits]
    out: list[Hit] = []
    for article in dict.fromkeys(h.article_id for h in hits[:2]):
        for p in passages_of(article):
            if any(a == article and s <= p.start and p.end <= e for a, s, e in taken):
                continue  # nothing new: overlapping windows still add their other sentences
            spans = answer_spans(p.text)
            said = speeches(p.text, spans)
            if any(
                speech_score(sq, sp, p.text[s:e]) >= 0.75
                for (s, e), sp in zip(spans, said, strict=True)
            ):
                out.append(p)
                taken.append((article, p.start, p.end))
                if len(out) == limit:
                    return out
    return out


def _candidates(hits: Sequence[Hit], question: SpeechQuestion | None) -> list[_Candidate]:
    """The sentences of the passages, with their speaker's fit to a speech question."""
    out: list[_Candidate] = []
    for i, hit in enumerate(hits):
        spans = answer_spans(hit.text)  # headings, code and tables are not answers
        said = speeches(hit.text, spans) if question is not None else [None] * len(spans)
        for (s, e), speech in zip(spans, said, strict=True):
            text = hit.text[s:e]
            fit, at = 0.0, None
            if question is not None and speech is not None:
                fit = speech_score(question, speech, text)
                if speech.attribution is not None:
                    at = (hit.start + speech.attribution[0], hit.start + speech.attribution[1])
            out.append(_Candidate(i, hit.start + s, hit.start + e, text, fit, at))
    return out


def _word_count(text: str) -> int:
    return len(text.split())


def _overlaps(a: _Candidate, b: _Candidate) -> bool:
    return a.start < b.end and b.start < a.end


def _weighted_overlap(q_terms: Sequence[str], term_sets: Sequence[set[str]]) -> list[float]:
    unique = list(dict.fromkeys(q_terms))
    if not unique:
        return [0.0] * len(term_sets)
    n = len(term_sets)
    idf = {t: math.log(1 + n / (1 + sum(t in ts for ts in term_sets))) for t in unique}
    total = sum(idf.values()) or 1.0
    return [sum(idf[t] for t in unique if t in ts) / total for ts in term_sets]


def _passage_prior(hits: Sequence[Hit]) -> list[float]:
    """Retrieval scores rescaled to [0, 1] within this result list."""
    scores = np.array([h.score for h in hits], dtype=np.float64)
    top, low = scores.max(), scores.min()
    if top - low < 1e-9:
        return [1.0] * len(hits)
    return list((scores - low) / (top - low))


def _answer_type(question: str) -> str | None:
    q = question.lower()
    if re.search(
        r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat (percentage|number|amount)\b",
        q,
    ):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|decade|century|date|time)\b|\bwhich (year|century)\b", q):
        return "time"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b", q):
        return "name"
    if re.search(r"\bwhere\b", q):
        return "name"
    return None


def _has_answer_type(text: str, wanted: str | None, q_words: set[str]) -> float:
    if wanted is None:
        return 0.0
    if wanted == "number":
        return 1.0 if _NUMBER.search(text) else 0.0
    if wanted == "time":
        return 1.0 if _YEAR.search(text) or _MONTH.search(text) else 0.0
    names = [m.group() for m in _CAPITALISED.finditer(text)]
    return 1.0 if any(n.lower() not in q_words for n in names) else 0.0

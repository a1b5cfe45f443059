"""How a follow-up question's search carries the conversation it belongs to.

Asked alone, "why?" or "did they have any children?" names nothing: the search needs what
the conversation is about. The signals fused, each measured on QuAC's human follow-ups
(`benchmarks/quac_conversations.py`):

* the follow-up asked alone: what it names itself, so a question about something new is
  free to leave the conversation;
* the follow-up expanded with the conversation's recent questions (the subject a pronoun
  or an elided subject stands for);
* each recent question asked alone again: a conversation is about one thing, so the
  article every question of it matches beats the one a single question matches best
  (one long concatenated query lets one question's words drown the others');
* the articles the conversation's answers came from, as a prior on their passages (half
  as much for a turn the bot declined: its closest source is only a guess).

They are summed per article, not per passage: two searches rarely return the very same
passage span, and the question is which article the conversation is about. Passages then
follow their article's score, a second passage of one article placed below the first by a
multiple of the gap between them, so five passages are not five views of one article.

With an LLM (`condense.py`), the follow-up rewritten to stand alone replaces the expanded
query and the earlier questions' searches: the rewrite carries what they were a guess at.

A follow-up whose new words are rare in the index (a name, a specific thing), carry most of
its weight and are found by its own search outside the conversation's articles has changed
topic: its own search leads, alone.

Answering: the sentences are ranked against the follow-up with its conversation's last
question, and a sentence the conversation already quoted is not quoted again unless
nothing new answers (or it alone holds the date a "when was that?" asks for). Abstention
stays the follow-up's own: when its own new words carry it and none of the top passages
holds them ("what is the capital of Peru?" after a question about a seawall), or when the
context finds no answer, the follow-up is answered on its own evidence, so a context that
matches well cannot vouch for it. An elliptical follow-up ("why?", "when was that?") has no
such words, and the conversation's question speaks for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from index.embedder import Embedder
from index.lexical import document_terms, query_terms
from index.models import Hit
from index.search import Searcher

from .conversations import Turn
from .extractive import (
    NO_ARTICLES_TEXT,
    NOT_FOUND_TEXT,
    ExtractiveAnswerer,
    _answer_type,
    _has_answer_type,
)
from .models import Answer


@dataclass(frozen=True, slots=True)
class FollowupWeights:
    """Blend of the signals; chosen on QuAC dev (benchmarks/quac_conversations.py)."""

    turns: int = 2  # earlier questions carried into the expanded search, latest first
    own: float = 1.0  # weight of the follow-up's own search score
    expanded: float = 1.0  # weight of the expanded search score
    each: float = 1.0  # weight of each recent question's own search, asked again
    prior: float = 0.05  # added to passages of the articles the last answer cited
    older_prior: float = 0.5  # share of the prior for articles cited by earlier turns only
    depth: int = 20  # passages fetched per search before fusing
    new_term_share: float = 0.5  # idf share of the question's terms new to the conversation
    # above which (when the follow-up's own search finds them) the topic has changed
    rare: float = 0.55  # share of the highest idf above which a word is rare (a name...)
    declined_prior: float = 0.5  # share of the prior for a declined turn's closest article
    skip_quoted: int = 1  # 1: sentences the conversation already quoted are not quoted again
    spread: float = 3.0  # how far below its article's best passage another passage falls


DEFAULT_WEIGHTS = FollowupWeights()
DECLINED = frozenset({NOT_FOUND_TEXT, NO_ARTICLES_TEXT})
_WORD = re.compile(r"[^\W_][\w'’-]*")
MIN_QUOTE_CHARS = 25  # shorter pieces of an answer are not worth matching
# Where an answer's quotes break: citation markers and the ellipses of a trimmed quote.
_QUOTE_BREAK = re.compile(r"\[\d+\]|…|\.\.\.")


@dataclass(frozen=True, slots=True)
class Context:
    """What the conversation lends a follow-up."""

    questions: tuple[str, ...]  # earlier questions, latest first
    articles: Mapping[str, float]  # article id -> prior weight (1 for the last answer's)
    text_terms: frozenset[str]  # terms of the earlier questions and answers
    quoted: tuple[str, ...] = ()  # what the recent answers quoted, piece by piece

    @property
    def empty(self) -> bool:
        return not self.questions


def context_of(history: Sequence[Turn], weights: FollowupWeights = DEFAULT_WEIGHTS) -> Context:
    """The recent turns reduced to what a search can use."""
    recent = list(history)[-weights.turns :][::-1]
    articles: dict[str, float] = {}
    for i, turn in enumerate(recent):
        share = 1.0 if i == 0 else weights.older_prior
        answered = not _declined(turn)
        # A declined turn's closest source is a weaker hint: its best guess.
        cited = turn.article_ids if answered else turn.article_ids[:1]
        for a in cited:
            articles.setdefault(a, share * (1.0 if answered else weights.declined_prior))
    terms: set[str] = set()
    quoted: list[str] = []
    for turn in recent:
        said = "" if _declined(turn) else turn.answer_text
        terms.update(document_terms(f"{turn.question}\n{said}"))
        quoted += [p.strip() for p in _QUOTE_BREAK.split(said)]
    quotes = tuple(p for p in dict.fromkeys(quoted) if len(p) >= MIN_QUOTE_CHARS)
    return Context(tuple(t.question for t in recent), articles, frozenset(terms), quotes)


def without_quoted(hits: Sequence[Hit], quoted: Sequence[str]) -> list[Hit]:
    """The passages less the sentences the conversation already quoted.

    A follow-up asks for something more ("why?", "what happened next?"): the sentence just
    quoted matches its context best and would be quoted again. Each passage is cut around
    such a sentence into the verbatim slices before and after it.
    """
    out: list[Hit] = []
    for hit in hits:
        pieces = [hit]
        for quote in quoted:
            next_pieces: list[Hit] = []
            for p in pieces:
                at = p.text.find(quote)
                if at < 0:
                    next_pieces.append(p)
                    continue
                for a, b in ((0, at), (at + len(quote), len(p.text))):
                    part = p.text[a:b]
                    lead = len(part) - len(part.lstrip())
                    part = part.strip()
                    if len(part) >= MIN_QUOTE_CHARS:
                        start = p.start + a + lead
                        next_pieces.append(
                            replace(p, start=start, end=start + len(part), text=part)
                        )
            pieces = next_pieces
        out += pieces
    return out


def _declined(turn: Turn) -> bool:
    """Whether the turn's answer said the articles do not say (its sources only the closest)."""
    return turn.answer_text in DECLINED or not turn.answer_text


def expanded_query(question: str, context: Context) -> str:
    """The follow-up followed by the conversation's recent questions, latest first."""
    return " ".join([question, *context.questions])


def new_terms(question: str, context: Context) -> list[str]:
    """The question's content terms the conversation has not used yet."""
    return [t for t in dict.fromkeys(query_terms(question)) if t not in context.text_terms]


def named_terms(question: str) -> set[str]:
    """Terms of the words the question capitalises past its first word: the names in it.

    In a small collection even "happen" or "hobbies" is rare, and QuAC's follow-ups ("what
    happens next?", "does he have any hobbies?") stay on topic: what leaves a conversation
    is a new name ("what did Okafor say about flour?"), not a new common word.
    """
    words = _WORD.findall(question)[1:]
    return set(document_terms(" ".join(w for w in words if w[:1].isupper())))


def changes_topic(
    question: str,
    context: Context,
    own_hits: Sequence[Hit],
    idf: Mapping[str, float],
    max_idf: float,
    weights: FollowupWeights = DEFAULT_WEIGHTS,
) -> bool:
    """Whether the follow-up names new, rare things that its own search finds elsewhere.

    New common words do not leave ("did they have any children?" asks a new thing of the
    same subject, and other articles mention children too): the conversation is left when
    names rare in the index, new to the conversation, carry most
    of the question's weight, and the follow-up's own best passage holds them and is not
    from an article the conversation's answers came from.
    """
    own = list(dict.fromkeys(query_terms(question)))
    if not own or not own_hits:
        return False
    weight = {t: idf.get(t, max_idf) for t in own}
    names = named_terms(question)
    rare = [
        t
        for t in new_terms(question, context)
        if weight[t] >= weights.rare * max_idf and t in names
    ]
    rare_weight = sum(weight[t] for t in rare)
    if not rare or rare_weight < weights.new_term_share * sum(weight.values()):
        return False
    top = own_hits[0]
    if top.article_id in context.articles:
        return False
    found = set(document_terms(f"{top.title}\n{top.text}"))
    return sum(weight[t] for t in rare if t in found) >= 0.5 * rare_weight


def fuse(
    own_hits: Sequence[Hit],
    expanded_hits: Sequence[Hit],
    context: Context,
    k: int,
    weights: FollowupWeights = DEFAULT_WEIGHTS,
    *,
    switched: bool = False,
    earlier: Sequence[Sequence[Hit]] = (),
) -> list[Hit]:
    """One ranking from the searches and the conversation's articles.

    `earlier` holds the searches of the conversation's recent questions asked alone. An
    article missing from a list gets that list's lowest score (it ranked below all of them
    there). After a topic change the follow-up's own ranking is kept as it is.
    """
    if switched or not expanded_hits:
        return list(own_hits[:k])
    lists = [(weights.own, own_hits), (weights.expanded, expanded_hits)]
    lists += [(weights.each, hits) for hits in earlier if hits]
    best: list[tuple[float, dict[str, float], float]] = []
    for weight, hits in lists:
        by_article: dict[str, float] = {}
        for h in hits:
            by_article[h.article_id] = max(h.score, by_article.get(h.article_id, h.score))
        best.append((weight, by_article, min(by_article.values(), default=0.0)))
    articles = {a for _, by_article, _ in best for a in by_article}
    article_score = {
        a: sum(w * by_article.get(a, floor) for w, by_article, floor in best)
        + weights.prior * context.articles.get(a, 0.0)
        for a in articles
    }
    # Within an article, passages keep the order of the follow-up's own and expanded
    # searches (the earlier questions chose the article, not the passage).
    passage = _passage_scores(own_hits, expanded_hits, weights)
    top_passage: dict[str, float] = {}
    for hit, score in passage.values():
        top_passage[hit.article_id] = max(score, top_passage.get(hit.article_id, score))
    scored: list[tuple[float, Hit]] = []
    for hit, score in passage.values():
        below = top_passage[hit.article_id] - score
        scored.append((article_score[hit.article_id] - weights.spread * below, hit))
    for (_, hits), (_, by_article, _) in zip(lists[2:], best[2:], strict=True):
        # an article only the earlier questions found: its passages in their order
        for h in hits:
            if h.article_id not in top_passage:
                below = by_article[h.article_id] - h.score
                scored.append((article_score[h.article_id] - weights.spread * below, h))
    scored.sort(key=lambda p: -p[0])
    out: list[Hit] = []
    for score, hit in scored:
        if any(_overlap(hit, h) for h in out):
            continue
        out.append(replace(hit, rank=len(out) + 1, score=score))
        if len(out) == k:
            break
    return out


def _passage_scores(
    own_hits: Sequence[Hit], expanded_hits: Sequence[Hit], weights: FollowupWeights
) -> dict[str, tuple[Hit, float]]:
    """Each passage's blend of the own and expanded scores, a missing one at its list's floor."""
    floor_own = min((h.score for h in own_hits), default=0.0)
    floor_exp = min((h.score for h in expanded_hits), default=0.0)
    own_by = {h.chunk_id: h for h in own_hits}
    exp_by = {h.chunk_id: h for h in expanded_hits}
    out: dict[str, tuple[Hit, float]] = {}
    for cid in dict.fromkeys([*exp_by, *own_by]):
        o, e = own_by.get(cid), exp_by.get(cid)
        hit = e if e is not None else o
        assert hit is not None
        out[cid] = (
            hit,
            weights.own * (o.score if o is not None else floor_own)
            + weights.expanded * (e.score if e is not None else floor_exp),
        )
    return out


def answering_question(question: str, context: Context, *, switched: bool) -> str:
    """The question the sentences are ranked against: with its conversation's last one."""
    if switched or context.empty:
        return question
    return f"{question} {context.questions[0]}"


def _typed(answer: Answer, wanted: str | None, question: str) -> bool:
    """Whether a quote of the answer holds the kind of thing asked for (a date for "when")."""
    words = {w.lower().strip(".,;:!?\"'()") for w in question.split()}
    return any(_has_answer_type(c.quote, wanted, words) for c in answer.citations)


def _overlap(a: Hit, b: Hit) -> bool:
    return a.article_id == b.article_id and a.start < b.end and b.start < a.end


@dataclass(frozen=True, slots=True)
class Found:
    """The passages a question is answered from, and how to answer it from them."""

    question: str  # the question as asked
    ranking_question: str  # what the sentences are ranked against
    hits: list[Hit]
    switched: bool  # the follow-up left the conversation's topic
    context: Context
    answerer: ExtractiveAnswerer
    embedder: Embedder
    idf: dict[str, float]
    weights: FollowupWeights = DEFAULT_WEIGHTS
    standalone: str | None = None  # the follow-up as an LLM rewrote it, if it was

    def answer(self, extra: Sequence[Hit] = ()) -> Answer:
        """The extractive answer to the question in its context, else on its own evidence.

        The sentences are ranked against the question with its context, preferring those
        the conversation has not quoted yet (quoted again only when nothing new answers).
        When that finds nothing, or when the follow-up names things of its own that the
        conversation did not and the passages lack ("the capital of Peru"), the follow-up
        is answered on its own evidence: a context that matches well cannot vouch for it.
        """
        extra = list(extra)
        if self.ranking_question == self.question:
            return self.answerer.answer(
                self.question, self.hits, self.embedder, self.idf, extra=extra
            )
        tries = [(self.hits, extra)]
        if self.context.quoted and self.weights.skip_quoted:
            fresh = without_quoted(self.hits, self.context.quoted)
            if fresh:
                tries.insert(0, (fresh, without_quoted(extra, self.context.quoted)))
        wanted = _answer_type(self.question)
        untyped: Answer | None = None
        for i, (hits, more) in enumerate(tries):
            result = self.answerer.answer(
                self.ranking_question, hits, self.embedder, self.idf, extra=more
            )
            if not result.found:
                continue
            if self.unsupported_new_terms(hits):
                break
            result = replace(result, question=self.question)
            # "When was that?": the sentence already quoted may be the one with the date.
            if wanted and i + 1 < len(tries) and not _typed(result, wanted, self.question):
                untyped = untyped or result
                continue
            if untyped is not None and not _typed(result, wanted, self.question):
                return untyped
            return result
        if untyped is not None:
            return untyped
        return self.answerer.answer(self.question, self.hits, self.embedder, self.idf, extra=extra)

    def unsupported_new_terms(self, hits: Sequence[Hit]) -> bool:
        """Whether the follow-up's own new words carry it and the passages lack them.

        "What is the capital of Peru?" after a question about a seawall: "capital" and
        "Peru" are most of its weight, new to the conversation, and in none of the top
        passages, so the follow-up's own evidence decides.
        """
        if self.ranking_question == self.question:
            return False
        # A rewrite says in the conversation's words what the follow-up asks ("the other
        # story" -> "the bakery"): its new words are the ones the passages must hold.
        asked = self.standalone or self.question
        own = list(dict.fromkeys(query_terms(asked)))
        fresh = new_terms(asked, self.context)
        if not own or not fresh:
            return False
        weight = {t: self.idf.get(t, 1.0) for t in own}
        fresh_weight = sum(weight[t] for t in fresh)
        if fresh_weight < self.weights.new_term_share * sum(weight.values()):
            return False
        present: set[str] = set()
        for h in hits[:3]:
            present.update(document_terms(f"{h.title}\n{h.text}"))
        return sum(weight[t] for t in fresh if t in present) < 0.5 * fresh_weight


def contextual_search(
    searcher: Searcher,
    answerer: ExtractiveAnswerer,
    question: str,
    history: Sequence[Turn],
    k: int,
    weights: FollowupWeights = DEFAULT_WEIGHTS,
    standalone: str | None = None,
) -> Found:
    """Search for `question` as a turn of the conversation `history` (may be empty).

    Args:
        standalone: the follow-up rewritten to stand alone by an LLM (`condense.py`), if
            one was: it takes the place of the expanded query (the earlier questions
            prepended, a guess at what the rewrite knows) and of the earlier questions'
            own searches, and is what the sentences are ranked against. The follow-up's
            own search, the cited articles' prior and the topic-change rule stay, so a
            rewrite that wrongly drags a new question back into the conversation does not
            decide alone.
    """
    context = context_of(history, weights)
    if context.empty:
        hits = searcher.search(question, k)
        return Found(
            question, question, hits, False, context, answerer, searcher.embedder,
            searcher.term_weights(question), weights,
        )  # fmt: skip
    depth = max(k, weights.depth)
    # A rewrite already carries what the earlier questions were about: searching them
    # again would pull back to where the conversation was ("and the other story?").
    earlier_questions = [] if standalone else list(context.questions)
    own_hits, expanded_hits, *earlier = searcher.search_batch(
        [question, standalone or expanded_query(question, context), *earlier_questions], depth
    )
    idf = searcher.term_weights(question)
    max_idf = math.log(1 + (searcher.stored.size + 0.5) / 0.5)  # BM25 idf of an unseen word
    switched = changes_topic(question, context, own_hits, idf, max_idf, weights)
    hits = fuse(own_hits, expanded_hits, context, k, weights, switched=switched, earlier=earlier)
    ranking = (
        standalone
        if standalone and not switched
        else answering_question(question, context, switched=switched)
    )
    return Found(
        question, ranking, hits, switched, context, answerer, searcher.embedder,
        searcher.term_weights(ranking), weights, standalone,
    )  # fmt: skip

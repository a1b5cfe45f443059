"""The question-answering service every transport shares (terminal, Discord, `ask`).

It owns the one embedder of the process, follows the published index (a rebuild from this
process or from the CLI is picked up without restart) and turns a question into an `Answer`.
All methods block: async callers run them with `asyncio.to_thread` so that embedding and
search never stall an event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from index.embedder import Embedder, load_configured_embedder, load_embedder
from index.live import LiveIndex
from index.milvus_store import milvus_config
from index.models import Hit, RebuildReport, chunk_id
from index.rebuild import Progress, ann_config, rebuild
from index.search import Searcher
from index.store import StoredArticle

from .chitchat import small_talk, without_greeting
from .citations import number_by_article, verified, with_details
from .conversations import Conversations, Turn
from .errors import AnswerError
from .extractive import ExtractiveAnswerer, speaker_passages
from .followups import DEFAULT_WEIGHTS, contextual_search
from .llm import LLMAnswerer
from .models import Answer
from .questions import clean_question
from .settings import Settings

log = logging.getLogger(__name__)

LLM_HISTORY_TURNS = 3  # earlier turns the LLM sees with the passages


@dataclass(frozen=True, slots=True)
class _Step:
    """A question searched and answered offline, before any LLM and numbering."""

    question: str  # as cleaned, shown back to the user
    asked: str  # what the sentences were ranked against (with the conversation's context)
    conversation: str | None
    searcher: Searcher
    hits: list[Hit]
    extra: list[Hit]
    result: Answer
    llm_history: list[tuple[str, str]] = field(default_factory=list)
    standalone: str | None = None  # the follow-up as the LLM rewrote it for the search

    @property
    def passages(self) -> list[Hit]:
        return [*self.hits, *self.extra]


class QAService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._rebuild_lock = threading.Lock()
        self.live = LiveIndex(
            settings.index_dir,
            self.embedder,
            ann_config=ann_config(settings),
            dense_weight=settings.hybrid_dense_weight,
            poll_seconds=settings.index_poll_seconds,
            milvus=milvus_config(settings),
        )
        self.extractive = ExtractiveAnswerer(
            max_sentences=settings.answer_max_sentences,
            max_words=settings.answer_max_words,
            abstain_threshold=settings.abstain_threshold,
            max_quote_chars=settings.answer_max_quote_chars,
        )
        self.llm = (
            LLMAnswerer(
                base_url=settings.llm_base_url or "",
                model=settings.llm_model or "",
                api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
                timeout=settings.llm_timeout,
                max_tokens=settings.llm_max_tokens,
            )
            if settings.llm_enabled
            else None
        )
        self.followup_weights = DEFAULT_WEIGHTS
        self.conversations = Conversations(
            settings.conversations_db,
            idle_minutes=settings.conversation_idle_minutes,
            max_turns=settings.conversation_max_turns,
        )

    def embedder(self) -> Embedder:
        """The process's one model, loaded on first use."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    self._embedder = load_configured_embedder(
                        self.settings, serving=True, loader=load_embedder
                    )
        return self._embedder

    def clean(self, question: str) -> str:
        return clean_question(question, self.settings.max_question_length)

    def answer(self, question: str, conversation: str | None = None) -> Answer:
        """Answer with citations, or say the articles do not.

        Args:
            conversation: the id of the conversation the question belongs to (a thread, a
                reply chain, a DM, a terminal session): its recent turns steer the search
                (`followups.py`) and this turn is recorded. None: a standalone question.

        Raises:
            BadQuestion: unusable question (message for the user).
            IndexNotBuilt, IndexMismatch: index problems (message for the user).
        """
        started = time.perf_counter()
        step = self._prepare(question, conversation)
        if isinstance(step, Answer):
            return _with_time(step, time.perf_counter() - started)
        result = step.result
        if self.llm is not None and result.found:
            result = self.llm.answer(
                step.asked, step.passages, fallback=result, history=step.llm_history
            )
        return self._finish(step, result, started)

    def answer_stream(
        self, question: str, conversation: str | None = None
    ) -> Iterator[str | Answer]:
        """`answer`, with an LLM's text yielded as it arrives; the final `Answer` comes last.

        The pieces are the model's unchecked words, to show while it writes: the final
        Answer is what was validated (its citations checked), or the extractive answer when
        the model's text failed. Without an LLM only the final Answer is yielded: the
        extractive answer is immediate and does not pretend to stream.
        """
        started = time.perf_counter()
        step = self._prepare(question, conversation)
        if isinstance(step, Answer):
            yield _with_time(step, time.perf_counter() - started)
            return
        result = step.result
        if self.llm is not None and result.found:
            result = yield from self.llm.stream(
                step.asked, step.passages, fallback=result, history=step.llm_history
            )
        yield self._finish(step, result, started)

    def _prepare(self, question: str, conversation: str | None) -> Answer | _Step:
        """Clean, search (with the conversation) and pick the extractive answer.

        Returns the final Answer for small talk, else what the answer is made from.
        """
        q = self.clean(question)
        talk = small_talk(q)
        if talk is not None:  # "hi", "thanks!": a friendly reply, no search, nothing quoted
            return Answer(q, talk.reply, found=False, answerer="chitchat")
        asked = without_greeting(q)
        history = self.conversations.history(conversation) if conversation else []
        llm_history = [(t.question, t.answer_text) for t in history[-LLM_HISTORY_TURNS:]]
        searcher = self.live.get()
        standalone = None
        if history and self.llm is not None and self.settings.llm_condense:
            standalone = self.llm.condense(asked, llm_history)
            if standalone is not None:
                log.info("follow-up %r searched as %r", asked, standalone)
        found = contextual_search(
            searcher,
            self.extractive,
            asked,
            history,
            self.settings.search_k,
            self.followup_weights,
            standalone=standalone,
        )
        extra = speaker_passages(
            found.ranking_question,
            found.hits,
            lambda article: _passages(searcher, article),
        )
        result = found.answer(extra)
        return _Step(
            question=q,
            asked=found.ranking_question,
            conversation=conversation,
            searcher=searcher,
            hits=found.hits,
            extra=extra,
            result=result,
            llm_history=llm_history,
            standalone=standalone,
        )

    def _finish(self, step: _Step, result: Answer, started: float) -> Answer:
        """Number, verify, record the turn and time the answer."""
        result = replace(
            number_by_article(result),
            question=step.question,
            retrieved=tuple(step.passages),
            conversation=step.conversation,
            standalone_question=step.standalone,
        )
        if not verified(result.citations, step.searcher.stored.article_text):
            log.error("citation check failed for %r; refusing to show it", step.question)
            raise AnswerError("Sorry, I could not verify the sources for that answer.")
        result = with_details(result, step.searcher.stored.article_details)
        if step.conversation:
            cited = result.citations  # when not found: the closest sources offered
            self.conversations.add_turn(
                step.conversation,
                Turn(
                    question=step.question,
                    answer_text=result.text,
                    cited_chunk_ids=tuple(dict.fromkeys(c.chunk_id for c in cited)),
                    article_ids=tuple(dict.fromkeys(c.article_id for c in cited)),
                    asked_at=time.time(),
                ),
            )
        return _with_time(result, time.perf_counter() - started)

    def articles(self) -> list[StoredArticle]:
        return self.live.get().stored.articles()

    def index_version(self) -> str | None:
        return self.live.version

    def reindex(self, on_progress: Progress | None = None) -> RebuildReport:
        """Rebuild from ARTICLES_DIR and serve the result at once.

        Raises:
            RebuildBusy: a rebuild (here or in another process) is already running.
        """
        with self._rebuild_lock:
            report = rebuild(self.settings, self.embedder, on_progress=on_progress)
        self.live.get(force_check=True)
        return report


def _passages(searcher: Searcher, article_id: str) -> list[Hit]:
    """Every passage of one article, in order, as search results with no score."""
    stored = searcher.stored
    article = next((a for a in stored.articles() if a.id == article_id), None)
    if article is None:
        return []
    rows = stored.chunk_rows(range(article.first_chunk, article.first_chunk + article.n_chunks))
    return [
        Hit(
            rank=0,
            score=0.0,
            chunk_id=chunk_id(m["article_id"], m["ordinal"]),
            article_id=m["article_id"],
            title=m["title"],
            source=m["source"],
            start=m["start"],
            end=m["end"],
            text=m["text"],
            url=m["url"],
        )
        for _, m in sorted(rows.items())
    ]


def _with_time(answer: Answer, seconds: float) -> Answer:
    return replace(answer, seconds=seconds)

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
from dataclasses import replace

from index.embedder import Embedder, load_embedder
from index.live import LiveIndex
from index.models import Hit, RebuildReport, chunk_id
from index.rebuild import Progress, ann_config, rebuild
from index.search import Searcher
from index.store import StoredArticle

from .chitchat import small_talk, without_greeting
from .citations import number_by_article, verified
from .errors import AnswerError
from .extractive import ExtractiveAnswerer, speaker_passages
from .llm import LLMAnswerer
from .models import Answer
from .questions import clean_question
from .settings import Settings

log = logging.getLogger(__name__)


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

    def embedder(self) -> Embedder:
        """The process's one model, loaded on first use."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    self._embedder = load_embedder(
                        self.settings.embedding_model, self.settings.embedding_device
                    )
        return self._embedder

    def clean(self, question: str) -> str:
        return clean_question(question, self.settings.max_question_length)

    def answer(self, question: str) -> Answer:
        """Answer with citations, or say the articles do not.

        Raises:
            BadQuestion: unusable question (message for the user).
            IndexNotBuilt, IndexMismatch: index problems (message for the user).
        """
        started = time.perf_counter()
        q = self.clean(question)
        talk = small_talk(q)
        if talk is not None:  # "hi", "thanks!": a friendly reply, no search, nothing quoted
            return _with_time(
                Answer(q, talk.reply, found=False, answerer="chitchat"),
                time.perf_counter() - started,
            )
        asked = without_greeting(q)
        searcher = self.live.get()
        k = self.settings.search_k
        hits = searcher.search(asked, k)
        extra = speaker_passages(asked, hits, lambda article: _passages(searcher, article))
        result = self.extractive.answer(
            asked, hits, searcher.embedder, searcher.term_weights(asked), extra=extra
        )
        if self.llm is not None and result.found:
            result = self.llm.answer(asked, [*hits, *extra], fallback=result)
        result = replace(number_by_article(result), question=q)
        if not verified(result.citations, searcher.stored.article_text):
            log.error("citation check failed for %r; refusing to show it", q)
            raise AnswerError("Sorry, I could not verify the sources for that answer.")
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

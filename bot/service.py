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

from index.embedder import Embedder, load_embedder
from index.live import LiveIndex
from index.models import RebuildReport
from index.rebuild import Progress, ann_config, rebuild
from index.store import StoredArticle

from .citations import verified
from .errors import AnswerError
from .extractive import ExtractiveAnswerer
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
        searcher = self.live.get()
        hits = searcher.search(q, self.settings.search_k)
        result = self.extractive.answer(q, hits, searcher.embedder, searcher.term_weights(q))
        if self.llm is not None and result.found:
            result = self.llm.answer(q, hits, fallback=result)
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


def _with_time(answer: Answer, seconds: float) -> Answer:
    from dataclasses import replace

    return replace(answer, seconds=seconds)

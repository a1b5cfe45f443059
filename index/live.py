"""A searcher that follows the published index: a new version is swapped in without restart.

Long-running processes (the Discord bot) hold one of these. Each call to `get` costs one
small file read at most every `poll_seconds`; when CURRENT names a new version (published by
`/reindex` in this process or by the rebuild CLI from a cron job), the new version is opened,
checked and swapped in atomically, while searches already running finish on the old one.

A new version that cannot be served (damaged, unreadable CURRENT, built with another model)
must not take a running bot down: the previous searcher keeps answering, the problem is
logged once per version, and that version is not retried until CURRENT changes again. Only
a process with nothing to fall back on raises.

The old searcher's version stays locked against deletion (see `index.store`) for as long as
anything holds it; the lock goes with the last reference, once in-flight searches finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .ann import AnnConfig
from .embedder import Embedder
from .errors import IndexError_
from .milvus_store import MilvusConfig, milvus_config, open_milvus
from .milvus_store import published_version as milvus_version
from .search import Searcher
from .settings import IndexSettings
from .store import current_version_name, open_current

log = logging.getLogger(__name__)


class LiveIndex:
    def __init__(
        self,
        root: Path,
        get_embedder: Callable[[], Embedder],
        *,
        ann_config: AnnConfig | None = None,
        dense_weight: float = 0.5,
        poll_seconds: float = 5.0,
        milvus: MilvusConfig | None = None,
    ) -> None:
        """Follow the index in `root`, or in the Milvus collections of `milvus` when given."""
        self.root = root
        self._milvus = milvus
        self._get_embedder = get_embedder
        self._ann_config = ann_config
        self._dense_weight = dense_weight
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._searcher: Searcher | None = None
        self._checked = 0.0
        self._refused: tuple[str | None, str] | None = None  # (version, why) logged last

    def get(self, *, force_check: bool = False) -> Searcher:
        """The searcher over the newest published version that can be served.

        Raises:
            IndexNotBuilt, IndexMismatch, IndexDamaged: with messages fit for users, only
                while there is no previous searcher to keep serving.
        """
        now = time.monotonic()
        current = self._searcher
        if current is not None and not force_check and now - self._checked < self._poll:
            return current
        with self._lock:
            self._checked = time.monotonic()
            name: str | None = None
            try:
                name = self._current_name()
                if self._searcher is not None and self._searcher.version == name:
                    return self._searcher
                if self._searcher is not None and self._refused and self._refused[0] == name:
                    return self._searcher  # refused already: wait for the next version
                searcher = self._open()
            except IndexError_ as exc:
                if self._searcher is None:
                    raise
                if self._refused != (name, str(exc)):
                    log.error(  # str: a record holding the exception would pin old versions
                        "cannot switch to the new index version: %s (still serving %s)",
                        str(exc),
                        self._searcher.version,
                    )
                    self._refused = (name, str(exc))
                return self._searcher
            if self._searcher is not None:
                log.info("switched to index version %s", searcher.version)
            self._searcher = searcher
            self._refused = None
            return searcher

    def _current_name(self) -> str | None:
        if self._milvus is not None:
            return milvus_version(self._milvus)
        return current_version_name(self.root)

    def _open(self) -> Searcher:
        if self._milvus is not None:  # nothing to preload: the collections live in Milvus
            return Searcher(open_milvus(self._milvus), self._get_embedder(), self._dense_weight)
        stored = open_current(self.root, self._ann_config)
        try:
            # load (and check) FAISS and BM25 now, not at a user's question, and before the
            # model: damage is then reported without waiting for it to load
            stored.dense  # noqa: B018
            stored.lexical  # noqa: B018
            searcher = Searcher(stored, self._get_embedder(), self._dense_weight)
        except BaseException:
            stored.close()
            raise
        return searcher

    @property
    def version(self) -> str | None:
        return self._searcher.version if self._searcher is not None else None


def published_version(settings: IndexSettings) -> str | None:
    """The version the configured store serves (VECTOR_STORE), None when none was built."""
    config = milvus_config(settings)
    if config is not None:
        return milvus_version(config)
    return current_version_name(settings.index_dir)

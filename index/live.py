"""A searcher that follows the published index: a new version is swapped in without restart.

Long-running processes (the Discord bot) hold one of these. Each call to `get` costs one
small file read at most every `poll_seconds`; when CURRENT names a new version (published by
`/reindex` in this process or by the rebuild CLI from a cron job), the new version is opened
and swapped in atomically, while searches already running finish on the old one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .ann import AnnConfig
from .embedder import Embedder
from .search import Searcher
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
    ) -> None:
        self.root = root
        self._get_embedder = get_embedder
        self._ann_config = ann_config
        self._dense_weight = dense_weight
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._searcher: Searcher | None = None
        self._checked = 0.0

    def get(self, *, force_check: bool = False) -> Searcher:
        """The searcher over the newest published version.

        Raises:
            IndexNotBuilt, IndexMismatch: with messages fit for users.
        """
        now = time.monotonic()
        current = self._searcher
        if current is not None and not force_check and now - self._checked < self._poll:
            return current
        with self._lock:
            self._checked = time.monotonic()
            name = current_version_name(self.root)
            if self._searcher is not None and self._searcher.version == name:
                return self._searcher
            stored = open_current(self.root, self._ann_config)
            try:
                stored.check_model(self._get_embedder().name)
                searcher = Searcher(stored, self._get_embedder(), self._dense_weight)
                stored.dense  # noqa: B018 - load FAISS now, not on a user's first question
                stored.lexical  # noqa: B018
            except Exception:
                stored.close()
                raise
            if self._searcher is not None:
                log.info("switched to index version %s", stored.version)
            self._searcher = searcher
            return searcher

    @property
    def version(self) -> str | None:
        return self._searcher.version if self._searcher is not None else None

"""`python -m index rebuild` into Milvus: only new and changed articles are embedded and written.

The plan is the FAISS rebuild's (`index.rebuild.read_articles` and `classify`): files are
read through the same article cache (INDEX_DIR/article-cache.sqlite on the machine that
rebuilds, saved only once the rebuild succeeded), so reading grows with the change too; an
article is unchanged when its content hash matches the one stored with it and the
collections were built with the same model, backend and chunker; those are left alone.
Changed articles are replaced (old chunks and text deleted, new ones inserted), new ones
inserted, vanished ones deleted, and the meta row is written last with a new version name,
which tells serving processes to drop their caches. A model of another dimension drops and
recreates the collections.

Unlike the FAISS store this writes in place: a search during a rebuild may miss an article
being replaced. One rebuild at a time per collection, whichever machine runs it: it holds
the collection's lease (`index.milvus_lock`) and checks it before every batch it writes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from .article_cache import ArticleCache
from .chunking import ChunkerConfig, chunk_article, embedding_inputs
from .embedder import Embedder, canonical_model_name, vector_family
from .milvus_lock import RebuildLease, milvus_rebuild_lock
from .milvus_store import MilvusConfig, MilvusMeta, MilvusStore
from .models import Article, Chunk, RebuildReport
from .progress import Mode, ProgressBar
from .rebuild import chunker_settings, classify, read_articles
from .settings import IndexSettings
from .store import new_version_name

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


def rebuild_milvus(
    settings: IndexSettings,
    config: MilvusConfig,
    get_embedder: Callable[[], Embedder],
    *,
    full: bool = False,
    show_progress: bool | Mode = False,
    on_progress: Progress | None = None,
) -> RebuildReport:
    """Index `settings.articles_dir` into the Milvus collections of `config`.

    Raises:
        FileNotFoundError: the articles folder is missing.
        RebuildBusy: another rebuild holds the collection (`index.milvus_lock`).
        MilvusUnavailable: Milvus cannot be reached or refused a write.
        EmbedderUnavailable: the model could not be loaded.
    """
    started = time.perf_counter()
    notify = on_progress or (lambda stage, done, total: None)
    report = RebuildReport(full=full)
    if not settings.articles_dir.is_dir():
        raise FileNotFoundError(f"articles folder not found: {settings.articles_dir}")
    with (
        milvus_rebuild_lock(config, settings.milvus_rebuild_lease_seconds) as lease,
        contextlib.closing(_article_cache(settings, reuse=not full)) as cache,
    ):
        store = lease.store
        previous = store.read_meta()
        notify("load", 0, 0)
        pairs = read_articles(settings, cache, report)
        if previous is None:  # never built, or a first build was killed: start clean
            store.drop()
        stored = store.stored_hashes() if previous is not None else {}
        chunker = chunker_settings(settings)
        same = previous is not None and not full and _compatible(previous, settings, chunker)
        if previous is not None and not full and not same:
            log.info("model, backend or chunker settings changed since the last build: full")
        to_embed, _ = classify(pairs, {a: h for a, (h, _) in stored.items()}, same, report)
        digests = {a.id: h for a, h in pairs}
        plan = _Plan(
            previous, pairs, [(a, digests[a.id]) for a in to_embed], stored,
            [aid for aid in stored if aid not in digests], same,
        )  # fmt: skip
        report.articles = len(pairs)
        report.full = full or (previous is not None and not same)
        report.phases["plan"] = time.perf_counter() - started
        if previous is not None and not plan.to_write and not plan.removed:
            cache.save()
            report.chunks, report.version = previous.chunks, previous.version
            report.seconds = time.perf_counter() - started
            notify("done", report.articles, report.articles)
            return report
        embedder = get_embedder() if plan.to_write or previous is None else None
        meta = _write_all(store, lease, settings, plan, embedder, report, show_progress, notify)
        cache.save()
    log.info("published %s version %s (%d chunks)", config.where, meta.version, meta.chunks)
    report.chunks, report.version, report.published = meta.chunks, meta.version, True
    report.seconds = time.perf_counter() - started
    notify("done", report.articles, report.articles)
    return report


def _article_cache(settings: IndexSettings, *, reuse: bool) -> ArticleCache:
    """The article cache in INDEX_DIR; a folder that cannot be made only costs speed (the
    cache logs why it cannot be saved)."""
    with contextlib.suppress(OSError):
        settings.index_dir.mkdir(parents=True, exist_ok=True)
    return ArticleCache.open(settings.index_dir, reuse=reuse)


@dataclass(slots=True)
class _Plan:
    previous: MilvusMeta | None
    pairs: list[tuple[Article, str]]  # every article, with its content hash
    to_write: list[tuple[Article, str]]
    stored: dict[str, tuple[str, int]]  # the collection's articles: hash and number
    removed: list[str]
    same: bool  # the stored vectors can stay (same model, backend family and chunker)


def _write_all(
    store: MilvusStore,
    lease: RebuildLease,
    settings: IndexSettings,
    plan: _Plan,
    embedder: Embedder | None,
    report: RebuildReport,
    show_progress: bool | Mode,
    notify: Progress,
) -> MilvusMeta:
    """Delete, embed and write what the plan says, then the meta row; returns that row."""
    started = time.perf_counter()
    chunker = chunker_settings(settings)
    previous, pairs, to_write, stored, removed, same = (
        plan.previous, plan.pairs, plan.to_write, plan.stored, plan.removed, plan.same
    )  # fmt: skip
    if embedder is not None and previous is not None and same and _mixes(previous, embedder):
        log.info("the embedding backend differs from the collection's: re-embedding everything")
        to_write = list(pairs)
        report.updated, report.unchanged, report.full = len(pairs) - report.added, 0, True
    if previous is not None and embedder is not None and embedder.dimension != previous.dimension:
        log.info("the model makes vectors of another dimension: recreating the collections")
        store.drop()
        stored, previous, removed = {}, None, []
    dimension = embedder.dimension if embedder is not None else previous.dimension  # type: ignore[union-attr]
    lease.check()
    store.create(dimension)
    if removed:
        store.delete_articles(removed)
    next_number = max(
        [previous.next_number if previous is not None else 0, *(n + 1 for _, n in stored.values())]
    )
    numbers: dict[str, int] = {}
    for article, _ in to_write:
        if article.id in stored:
            numbers[article.id] = stored[article.id][1]
        else:
            numbers[article.id] = next_number
            next_number += 1
    over = 0
    if to_write:
        assert embedder is not None
        over = _write(
            store, to_write, numbers, embedder, settings, show_progress, notify, lease.check
        )
    notify("write", 0, 0)
    if embedder is not None:
        model, max_len = canonical_model_name(embedder.name), embedder.max_seq_length
        backend = getattr(embedder, "backend", None)
        quantization = getattr(embedder, "quantization", None)
    else:
        assert previous is not None
        model, max_len = previous.model, previous.max_seq_length
        backend, quantization = previous.embedding_backend, previous.embedding_quantization
    meta = MilvusMeta(
        model=model,
        dimension=dimension,
        max_seq_length=max_len,
        chunker=chunker,
        embedding_backend=backend,
        embedding_quantization=quantization,
        version=new_version_name(),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        articles=len(pairs),
        chunks=store.count_chunks(),
        chunks_over_limit=over + (previous.chunks_over_limit if same and previous else 0),
        build_seconds=round(report.phases["plan"] + time.perf_counter() - started, 3),
        next_number=next_number,
    )
    lease.check()  # the meta row publishes: never by a rebuild that lost the collection
    store.write_meta(meta)
    report.phases["write"] = time.perf_counter() - started
    return meta


def _compatible(meta: MilvusMeta, settings: IndexSettings, chunker: dict[str, int]) -> bool:
    """Whether stored vectors can stay: same model, chunker and vector family of backend."""
    if meta.model != canonical_model_name(settings.embedding_model) or meta.chunker != chunker:
        return False
    if settings.embedding_backend == "auto":
        return True  # auto follows what built the collections
    from .embedder import backend_quantization

    built = vector_family(meta.embedding_backend, meta.embedding_quantization)
    wanted = settings.embedding_backend
    return built == vector_family(wanted, backend_quantization(wanted))


def _mixes(meta: MilvusMeta, embedder: Embedder) -> bool:
    """Whether the loaded model's vectors would mix with the collection's (int8 vs fp32)."""
    backend = getattr(embedder, "backend", None)
    if backend is None:  # a test double names none
        return False
    built = vector_family(meta.embedding_backend, meta.embedding_quantization)
    return built != vector_family(backend, getattr(embedder, "quantization", None))


def _write(
    store: MilvusStore,
    to_write: list[tuple[Article, str]],
    numbers: dict[str, int],
    embedder: Embedder,
    settings: IndexSettings,
    show_progress: bool | Mode,
    notify: Progress,
    check: Callable[[], None],
) -> int:
    """Chunk, embed and write the articles, a few batches' worth of chunks at a time;
    `check` raises when the collection's lease is lost, before each batch is written.

    Returns:
        How many chunks exceed the model's max_seq_length.
    """
    config = ChunkerConfig(
        settings.chunk_tokens, settings.chunk_overlap_tokens, embedder.max_seq_length
    )
    step = settings.embedding_batch_size
    over = 0
    pending: list[tuple[Article, str, list[Chunk], list[str]]] = []

    def flush() -> None:
        check()
        inputs = [text for *_, texts in pending for text in texts]
        vectors = (
            np.asarray(embedder.encode_documents(inputs, batch_size=step), dtype=np.float32)
            if inputs
            else np.zeros((0, embedder.dimension), dtype=np.float32)
        )
        at = 0
        for article, digest, chunks, _ in pending:
            store.put_article(
                article, digest, numbers[article.id], chunks, vectors[at : at + len(chunks)]
            )
            at += len(chunks)
        pending.clear()

    with ProgressBar(len(to_write), "embedding", "article", show_progress) as bar:
        waiting = 0
        for done, (article, digest) in enumerate(to_write, 1):
            chunks = chunk_article(article, embedder.tokenizer, config)
            texts = embedding_inputs(article.title, chunks, embedder.tokenizer)
            pending.append((article, digest, chunks, texts))
            over += sum(c.tokens > embedder.max_seq_length for c in chunks)
            waiting += len(chunks)
            if waiting >= 4 * step or done == len(to_write):
                written = len(pending)
                flush()
                bar.update(written)
                waiting = 0
            notify("embed", done, len(to_write))
    return over

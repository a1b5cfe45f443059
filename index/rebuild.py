"""Incremental rebuilds: re-embed only what changed, carry the rest over, publish atomically.

An article is unchanged when its content hash matches the published version's and the
published version was built with the same model and chunker settings; its chunks and vectors
are copied forward instead of being recomputed, which is what keeps a nightly rebuild of a
large, mostly stable collection cheap. The model is loaded only when something needs
embedding, so a rebuild that finds nothing new finishes in the time it takes to read files.

A rebuild also repairs. `--full` never reads the published version's data (only, where it
can, its article ids for the report), so it succeeds whatever state that version is in. A
plain rebuild verifies every checksum of the version it would carry articles over from; when
anything is damaged it logs why and rebuilds from scratch instead of copying the damage
forward, and when nothing changed it still republishes, so a plain rebuild heals too.

Writing grows with the change, not the archive. A plain rebuild that can build on the
published version hands it to `VersionWriter` as the base: the removed and changed articles
are retired, the new and changed ones appended, and every file is derived from copies of
the base's (see `index.store.VersionWriter`), so a 1% change of a 100k-chunk index writes in
a few percent of a full rebuild's time (docs/benchmarks.md). Retired rows stay as holes;
once they pass MAX_HOLE_SHARE of the rows, or the index type must change, or the base
predates kept term counts, the version is written whole again from the carried-over
vectors (no re-embedding). `--full` always writes whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from . import ann
from .article_cache import ArticleCache
from .articles import load_articles
from .boilerplate import CLEANING_VERSION, mark_boilerplate
from .chunking import ChunkerConfig, chunk_article, embedding_inputs
from .embedder import Embedder, backend_quantization, canonical_model_name, vector_family
from .errors import IndexDamaged, IndexError_, IndexMismatch, IndexNotBuilt
from .models import Article, Chunk, RebuildReport
from .progress import Mode, ProgressBar
from .settings import IndexSettings
from .store import (
    StoredArticle,
    StoredIndex,
    VersionWriter,
    collect_garbage,
    has_term_counts,
    open_current,
    rebuild_lock,
    sweep_unfinished,
)

log = logging.getLogger(__name__)

MAX_HOLE_SHARE = 0.2
"""Share of rows left by removed chunks past which a version is written whole again: each
hole is a FAISS candidate that searches skip, so their share bounds the recall they cost."""

Progress = Callable[[str, int, int], None]
"""Called as (stage, done, total); stages: load, chunk, embed, write, done."""


def content_hash(article: Article) -> str:
    # what is embedded depends on the boilerplate found (also in other articles of the site)
    # and on the cleaning rules' version, not only on the article's own fields
    payload = json.dumps(
        [article.title, article.text, article.url, article.date, article.source,
         article.boilerplate, CLEANING_VERSION]
    )  # fmt: skip
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def ann_config(settings: IndexSettings) -> ann.AnnConfig:
    return ann.AnnConfig(
        index_type=settings.index_type,
        ann_threshold=settings.ann_threshold,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construction=settings.hnsw_ef_construction,
        hnsw_ef_search=settings.hnsw_ef_search,
        ivf_nprobe=settings.ivf_nprobe,
        rescore=settings.ann_rescore,
    )


def chunker_settings(settings: IndexSettings) -> dict[str, int]:
    return {
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
    }


@dataclass(slots=True)
class _Plan:
    articles: list[tuple[Article, str]]
    previous: StoredIndex | None
    reuse: dict[str, StoredArticle]  # unchanged article id -> its previous record
    to_embed: list[Article]
    old: dict[str, StoredArticle]  # the published version's articles (empty when unread)


def rebuild(
    settings: IndexSettings,
    get_embedder: Callable[[], Embedder],
    *,
    full: bool = False,
    show_progress: bool | Mode = False,
    on_progress: Progress | None = None,
) -> RebuildReport:
    """Index `settings.articles_dir` into `settings.index_dir`.

    Args:
        show_progress: progress of chunking and embedding on stderr (`index.progress`):
            True or "auto" for a bar on a terminal and plain lines elsewhere.

    Raises:
        RebuildBusy: another rebuild holds the folder's lock.
        FileNotFoundError, NotADirectoryError: the articles folder is missing.
        EmbedderUnavailable: the model could not be loaded.
        IndexFolderError: the index folder cannot be written (a file, read-only, disk full);
            the previous version is still published and nothing is left behind.
    """
    if settings.vector_store == "milvus":  # the same plan, written into Milvus collections
        from .milvus_rebuild import rebuild_milvus
        from .milvus_store import milvus_config

        config = milvus_config(settings)
        assert config is not None
        return rebuild_milvus(
            settings, config, get_embedder, full=full, show_progress=show_progress,
            on_progress=on_progress,
        )  # fmt: skip
    started = time.perf_counter()
    notify = on_progress or (lambda stage, done, total: None)
    root = settings.index_dir
    report = RebuildReport(full=full)
    if not settings.articles_dir.is_dir():  # before the lock creates the index folder
        raise FileNotFoundError(f"articles folder not found: {settings.articles_dir}")
    # What each file gives (parse, block keys, boilerplate) is cached by its bytes in the
    # index folder, so planning grows with the change; `--full` never reads the cache. It
    # is saved only once the rebuild has succeeded: a failed one (a full disk) leaves the
    # folder as it was.
    with rebuild_lock(root), contextlib.closing(ArticleCache.open(root, reuse=not full)) as cache:
        sweep_unfinished(root)  # what a killed rebuild left
        notify("load", 0, 0)
        pairs = read_articles(settings, cache, report)
        plan = _plan(settings, pairs, full, report)
        report.phases["plan"] = time.perf_counter() - started
        try:
            report.articles = len(plan.articles)
            if not (report.added or report.updated or report.removed) and not _layout_changed(
                plan.previous, settings
            ):
                assert plan.previous is not None
                report.chunks = plan.previous.size
                report.version = plan.previous.version
                collect_garbage(root, settings.keep_versions)  # e.g. a killed rebuild's .tmp-
                cache.save()
                report.seconds = time.perf_counter() - started
                notify("done", report.articles, report.articles)
                return report
            embedder = get_embedder() if plan.to_embed or plan.previous is None else None
            if embedder is not None and _mixes_backends(plan, embedder):
                plan = _everything_anew(plan, report)
            new_chunks, new_vectors = _embed(
                plan.to_embed, embedder, settings, show_progress, notify, report.phases
            )
            if embedder is not None:
                dimension, max_len, model = (
                    embedder.dimension, embedder.max_seq_length, embedder.name
                )  # fmt: skip
                backend = getattr(embedder, "backend", None)
                quantization = getattr(embedder, "quantization", None)
            else:
                assert plan.previous is not None
                m = plan.previous.manifest
                dimension, max_len, model = m.dimension, m.max_seq_length, m.model
                backend, quantization = m.embedding_backend, m.embedding_quantization
            base = plan.previous if _can_extend(plan, new_chunks, settings) else None
            writer = VersionWriter(root, dimension, base=base)
            notify("write", 0, len(plan.articles))
            if base is not None:
                for old in plan.old.values():
                    if old.id not in plan.reuse:
                        writer.retire(old)
            for article, digest in plan.articles:
                old = plan.reuse.get(article.id)
                if old is not None and base is not None:
                    continue  # stays where it is
                if old is not None and plan.previous is not None:
                    chunks = plan.previous.stored_chunks(old)
                    first = old.first_chunk
                    vectors = np.asarray(plan.previous.vectors[first : first + len(chunks)])
                else:
                    chunks, vectors = new_chunks[article.id], new_vectors[article.id]
                writer.add(article, digest, chunks, vectors)
            report.incremental = base is not None
            manifest = writer.publish(
                {
                    "model": model,
                    "embedding_backend": backend,
                    "embedding_quantization": quantization,
                    "chunker": chunker_settings(settings),
                    "extra": {"index_type_setting": settings.index_type},
                    "build_seconds": time.perf_counter() - started,
                },
                ann_config(settings),
                max_len,
            )
            report.phases.update(writer.timings)
        finally:
            if plan.previous is not None:
                plan.previous.close()
        collect_garbage(root, settings.keep_versions)
        cache.save()
    report.chunks = manifest.chunks
    report.version = manifest.version
    report.published = True
    report.seconds = time.perf_counter() - started
    notify("done", report.articles, report.articles)
    return report


def read_articles(
    settings: IndexSettings, cache: ArticleCache, report: RebuildReport
) -> list[tuple[Article, str]]:
    """Every article of the folder, boilerplate marked, with its content hash, by id.

    What unchanged files gave is reused from `cache` (both vector stores plan through
    here), so reading grows with the change; the files skipped go to `report`.
    """
    loaded = load_articles(
        settings.articles_dir,
        max_article_bytes=settings.max_article_bytes,
        max_title_chars=settings.max_title_chars,
        cache=cache,
    )
    marked = mark_boilerplate(loaded.articles, cache=cache)
    report.skipped = loaded.skipped
    log.info("article cache: %d files reused, %d parsed", cache.hits, cache.misses)
    return [(a, content_hash(a)) for a in sorted(marked, key=lambda a: a.id)]


def classify(
    pairs: list[tuple[Article, str]],
    old_hashes: Mapping[str, str],
    compatible: bool,
    report: RebuildReport,
) -> tuple[list[Article], set[str]]:
    """Which articles need embedding and which keep their stored vectors, counted in `report`.

    Args:
        old_hashes: content hash of each article the store holds, by id.
        compatible: the stored vectors were made by the same model, backend and chunker.

    Returns:
        The articles to embed (new, changed, or all when not compatible) and the ids of the
        unchanged ones.
    """
    unchanged: set[str] = set()
    to_embed: list[Article] = []
    for article, digest in pairs:
        prior = old_hashes.get(article.id)
        if prior is None:
            report.added += 1
            to_embed.append(article)
        elif compatible and prior == digest:
            report.unchanged += 1
            unchanged.add(article.id)
        else:
            report.updated += 1
            to_embed.append(article)
    current_ids = {a.id for a, _ in pairs}
    report.removed = sum(1 for aid in old_hashes if aid not in current_ids)
    return to_embed, unchanged


def _plan(
    settings: IndexSettings, pairs: list[tuple[Article, str]], full: bool, report: RebuildReport
) -> _Plan:
    previous: StoredIndex | None = None
    old: dict[str, StoredArticle] = {}
    if full:  # never depends on the old version, so it repairs any damage
        old = _previous_articles(settings)
    else:
        try:
            previous = open_current(settings.index_dir, checksums=True)
            old = {a.id: a for a in previous.articles()}
        except IndexNotBuilt:
            pass
        except IndexMismatch as exc:
            log.warning("%s: rebuilding everything", exc)
            report.full = True
        except IndexDamaged as exc:
            log.warning("%s: rebuilding everything instead", exc)
            if previous is not None:
                previous.close()
                previous = None
            report.full = True
            old = _previous_articles(settings)
    compatible = (
        previous is not None
        and not full
        and previous.manifest.model == canonical_model_name(settings.embedding_model)
        and previous.manifest.chunker == chunker_settings(settings)
        and _backend_kept(previous, settings)
    )
    if previous is not None and not compatible and not full:
        log.info("model, backend or chunker settings changed since the last build: full rebuild")
        report.full = True
    to_embed, unchanged = classify(
        pairs, {aid: a.hash for aid, a in old.items()}, compatible, report
    )
    reuse = {aid: old[aid] for aid in unchanged}
    return _Plan(pairs, previous, reuse, to_embed, old)


def _backend_kept(previous: StoredIndex, settings: IndexSettings) -> bool:
    """Whether EMBEDDING_BACKEND still names the backend that built the published version.

    `auto` follows the index, so it always does; an explicit backend does when it makes the
    same vectors: any fp32 backend for an fp32 index, int8 with the same preset for an int8
    one (an int8 index moved to a CPU of another preset is redone).
    """
    setting = settings.embedding_backend
    if setting == "auto":
        return True
    m = previous.manifest
    built = vector_family(m.embedding_backend, m.embedding_quantization)
    return built == vector_family(setting, backend_quantization(setting))


def _mixes_backends(plan: _Plan, embedder: Embedder) -> bool:
    """Whether carrying vectors over would mix them with another backend's.

    The plan checks settings; this checks the model actually loaded (`auto` with a
    published index that another backend built, a model given by a library caller).
    """
    backend = getattr(embedder, "backend", None)
    if not plan.reuse or plan.previous is None or backend is None:
        return False
    m = plan.previous.manifest
    built = vector_family(m.embedding_backend, m.embedding_quantization)
    return built != vector_family(backend, getattr(embedder, "quantization", None))


def _everything_anew(plan: _Plan, report: RebuildReport) -> _Plan:
    log.info("the embedding backend differs from the published index's: re-embedding everything")
    report.updated += report.unchanged
    report.unchanged = 0
    report.full = True
    return _Plan(plan.articles, plan.previous, {}, [a for a, _ in plan.articles], plan.old)


def _previous_articles(settings: IndexSettings) -> dict[str, StoredArticle]:
    """The published version's articles, only to report added against updated.

    Whatever cannot be read counts as no article: a full rebuild must not fail on it.
    """
    try:
        stored = open_current(settings.index_dir, checksums=False)
    except IndexError_:
        return {}
    try:
        return {a.id: a for a in stored.articles()}
    except IndexError_:
        return {}
    finally:
        stored.close()


def _layout_changed(previous: StoredIndex | None, settings: IndexSettings) -> bool:
    """Whether the published version must be rewritten even though no article changed."""
    if previous is None:
        return True
    setting = previous.manifest.extra.get("index_type_setting")
    kind = ann_config(settings).resolve(previous.manifest.chunks)  # auto may resolve otherwise
    return setting != settings.index_type or previous.manifest.index_type != kind


def _can_extend(plan: _Plan, new_chunks: dict[str, list[Chunk]], settings: IndexSettings) -> bool:
    """Whether the new version can be written as changes to the published one.

    Only onto a version every checksum of which was verified (a plain rebuild's plan), with
    the same model, chunker and backend (`reuse` is empty otherwise), that keeps term counts,
    whose index type still fits the new size, and while the holes stay few.
    """
    previous = plan.previous
    if previous is None or not plan.reuse or not has_term_counts(previous):
        return False
    m = previous.manifest
    retired = sum(a.n_chunks for a in plan.old.values() if a.id not in plan.reuse)
    added = sum(len(c) for c in new_chunks.values())
    live = m.chunks - retired + added
    rows = m.chunk_slots + added
    setting = m.extra.get("index_type_setting")
    kind = ann_config(settings).resolve(live)
    if setting != settings.index_type or m.index_type != kind:
        return False
    if rows and (rows - live) / rows > MAX_HOLE_SHARE:
        log.info(
            "removed chunks left %d of %d rows empty: writing the index whole", rows - live, rows
        )
        return False
    return True


def _embed(
    articles: list[Article],
    embedder: Embedder | None,
    settings: IndexSettings,
    show_progress: bool | Mode,
    notify: Progress,
    phases: dict[str, float],
) -> tuple[dict[str, list[Chunk]], dict[str, np.ndarray]]:
    chunks_by_article: dict[str, list[Chunk]] = {}
    if not articles or embedder is None:
        return chunks_by_article, {}
    started = time.perf_counter()
    config = ChunkerConfig(
        settings.chunk_tokens, settings.chunk_overlap_tokens, embedder.max_seq_length
    )
    inputs: list[str] = []
    sizes: list[int] = []
    with ProgressBar(len(articles), "chunking", "article", show_progress) as bar:
        for i, article in enumerate(articles):
            chunks = chunk_article(article, embedder.tokenizer, config)
            chunks_by_article[article.id] = chunks
            inputs.extend(embedding_inputs(article.title, chunks, embedder.tokenizer))
            sizes.extend(c.tokens for c in chunks)
            bar.update(1)
            if i % 200 == 0:
                notify("chunk", i, len(articles))
    phases["chunk"] = time.perf_counter() - started
    started = time.perf_counter()
    total = len(inputs)
    vectors = np.zeros((total, embedder.dimension), dtype=np.float32)
    # batches of similar length (padding costs as much as text), each its own encode call
    # so that progress moves per batch
    order = np.argsort(np.asarray(sizes, dtype=np.int64), kind="stable")
    step = settings.embedding_batch_size
    with ProgressBar(total, "embedding", "chunk", show_progress) as bar:
        for start in range(0, total, step):
            rows = order[start : start + step]
            vectors[rows] = embedder.encode_documents([inputs[r] for r in rows], batch_size=step)
            bar.update(len(rows))
            notify("embed", min(start + step, total), total)
    phases["embed"] = time.perf_counter() - started
    by_article: dict[str, np.ndarray] = {}
    pos = 0
    for article in articles:
        n = len(chunks_by_article[article.id])
        by_article[article.id] = vectors[pos : pos + n]
        pos += n
    assert pos == len(vectors)
    return chunks_by_article, by_article

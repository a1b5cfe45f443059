"""`python -m index`: rebuild, inspect and search the article index.

Flags and `--json` shapes here are contracts that scripts and outside checks rely on: extend
them, never rename them. Every failure ends in one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import BinaryIO

import click

from .cli_common import (
    CLIError,
    OneLineErrors,
    load_settings,
    one_line,
    read_lines,
    setup_logging,
    skipped_line,
)
from .display import printable
from .embedder import LEGACY_BACKEND, Embedder, load_configured_embedder, load_embedder
from .live import published_version
from .milvus_store import MilvusConfig, MilvusMeta, MilvusStore, milvus_config, open_milvus
from .models import RebuildReport
from .rebuild import ann_config, rebuild
from .redact import redact_url
from .search import MODES, Searcher
from .settings import IndexSettings
from .sources.ingest import SourcesReport, add_urls, refresh_sources
from .sources.sourcesfile import SourcesFileError, load_sources_file
from .store import Manifest, StoredIndex, open_current

log = logging.getLogger(__name__)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Build and search the article index.

    \b
    Examples:
      python -m index rebuild --source articles --index data/index
      python -m index search "what did Obama say to Putin?" -k 3
      python -m index stats --json
      python -m index add https://news.example.org/story --json
      python -m index refresh --prune-days 90
    """
    setup_logging(verbose)


source_option = click.option(
    "--source",
    type=click.Path(path_type=Path, file_okay=False),
    help="Articles folder (default: ARTICLES_DIR).",
)
index_option = click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Index folder (default: INDEX_DIR).",
)


@cli.command("rebuild")
@source_option
@index_option
@click.option("--full", is_flag=True, help="Re-embed every article, changed or not.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object summarising it.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def rebuild_cmd(
    source: Path | None, index_dir: Path | None, full: bool, as_json: bool, quiet: bool
) -> None:
    """Index the articles folder; only new or changed articles are embedded."""
    settings = load_settings(IndexSettings, articles_dir=source, index_dir=index_dir)
    # a bar on a terminal, plain lines in a log; none mixed into --json output in a pipe
    show = "off" if quiet or (as_json and not sys.stderr.isatty()) else "auto"
    report = rebuild(
        settings,
        lambda: load_configured_embedder(settings, follow_index=not full, loader=load_embedder),
        full=full,
        show_progress=show,
    )
    for s in report.skipped:  # once each, whatever the flags (the loader only logs at info)
        click.echo(skipped_line(s), err=True)
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    state = "published " + str(report.version) if report.published else "nothing changed"
    click.echo(
        f"{report.articles} articles, {report.chunks} chunks: {report.added} added, "
        f"{report.updated} updated, {report.removed} removed, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped; {state} in {report.seconds:.1f}s"
    )


@cli.command("stats")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats_cmd(index_dir: Path | None, as_json: bool) -> None:
    """Counts, model and index type of the published index."""
    settings = load_settings(IndexSettings, index_dir=index_dir)
    config = milvus_config(settings)
    if config is not None:
        _milvus_stats(config, as_json)
        return
    stored = open_current(settings.index_dir)
    try:
        m = stored.manifest
        data = {
            "index_dir": str(settings.index_dir),
            "version": m.version,
            "built_at": m.built_at,
            "format_version": m.format_version,
            "articles": m.articles,
            "chunks": m.chunks,
            "model": m.model,
            "embedding_backend": m.embedding_backend or LEGACY_BACKEND,
            "embedding_quantization": m.embedding_quantization,
            "dimension": m.dimension,
            "max_seq_length": m.max_seq_length,
            "index_type": m.index_type,
            "chunker": m.chunker,
            "chunks_over_limit": stored.tokens_over(m.max_seq_length),
        }
    finally:
        stored.close()
    if as_json:
        click.echo(json.dumps(data))
        return
    for key, value in data.items():
        click.echo(f"{key:18} {value}")


def _milvus_stats(config: MilvusConfig, as_json: bool) -> None:
    meta = open_milvus(config).meta
    assert meta is not None
    data = {
        "vector_store": "milvus",
        "milvus_uri": redact_url(config.uri),
        "collection": config.collection,
        "version": meta.version,
        "built_at": meta.built_at,
        "articles": meta.articles,
        "chunks": meta.chunks,
        "model": meta.model,
        "embedding_backend": meta.embedding_backend or LEGACY_BACKEND,
        "embedding_quantization": meta.embedding_quantization,
        "dimension": meta.dimension,
        "max_seq_length": meta.max_seq_length,
        "chunker": meta.chunker,
        "chunks_over_limit": meta.chunks_over_limit,
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    for key, value in data.items():
        click.echo(one_line(f"{key:18} {value}"))


@cli.command("verify")
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify_cmd(index_dir: Path | None, as_json: bool) -> None:
    """Check every file of the published index against its recorded size and checksum.

    Searches check sizes and headers on every open but read full checksums only of small
    indexes; run this (from cron, say) to catch silent damage in a large one. Exit 1 with
    one line naming the damaged file, else 0.
    """
    settings = load_settings(IndexSettings, index_dir=index_dir)
    if settings.vector_store == "milvus":
        raise CLIError(
            "verify checks the files of INDEX_DIR; with VECTOR_STORE=milvus, Milvus "
            "keeps the data (run `python -m index stats` to check it answers)"
        )
    started = time.perf_counter()
    stored = open_current(settings.index_dir, checksums=True)
    try:
        stored.verify()
        m = stored.manifest
        data = {
            "ok": True,
            "version": m.version,
            "files": len(m.files),
            "bytes": sum(r.size for r in m.files.values()),
            "seconds": round(time.perf_counter() - started, 3),
        }
    finally:
        stored.close()
    if as_json:
        click.echo(json.dumps(data))
    else:
        click.echo(
            f"ok: version {data['version']}, {data['files']} files, {data['bytes']:,} bytes "
            f"verified in {data['seconds']:.2f} s"
        )


def _rebuild_after_sources(settings: IndexSettings, quiet: bool, as_json: bool) -> RebuildReport:
    report = rebuild(
        settings,
        lambda: load_configured_embedder(settings, loader=load_embedder),
        show_progress="off" if quiet or (as_json and not sys.stderr.isatty()) else "auto",
    )
    for s in report.skipped:
        click.echo(skipped_line(s), err=True)
    return report


def _sources_lines(report: SourcesReport) -> None:
    for o in report.outcomes:
        if o.status == "failed":
            click.echo(one_line(f"failed {o.url}: {o.reason}"), err=True)
        else:
            click.echo(one_line(f"{o.status} {o.url}: {o.title} ({o.path})"))


@cli.command("add")
@click.argument("urls", nargs=-1, required=True)
@source_option
@index_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def add_cmd(
    urls: tuple[str, ...], source: Path | None, index_dir: Path | None, as_json: bool, quiet: bool
) -> None:
    """Fetch each URL, save its article into the articles folder, then rebuild.

    HTML pages (main text and metadata by trafilatura), PDFs and plain text are saved as
    Markdown files under ARTICLES_DIR/web/, named from the canonical URL. The same article
    twice (same canonical URL, or same text under another URL) adds nothing. Exit 1 when
    no URL could be added.

    \b
    JSON: {"added": [{url, title, path}], "updated": [...], "unchanged": [...],
           "failed": [{url, reason}], "rebuild": {...} or null}
    """
    settings = load_settings(IndexSettings, articles_dir=source, index_dir=index_dir)
    report = add_urls(settings, list(urls))
    ok = [o for o in report.outcomes if o.status != "failed"]
    rebuilt = _rebuild_after_sources(settings, quiet, as_json) if ok else None
    if as_json:
        click.echo(json.dumps({**report.to_json(), "rebuild": rebuilt and rebuilt.to_json()}))
    else:
        _sources_lines(report)
        if rebuilt is not None:
            click.echo(f"{rebuilt.articles} articles, {rebuilt.chunks} chunks indexed")
    if not ok:
        sys.exit(1)


@cli.command("refresh")
@click.option(
    "--sources-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Sources file (default: SOURCES_FILE).",
)
@source_option
@index_option
@click.option(
    "--prune-days",
    type=click.IntRange(1, 100_000),
    help="Also delete articles from feeds and sitemaps older than this many days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def refresh_cmd(
    sources_file: Path | None,
    source: Path | None,
    index_dir: Path | None,
    prune_days: int | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Pull new and changed entries of the feeds, sitemaps and pages in SOURCES_FILE.

    Conditional GETs (ETag, Last-Modified): only new or changed pages are fetched. Entries
    that leave a feed stay indexed; --prune-days removes old ones. A source that fails is
    reported and the rest go on; the index is rebuilt once, when anything changed.

    \b
    JSON: {"feeds": [{url, kind, status, entries, reason?}], "added": [...],
           "updated": [...], "unchanged": [...], "failed": [...], "pruned": [paths],
           "rebuild": {...} or null}
    """
    settings = load_settings(
        IndexSettings, articles_dir=source, index_dir=index_dir, sources_file=sources_file
    )
    if settings.sources_file is None:
        raise CLIError("no sources file: set SOURCES_FILE or pass --sources-file", 2)
    try:
        sources = load_sources_file(settings.sources_file)
    except SourcesFileError as exc:
        raise CLIError(str(exc), 2) from None
    report = refresh_sources(settings, sources, prune_days=prune_days)
    built = (
        published_version(settings) is not None
        if settings.vector_store == "milvus"
        else settings.index_dir.joinpath("CURRENT").exists()
    )
    needed = report.changed or not built
    rebuilt = _rebuild_after_sources(settings, quiet, as_json) if needed else None
    if as_json:
        click.echo(json.dumps({
            "feeds": [f.to_json() for f in report.feeds],
            **report.to_json(),
            "pruned": report.pruned,
            "rebuild": rebuilt and rebuilt.to_json(),
        }))  # fmt: skip
        return
    for f in report.feeds:
        extra = f": {f.reason}" if f.reason else f" ({f.entries} entries)" if f.entries else ""
        click.echo(one_line(f"{f.kind} {f.url}: {f.status.replace('_', ' ')}{extra}"))
    _sources_lines(report)
    for path in report.pruned:
        click.echo(one_line(f"pruned {path}"))
    if rebuilt is not None:
        click.echo(f"{rebuilt.articles} articles, {rebuilt.chunks} chunks indexed")


def open_searcher(settings: IndexSettings, embedder: Embedder | None = None) -> Searcher:
    config = milvus_config(settings)
    stored: StoredIndex | MilvusStore
    if config is not None:
        stored = open_milvus(config)
        built: Manifest | MilvusMeta | None = stored.meta
    else:
        stored = open_current(settings.index_dir, ann_config(settings))
        built = stored.manifest
    assert built is not None
    stored.check_model(settings.embedding_model)  # before paying for the model load
    index = (built.embedding_backend or LEGACY_BACKEND, built.embedding_quantization)
    embedder = embedder or load_configured_embedder(
        settings, index=index, serving=True, loader=load_embedder
    )
    return Searcher(stored, embedder, settings.hybrid_dense_weight)


@cli.command("search")
@click.argument("query", required=False)
@index_option
@click.option(
    "-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="Results to return."
)
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option(
    "--batch",
    type=click.File("rb"),
    help="File of queries, one a line ('-' for stdin); prints one JSON object a line (a line "
    "that is not UTF-8 gets an object with an error).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search_cmd(
    query: str | None,
    index_dir: Path | None,
    k: int,
    mode: str,
    batch: BinaryIO | None,
    as_json: bool,
) -> None:
    """Search the index for passages about QUERY."""
    if (query is None) == (batch is None):
        raise click.UsageError("give either a QUERY or --batch FILE")
    if query is not None and not query.strip():
        raise click.UsageError("the query is empty")
    settings = load_settings(IndexSettings, index_dir=index_dir)
    searcher = open_searcher(settings)
    if batch is not None:
        _search_batch(searcher, batch, k, mode)
        return
    assert query is not None
    hits = searcher.search(query, k, mode)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"query": query, "results": [h.to_json() for h in hits]}))
        return
    if not hits:
        click.echo("no results")
    for h in hits:
        title, source = printable(h.title), printable(h.source)
        click.echo(f"[{h.rank}] {h.score:.3f}  {title}  ({source}, {h.start}-{h.end})")
        click.echo("    " + printable(" ".join(h.text.split()))[:300])


def _search_batch(searcher: Searcher, batch: BinaryIO, k: int, mode: str) -> None:
    """One JSON object a line, in input order; an undecodable line costs only itself."""
    lines = [(number, text.strip() if text else None) for number, text in read_lines(batch)]
    queries = [text for _, text in lines if text]
    results = iter(searcher.search_batch(queries, k, mode))  # type: ignore[arg-type]
    for number, text in lines:
        if not text:
            error = f"line {number} is not valid UTF-8"
            click.echo(json.dumps({"query": None, "line": number, "error": error}))
            continue
        hits = next(results)
        click.echo(json.dumps({"query": text, "results": [h.to_json() for h in hits]}))


def main() -> None:
    cli()

"""`python -m index`: rebuild, inspect and search the article index.

Flags and `--json` shapes here are contracts that scripts and outside checks rely on: extend
them, never rename them. Every failure ends in one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from .embedder import Embedder, load_embedder
from .errors import IndexError_
from .rebuild import ann_config, rebuild
from .search import MODES, Searcher
from .settings import IndexSettings
from .store import open_current

log = logging.getLogger(__name__)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def render_validation_error(exc: ValidationError) -> str:
    """One line naming each bad setting, as the environment spells it."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
        parts.append(f"{name}: {err['msg']}")
    return "invalid settings: " + "; ".join(parts)


def load_settings(cls: type[IndexSettings] = IndexSettings, **overrides: Any) -> IndexSettings:
    try:
        settings = cls()
    except ValidationError as exc:
        fail(render_validation_error(exc), 2)
    update = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=update) if update else settings


class OneLineErrors(click.Group):
    """A click group whose usage errors are one line, like every other failure here."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("aborted", 130)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            fail(f"{exc.format_message()}{hint}", 2)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except IndexError_ as exc:
            fail(str(exc))
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Build and search the article index.

    \b
    Examples:
      python -m index rebuild --source articles --index data/index
      python -m index search "what did Obama say to Putin?" -k 3
      python -m index stats --json
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
    settings = load_settings(articles_dir=source, index_dir=index_dir)
    show = not quiet and sys.stderr.isatty()
    report = rebuild(
        settings,
        lambda: load_embedder(settings.embedding_model, settings.embedding_device),
        full=full,
        show_progress=show,
    )
    if as_json:  # index.articles has already logged each skipped file as a warning
        click.echo(json.dumps(report.to_json()))
        return
    for s in report.skipped:
        where = f"{s.path}:{s.line}" if s.line else s.path
        click.echo(f"skipped {where}: {s.reason}", err=True)
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
    settings = load_settings(index_dir=index_dir)
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


def open_searcher(settings: IndexSettings, embedder: Embedder | None = None) -> Searcher:
    stored = open_current(settings.index_dir, ann_config(settings))
    stored.check_model(settings.embedding_model)  # before paying for the model load
    embedder = embedder or load_embedder(settings.embedding_model, settings.embedding_device)
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
    type=click.File("r", encoding="utf-8"),
    help="File of queries, one a line ('-' for stdin); prints one JSON object a line.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search_cmd(
    query: str | None,
    index_dir: Path | None,
    k: int,
    mode: str,
    batch: Any,
    as_json: bool,
) -> None:
    """Search the index for passages about QUERY."""
    if (query is None) == (batch is None):
        raise click.UsageError("give either a QUERY or --batch FILE")
    if query is not None and not query.strip():
        raise click.UsageError("the query is empty")
    settings = load_settings(index_dir=index_dir)
    searcher = open_searcher(settings)
    if batch is not None:
        queries = [line.strip() for line in batch if line.strip()]
        for q, hits in zip(queries, searcher.search_batch(queries, k, mode), strict=True):  # type: ignore[arg-type]
            click.echo(json.dumps({"query": q, "results": [h.to_json() for h in hits]}))
        return
    assert query is not None
    hits = searcher.search(query, k, mode)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"query": query, "results": [h.to_json() for h in hits]}))
        return
    if not hits:
        click.echo("no results")
    for h in hits:
        click.echo(f"[{h.rank}] {h.score:.3f}  {h.title}  ({h.source}, {h.start}-{h.end})")
        click.echo("    " + " ".join(h.text.split())[:300])


def main() -> None:
    cli()

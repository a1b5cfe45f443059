"""`python -m bot`: run the bot (Discord with a token, else a terminal chat), `ask`, feedback.

Flags and `--json` shapes here are contracts that scripts and outside checks rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TextIO

import click

from index.cli_common import (
    CLIError,
    OneLineErrors,
    describe_safe_error,
    load_settings,
    one_line,
    read_lines,
    setup_logging,
    skipped_line,
)
from index.display import printable
from index.errors import IndexNotBuilt
from index.redact import redact_url
from index.store import current_version_name

from .errors import SAFE_ERRORS, BadQuestion
from .service import QAService
from .settings import Settings

log = logging.getLogger(__name__)


class BotErrors(OneLineErrors):
    """One-line errors, with the bot's own user-facing errors among the expected ones."""

    safe_errors: ClassVar[tuple[type[Exception], ...]] = SAFE_ERRORS


def bot_settings(**overrides: Any) -> Settings:
    return load_settings(Settings, **overrides)


def ensure_index(service: QAService, *, quiet: bool = False) -> None:
    """Build the index on first run, so a newcomer's first command gives an answer."""
    settings = service.settings
    if current_version_name(settings.index_dir) is not None:
        return
    if not settings.articles_dir.is_dir():
        raise IndexNotBuilt(
            f"no index in {settings.index_dir} and no articles folder at "
            f"{settings.articles_dir}: set ARTICLES_DIR and run `python -m index rebuild`"
        )
    if not quiet:
        click.echo(
            f"Building the index from {settings.articles_dir} into {settings.index_dir} "
            "(first run)...",
            err=True,
        )
    report = service.reindex()
    for s in report.skipped:
        click.echo(skipped_line(s), err=True)
    if not quiet:
        click.echo(f"Indexed {report.articles} articles ({report.chunks} passages).", err=True)


@click.group(
    cls=BotErrors,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Answer questions about your articles, with citations.

    \b
    With DISCORD_TOKEN set, runs the Discord bot; without it, opens a terminal chat.
    Examples:
      python -m bot
      python -m bot ask "what did Obama say to Putin?"
      python -m bot ask --json --batch questions.txt
      python -m bot feedback export --out feedback.jsonl
    """
    setup_logging(verbose)
    if ctx.invoked_subcommand is None:
        ctx.invoke(run_cmd)


@cli.command("run")
def run_cmd() -> None:
    """Run the Discord bot, or the terminal chat when no DISCORD_TOKEN is set."""
    settings = bot_settings()
    service = QAService(settings)
    if settings.discord_token is None or not settings.discord_token.get_secret_value():
        click.echo("No DISCORD_TOKEN set: starting the terminal chat instead.", err=True)
        ensure_index(service)
        from .transports.terminal import chat

        if isinstance(sys.stdin, io.TextIOWrapper):  # a piped byte that is not UTF-8 costs
            sys.stdin.reconfigure(errors="replace")  # one character, not the whole chat
        chat(service)
        return
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger().setLevel(logging.INFO)  # a long-running service logs its life
    ensure_index(service)
    from .transports.discord_client import run_bot

    with contextlib.suppress(KeyboardInterrupt), discord_errors(settings):
        asyncio.run(run_bot(settings, service))


@contextlib.contextmanager
def discord_errors(settings: Settings) -> Iterator[None]:
    """Turn Discord's refusals and an unreachable API into one line with what to check."""
    import aiohttp
    import discord

    where = redact_url(settings.discord_api_base_url)
    try:
        yield
    except discord.LoginFailure:
        raise CLIError(
            "Discord refused DISCORD_TOKEN: copy the bot's token again from the Developer "
            "Portal (Bot > Reset Token)"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise CLIError(
            "Discord refused a privileged intent: enable Message Content Intent for the bot "
            "in the Developer Portal (Bot > Privileged Gateway Intents)"
        ) from None
    except (aiohttp.ClientError, discord.GatewayNotFound, discord.ConnectionClosed) as exc:
        raise CLIError(
            f"cannot reach Discord at {where} ({one_line(str(exc)) or type(exc).__name__}): "
            "check the network connection and DISCORD_API_BASE_URL"
        ) from None
    except discord.HTTPException as exc:
        raise CLIError(
            f"Discord answered HTTP {exc.status} at {where}: {one_line(exc.text or '')}"
        ) from None


@cli.command("sync")
def sync_cmd() -> None:
    """Register the slash commands with Discord now, even if they look unchanged."""
    settings = bot_settings()
    if settings.discord_token is None or not settings.discord_token.get_secret_value():
        raise click.ClickException("DISCORD_TOKEN is not set")
    from .transports.discord_client import sync_commands

    with discord_errors(settings):
        where = asyncio.run(sync_commands(settings, QAService(settings), force=True))
    click.echo("synced commands " + (f"to guilds {', '.join(where)}" if where else "globally"))


@cli.command("ask")
@click.argument("question", required=False)
@click.option(
    "--index",
    "index_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Index folder (default: INDEX_DIR).",
)
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="Passages to read.")
@click.option(
    "--batch",
    type=click.File("rb"),
    help="File of questions, one a line ('-' for stdin); prints one JSON object a line. A line "
    "that cannot be answered (not UTF-8, too long...) gets an object with an error.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object a line).")
def ask_cmd(
    question: str | None, index_dir: Path | None, k: int | None, batch: BinaryIO | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Answer QUESTION from the index, with numbered sources."""
    if (question is None) == (batch is None):
        raise click.UsageError("give either a QUESTION or --batch FILE")
    settings = bot_settings(index_dir=index_dir, search_k=k)
    service = QAService(settings)
    if batch is not None:
        for number, line in read_lines(batch):
            if line is None:
                error = f"line {number} is not valid UTF-8"
                click.echo(json.dumps({"question": None, "line": number, "error": error}))
            else:
                _ask_one(service, line, as_json=True)
        return
    assert question is not None
    try:
        service.clean(question)  # fail fast, before loading the model
    except BadQuestion as exc:
        _report_bad(question, exc, as_json)
        sys.exit(2)
    if not _ask_one(service, question, as_json):
        sys.exit(1)


def _report_bad(question: str, exc: Exception, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"question": question, "error": str(exc)}))
    else:
        click.echo(f"error: {one_line(str(exc))}", err=True)


def _ask_one(service: QAService, question: str, as_json: bool) -> bool:
    try:
        answer = service.answer(question)
    except BadQuestion as exc:
        _report_bad(question, exc, as_json)
        return False
    except SAFE_ERRORS as exc:
        if not as_json:
            raise  # one line, with a hint, from the group's handler
        click.echo(json.dumps({"question": question, "error": describe_safe_error(exc)}))
        return False
    if as_json:
        click.echo(json.dumps(answer.to_json()))
    else:
        from .formatting import answer_text

        click.echo(printable(answer_text(answer)))
    return True


@cli.group("feedback")
def feedback_group() -> None:
    """Votes left under answers."""


@feedback_group.command("export")
@click.option("--out", type=click.File("w", encoding="utf-8"), default="-", show_default=True)
def feedback_export(out: TextIO) -> None:
    """Write every vote as one JSON object a line."""
    from .feedback import export_feedback

    settings = bot_settings()
    n = export_feedback(settings.feedback_db, out)
    click.echo(f"exported {n} votes", err=True)


def main() -> None:
    cli()

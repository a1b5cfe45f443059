"""`python -m bot`: run the bot (Discord with a token, else a terminal chat), `ask`, feedback.

Flags and `--json` shapes here are contracts that scripts and outside checks rely on.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import gc
import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, TextIO

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
from index.errors import EmbedderUnavailable, IndexNotBuilt
from index.redact import redact_url

from .errors import SAFE_ERRORS, BadQuestion
from .models import Answer
from .settings import Settings

if TYPE_CHECKING:
    from .service import QAService

# The answering modules (FAISS, BM25, ONNX Runtime, ~1 s of imports) are imported by the
# commands that answer, so that `--help`, `feedback` and a refused token do not wait for
# them, and so that `run` can start loading the model before importing them.

log = logging.getLogger(__name__)

SWITCH_INTERVAL_WHILE_LOADING = 0.001  # seconds; see _start_model


class BotErrors(OneLineErrors):
    """One-line errors, with the bot's own user-facing errors among the expected ones."""

    safe_errors: ClassVar[tuple[type[Exception], ...]] = SAFE_ERRORS


def bot_settings(**overrides: Any) -> Settings:
    return load_settings(Settings, **overrides)


def ensure_index(service: QAService, *, quiet: bool = False) -> None:
    """Build the index on first run, so a newcomer's first command gives an answer."""
    from index.live import published_version

    settings = service.settings
    if published_version(settings) is not None:
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
    loading = _start_model(settings)
    from index.embedder import preload
    from index.live import published_version

    from .service import QAService

    service = QAService(settings)
    if loading is None and published_version(settings):  # else the first-run build loads it
        loading = preload(service.embedder)  # the model loads while the index opens
    try:
        _run(settings, service)
    finally:
        if loading is not None:
            # A model still loading in a daemon thread when the interpreter exits (a refused
            # token, a quick "quit") aborts the process ("terminate called without an active
            # exception"): let the load finish first.
            concurrent.futures.wait([loading], timeout=120)


def _start_model(settings: Settings) -> concurrent.futures.Future[Any] | None:
    """Start loading the model that will embed questions, before the rest of the bot is
    imported; None when it cannot be known yet.

    The model then loads, mostly inside ONNX Runtime and off the GIL, while the answering
    modules (FAISS, BM25, ~0.7 s) are imported and the index opens, and the service's own
    getter takes the load over (`index.embedder.preload_embedder`): started after those
    imports instead, it was what the first question waited for. Nothing is started when no
    index is published (the first-run build loads its own model), nor for Milvus, whose
    published version is only known through its client (`run_cmd` preloads later).
    """
    if settings.vector_store != "faiss":
        return None
    from index.embedder import configured_load_args, peek_published_backend, preload_embedder

    published = peek_published_backend(settings.index_dir)
    if published is None:
        return None
    try:
        args = configured_load_args(settings, index=published, serving=True)
    except EmbedderUnavailable:
        return None  # reported by the service where the model is needed
    # The loading thread needs the GIL back after each stretch of ONNX Runtime's own work,
    # and at the default 5 ms switch interval the imports running here kept it waiting:
    # its 0.45 s load took 1.1 s. Switching at 1 ms until it is loaded lets it keep pace.
    default = sys.getswitchinterval()
    sys.setswitchinterval(min(default, SWITCH_INTERVAL_WHILE_LOADING))
    loading = preload_embedder(*args)
    loading.add_done_callback(lambda _: sys.setswitchinterval(default))
    return loading


def _run(settings: Settings, service: QAService) -> None:
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
    import asyncio

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
    import asyncio

    from .service import QAService
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
    help="File of questions, one a line ('-' for stdin); prints one JSON object a line, in "
    'order. A line may be a JSON object {"question": "...", "conversation": "ID"}: lines '
    "with the same ID are one conversation, answered in file order. A line that cannot be "
    "answered (blank, not UTF-8, too long...) gets an object with an error.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object a line).")
def ask_cmd(
    question: str | None, index_dir: Path | None, k: int | None, batch: BinaryIO | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Answer QUESTION from the index, with numbered sources.

    With --json each answer also lists "retrieved": the passages it was chosen from, after
    conversation handling ({rank, score, chunk_id, article_id, title, source, start, end}),
    and "conversation": the ID of a --batch line that gave one. A follow-up an LLM rewrote
    for the search (LLM_CONDENSE) also has "standalone_question": that rewrite.
    """
    if (question is None) == (batch is None):
        raise click.UsageError("give either a QUESTION or --batch FILE")
    from .service import QAService

    settings = bot_settings(index_dir=index_dir, search_k=k)
    service = QAService(settings)
    if batch is not None:
        run = uuid.uuid4().hex[:12]
        for number, line in read_lines(batch, keep_blank=True):
            _ask_batch_line(service, number, line, run)
        return
    assert question is not None
    try:
        service.clean(question)  # fail fast, before loading the model
    except BadQuestion as exc:
        _report_bad(question, exc, as_json)
        sys.exit(2)
    if not _ask_one(service, question, as_json):
        sys.exit(1)


def _report_bad(
    question: str, exc: Exception, as_json: bool, conversation: str | None = None
) -> None:
    if as_json:
        error = {"question": question, "error": str(exc)}
        if conversation is not None:
            error["conversation"] = conversation
        click.echo(json.dumps(error))
    else:
        click.echo(f"error: {one_line(str(exc))}", err=True)


def _ask_batch_line(service: QAService, number: int, line: str | None, run: str) -> None:
    """One output line for one input line: an answer, or an object with the error."""
    parsed = _batch_question(number, line)
    if isinstance(parsed, str):
        click.echo(json.dumps({"question": None, "line": number, "error": parsed}))
        return
    question, raw_id = parsed
    if raw_id is None:
        _ask_one(service, question, as_json=True)
        return
    # Namespaced by run, so that a batch's ids cannot continue a Discord or terminal
    # conversation, nor the same file's conversations from an earlier run.
    _ask_one(service, question, as_json=True, conversation=f"batch:{run}:{raw_id}",
             shown_id=raw_id)  # fmt: skip


def _batch_question(number: int, line: str | None) -> tuple[str, str | None] | str:
    """(question, conversation id or None) of a batch line, or why it cannot be asked.

    A line that is a JSON object is `{"question": ..., "conversation": ...}`; any other
    line is a standalone question, even one that starts with a bracket ("[1] what?").
    """
    if line is None:
        return f"line {number} is not valid UTF-8"
    if not line.strip():
        return f"line {number} is blank"
    text = line.strip()
    if not text.startswith(("{", "[")):
        return line, None
    try:
        record = json.loads(text)
    except ValueError:
        if text.startswith("{"):
            return f"line {number} is not valid JSON"
        return line, None
    if not isinstance(record, dict) or not isinstance(record.get("question"), str):
        return f'line {number} is not a JSON object with a "question" string'
    raw_id = record.get("conversation")
    if raw_id is not None and (not isinstance(raw_id, str | int) or isinstance(raw_id, bool)):
        return f'line {number}: "conversation" must be a string'
    return record["question"], None if raw_id is None else str(raw_id)


def _ask_one(
    service: QAService,
    question: str,
    as_json: bool,
    conversation: str | None = None,
    shown_id: str | None = None,
) -> bool:
    try:
        answer = service.answer(question, conversation=conversation)
    except BadQuestion as exc:
        _report_bad(question, exc, as_json, shown_id)
        return False
    except SAFE_ERRORS as exc:
        if not as_json:
            raise  # one line, with a hint, from the group's handler
        error = {"question": question, "error": describe_safe_error(exc)}
        if shown_id is not None:
            error["conversation"] = shown_id
        click.echo(json.dumps(error))
        return False
    if as_json:
        click.echo(json.dumps(answer_json(answer, shown_id)))
    else:
        from .formatting import answer_text

        click.echo(printable(answer_text(answer)))
    return True


def answer_json(answer: Answer, conversation: str | None = None) -> dict[str, Any]:
    """The `ask --json` object: the answer, the passages it was chosen from, its conversation."""
    data = answer.to_json()
    data["retrieved"] = [
        {
            "rank": rank,
            "score": round(h.score, 6),
            "chunk_id": h.chunk_id,
            "article_id": h.article_id,
            "title": h.title,
            "source": h.source,
            "start": h.start,
            "end": h.end,
        }
        for rank, h in enumerate(answer.retrieved, 1)
    ]
    if conversation is not None:
        data["conversation"] = conversation
    if answer.standalone_question is not None:
        data["standalone_question"] = answer.standalone_question
    return data


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
    # Registered first, so run last: the interpreter's exit runs full garbage collections
    # over the million objects of the loaded modules while tearing them down, ~0.3 s of
    # CPU after the last answer with nothing to reclaim. Frozen, they are skipped; they are
    # still released and every other exit handler still runs.
    atexit.register(gc.freeze)
    cli()

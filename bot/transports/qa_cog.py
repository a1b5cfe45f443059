"""The Discord commands: /ask, /sources, /reindex, /help, plain DMs and mentions.

Every interaction is acknowledged (answered or deferred) before any slow work, which then runs
in the cog's worker threads (`work.Workers`): a bounded number of answers at a time, so one
question never delays another's acknowledgement or the gateway heartbeat, even with hundreds
waiting. Every message is sent with `AllowedMentions.none()`: answers quote article text, and
an article saying "@everyone" must not ping anyone.

Delivery: discord.py already retries 429s and 5xx; `deliver` adds retries for a dropped
connection and logs what still fails as one line. A message Discord refuses (a DM the user
closed: 403, code 50007) is never followed by an apology into the same place: Discord counts
refused requests toward a temporary ban.

Shutdown: `drain` stops new questions (they are told to ask again), lets the ones in flight
finish up to a deadline and interrupts a running /reindex at once (it can always run again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from index.errors import RebuildBusy

from ..errors import SAFE_ERRORS, BadQuestion
from ..feedback import FeedbackStore
from ..formatting import (
    answer_embed,
    code_span,
    help_embed,
    md_text,
    one_line,
    sources_page,
    strip_mention,
    title_choices,
    truncate,
)
from ..models import Answer
from .work import CANCEL_GRACE_SECONDS, DrainReport, InFlight, Workers

if TYPE_CHECKING:
    from index.models import RebuildReport

    from ..service import QAService
    from ..settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_MENTIONS = discord.AllowedMentions.none()
PROGRESS_EDIT_SECONDS = 2.0  # edits of the /reindex message, at most one per this interval
FEEDBACK_TIMEOUT_SECONDS = 15 * 60.0
AUTOCOMPLETE_SECONDS = 2.0  # Discord drops autocomplete answers after 3 s
RETRY_DELAYS = (1.0, 3.0)  # before re-sending after a dropped connection or a lasting 5xx
REINDEX_BUSY = "A rebuild is already running."
REINDEX_REFUSED = (
    "Only server managers (Manage Server permission) and the bot's admins can rebuild the index."
)
REINDEX_INTERRUPTED = (
    "The bot is restarting, so this rebuild was stopped; run /reindex again once it is back."
)
RESTARTING = "The bot is restarting; please ask again in a minute."
ABANDONED = "Sorry, the bot had to restart before it could answer; please ask again."
THANKS = "Thanks for the feedback."


def new_error_id() -> str:
    """A short id to quote in an apology and find in the log."""
    return uuid.uuid4().hex[:8]


def apology(error_id: str) -> str:
    return f"Sorry, something went wrong (error id {error_id})."


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


async def deliver(what: str, send: Callable[[], Awaitable[T]]) -> T | None:
    """`send()`, or None (and one log line) when Discord cannot be given the message.

    discord.py retries 429s (after `retry_after`) and 5xx itself; a dropped connection, a
    timeout or a 5xx it gave up on are tried again here after `RETRY_DELAYS`. Any other refusal
    (403, 404, 400) is final: sending again, or an apology to the same place, would only be
    refused too.
    """
    for delay in (*RETRY_DELAYS, None):
        try:
            return await send()
        except (aiohttp.ClientConnectionError, TimeoutError, discord.DiscordServerError) as exc:
            if delay is None:
                log.warning("could not deliver %s: %s", what, _one_line(exc))
                return None
            log.info(
                "delivering %s failed (%s); trying again in %.0f s", what, _one_line(exc), delay
            )
            await asyncio.sleep(delay)
        except discord.HTTPException as exc:
            level = logging.ERROR if exc.status == 400 else logging.WARNING  # 400: our payload
            log.log(level, "could not deliver %s: %s", what, _one_line(exc))
            return None
    return None  # not reached: the last delay is None


class Cooldown:
    """One question per `seconds` per user; `seconds` is read on every check (0 disables)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: dict[int, float] = {}

    def retry_after(self, user_id: int, now: float | None = None) -> float:
        """Seconds until `user_id` may ask again; 0 when they may ask now."""
        if self.seconds <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        last = self._last.get(user_id)
        if last is None:
            return 0.0
        return max(0.0, last + self.seconds - now)

    def consume(self, user_id: int, now: float | None = None) -> None:
        if self.seconds <= 0:
            return
        now = time.monotonic() if now is None else now
        self._last[user_id] = now
        if len(self._last) > 10_000:  # forget users whose cooldown is long over
            horizon = now - self.seconds
            self._last = {u: t for u, t in self._last.items() if t > horizon}

    @staticmethod
    def message(retry_after: float) -> str:
        return f"You're asking too fast — try again in {max(1, math.ceil(retry_after))} s."


# ---------------------------------------------------------------------------- feedback view


class FeedbackView(discord.ui.View):
    """👍/👎 under an answer; each click stores one row in the feedback database."""

    def __init__(
        self,
        store: FeedbackStore,
        answer: Answer,
        index_version: str | None,
        *,
        workers: Workers | None = None,
        timeout: float = FEEDBACK_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(timeout=timeout)
        self.store = store
        self.answer = answer
        self.index_version = index_version
        self.workers = workers or Workers("feedback")
        self._voters: set[int] = set()

    @discord.ui.button(emoji="👍", style=discord.ButtonStyle.secondary)
    async def helpful(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._vote(interaction, 1)

    @discord.ui.button(emoji="👎", style=discord.ButtonStyle.secondary)
    async def unhelpful(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._vote(interaction, -1)

    async def _vote(self, interaction: discord.Interaction, vote: int) -> None:
        if interaction.user.id in self._voters:
            await interaction.response.send_message(
                "You already rated this answer.", ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        self._voters.add(interaction.user.id)
        await self.workers.run(
            self.store.record_answer,
            user_id=interaction.user.id,
            answer=self.answer,
            vote=vote,
            index_version=self.index_version,
        )
        await interaction.response.send_message(
            THANKS, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any], /
    ) -> None:
        error_id = new_error_id()
        log.error("error id %s: feedback button failed", error_id, exc_info=error)
        await _apologise(interaction, error_id)


async def _apologise(interaction: discord.Interaction, error_id: str) -> None:
    if interaction.response.is_done():
        send = interaction.followup.send
    else:
        send = interaction.response.send_message  # type: ignore[assignment]
    await deliver(
        f"the apology for error id {error_id}",
        lambda: send(apology(error_id), ephemeral=True, allowed_mentions=NO_MENTIONS),
    )


def _is_dm(message: discord.Message) -> bool:
    """A direct message (or group DM) to the bot; messages in guilds the client has not
    cached yet arrive with `guild` None too, but in a partial guild channel, not a DM."""
    return message.guild is None and isinstance(
        message.channel, discord.DMChannel | discord.GroupChannel
    )


def _where(message: discord.Message) -> str:
    kind = "DM channel" if _is_dm(message) else "channel"
    return f"{kind} {message.channel.id}"


# ---------------------------------------------------------------------------- rebuild progress


class _Progress:
    """Receives `(stage, done, total)` from the rebuild thread; read from the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.latest: tuple[str, int, int] | None = None
        self.changed = asyncio.Event()

    def __call__(self, stage: str, done: int, total: int) -> None:  # in the rebuild thread
        with contextlib.suppress(RuntimeError):  # the loop closed under an abandoned rebuild
            self._loop.call_soon_threadsafe(self._set, stage, done, total)

    def _set(self, stage: str, done: int, total: int) -> None:
        self.latest = (stage, done, total)
        self.changed.set()

    def text(self) -> str:
        if self.latest is None:
            return "Rebuilding the index…"
        stage, done, total = self.latest
        label = {
            "load": "reading articles",
            "chunk": "splitting articles into passages",
            "embed": "embedding passages",
            "write": "writing the new index",
            "done": "finishing",
        }.get(stage, stage)
        count = f" ({done:,}/{total:,})" if total else ""
        return f"Rebuilding the index… {label}{count}"


def rebuild_summary(report: RebuildReport) -> str:
    """What /reindex did, in one short message."""
    counts = (
        f"{report.articles:,} articles, {report.chunks:,} chunks "
        f"(added {report.added:,}, updated {report.updated:,}, removed {report.removed:,}, "
        f"unchanged {report.unchanged:,}, skipped {len(report.skipped):,})"
    )
    seconds = f"{report.seconds:.1f} s"
    if report.published:
        text = f"Index rebuilt in {seconds}: {counts}."
    else:
        text = f"The index was already up to date ({seconds}): {counts}."
    if report.skipped:
        lines = [
            f"- {code_span(s.path, 80)}: {md_text(one_line(s.reason), 120)}"
            for s in report.skipped[:5]
        ]
        more = len(report.skipped) - len(lines)
        text += "\nSkipped:\n" + "\n".join(lines) + (f"\n… and {more:,} more" if more else "")
    return truncate(text, 2000)


# ---------------------------------------------------------------------------- the cog


class QACog(commands.Cog, name="Questions"):
    """Questions about the articles, answered with numbered sources."""

    def __init__(
        self,
        bot: commands.Bot,
        settings: Settings,
        service: QAService,
        feedback: FeedbackStore | None = None,
    ) -> None:
        self.bot = bot
        self.settings = settings
        self.service = service
        self.feedback = feedback or FeedbackStore(settings.feedback_db)
        self.cooldown = Cooldown(settings.discord_cooldown_seconds)
        self.inflight = InFlight()
        self.answer_workers = Workers("answer", settings.discord_answer_workers)
        self.workers = Workers("discord-io")  # quick reads and writes: articles, feedback
        self._rebuilds: set[asyncio.Task[Any]] = set()
        self._reindex_lock = asyncio.Lock()
        self._titles: tuple[str | None, list[str]] | None = None
        self._previous_tree_error: Any = None

    async def cog_load(self) -> None:
        tree = self.bot.tree
        self._previous_tree_error = tree.on_error
        tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        if self._previous_tree_error is not None:
            self.bot.tree.on_error = self._previous_tree_error  # type: ignore[method-assign]

    async def drain(self, seconds: float) -> DrainReport:
        """Refuse new work, finish what is in flight for up to `seconds`, stop the rest."""
        return await self.inflight.drain(seconds, cancel_first=set(self._rebuilds))

    # ------------------------------------------------------------------ shared answering

    async def _answer(self, question: str) -> Answer:
        return await self.answer_workers.run(self.service.answer, question)

    def _feedback_view(self, answer: Answer) -> FeedbackView:
        return FeedbackView(
            self.feedback, answer, self.service.index_version(), workers=self.workers
        )

    def _admission(self, user_id: int, question: str) -> str | None:
        """Why this question is refused right now (restart, cooldown, bad question), else None."""
        if self.inflight.stopping:
            return RESTARTING
        wait = self.cooldown.retry_after(user_id)
        if wait > 0:
            return Cooldown.message(wait)
        try:
            self.service.clean(question)
        except BadQuestion as exc:
            return str(exc)
        self.cooldown.consume(user_id)
        return None

    async def _refuse(self, interaction: discord.Interaction, text: str) -> None:
        """Answer the interaction at once, privately, with `text`."""
        await deliver(
            f"a reply to interaction {interaction.id}",
            lambda: interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            ),
        )

    async def _defer(self, interaction: discord.Interaction, *, ephemeral: bool) -> bool:
        """Acknowledge with "thinking…"; False when Discord no longer knows the interaction."""
        try:
            await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not acknowledge interaction %s: %s", interaction.id, _one_line(exc))
            return False
        return True

    async def _followup(self, interaction: discord.Interaction, what: str, **kwargs: Any) -> None:
        await deliver(
            f"{what} for interaction {interaction.id}",
            lambda: interaction.followup.send(allowed_mentions=NO_MENTIONS, **kwargs),
        )

    async def _tell_abandoned(self, interaction: discord.Interaction) -> None:
        """The answer will not come (shutdown deadline): say so, briefly, if Discord is quick."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                interaction.followup.send(ABANDONED, ephemeral=True, allowed_mentions=NO_MENTIONS),
                CANCEL_GRACE_SECONDS / 2,
            )

    # ------------------------------------------------------------------ /ask

    @app_commands.command(name="ask")
    @app_commands.describe(
        question="Your question about the articles",
        private="Show the answer only to you (default: the bot's setting)",
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def ask(
        self, interaction: discord.Interaction, question: str, private: bool | None = None
    ) -> None:
        """Ask a question; the answer cites the articles it comes from."""
        with self.inflight.track():
            refusal = self._admission(interaction.user.id, question)
            if refusal is not None:
                await self._refuse(interaction, refusal)
                return
            ephemeral = self.settings.discord_private_by_default if private is None else private
            if not await self._defer(interaction, ephemeral=ephemeral):
                return
            try:
                answer = await self._answer(question)
            except asyncio.CancelledError:
                await self._tell_abandoned(interaction)
                raise
            except SAFE_ERRORS as exc:
                await self._followup(
                    interaction, "an error message", content=str(exc), ephemeral=True
                )
                return
            except Exception:
                error_id = new_error_id()
                log.exception("error id %s: /ask failed for question %r", error_id, question)
                await self._followup(
                    interaction, "an apology", content=apology(error_id), ephemeral=True
                )
                return
            await self._followup(
                interaction,
                "the answer",
                embed=answer_embed(answer),
                view=self._feedback_view(answer),
                ephemeral=ephemeral,
            )

    # ------------------------------------------------------------------ /sources

    @app_commands.command(name="sources")
    @app_commands.describe(
        query="Only list articles whose title contains this", page="Page number (10 per page)"
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def sources(
        self,
        interaction: discord.Interaction,
        query: str | None = None,
        page: app_commands.Range[int, 1, 100_000] = 1,
    ) -> None:
        """List the articles the bot answers from."""
        with self.inflight.track():
            if self.inflight.stopping:
                await self._refuse(interaction, RESTARTING)
                return
            if not await self._defer(
                interaction, ephemeral=self.settings.discord_private_by_default
            ):
                return
            try:
                articles = await self.workers.run(self.service.articles)
            except SAFE_ERRORS as exc:
                await self._followup(
                    interaction, "an error message", content=str(exc), ephemeral=True
                )
                return
            await self._followup(
                interaction, "the list", embed=sources_page(articles, query=query, page=page)
            )

    @sources.autocomplete("query")
    async def _complete_title(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        try:
            titles = await asyncio.wait_for(self._article_titles(), AUTOCOMPLETE_SECONDS)
        except (TimeoutError, *SAFE_ERRORS):
            return []
        return [app_commands.Choice(name=t, value=t) for t in title_choices(titles, current)]

    async def _article_titles(self) -> list[str]:
        """Titles of the indexed articles, re-read when the published version changes."""
        version = self.service.index_version()
        if self._titles is not None and self._titles[0] == version and version is not None:
            return self._titles[1]
        articles = await self.workers.run(self.service.articles)
        titles = [a.title for a in articles]
        self._titles = (self.service.index_version(), titles)
        return titles

    # ------------------------------------------------------------------ /reindex

    def _is_admin(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id in self.settings.discord_admin_user_ids:
            return True
        return interaction.guild_id is not None and interaction.permissions.manage_guild

    @app_commands.command(name="reindex")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def reindex(self, interaction: discord.Interaction) -> None:
        """Rebuild the index from the articles folder (server managers and bot admins)."""
        with self.inflight.track():
            if self.inflight.stopping:
                await self._refuse(interaction, RESTARTING)
                return
            if not self._is_admin(interaction):
                await self._refuse(interaction, REINDEX_REFUSED)
                return
            if self._reindex_lock.locked():
                await self._refuse(interaction, REINDEX_BUSY)
                return
            async with self._reindex_lock:
                task = asyncio.current_task()
                assert task is not None
                self._rebuilds.add(task)
                try:
                    await self._rebuild(interaction)
                finally:
                    self._rebuilds.discard(task)

    async def _rebuild(self, interaction: discord.Interaction) -> None:
        if not await self._defer(interaction, ephemeral=True):
            return
        progress = _Progress(asyncio.get_running_loop())
        updater = asyncio.create_task(self._show_progress(interaction, progress))
        try:
            report = await Workers("rebuild").run(self.service.reindex, progress)
        except asyncio.CancelledError:
            log.warning("rebuild from /reindex interrupted: the bot is stopping")
            updater.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    interaction.edit_original_response(
                        content=REINDEX_INTERRUPTED, allowed_mentions=NO_MENTIONS
                    ),
                    CANCEL_GRACE_SECONDS / 2,
                )
            raise
        except RebuildBusy:
            text = REINDEX_BUSY
        except SAFE_ERRORS as exc:
            text = str(exc)
        except (FileNotFoundError, NotADirectoryError) as exc:
            text = f"Rebuild failed: the articles folder is missing ({exc})."
        except Exception:
            error_id = new_error_id()
            log.exception("error id %s: /reindex failed", error_id)
            text = apology(error_id)
        else:
            log.info("rebuild from /reindex: %s", report.to_json())
            text = rebuild_summary(report)
        finally:
            updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await updater
        await deliver(
            f"the rebuild result for interaction {interaction.id}",
            lambda: interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS),
        )

    async def _show_progress(self, interaction: discord.Interaction, progress: _Progress) -> None:
        """Edit the /reindex message with the latest stage, at most every 2 s."""
        shown = None
        while True:
            await progress.changed.wait()
            progress.changed.clear()
            text = progress.text()
            if text != shown:
                try:
                    await interaction.edit_original_response(
                        content=text, allowed_mentions=NO_MENTIONS
                    )
                except (discord.HTTPException, aiohttp.ClientError) as exc:
                    log.warning("could not show rebuild progress: %s", _one_line(exc))
                shown = text
            await asyncio.sleep(PROGRESS_EDIT_SECONDS)

    # ------------------------------------------------------------------ /help

    @app_commands.command(name="help")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def help(self, interaction: discord.Interaction) -> None:
        """What this bot does and how to use it."""
        with self.inflight.track():
            embed = help_embed(
                cooldown_seconds=self.settings.discord_cooldown_seconds,
                answer_mentions=self.settings.discord_answer_mentions,
            )
            await deliver(
                f"help for interaction {interaction.id}",
                lambda: interaction.response.send_message(
                    embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS
                ),
            )

    # ------------------------------------------------------------------ DMs and mentions

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if not _is_dm(message) and not (
            self.settings.discord_answer_mentions and any(u.id == me.id for u in message.mentions)
        ):
            return
        with self.inflight.track():
            question = strip_mention(message.content, me.id)
            try:
                await self._answer_message(message, question)
            except Exception:  # a bug past our own handling: the traceback goes to the log
                error_id = new_error_id()
                log.exception("error id %s: answering message %s failed", error_id, message.id)
                await self._reply(message, content=apology(error_id))

    async def _answer_message(self, message: discord.Message, question: str) -> None:
        refusal = self._admission(message.author.id, question)
        if refusal is not None:
            await self._reply(message, content=refusal)
            return
        try:
            async with contextlib.AsyncExitStack() as typing:
                try:
                    await typing.enter_async_context(message.channel.typing())
                except discord.Forbidden as exc:  # e.g. 50007: the user closed their DMs
                    log.warning(
                        "cannot answer message %s in %s: %s", message.id, _where(message),
                        _one_line(exc),
                    )  # fmt: skip
                    return
                except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
                    log.info("no typing indicator in %s: %s", _where(message), _one_line(exc))
                answer = await self._answer(question)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._send(message, content=ABANDONED), CANCEL_GRACE_SECONDS / 2
                )
            raise
        except SAFE_ERRORS as exc:
            await self._reply(message, content=str(exc))
            return
        await self._reply(message, embed=answer_embed(answer), view=self._feedback_view(answer))

    async def _send(self, message: discord.Message, **kwargs: Any) -> discord.Message:
        if not _is_dm(message):
            # a reply; AllowedMentions.none() (replied_user False) keeps it from pinging
            kwargs["reference"] = message.to_reference(fail_if_not_exists=False)
        return await message.channel.send(allowed_mentions=NO_MENTIONS, **kwargs)

    async def _reply(self, message: discord.Message, **kwargs: Any) -> discord.Message | None:
        """Answer `message` where it was sent; None (one log line) when that is refused."""
        return await deliver(
            f"the reply to message {message.id} in {_where(message)}",
            lambda: self._send(message, **kwargs),
        )

    # ------------------------------------------------------------------ errors

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Last resort for command errors: log the traceback with an id, apologise."""
        original = getattr(error, "original", error)
        if isinstance(original, SAFE_ERRORS):
            text = str(original)
        elif isinstance(original, discord.NotFound):
            log.warning("interaction %s expired: %s", interaction.id, _one_line(original))
            return
        else:
            error_id = new_error_id()
            name = interaction.command.qualified_name if interaction.command else "?"
            log.error("error id %s in /%s", error_id, name, exc_info=error)
            await _apologise(interaction, error_id)
            return
        if interaction.response.is_done():
            send = interaction.followup.send
        else:
            send = interaction.response.send_message  # type: ignore[assignment]
        await deliver(
            f"an error message for interaction {interaction.id}",
            lambda: send(text, ephemeral=True, allowed_mentions=NO_MENTIONS),
        )

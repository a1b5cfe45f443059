"""The Discord commands: /ask, /sources, /reindex, /help, plain DMs, mentions and threads.

Every interaction is acknowledged (answered or deferred) before any slow work, which then runs
in the cog's worker threads (`work.Workers`): a bounded number of answers at a time, so one
question never delays another's acknowledgement or the gateway heartbeat, even with hundreds
waiting. Every message is sent with `AllowedMentions.none()`: answers quote article text, and
an article saying "@everyone" must not ping anyone.

Delivery: discord.py already retries 429s and 5xx; `deliver` adds retries for a dropped
connection and logs what still fails as one line. A message Discord refuses (a DM the user
closed: 403, code 50007) is never followed by an apology into the same place: Discord counts
refused requests toward a temporary ban.

Conversations: every question is asked in a conversation (`conversation_map.Route`): the
DM's, the one a replied-to answer belongs to, the one of the bot's thread it is asked in,
or a new one, whose answer starts a thread (`DISCORD_THREADS=auto`). Answers come from
`QAService.answer_stream`: with an LLM the message is edited as the text arrives, at most
once a second (`streaming.py`), and the last edit is the validated answer; the extractive
answer is sent at once. The per-user limit is a token bucket (`bot/ratelimit.py`): a burst
of follow-ups passes, a flood is told once to slow down and then ignored.

Shutdown: `drain` stops new questions (they are told to ask again), lets the ones in flight
finish up to a deadline and interrupts a running /reindex at once (it can always run again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

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
from ..ratelimit import TokenBucket
from .conversation_cog import NewTopicButton
from .conversation_map import (
    CREATE_PUBLIC_THREADS,
    SEND_MESSAGES_IN_THREADS,
    Route,
    ThreadGate,
    archive_minutes,
    dm_conversation,
    new_conversation,
    thread_name,
)
from .delivery import NO_MENTIONS, RETRY_DELAYS, apology, deliver, new_error_id
from .delivery import error_line as _one_line
from .streaming import LiveText, partial_embed, pump
from .work import CANCEL_GRACE_SECONDS, DrainReport, InFlight, Workers

if TYPE_CHECKING:
    from index.models import RebuildReport

    from ..service import QAService
    from ..settings import Settings

log = logging.getLogger(__name__)

__all__ = ["NO_MENTIONS", "RETRY_DELAYS", "QACog", "apology", "deliver", "new_error_id"]

PROGRESS_EDIT_SECONDS = 2.0  # edits of the /reindex message, at most one per this interval
FEEDBACK_TIMEOUT_SECONDS = 15 * 60.0
AUTOCOMPLETE_SECONDS = 2.0  # Discord drops autocomplete answers after 3 s
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
FOLLOW_UPS_HELP = (
    'Ask a follow-up ("why?", "when was that?") and I keep the conversation in mind: in '
    "the thread I start under an answer in a server (no mention needed there), by replying "
    "to one of my answers, or in DMs within a while of your last question. "
    "**New topic** under a DM answer or `/forget` starts afresh."
)


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


class _Target(Protocol):
    """Where an answer is delivered: a reply to a message, or an interaction's follow-up."""

    async def send(self, **kwargs: Any) -> discord.Message | None: ...
    async def edit(self, message: discord.Message, **kwargs: Any) -> None: ...
    async def error(self, text: str) -> None: ...


class _MessageTarget:
    def __init__(self, cog: QACog, message: discord.Message) -> None:
        self.cog = cog
        self.message = message

    async def send(self, **kwargs: Any) -> discord.Message | None:
        return await self.cog._reply(self.message, **kwargs)

    async def edit(self, message: discord.Message, **kwargs: Any) -> None:
        await deliver(
            f"an edit of message {message.id} in {_where(self.message)}",
            lambda: message.edit(allowed_mentions=NO_MENTIONS, **kwargs),
        )

    async def error(self, text: str) -> None:
        await self.cog._reply(self.message, content=text)


class _InteractionTarget:
    def __init__(self, interaction: discord.Interaction, *, ephemeral: bool) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral

    async def send(self, **kwargs: Any) -> discord.Message | None:
        interaction = self.interaction
        return await deliver(
            f"the answer for interaction {interaction.id}",
            lambda: interaction.followup.send(
                wait=True, ephemeral=self.ephemeral, allowed_mentions=NO_MENTIONS, **kwargs
            ),
        )

    async def edit(self, message: discord.Message, **kwargs: Any) -> None:
        await deliver(
            f"an edit of the answer for interaction {self.interaction.id}",
            lambda: message.edit(allowed_mentions=NO_MENTIONS, **kwargs),
        )

    async def error(self, text: str) -> None:
        interaction = self.interaction
        await deliver(
            f"an error message for interaction {interaction.id}",
            lambda: interaction.followup.send(
                content=text, ephemeral=True, allowed_mentions=NO_MENTIONS
            ),
        )


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
        self.cooldown = TokenBucket(settings.discord_cooldown_seconds, settings.discord_burst)
        self.threads = ThreadGate()
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

    def _answer_view(self, answer: Answer, route: Route | None) -> FeedbackView:
        view = FeedbackView(
            self.feedback, answer, self.service.index_version(), workers=self.workers
        )
        if route is not None and route.dm:
            view.add_item(NewTopicButton())
        return view

    def _admission(self, user_id: int, question: str) -> tuple[str, bool] | None:
        """Why this question is refused right now (restart, rate limit, bad question), and
        whether to say so (a user past the rate limit is told once), else None."""
        if self.inflight.stopping:
            return RESTARTING, True
        wait = self.cooldown.retry_after(user_id)
        if wait > 0:
            return TokenBucket.message(wait), self.cooldown.should_warn(user_id)
        try:
            self.service.clean(question)
        except BadQuestion as exc:
            return str(exc), True
        self.cooldown.consume(user_id)
        return None

    async def _respond(self, question: str, route: Route | None, target: _Target) -> None:
        """Answer `question` at `target`: streamed when an LLM writes it, else at once.

        The first message of the answer is linked to its conversation (and starts a thread
        when the route says so) as soon as it exists; with an LLM its text is edited in at
        most once per second, and the last edit carries the validated answer.
        """
        cid = route.conversation if route is not None else None
        sent: discord.Message | None = None
        if route is not None and route.in_thread is not None:  # before any answer is seen
            await self.workers.run(
                self.service.conversations.link_message, str(route.in_thread), route.conversation
            )

        refused = False  # Discord would not take the first message: never ask again

        async def send_first(**kwargs: Any) -> None:
            nonlocal sent, refused
            sent = await target.send(**kwargs)
            refused = sent is None
            if sent is not None and route is not None:
                await self._place(sent, route, question)

        async def show(text: str) -> None:
            embed = partial_embed(question, text)
            if sent is None and not refused:
                await send_first(embed=embed)
            elif sent is not None:
                await target.edit(sent, embed=embed)

        live: LiveText | None = None
        answer: Answer | None = None
        try:
            async for item in pump(
                self.answer_workers, lambda: self.service.answer_stream(question, cid)
            ):
                if isinstance(item, Answer):
                    answer = item
                elif item:
                    if live is None:
                        live = LiveText(show)
                    live.append(item)
            if answer is None:
                raise RuntimeError("the answer stream ended without an answer")
        except SAFE_ERRORS as exc:
            if live is not None:
                await live.finish()
            if sent is not None:
                await target.edit(sent, content=str(exc), embed=None)
            elif not refused:
                await target.error(str(exc))
            return
        except BaseException:
            if live is not None:
                await live.abandon()
            raise
        final: dict[str, Any] = {
            "embed": answer_embed(answer),
            "view": self._answer_view(answer, route),
        }
        if live is not None:
            await live.finish()
        if sent is not None:
            await target.edit(sent, **final)
        elif not refused:
            await send_first(**final)

    async def _place(self, sent: discord.Message, route: Route, question: str) -> None:
        """Link a new answer message to its conversation; start its thread if due."""
        conversations = self.service.conversations
        await self.workers.run(conversations.link_message, str(sent.id), route.conversation)
        if route.start_thread:
            thread_id = await self._start_thread(sent.channel.id, sent.id, question)
            if thread_id is not None:
                await self.workers.run(
                    conversations.link_message, str(thread_id), route.conversation
                )

    async def _start_thread(self, channel_id: int, message_id: int, question: str) -> int | None:
        """A thread started from the answer, named after the question; None when refused."""
        if not self.threads.allowed(channel_id):
            return None
        try:
            data = await self.bot.http.start_thread_with_message(
                channel_id,
                message_id,
                name=thread_name(question),
                auto_archive_duration=archive_minutes(  # type: ignore[arg-type]
                    self.settings.conversation_idle_minutes
                ),
                reason="follow-up questions about an answer",
            )
        except discord.Forbidden as exc:
            self.threads.refuse(channel_id, f"missing permission: {_one_line(exc)}")
            return None
        except discord.HTTPException as exc:
            self.threads.refuse(channel_id, _one_line(exc))
            return None
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not start a thread in channel %s: %s", channel_id, _one_line(exc))
            return None
        return int(data["id"])

    def _threads_wanted(self, channel_id: int, permissions: discord.Permissions | None) -> bool:
        """Whether an answer in this channel should start a thread (and may, as far as known)."""
        if self.settings.discord_threads != "auto":
            return False
        if permissions is not None:
            needed = discord.Permissions(CREATE_PUBLIC_THREADS | SEND_MESSAGES_IN_THREADS)
            if not needed.is_subset(permissions):
                self.threads.refuse(
                    channel_id, "missing permission: Create Public Threads / Send Messages in "
                    "Threads",
                )  # fmt: skip
                return False
        return self.threads.allowed(channel_id)

    async def _linked(self, snowflake: int) -> str | None:
        """The live conversation a bot message (or a thread started from one) belongs to."""
        return await self.workers.run(self.service.conversations.for_message, str(snowflake))

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

    async def _interaction_route(
        self, interaction: discord.Interaction, *, ephemeral: bool
    ) -> Route | None:
        """The conversation of an /ask: the DM's, the bot's thread's, or a new one (None:
        a private answer in a server, which nobody can reply to)."""
        channel = interaction.channel
        channel_id = interaction.channel_id
        if channel_id is None:
            return None
        if interaction.guild_id is None:
            if isinstance(channel, discord.DMChannel):
                return Route(dm_conversation(channel_id), dm=True)
            return Route(new_conversation(interaction.id))
        if ephemeral:
            return None
        cid = await self._linked(channel_id)
        if cid is not None:
            return Route(cid, in_thread=channel_id)
        threadable = isinstance(channel, discord.TextChannel)  # text and announcement channels
        start = threadable and self._threads_wanted(channel_id, interaction.app_permissions)
        return Route(new_conversation(interaction.id), start_thread=start)

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
                await self._refuse(interaction, refusal[0])
                return
            ephemeral = self.settings.discord_private_by_default if private is None else private
            if not await self._defer(interaction, ephemeral=ephemeral):
                return
            try:
                route = await self._interaction_route(interaction, ephemeral=ephemeral)
                await self._respond(
                    question, route, _InteractionTarget(interaction, ephemeral=ephemeral)
                )
            except asyncio.CancelledError:
                await self._tell_abandoned(interaction)
                raise
            except Exception:
                error_id = new_error_id()
                log.exception("error id %s: /ask failed for question %r", error_id, question)
                await self._followup(
                    interaction, "an apology", content=apology(error_id), ephemeral=True
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
            embed.add_field(name="Follow-up questions", value=FOLLOW_UPS_HELP, inline=False)
            seconds = self.settings.discord_cooldown_seconds
            if seconds > 0:
                embed.set_footer(
                    text=f"Up to {self.settings.discord_burst} questions in a row, then one "
                    f"every {seconds:g} s per person."
                )
            await deliver(
                f"help for interaction {interaction.id}",
                lambda: interaction.response.send_message(
                    embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS
                ),
            )

    # ------------------------------------------------------------------ DMs and mentions

    async def _message_route(
        self, message: discord.Message, me: discord.ClientUser
    ) -> Route | None:
        """The conversation a message continues or starts; None when it is not for the bot.

        In order: a reply to one of the bot's answers continues that answer's conversation;
        a DM continues the DM's; a message in a thread linked to a live conversation
        continues it; a mention starts a new conversation (and, in a text channel, a
        thread from the answer).
        """
        dm = _is_dm(message)
        channel = message.channel
        own_thread = isinstance(channel, discord.Thread) and channel.owner_id == me.id
        in_thread = channel.id if own_thread else None
        reference = message.reference
        if reference is not None and reference.message_id is not None:
            cid = await self._linked(reference.message_id)
            if cid is not None:
                return Route(cid, dm=dm)
            replied = reference.resolved
            if not dm and isinstance(replied, discord.Message) and replied.author.id == me.id:
                return Route(new_conversation(message.id), in_thread=in_thread)
        if dm:
            return Route(dm_conversation(channel.id), dm=True)
        cid = await self._linked(channel.id)
        if cid is not None:
            return Route(cid, in_thread=channel.id)
        mentioned = any(u.id == me.id for u in message.mentions)
        if not (self.settings.discord_answer_mentions and mentioned):
            return None
        start = False
        if isinstance(channel, discord.TextChannel):
            member = channel.guild.me
            start = self._threads_wanted(
                channel.id, channel.permissions_for(member) if member is not None else None
            )
        elif isinstance(channel, discord.PartialMessageable):  # not cached: try and see
            start = self._threads_wanted(channel.id, None)
        return Route(new_conversation(message.id), start_thread=start, in_thread=in_thread)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return  # thread created, pins, joins: nothing to answer
        with self.inflight.track():
            route = await self._message_route(message, me)
            if route is None:
                return
            log.debug("message %s in %s belongs to %s", message.id, _where(message), route)
            question = strip_mention(message.content, me.id)
            if not question and route.in_thread is not None and not route.dm:
                return  # a picture or a sticker in the bot's thread is not a question
            try:
                await self._answer_message(message, question, route)
            except Exception:  # a bug past our own handling: the traceback goes to the log
                error_id = new_error_id()
                log.exception("error id %s: answering message %s failed", error_id, message.id)
                await self._reply(message, content=apology(error_id))

    async def _answer_message(self, message: discord.Message, question: str, route: Route) -> None:
        refusal = self._admission(message.author.id, question)
        if refusal is not None:
            text, tell = refusal
            if tell:
                await self._reply(message, content=text)
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
                await self._respond(question, route, _MessageTarget(self, message))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._send(message, content=ABANDONED), CANCEL_GRACE_SECONDS / 2
                )
            raise

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

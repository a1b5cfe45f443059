"""The Discord bot: client setup, command sync, index watching and the `run_bot` entry point.

Endpoints: discord.py sends every REST call, webhook and interaction-callback calls included,
through the one class attribute `discord.http.Route.BASE` (`discord.webhook.async_` imports
that same `Route`). The bot is auto-sharded: it asks `GET /gateway/bot` for the shard count
Discord recommends and the gateway URL, and opens one websocket per shard there (a bot past
2,500 servers must shard; below that it is one shard). `configure_endpoints` points the API
base, and `DiscordWebSocket.DEFAULT_GATEWAY` (used instead when DISCORD_SHARD_COUNT is set), at
the settings, which is how tests run the real client against a local Discord double.

Several processes can split one bot: each runs the shards in `DISCORD_SHARD_IDS` out of
`DISCORD_SHARD_COUNT`, and Discord routes each server's events to exactly one shard, so no
question is answered twice. With `VECTOR_STORE=milvus` they all answer from one collection.

Stopping: the first SIGTERM/SIGINT drains (`QACog.drain`: no new questions, the ones in flight
delivered for up to `discord_drain_seconds`) and then closes the connection and the HTTP
session; a second signal skips what is left of the drain. Nothing the bot runs is waited for
past that (see `work.py`), so a stuck rebuild cannot keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import time
from typing import TYPE_CHECKING

import discord
import discord.gateway
import discord.http
import yarl
from discord.ext import commands

from ..feedback import FeedbackStore
from .conversation_cog import ConversationsCog
from .qa_cog import QACog
from .sources_cog import SourcesCog
from .work import Workers

if TYPE_CHECKING:
    from pathlib import Path

    from ..service import QAService
    from ..settings import Settings

log = logging.getLogger(__name__)

SYNC_HASH_FILE = "command-sync.hash"
GUILD_READY_TIMEOUT = 0.5  # seconds to wait for GUILD_CREATEs after READY (default 2)
HEARTBEAT_TIMEOUT = 60.0  # silence on the gateway before it is dropped and resumed


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at `discord_api_base_url` and `discord_gateway_url`.

    Both are process-wide class attributes in discord.py, so this affects every client of
    the process; call it before the client logs in.
    """
    discord.http.Route.BASE = settings.discord_api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def command_payload_hash(bot: commands.Bot) -> str:
    """A digest of exactly what a global sync would send (plus the application id)."""
    payload = [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    blob = json.dumps(
        {"application_id": bot.application_id, "commands": payload},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class QABot(commands.AutoShardedBot):
    """An auto-sharded bot holding the one `QAService` of the process."""

    def __init__(
        self,
        settings: Settings,
        service: QAService,
        *,
        feedback: FeedbackStore | None = None,
        force_sync: bool = False,
        watch_index: bool = True,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # to read DMs and mentions
        intents.dm_messages = True
        super().__init__(
            command_prefix=commands.when_mentioned,  # unused: no prefix commands
            help_command=None,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=GUILD_READY_TIMEOUT,
            heartbeat_timeout=heartbeat_timeout,
            shard_count=settings.discord_shard_count,
            shard_ids=settings.discord_shard_ids or None,
        )
        self.settings = settings
        self.service = service
        self.feedback = feedback or FeedbackStore(settings.feedback_db)
        self.force_sync = force_sync
        self.watch_index = watch_index
        self.synced: list[str] = []  # where commands were synced at startup: "global", guild ids
        self._watcher: asyncio.Task[None] | None = None
        self._index_workers = Workers("index-watch", 1)
        self.qa: QACog | None = None
        self._stopping: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        self.qa = QACog(self, self.settings, self.service, self.feedback)
        await self.add_cog(self.qa)
        await self.add_cog(SourcesCog(self, self.settings, self.service))  # /add, feed refresh
        await self.add_cog(ConversationsCog(self, self.service))
        await self.sync_commands(force=self.force_sync)
        if self.watch_index:
            self._watcher = asyncio.create_task(self._watch_index(), name="index-watcher")

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: `QACog.on_message` handles DMs and mentions."""

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (id %s)", self.user, self.user and self.user.id)

    # ---------------------------------------------------------------- stopping

    def request_stop(self) -> None:
        """What SIGTERM/SIGINT do: drain then close; a second request skips the drain."""
        if self._stopping is None:
            self._stopping = asyncio.create_task(self.shutdown(), name="shutdown")
        elif self.qa is not None:
            log.info("second stop signal: stopping now")
            self.qa.inflight.hurry()

    async def shutdown(self) -> None:
        """Finish the answers in flight (up to `discord_drain_seconds`), then close."""
        started = time.monotonic()
        try:
            if self.qa is not None:
                log.info(
                    "stopping: finishing %d requests in flight (up to %.0f s)",
                    len(self.qa.inflight), self.settings.discord_drain_seconds,
                )  # fmt: skip
                report = await self.qa.drain(self.settings.discord_drain_seconds)
                log.info(
                    "drained in %.1f s: %d finished, %d abandoned",
                    report.seconds, report.finished, report.abandoned,
                )  # fmt: skip
        finally:
            await self.close()
            log.info("stopped %.1f s after the stop signal", time.monotonic() - started)

    async def wait_stopped(self) -> None:
        """Until a requested shutdown has finished (at once when none was requested)."""
        if self._stopping is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stopping

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await super().close()

    # ---------------------------------------------------------------- command sync

    @property
    def sync_hash_path(self) -> Path:
        return self.settings.feedback_db.parent / SYNC_HASH_FILE

    async def sync_commands(self, *, force: bool = False) -> None:
        """Register the slash commands with Discord (never from on_ready).

        With `DISCORD_GUILD_IDS`, the commands are copied to those guilds and synced there
        (instant, meant for development). Otherwise they are synced globally, but only when
        the payload changed since the last global sync (or `force`): Discord rate-limits
        command registration.
        """
        self.synced = []
        if self.settings.discord_guild_ids:
            for guild_id in self.settings.discord_guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                commands_ = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(commands_), guild_id)
                self.synced.append(str(guild_id))
            return
        digest = command_payload_hash(self)
        path = self.sync_hash_path
        try:
            previous = path.read_text(encoding="utf-8").strip()
        except OSError:
            previous = None
        if previous == digest and not force:
            log.info("slash commands unchanged since the last global sync; not syncing")
            return
        commands_ = await self.tree.sync()
        log.info("synced %d global commands", len(commands_))
        self.synced.append("global")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(digest + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # not fatal: the next start just syncs again
            log.warning("could not record the command sync in %s: %s", path, exc)

    # ---------------------------------------------------------------- index watching

    async def _watch_index(self) -> None:
        """Follow the published index, so a rebuild by the CLI is served without restart.

        The first check also loads the model and the index, before the first question.
        """
        version = self.service.index_version()
        problem: str | None = None
        while True:
            try:
                await self._index_workers.run(self.service.live.get, force_check=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if str(exc) != problem:
                    problem = str(exc)
                    log.warning("index not available: %s", exc)
            else:
                if problem is not None:
                    log.info("index available again")
                    problem = None
                current = self.service.index_version()
                if current != version:
                    if version is None:
                        log.info("serving index version %s", current)
                    else:
                        log.info("serving index version %s (was %s)", current, version)
                    version = current
            await asyncio.sleep(self.settings.index_poll_seconds)


async def run_bot(settings: Settings, service: QAService) -> None:
    """Run the Discord bot until it is closed or stopped by SIGINT/SIGTERM (drained first).

    Logging is left to the caller (`python -m bot` configures it, and turns the errors below
    into one line).

    Raises:
        ValueError: DISCORD_TOKEN is not set.
        discord.LoginFailure: the token was refused.
        aiohttp.ClientError: the Discord API cannot be reached.
    """
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise ValueError("DISCORD_TOKEN is not set")
    configure_endpoints(settings)
    bot = QABot(settings, service)
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    installed = []
    for sig in stop_signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, bot.request_stop)
            installed.append(sig)
    try:
        async with bot:
            await bot.start(settings.discord_token.get_secret_value().strip())
        await bot.wait_stopped()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def sync_commands(settings: Settings, service: QAService, *, force: bool = True) -> list[str]:
    """Log in, sync the slash commands (globally: even when unchanged if `force`), log out.

    For a `python -m bot sync` command; returns where the commands were synced.
    """
    if settings.discord_token is None:
        raise ValueError("DISCORD_TOKEN is not set")
    configure_endpoints(settings)
    bot = QABot(settings, service, force_sync=force, watch_index=False)
    async with bot:
        await bot.login(settings.discord_token.get_secret_value().strip())
        return list(bot.synced)

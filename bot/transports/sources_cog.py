"""Live sources on Discord: `/add url`, and the background refresh of SOURCES_FILE.

`/add` lets the same people who may `/reindex` (Manage Server, or `DISCORD_ADMIN_USER_IDS`)
add an article by URL: the page is fetched under the rules of `index.sources.fetch` (a
private address is refused, with its reason, before any connection), written into the
articles folder and indexed; the reply gives its title, date and chunk count once it is
searchable, or why it failed. `/sources` (in `qa_cog`) lists each article with its date and
link.

When SOURCES_FILE lists feeds or sitemaps, they are refreshed every REFRESH_MINUTES in a
worker thread of their own, so answers never wait for a refresh; a refresh that fails is
logged and tried again next time, and the previous articles stay indexed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from index.errors import RebuildBusy
from index.sources.ingest import SourcesReport, add_urls, refresh_sources
from index.sources.sourcesfile import SourcesFileError, load_sources_file

from ..errors import SAFE_ERRORS
from ..formatting import md_text, one_line, shown_date, truncate
from .work import Workers

if TYPE_CHECKING:
    from ..service import QAService
    from ..settings import Settings

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
ADD_REFUSED = (
    "Only server managers (Manage Server permission) and the bot's admins can add articles."
)
ADD_BUSY = "An article is being added already; try again in a moment."
REFRESH_FIRST_DELAY_SECONDS = 30.0  # let the bot connect and load the index first


def add_reply(report: SourcesReport, chunks: dict[str, int], dates: dict[str, str | None]) -> str:
    """What /add says: the article's title, date and chunk count, or why it failed."""
    outcome = report.outcomes[0]
    url = md_text(one_line(outcome.url), 300)
    if outcome.status == "failed":
        return truncate(f"Could not add {url}: {md_text(one_line(outcome.reason or ''), 600)}",
                        2000)  # fmt: skip
    title = md_text(one_line(outcome.title or outcome.path or ""), 250)
    day = shown_date(dates.get(outcome.path or ""))
    when = f" ({day})" if day else ""
    n = chunks.get(outcome.path or "")
    size = f", {n} passage{'s' if n != 1 else ''}" if n is not None else ""
    if outcome.status == "unchanged":
        return f"Already indexed: **{title}**{when}{size}."
    verb = "Updated" if outcome.status == "updated" else "Added"
    return f"{verb} **{title}**{when}{size}; it is searchable now."


class SourcesCog(commands.Cog, name="Sources"):
    """Articles added by URL, and feeds kept fresh."""

    def __init__(self, bot: commands.Bot, settings: Settings, service: QAService) -> None:
        self.bot = bot
        self.settings = settings
        self.service = service
        self.workers = Workers("sources", 1)
        self._adding = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        if self.settings.sources_file is not None and self.settings.refresh_minutes > 0:
            self._refresher = asyncio.create_task(self._refresh_loop(), name="sources-refresh")

    async def cog_unload(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    # ------------------------------------------------------------------ /add

    def _is_admin(self, interaction: discord.Interaction) -> bool:
        """The rule of /reindex: a bot admin, or a member with Manage Server in a guild."""
        if interaction.user.id in self.settings.discord_admin_user_ids:
            return True
        return interaction.guild_id is not None and interaction.permissions.manage_guild

    @app_commands.command(name="add")
    @app_commands.describe(url="Address of the article (web page, PDF or text file)")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def add(
        self, interaction: discord.Interaction, url: app_commands.Range[str, 1, 2048]
    ) -> None:
        """Add an article by URL (server managers and bot admins)."""
        if not self._is_admin(interaction):
            await self._reply_now(interaction, ADD_REFUSED)
            return
        if self._adding.locked():
            await self._reply_now(interaction, ADD_BUSY)
            return
        async with self._adding:
            try:
                await interaction.response.defer(thinking=True, ephemeral=True)
            except (discord.HTTPException, TimeoutError) as exc:
                log.warning("could not acknowledge /add: %s", exc)
                return
            text = await self._add(url)
            try:
                await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:
                log.warning("could not deliver the /add result: %s", exc)

    async def _add(self, url: str) -> str:
        try:
            report = await self.workers.run(add_urls, self.settings, [url])
            outcome = report.outcomes[0]
            chunks: dict[str, int] = {}
            dates: dict[str, str | None] = {}
            if outcome.status != "failed":
                await self.workers.run(self.service.reindex)
                for article in await self.workers.run(self.service.articles):
                    if article.path == outcome.path:
                        chunks[article.path] = article.n_chunks
                        dates[article.path] = article.date
            return add_reply(report, chunks, dates)
        except RebuildBusy:
            return "The article was saved; a rebuild is running and will include it shortly."
        except SAFE_ERRORS as exc:
            return truncate(str(exc), 2000)
        except Exception:
            log.exception("/add of %s failed", url)
            return "Sorry, adding that article failed; the error is in the bot's log."

    async def _reply_now(self, interaction: discord.Interaction, text: str) -> None:
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )

    # ------------------------------------------------------------------ refresh

    async def _refresh_loop(self) -> None:
        await asyncio.sleep(min(REFRESH_FIRST_DELAY_SECONDS, self.settings.refresh_minutes * 60))
        while True:
            await self.refresh_once()
            await asyncio.sleep(self.settings.refresh_minutes * 60)

    async def refresh_once(self) -> SourcesReport | None:
        """One refresh of SOURCES_FILE's feeds and sitemaps, then a rebuild if anything changed.

        Never raises (but for cancellation): a failure is logged and the next round retries.
        """
        path = self.settings.sources_file
        if path is None:
            return None
        try:
            sources = load_sources_file(path)
            if not sources.feeds:
                return None
            report = await self.workers.run(refresh_sources, self.settings, sources)
            failed = report.with_status("failed")
            log.info(
                "refreshed %d sources: %d added, %d updated, %d failed",
                len(report.feeds), len(report.with_status("added")),
                len(report.with_status("updated")), len(failed),
            )  # fmt: skip
            for outcome in failed:
                log.info("refresh: %s not added: %s", outcome.url, outcome.reason)
            if report.changed:
                await self.workers.run(self.service.reindex)
            return report
        except asyncio.CancelledError:
            raise
        except SourcesFileError as exc:
            log.warning("sources refresh skipped: %s", exc)
        except RebuildBusy:
            log.info("sources refresh: a rebuild is running; the new articles join the next one")
        except Exception:
            log.exception("sources refresh failed; trying again in %g minutes",
                          self.settings.refresh_minutes)  # fmt: skip
        return None

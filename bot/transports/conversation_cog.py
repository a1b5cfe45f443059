"""Ending conversations: /forget, the "New topic" button, and archived threads.

The button is persistent: its custom_id is fixed and the view is registered once at start
(`bot.add_view`), so a click on an answer sent before a restart still reaches this cog.
Which conversation it ends is read from where it is clicked: the conversation the answer
message is linked to, else the DM channel's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from .conversation_map import dm_conversation
from .delivery import NO_MENTIONS, deliver
from .work import Workers

if TYPE_CHECKING:
    from ..service import QAService

log = logging.getLogger(__name__)

COG_NAME = "Conversations"
NEW_TOPIC_ID = "qa:new-topic"
NEW_TOPIC_LABEL = "New topic"
FORGOTTEN = "Okay, starting afresh: your next question begins a new conversation."
NOTHING_TO_FORGET = (
    "There is no conversation to forget here: use /forget in a direct message with me or in "
    "one of my answer threads."
)


class NewTopicButton(discord.ui.Button[discord.ui.View]):
    """Under DM answers: ends the conversation, so the next message starts afresh."""

    def __init__(self, cog: ConversationsCog | None = None) -> None:
        super().__init__(
            label=NEW_TOPIC_LABEL,
            emoji="🆕",
            style=discord.ButtonStyle.secondary,
            custom_id=NEW_TOPIC_ID,
        )
        self.cog = cog

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = self.cog
        if cog is None:  # the copy on an answer: the persistent one knows the cog
            found = getattr(interaction.client, "get_cog", lambda _: None)(COG_NAME)
            if not isinstance(found, ConversationsCog):
                log.error("New topic clicked but the %s cog is not loaded", COG_NAME)
                return
            cog = found
        await cog.new_topic(interaction)


class NewTopicView(discord.ui.View):
    """The persistent view that receives every click on a "New topic" button."""

    def __init__(self, cog: ConversationsCog) -> None:
        super().__init__(timeout=None)
        self.add_item(NewTopicButton(cog))


class ConversationsCog(commands.Cog, name=COG_NAME):
    """Follow-up questions: threads, replies to answers and DMs keep their conversation."""

    def __init__(self, bot: commands.Bot, service: QAService) -> None:
        self.bot = bot
        self.service = service
        self.workers = Workers("conversations")

    async def cog_load(self) -> None:
        self.bot.add_view(NewTopicView(self))

    async def _conversation_at(self, interaction: discord.Interaction) -> str | None:
        """The live conversation where the interaction happened, if there is one."""
        conversations = self.service.conversations
        if interaction.message is not None:
            cid = await self.workers.run(conversations.for_message, str(interaction.message.id))
            if cid is not None:
                return cid
        if interaction.channel_id is None:
            return None
        if interaction.guild_id is None:
            return dm_conversation(interaction.channel_id)
        return await self.workers.run(conversations.for_message, str(interaction.channel_id))

    async def new_topic(self, interaction: discord.Interaction) -> None:
        cid = await self._conversation_at(interaction)
        if cid is not None:
            await self.workers.run(self.service.conversations.forget, cid)
            log.info("conversation %s ended by user %s", cid, interaction.user.id)
        await deliver(
            f"the new-topic reply to interaction {interaction.id}",
            lambda: interaction.response.send_message(
                FORGOTTEN, ephemeral=True, allowed_mentions=NO_MENTIONS
            ),
        )

    @app_commands.command(name="forget")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    @app_commands.allowed_installs(guilds=True, users=True)
    async def forget(self, interaction: discord.Interaction) -> None:
        """Forget this conversation; the next question starts afresh."""
        cid = await self._conversation_at(interaction)
        if cid is None:
            text = NOTHING_TO_FORGET
        else:
            await self.workers.run(self.service.conversations.forget, cid)
            log.info("conversation %s forgotten by user %s", cid, interaction.user.id)
            text = FORGOTTEN
        await deliver(
            f"the reply to /forget {interaction.id}",
            lambda: interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            ),
        )

    @commands.Cog.listener()
    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        """An archived thread ends its conversation (a later mention starts a new one)."""
        metadata: Any = payload.data.get("thread_metadata") or {}
        if not metadata.get("archived"):
            return
        conversations = self.service.conversations
        cid = await self.workers.run(conversations.for_message, str(payload.thread_id))
        if cid is not None:
            await self.workers.run(conversations.forget, cid)
            log.info("thread %s archived: conversation %s ended", payload.thread_id, cid)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        conversations = self.service.conversations
        cid = await self.workers.run(conversations.for_message, str(payload.thread_id))
        if cid is not None:
            await self.workers.run(conversations.forget, cid)

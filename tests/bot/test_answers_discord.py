"""The canary and small talk through Discord: the real discord.py client against the double."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from discord_double import APP_ID, DiscordDouble

from bot.chitchat import REPLIES
from bot.service import QAService
from bot.settings import Settings
from bot.transports.discord_client import QABot, configure_endpoints

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def double() -> AsyncIterator[DiscordDouble]:
    d = DiscordDouble()
    await d.start()
    yield d
    await d.close()


@contextlib.asynccontextmanager
async def bot_on(double: DiscordDouble, settings: Settings, embedder) -> AsyncIterator[None]:
    double.reset()
    configure_endpoints(settings)
    bot = QABot(settings, QAService(settings, embedder=embedder))
    async with bot:
        runner = asyncio.create_task(bot.start("x"))
        try:
            await asyncio.wait_for(bot.wait_until_ready(), 15)
            yield
        finally:
            await bot.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 10)


def settings_for(double: DiscordDouble, seed_index: Path, tmp_path: Path) -> Settings:
    return Settings(
        index_dir=seed_index,
        feedback_db=tmp_path / "feedback.sqlite",
        discord_token="x",
        discord_api_base_url=double.base_url,
        discord_gateway_url=double.gateway_url,
        discord_cooldown_seconds=0,
    )


def embeds(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    embed = (body.get("embeds") or [{}])[0]
    return embed.get("description") or "", embed.get("fields") or []


async def test_canary_on_discord_cites_the_seed_once(
    double: DiscordDouble, seed_index: Path, tmp_path: Path, embedder
) -> None:
    async with bot_on(double, settings_for(double, seed_index, tmp_path), embedder):
        payload = double.interaction("ask", {"question": "what did Obama say to Putin?"})
        await double.dispatch("INTERACTION_CREATE", payload)
        followup = await double.wait_for_request(
            lambda r: r.method == "POST" and r.path == f"/webhooks/{APP_ID}/{payload['token']}",
            timeout=60,
        )
    description, fields = embeds(followup.json)
    plain = description.replace("\\", "")
    assert "cut it out" in plain and "serious consequences" in plain
    assert set(re.findall(r"\[(\d+)\]", plain)) == {"1"}
    numbered = {m.group(1) for f in fields if (m := re.match(r"\[(\d+)\]", f["name"]))}
    assert numbered == {"1"}


async def test_everyone_hi_in_a_dm_gets_a_help_reply(
    double: DiscordDouble, seed_index: Path, tmp_path: Path, embedder
) -> None:
    async with bot_on(double, settings_for(double, seed_index, tmp_path), embedder):
        await double.dispatch("MESSAGE_CREATE", double.dm_message("@everyone hi", channel_id=7001))
        sent = await double.wait_for_request(
            lambda r: r.method == "POST" and r.path == "/channels/7001/messages", timeout=30
        )
    description, fields = embeds(sent.json)
    assert description.replace("\\", "") == REPLIES["greeting"]
    assert fields == []
    assert sent.json["allowed_mentions"] == {"parse": []}

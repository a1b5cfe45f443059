"""Sending to Discord without pinging anyone, and without retrying what Discord refused.

Shared by every cog: `NO_MENTIONS` goes with every message (answers quote article text,
and an article saying "@everyone" must not ping anyone); `deliver` sends and turns a final
failure into one log line; `apology` is what a user sees of a bug (the id finds the
traceback in the log).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import discord

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_MENTIONS = discord.AllowedMentions.none()
RETRY_DELAYS = (1.0, 3.0)  # before re-sending after a dropped connection or a lasting 5xx


def new_error_id() -> str:
    """A short id to quote in an apology and find in the log."""
    return uuid.uuid4().hex[:8]


def apology(error_id: str) -> str:
    return f"Sorry, something went wrong (error id {error_id})."


def error_line(exc: BaseException) -> str:
    """An exception as one log line."""
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
                log.warning("could not deliver %s: %s", what, error_line(exc))
                return None
            log.info(
                "delivering %s failed (%s); trying again in %.0f s", what, error_line(exc), delay
            )
            await asyncio.sleep(delay)
        except discord.HTTPException as exc:
            level = logging.ERROR if exc.status == 400 else logging.WARNING  # 400: our payload
            log.log(level, "could not deliver %s: %s", what, error_line(exc))
            return None
    return None  # not reached: the last delay is None

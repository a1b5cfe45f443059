"""Which conversation a Discord message belongs to, and where its answer goes.

Conversations themselves are answering, not Discord (`bot/conversations.py`); this module
only maps Discord's places onto conversation ids:

- a question asked in a server channel (a mention or a public /ask) starts a conversation
  `discord:<question id>`; its answer message is linked to it
  (`Conversations.link_message`) and, with `DISCORD_THREADS=auto`, a thread is started from
  that message. A thread started from a message has the message's id, so the thread is
  linked by the same row: every message in a channel whose id is linked to a live
  conversation is a follow-up, mention or not;
- a reply to one of the bot's answers continues that answer's conversation, wherever it is;
- a DM channel is one conversation, `discord:dm:<channel id>`, that lapses after
  `CONVERSATION_IDLE_MINUTES` without a message (the store restarts it) or on "New topic".

Idle or archived, a conversation ends and its links go with it: the bot's thread then
waits for a mention, which starts a new conversation there.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from dataclasses import dataclass

from ..formatting import one_line, truncate

log = logging.getLogger(__name__)

THREAD_NAME_LIMIT = 100  # Discord's limit on channel and thread names
ARCHIVE_MINUTES = (60, 1440, 4320, 10080)  # the auto-archive durations Discord accepts
THREAD_RETRY_SECONDS = 3600.0  # after a refusal, try threads in that channel again after this
DEFAULT_THREAD_NAME = "Question"

# Discord permission bits the bot needs to start a thread from its answer and talk there.
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38


# `<@id>`, `<@!id>`, `<@&id>`, `<#id>`: shown raw in a thread name, so named by kind instead
_MENTION_SYNTAX = re.compile(r"<(@!?|@&|#)\d+>")
_MENTION_WORDS = {"@": "@user", "@!": "@user", "@&": "@role", "#": "#channel"}


def new_conversation(source_id: int) -> str:
    """The id of a conversation started by a message or an interaction."""
    return f"discord:{source_id}"


def dm_conversation(channel_id: int) -> str:
    """The id of the conversation of a DM channel."""
    return f"discord:dm:{channel_id}"


def thread_name(question: str) -> str:
    """The question as a thread name: one line, printable, at most 100 characters.

    Thread names are shown as plain text (no Markdown, no mentions), so nothing needs
    escaping; mention syntax would show raw and becomes "@user", "@role" or "#channel";
    control and format characters (bidi overrides, zero-width) are dropped.
    """
    readable = _MENTION_SYNTAX.sub(lambda m: _MENTION_WORDS[m.group(1)], one_line(question))
    printable = "".join(ch for ch in readable if unicodedata.category(ch) not in ("Cc", "Cf", "Co"))
    name = truncate(" ".join(printable.split()), THREAD_NAME_LIMIT)
    return name or DEFAULT_THREAD_NAME


def archive_minutes(idle_minutes: float) -> int:
    """The shortest auto-archive duration Discord accepts that outlasts a conversation."""
    for minutes in ARCHIVE_MINUTES:
        if minutes >= idle_minutes:
            return minutes
    return ARCHIVE_MINUTES[-1]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a question goes: its conversation, and whether its answer starts a thread."""

    conversation: str
    start_thread: bool = False
    in_thread: int | None = None  # the bot's thread it was asked in (linked to it)
    dm: bool = False


class ThreadGate:
    """Remembers the channels where the bot may not start threads; says so in the log once.

    A refused request costs more than a reply (Discord counts 403s toward a temporary ban),
    so after a refusal the channel gets replies for `THREAD_RETRY_SECONDS` before threads
    are tried again (a permission may have been granted meanwhile); the warning is logged
    the first time only.
    """

    def __init__(self, retry_seconds: float = THREAD_RETRY_SECONDS) -> None:
        self.retry_seconds = retry_seconds
        self._refused: dict[int, float] = {}  # channel id -> monotonic time of the refusal
        self._logged: set[int] = set()

    def allowed(self, channel_id: int, now: float | None = None) -> bool:
        at = self._refused.get(channel_id)
        if at is None:
            return True
        now = time.monotonic() if now is None else now
        if now - at >= self.retry_seconds:
            del self._refused[channel_id]
            return True
        return False

    def refuse(self, channel_id: int, reason: str, now: float | None = None) -> None:
        """No threads in `channel_id` for a while; the first refusal is logged."""
        self._refused[channel_id] = time.monotonic() if now is None else now
        if channel_id not in self._logged:
            self._logged.add(channel_id)
            log.warning(
                "cannot start threads in channel %s (%s); answering there with replies",
                channel_id, reason,
            )  # fmt: skip

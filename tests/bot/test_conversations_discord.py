"""Conversations on Discord, end to end: the real discord.py client against the Discord double.

Threads started from answers, follow-ups in them without a mention, reply chains, DM
follow-ups, idle expiry, "New topic", a restart that keeps conversations, the fallback to
replies without the thread permission, archived threads, the token-bucket rate limit and
streamed LLM answers. Nothing of ours is mocked: the real model answers over a small index
of articles written for these tests plus the seed article.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from discord_double import (
    ALL_PERMISSIONS,
    BOT_USER_ID,
    CREATE_PUBLIC_THREADS,
    DiscordDouble,
    Recorded,
    bot_settings,
    connected,
    is_callback,
    is_followup,
)
from discord_markdown import rendered
from llm_double import LLMDouble

from bot.ratelimit import TokenBucket
from bot.service import QAService
from bot.settings import Settings
from bot.transports.conversation_cog import FORGOTTEN, NEW_TOPIC_ID, NOTHING_TO_FORGET
from bot.transports.conversation_map import (
    ThreadGate,
    archive_minutes,
    dm_conversation,
    thread_name,
)
from bot.transports.discord_client import QABot, configure_endpoints
from bot.transports.streaming import EDIT_SECONDS, LiveText

on_loop = pytest.mark.asyncio(loop_scope="session")  # the double and the bot share one loop

LANTERNS = """The Zorblax lantern festival of Quillerton
Every year on the second Sunday of March, the village of Quillerton holds the Zorblax lantern \
festival. Residents float exactly four hundred paper lanterns down the river Wend to \
remember the flood of 1911. The festival was founded by the schoolteacher Marta Ilves in 1923.
"""
ROWING = """The Brackwater rowing club holds its summer regatta
The Brackwater rowing club held its summer regatta on the river Tarn last weekend, with \
ninety crews racing over two kilometres. The club was founded by the carpenter Tomas Berg \
in 1952, and he built its first eight boats by hand in his workshop.
"""
LANTERNS_TITLE = "The Zorblax lantern festival of Quillerton"
ROWING_TITLE = "The Brackwater rowing club holds its summer regatta"
FESTIVAL_Q = "When is the Zorblax lantern festival held?"
ROWING_Q = "How many crews raced at the Brackwater rowing club regatta?"
FOLLOW_UP = "Who founded it?"
NO_PINGS = {"parse": []}
EPHEMERAL = 64
ME = {"id": str(BOT_USER_ID), "username": "qa-bot", "discriminator": "0", "avatar": None}
MENTION = f"<@{BOT_USER_ID}>"
FOUND = 0x2ECC71  # the colour of an answer found in the articles (not a "don't say")
CHANNEL = 6666
DM_CHANNEL = 7777


# ------------------------------------------------------------------------------ fixtures


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def double() -> AsyncIterator[DiscordDouble]:
    d = DiscordDouble()
    await d.start()
    yield d
    await d.close()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, embedder, seeds_dir: Path) -> Path:
    """An index of the seed plus two small articles that both say who founded something."""
    import shutil

    from index.rebuild import rebuild
    from index.settings import IndexSettings

    root = tmp_path_factory.mktemp("conversations")
    articles = root / "articles"
    shutil.copytree(seeds_dir, articles)
    (articles / "lanterns.txt").write_text(LANTERNS, encoding="utf-8")
    (articles / "rowing.txt").write_text(ROWING, encoding="utf-8")
    rebuild(IndexSettings(articles_dir=articles, index_dir=root / "index"), lambda: embedder)
    return root


@pytest.fixture
def make_settings(tmp_path: Path, library: Path, double: DiscordDouble) -> Callable[..., Settings]:
    paths = {"articles_dir": library / "articles", "index_dir": library / "index"}

    def make(**overrides: Any) -> Settings:
        return bot_settings(double, tmp_path / "data", **(paths | overrides))

    return make


@contextlib.asynccontextmanager
async def running_bot(
    double: DiscordDouble,
    settings: Settings,
    embedder: Any,
    *,
    guild: dict[str, Any] | None = None,
    reset: bool = True,
) -> AsyncIterator[QABot]:
    """A fresh QAService and QABot connected to the double; closed (and checked) on exit.

    `guild`: arguments of `double.add_guild`, so the client knows the guild (channels,
    permissions, threads) as it would on Discord. `reset` False keeps what the double saw
    (a restart within one test).
    """
    if reset:
        double.reset()
    if guild is not None:
        double.add_guild(**guild)
    configure_endpoints(settings)
    bot = QABot(settings, QAService(settings, embedder=embedder), watch_index=False)
    async with connected(double, bot):
        yield bot


def posted_in(channel_id: int | str) -> Callable[[Recorded], bool]:
    """A message the bot created in `channel_id`."""
    path = f"/channels/{channel_id}/messages"
    return lambda r: r.method == "POST" and r.path == path


async def nth_post(double: DiscordDouble, channel_id: int | str, n: int) -> Recorded:
    """The `n`-th (1-based) message the bot created in `channel_id`."""
    found = await double.wait_for_requests(posted_in(channel_id), n, timeout=30)
    return found[n - 1]


async def answered(double: DiscordDouble, bot: QABot, channel_id: int | str, n: int) -> Recorded:
    """`nth_post`, once the bot has linked that answer to its conversation (right after
    Discord accepted it: a person cannot reply faster, a test can)."""
    found = await nth_post(double, channel_id, n)
    conversations = bot.qa.service.conversations  # type: ignore[union-attr]
    for _ in range(100):
        if conversations.for_message(found.response["id"]) is not None:
            break
        await asyncio.sleep(0.05)
    return found


def shown(body: dict[str, Any]) -> str:
    """All the visible text of a message (content and embeds, escapes resolved)."""
    parts = [body.get("content") or ""]
    for e in body.get("embeds") or []:
        parts += [e.get("title") or "", e.get("description") or ""]
        parts += [f"{f['name']}\n{f['value']}" for f in e.get("fields") or []]
    return rendered("\n".join(parts))


def sources(body: dict[str, Any]) -> str:
    """The source fields of an answer embed (titles and quotes)."""
    fields = (body.get("embeds") or [{}])[0].get("fields") or []
    return rendered("\n".join(f"{f['name']}\n{f['value']}" for f in fields))


def from_article(body: dict[str, Any], title: str) -> bool:
    """The answer comes from the article `title`: its first source (the one it quotes, or
    the closest one offered when the articles do not say) is that article.

    What the answer says is the answering side's business (tests/bot/test_conversations.py
    and the QuAC benchmark); here it is which article the conversation led the search to.
    """
    fields = (body.get("embeds") or [{}])[0].get("fields") or []
    first = next((rendered(f["name"]) for f in fields if f["name"].startswith("[1]")), "")
    return title in first


def mention(content: str, **kwargs: Any) -> dict[str, Any]:
    return {"content": f"{MENTION} {content}", "mentions": [ME], **kwargs}


def thread_requests(double: DiscordDouble) -> list[Recorded]:
    return double.find(lambda r: r.method == "POST" and r.path.endswith("/threads"))


async def quiet(double: DiscordDouble, predicate: Callable[[Recorded], bool], seconds: float):
    """Assert that nothing matching `predicate` is sent for `seconds`."""
    await asyncio.sleep(seconds)
    assert double.find(predicate) == []


# ------------------------------------------------------------------------------ threads


@on_loop
async def test_mention_answer_starts_a_thread_where_follow_ups_need_no_mention(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, embedder, guild={}) as bot:
        question = double.guild_message(**mention(FESTIVAL_Q))
        await double.dispatch("MESSAGE_CREATE", question)
        answer = await nth_post(double, CHANNEL, 1)
        assert str(answer.json["message_reference"]["message_id"]) == question["id"]
        assert "second Sunday of March" in shown(answer.json)
        answer_id = answer.response["id"]

        started = await double.wait_for_request(
            lambda r: r.path == f"/channels/{CHANNEL}/messages/{answer_id}/threads"
        )
        assert started.status == 201
        assert started.json["name"] == FESTIVAL_Q
        assert started.json["auto_archive_duration"] == 60  # outlasts the 30 idle minutes
        thread_id = started.response["id"]
        # the client learns of the thread (THREAD_CREATE) and knows it as its own
        await double.wait_until(lambda: bot.get_channel(int(thread_id)) is not None, 5)

        # a follow-up in the thread, without a mention, naming nothing
        follow = double.guild_message(FOLLOW_UP, channel_id=int(thread_id), user_id=4243)
        await double.dispatch("MESSAGE_CREATE", follow)
        reply = await nth_post(double, thread_id, 1)
        assert str(reply.json["message_reference"]["message_id"]) == follow["id"]
        assert len(thread_requests(double)) == 1  # no thread inside the thread

        # the conversation holds both turns, and the thread is linked to it
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        cid = conversations.for_message(thread_id)
        assert cid is not None and conversations.for_message(answer_id) == cid
        assert [t.question for t in conversations.history(cid)] == [FESTIVAL_Q, FOLLOW_UP]
        # answered from the conversation's article (alone, "it" would be the rowing club)
        assert from_article(reply.json, LANTERNS_TITLE), shown(reply.json)

        # the extractive answer was sent whole, at once: no streaming edits
        assert double.edits_of(answer_id) == [answer]
        assert double.edits_of(reply.response["id"]) == [reply]

        # in the channel itself, a message without a mention is still not for the bot
        await double.dispatch("MESSAGE_CREATE", double.guild_message(FOLLOW_UP))
        await quiet(double, lambda r: len(double.find(posted_in(CHANNEL))) > 1, 0.5)


@on_loop
async def test_public_ask_starts_a_thread_and_a_private_one_does_not(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, embedder) as bot:
        payload = double.interaction("ask", {"question": ROWING_Q})
        await double.dispatch("INTERACTION_CREATE", payload)
        followup = await double.wait_for_request(is_followup(payload), 30)
        assert "ninety crews" in shown(followup.json)
        answer_id = followup.response["id"]
        started = await double.wait_for_request(
            lambda r: r.path == f"/channels/{CHANNEL}/messages/{answer_id}/threads"
        )
        assert started.json["name"] == ROWING_Q

        # /ask inside that thread continues its conversation (no new thread)
        inside = double.interaction("ask", {"question": FOLLOW_UP}, channel_id=int(answer_id))
        await double.dispatch("INTERACTION_CREATE", inside)
        followup = await double.wait_for_request(is_followup(inside), 30)
        assert from_article(followup.json, ROWING_TITLE), shown(followup.json)
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        cid = conversations.for_message(answer_id)
        assert [t.question for t in conversations.history(cid)] == [ROWING_Q, FOLLOW_UP]

        private = double.interaction("ask", {"question": FESTIVAL_Q, "private": True})
        await double.dispatch("INTERACTION_CREATE", private)
        answer = await double.wait_for_request(is_followup(private), 30)
        assert answer.json["flags"] & EPHEMERAL
        await asyncio.sleep(0.3)
        assert len(thread_requests(double)) == 1
        assert conversations.for_message(answer.response["id"]) is None  # standalone


def test_thread_names_are_one_printable_line_within_discord_limits() -> None:
    assert thread_name("  what did\nObama\tsay?  ") == "what did Obama say?"
    assert thread_name("a\u202eb\u200bc\x07") == "abc"  # bidi override, zero width, bell
    assert thread_name("ask <@123> and <@&45> in <#67>") == "ask @user and @role in #channel"
    long = thread_name("why " * 60)
    assert len(long) <= 100 and long.endswith("…")
    assert thread_name("\u200b \n") == "Question"  # never empty: Discord requires a name
    assert [archive_minutes(m) for m in (0.5, 60, 61, 2000, 99_999)] == [
        60, 60, 1440, 4320, 10080
    ]  # fmt: skip


@on_loop
async def test_missing_thread_permission_falls_back_to_replies_and_logs_once(
    double: DiscordDouble, make_settings, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """Not cached: Discord refuses the first thread (403); then no more attempts."""
    caplog.set_level(logging.WARNING, logger="bot.transports.conversation_map")
    settings = make_settings()
    async with running_bot(double, settings, embedder) as bot:
        double.deny_threads(CHANNEL)
        first = double.guild_message(**mention(FESTIVAL_Q))
        await double.dispatch("MESSAGE_CREATE", first)
        answer = await answered(double, bot, CHANNEL, 1)
        await double.wait_for_request(lambda r: r.path.endswith("/threads"))
        second = double.guild_message(**mention(ROWING_Q), user_id=4243)
        await double.dispatch("MESSAGE_CREATE", second)
        again = await nth_post(double, CHANNEL, 2)
        # a reply to the answer continues the conversation in the channel
        follow = double.guild_message(FOLLOW_UP, reply_to=answer.response, user_id=4244)
        await double.dispatch("MESSAGE_CREATE", follow)
        third = await nth_post(double, CHANNEL, 3)
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        cid = conversations.for_message(answer.response["id"])
    assert "second Sunday of March" in shown(answer.json)
    assert str(answer.json["message_reference"]["message_id"]) == first["id"]
    assert str(again.json["message_reference"]["message_id"]) == second["id"]
    assert "ninety crews" in shown(again.json)
    assert cid is not None and conversations.for_message(third.response["id"]) == cid
    assert [t.question for t in conversations.history(cid)] == [FESTIVAL_Q, FOLLOW_UP]
    refused = thread_requests(double)
    assert [r.status for r in refused] == [403]  # the second answer did not try again
    warnings = [r for r in caplog.records if "cannot start threads" in r.getMessage()]
    assert len(warnings) == 1 and "missing permission" in warnings[0].getMessage()


@on_loop
async def test_known_missing_permission_is_not_even_tried(
    double: DiscordDouble, make_settings, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """Cached guild (and /ask's app_permissions): the bot sees it may not start threads."""
    caplog.set_level(logging.WARNING, logger="bot.transports.conversation_map")
    settings = make_settings()
    without = ALL_PERMISSIONS & ~CREATE_PUBLIC_THREADS
    async with running_bot(double, settings, embedder, guild={"permissions": without}):
        for i in range(2):
            await double.dispatch(
                "MESSAGE_CREATE", double.guild_message(**mention(FESTIVAL_Q), user_id=50 + i)
            )
            await nth_post(double, CHANNEL, i + 1)
        payload = double.interaction("ask", {"question": ROWING_Q}, channel_id=6667)
        payload["app_permissions"] = str(without)
        await double.dispatch("INTERACTION_CREATE", payload)
        await double.wait_for_request(is_followup(payload), 30)
        await asyncio.sleep(0.3)
    assert thread_requests(double) == []
    warnings = [r.getMessage() for r in caplog.records if "cannot start threads" in r.getMessage()]
    assert len(warnings) == 2  # once for each channel, not once per message
    assert all("Create Public Threads" in w for w in warnings)


@on_loop
async def test_threads_off_answers_with_replies(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings(discord_threads="off")
    async with running_bot(double, settings, embedder):
        await double.dispatch("MESSAGE_CREATE", double.guild_message(**mention(FESTIVAL_Q)))
        await nth_post(double, CHANNEL, 1)
        payload = double.interaction("ask", {"question": ROWING_Q})
        await double.dispatch("INTERACTION_CREATE", payload)
        await double.wait_for_request(is_followup(payload), 30)
        await asyncio.sleep(0.3)
    assert thread_requests(double) == []


# ------------------------------------------------------------------------------ replies, DMs


@on_loop
async def test_reply_chain_in_a_channel_continues_that_answers_conversation(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings(discord_threads="off")
    async with running_bot(double, settings, embedder) as bot:
        await double.dispatch("MESSAGE_CREATE", double.guild_message(**mention(ROWING_Q)))
        rowing = await answered(double, bot, CHANNEL, 1)
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(**mention(FESTIVAL_Q), user_id=4243)
        )
        lanterns = await answered(double, bot, CHANNEL, 2)
        # replies, without a mention, to each answer: each continues its own conversation
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(FOLLOW_UP, reply_to=rowing.response)
        )
        about_rowing = await answered(double, bot, CHANNEL, 3)
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(FOLLOW_UP, reply_to=lanterns.response)
        )
        about_lanterns = await nth_post(double, CHANNEL, 4)
        # and a reply to the reply goes on with the same conversation
        await double.dispatch(
            "MESSAGE_CREATE",
            double.guild_message("In which year?", reply_to=about_rowing.response),
        )
        year = await answered(double, bot, CHANNEL, 5)
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        cid = conversations.for_message(rowing.response["id"])
        assert cid is not None and conversations.for_message(year.response["id"]) == cid
        asked = [t.question for t in conversations.history(cid)]
        other = conversations.for_message(lanterns.response["id"])
        assert other not in (None, cid)
        assert [t.question for t in conversations.history(other)] == [FESTIVAL_Q, FOLLOW_UP]
    assert asked == [ROWING_Q, FOLLOW_UP, "In which year?"]
    assert "message_reference" in about_lanterns.json  # answered where it was asked


@on_loop
async def test_dm_follow_up_then_new_topic_then_reply_chain(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings()
    cid = dm_conversation(DM_CHANNEL)
    async with running_bot(double, settings, embedder) as bot:
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        await double.dispatch("MESSAGE_CREATE", double.dm_message(FESTIVAL_Q))
        first = await nth_post(double, DM_CHANNEL, 1)
        assert "message_reference" not in first.json  # a DM gets plain messages
        buttons = [b for row in first.json["components"] for b in row["components"]]
        assert [b.get("custom_id") for b in buttons][-1] == NEW_TOPIC_ID
        assert buttons[-1]["label"] == "New topic"

        await double.dispatch("MESSAGE_CREATE", double.dm_message(FOLLOW_UP))
        await nth_post(double, DM_CHANNEL, 2)
        assert [t.question for t in conversations.history(cid)] == [FESTIVAL_Q, FOLLOW_UP]

        click = double.component_click(first.response, NEW_TOPIC_ID, guild_id=None)
        click["channel"] = {"id": str(DM_CHANNEL), "type": 1, "recipients": [click["user"]]}
        await double.dispatch("INTERACTION_CREATE", click)
        done = await double.wait_for_request(is_callback(click))
        assert done.json["data"]["content"] == FORGOTTEN
        assert done.json["data"]["flags"] == EPHEMERAL
        assert conversations.history(cid) == []

        await double.dispatch("MESSAGE_CREATE", double.dm_message(ROWING_Q))
        third = await nth_post(double, DM_CHANNEL, 3)
        assert "ninety crews" in shown(third.json)
        assert [t.question for t in conversations.history(cid)] == [ROWING_Q]  # afresh

        # /forget does the same; where there is no conversation it says so
        forget = double.interaction("forget", guild_id=None, channel_id=DM_CHANNEL)
        await double.dispatch("INTERACTION_CREATE", forget)
        reply = await double.wait_for_request(is_callback(forget))
        assert reply.json["data"]["content"] == FORGOTTEN
        assert conversations.history(cid) == []
        elsewhere = double.interaction("forget", channel_id=6668)
        await double.dispatch("INTERACTION_CREATE", elsewhere)
        reply = await double.wait_for_request(is_callback(elsewhere))
        assert reply.json["data"]["content"] == NOTHING_TO_FORGET


@on_loop
async def test_idle_conversations_end(double: DiscordDouble, make_settings, embedder) -> None:
    idle = 0.03  # minutes: 1.8 s
    settings = make_settings(conversation_idle_minutes=idle)
    cid = dm_conversation(DM_CHANNEL)
    async with running_bot(double, settings, embedder, guild={}) as bot:
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        await double.dispatch("MESSAGE_CREATE", double.dm_message(FESTIVAL_Q))
        await nth_post(double, DM_CHANNEL, 1)
        await double.dispatch("MESSAGE_CREATE", double.guild_message(**mention(ROWING_Q)))
        answer = await nth_post(double, CHANNEL, 1)
        thread_id = answer.response["id"]
        await double.wait_for_request(lambda r: r.path.endswith("/threads"))
        await asyncio.sleep(idle * 60 + 0.3)

        await double.dispatch("MESSAGE_CREATE", double.dm_message(FOLLOW_UP))
        await nth_post(double, DM_CHANNEL, 2)
        assert [t.question for t in conversations.history(cid)] == [FOLLOW_UP]

        # the thread's conversation is over: an unmentioned message there is not answered ...
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(FOLLOW_UP, channel_id=int(thread_id))
        )
        await quiet(double, posted_in(thread_id), 0.7)
        # ... a mention starts a new conversation there, which the thread then follows
        await double.dispatch(
            "MESSAGE_CREATE",
            double.guild_message(**mention(FESTIVAL_Q), channel_id=int(thread_id)),
        )
        await nth_post(double, thread_id, 1)
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(FOLLOW_UP, channel_id=int(thread_id))
        )
        await nth_post(double, thread_id, 2)
        renewed = conversations.for_message(thread_id)
        assert renewed is not None
        assert [t.question for t in conversations.history(renewed)] == [FESTIVAL_Q, FOLLOW_UP]
    assert len(thread_requests(double)) == 1


@on_loop
async def test_archived_thread_ends_its_conversation(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, embedder, guild={}) as bot:
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        await double.dispatch("MESSAGE_CREATE", double.guild_message(**mention(FESTIVAL_Q)))
        answer = await nth_post(double, CHANNEL, 1)
        thread_id = answer.response["id"]
        await double.wait_for_request(lambda r: r.path.endswith("/threads"))
        await double.wait_until(lambda: bot.get_channel(int(thread_id)) is not None, 5)
        assert conversations.for_message(thread_id) is not None

        await double.archive_thread(int(thread_id))
        for _ in range(50):
            if conversations.for_message(thread_id) is None:
                break
            await asyncio.sleep(0.05)
        assert conversations.for_message(thread_id) is None
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(FOLLOW_UP, channel_id=int(thread_id))
        )
        await quiet(double, posted_in(thread_id), 0.7)


@on_loop
async def test_restart_keeps_conversations_and_new_topic_buttons(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings(discord_threads="off")
    async with running_bot(double, settings, embedder) as bot:
        await double.dispatch("MESSAGE_CREATE", double.dm_message(FESTIVAL_Q))
        dm_answer = await answered(double, bot, DM_CHANNEL, 1)
        await double.dispatch("MESSAGE_CREATE", double.guild_message(**mention(ROWING_Q)))
        channel_answer = await answered(double, bot, CHANNEL, 1)

    # a new bot (new service, new client, same CONVERSATIONS_DB) carries on
    async with running_bot(double, settings, embedder, reset=False) as bot:
        conversations = bot.qa.service.conversations  # type: ignore[union-attr]
        await double.dispatch("MESSAGE_CREATE", double.dm_message(FOLLOW_UP))
        await nth_post(double, DM_CHANNEL, 2)
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(FOLLOW_UP, reply_to=channel_answer.response)
        )
        await nth_post(double, CHANNEL, 2)
        dm = [t.question for t in conversations.history(dm_conversation(DM_CHANNEL))]
        assert dm == [FESTIVAL_Q, FOLLOW_UP]
        cid = conversations.for_message(channel_answer.response["id"])
        assert [t.question for t in conversations.history(cid)] == [ROWING_Q, FOLLOW_UP]

        # a "New topic" button sent before the restart still works
        click = double.component_click(dm_answer.response, NEW_TOPIC_ID, guild_id=None)
        click["channel"] = {"id": str(DM_CHANNEL), "type": 1, "recipients": [click["user"]]}
        await double.dispatch("INTERACTION_CREATE", click)
        done = await double.wait_for_request(is_callback(click))
        assert done.json["data"]["content"] == FORGOTTEN
        assert conversations.history(dm_conversation(DM_CHANNEL)) == []


@on_loop
async def test_canary_conversation_in_a_thread_cites_the_seed_each_time(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings()
    seed = "000_39a60bc8d7f6d11b.txt"
    async with running_bot(double, settings, embedder, guild={}):
        await double.dispatch(
            "MESSAGE_CREATE", double.guild_message(**mention("what did Obama say to Putin?"))
        )
        first = await nth_post(double, CHANNEL, 1)
        thread_id = first.response["id"]
        await double.wait_for_request(lambda r: r.path.endswith("/threads"))
        replies = [first]
        for n, question in enumerate(
            ["what did the Kremlin say about it?", "when was that?"], start=1
        ):
            await double.dispatch(
                "MESSAGE_CREATE", double.guild_message(question, channel_id=int(thread_id))
            )
            replies.append(await nth_post(double, thread_id, n))
    assert "cut it out" in shown(first.json)
    for reply in replies:
        embed = reply.json["embeds"][0]
        assert embed["color"] == FOUND, shown(reply.json)  # found, not "the articles don't say"
        assert seed in sources(reply.json)
        assert re.search(r"\[1\]", rendered(embed["description"]))


# ------------------------------------------------------------------------------ rate limit


def test_token_bucket_allows_a_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(seconds=10, burst=3)
    for _ in range(3):
        assert bucket.retry_after(1, now=0.0) == 0
        bucket.consume(1, now=0.0)
    assert bucket.retry_after(1, now=0.0) == pytest.approx(10.0)
    assert bucket.retry_after(2, now=0.0) == 0  # per user
    assert bucket.retry_after(1, now=4.0) == pytest.approx(6.0)
    assert bucket.should_warn(1) and not bucket.should_warn(1)  # told once per spell
    assert bucket.retry_after(1, now=10.0) == 0
    bucket.consume(1, now=10.0)
    assert bucket.retry_after(1, now=10.0) == pytest.approx(10.0)
    assert bucket.should_warn(1)  # a new spell
    assert bucket.retry_after(1, now=1000.0) == 0  # refilled, but never past the burst
    for _ in range(3):
        bucket.consume(1, now=1000.0)
    assert bucket.retry_after(1, now=1000.0) > 0
    plain = TokenBucket(seconds=30, burst=1)  # the old fixed cooldown
    plain.consume(1, now=0.0)
    assert plain.retry_after(1, now=29.0) == pytest.approx(1.0)
    off = TokenBucket(seconds=0, burst=1)
    off.consume(1)
    assert off.retry_after(1) == 0


def test_thread_gate_retries_after_a_while_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = ThreadGate(retry_seconds=60)
    assert gate.allowed(1, now=0)
    gate.refuse(1, "missing permission", now=0)
    gate.refuse(1, "missing permission", now=61)
    assert not gate.allowed(1, now=100) and gate.allowed(2, now=100)
    assert gate.allowed(1, now=122)
    assert sum("cannot start threads" in r.getMessage() for r in caplog.records) == 1


@on_loop
async def test_burst_of_follow_ups_then_one_polite_refusal(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings(discord_cooldown_seconds=60, discord_burst=3)
    async with running_bot(double, settings, embedder):
        questions = [FESTIVAL_Q, FOLLOW_UP, "In which year?", "Why?", "And then?"]
        for n, question in enumerate(questions, start=1):
            await double.dispatch("MESSAGE_CREATE", double.dm_message(question))
            if n <= 4:
                await nth_post(double, DM_CHANNEL, n)
        await asyncio.sleep(0.5)
        # /ask is refused privately every time: an interaction must be answered
        payload = double.interaction("ask", {"question": FOLLOW_UP}, guild_id=None)
        await double.dispatch("INTERACTION_CREATE", payload)
        refused = await double.wait_for_request(is_callback(payload))
        # someone else is not held back
        await double.dispatch("MESSAGE_CREATE", double.dm_message(ROWING_Q, user_id=99))
        other = await nth_post(double, DM_CHANNEL, 5)
    sent = double.find(posted_in(DM_CHANNEL))
    answers = [r for r in sent[:3] if r.json.get("embeds")]
    assert len(answers) == 3
    assert re.fullmatch(r"You're asking too fast — try again in \d+ s\.", sent[3].json["content"])
    assert len(sent) == 5  # the fifth question got no second warning
    assert "ninety crews" in shown(other.json)
    assert refused.json["data"]["flags"] == EPHEMERAL
    assert "too fast" in refused.json["data"]["content"]


# ------------------------------------------------------------------------------ streaming


@on_loop
async def test_live_text_writes_at_most_once_per_interval() -> None:
    times: list[float] = []

    async def show(text: str) -> None:
        times.append(asyncio.get_running_loop().time())

    live = LiveText(show, interval=0.2)
    for piece in ["a", "b", "c", "d", "e", "f"]:
        live.append(piece)
        await asyncio.sleep(0.05)
    await live.finish()
    finished = asyncio.get_running_loop().time()
    assert live.text == "abcdef"
    assert 1 <= len(times) <= 3
    gaps = [b - a for a, b in itertools.pairwise([*times, finished])]
    assert all(gap >= 0.19 for gap in gaps), gaps


@on_loop
async def test_llm_answers_stream_with_throttled_edits_and_cited_final_edit(
    double: DiscordDouble, make_settings, embedder
) -> None:
    with LLMDouble() as llm:
        pieces = ["The festival ", "is held ", "on the second ", "Sunday ", "of March [1]."]
        llm.stream(pieces, interval=0.45)
        settings = make_settings(llm_base_url=llm.base_url, llm_model="test-model")
        async with running_bot(double, settings, embedder):
            question = double.dm_message(FESTIVAL_Q)
            await double.dispatch("MESSAGE_CREATE", question)
            created = await nth_post(double, DM_CHANNEL, 1)
            message_id = created.response["id"]
            final = await double.wait_for_request(
                lambda r: (
                    r.method == "PATCH"
                    and r.path.endswith(f"/messages/{message_id}")
                    and bool(r.json.get("components"))
                ),
                timeout=30,
            )
    writes = double.edits_of(message_id)
    assert writes[0] is created and writes[-1] is final
    assert len(writes) >= 3  # it streamed: created, edited as text came, then the final
    gaps = [b.at - a.at for a, b in itertools.pairwise(writes)]
    assert all(gap >= EDIT_SECONDS - 0.1 for gap in gaps), gaps
    assert "…" in created.json["embeds"][0]["description"]  # still writing
    assert not created.json.get("components")
    embed = final.json["embeds"][0]
    assert "second Sunday of March" in rendered(embed["description"])
    assert embed["fields"] and LANTERNS_TITLE in sources(final.json)
    assert "llm" in embed["footer"]["text"]
    assert all(w.json["allowed_mentions"] == NO_PINGS for w in writes)


@on_loop
async def test_streamed_text_that_fails_validation_ends_with_the_extractive_answer(
    double: DiscordDouble, make_settings, embedder
) -> None:
    with LLMDouble() as llm:
        llm.stream(["The festival ", "is on ", "Mars, ", "says the moon [7]."], interval=0.4)
        settings = make_settings(llm_base_url=llm.base_url, llm_model="test-model")
        async with running_bot(double, settings, embedder):
            payload = double.interaction("ask", {"question": FESTIVAL_Q})
            await double.dispatch("INTERACTION_CREATE", payload)
            first = await double.wait_for_request(is_followup(payload), 30)
            message_id = first.response["id"]
            final = await double.wait_for_request(
                lambda r: (
                    r.method == "PATCH"
                    and r.path.endswith(f"/messages/{message_id}")
                    and bool(r.json.get("components"))
                ),
                timeout=30,
            )
    writes = double.edits_of(message_id)
    assert writes[0] is first and writes[-1] is final
    assert any("Mars" in shown(w.json) for w in writes[:-1])  # shown while it was written
    embed = final.json["embeds"][0]
    assert "Mars" not in shown(final.json)
    assert "second Sunday of March" in rendered(embed["description"])
    assert "extractive" in embed["footer"]["text"]
    assert LANTERNS_TITLE in sources(final.json)


@on_loop
async def test_llm_follow_up_is_rewritten_then_streamed_with_its_citations(
    double: DiscordDouble, make_settings, embedder
) -> None:
    standalone = "Who founded the Zorblax lantern festival of Quillerton?"
    with LLMDouble() as llm:
        llm.stream(["The festival ", "is held ", "on the second Sunday of March [1]."])
        llm.reply(standalone)  # the rewrite of the follow-up (not streamed)
        llm.stream(["It was founded by ", "the schoolteacher Marta Ilves ", "in 1923 [1]."])
        settings = make_settings(llm_base_url=llm.base_url, llm_model="test-model")
        async with running_bot(double, settings, embedder) as bot:
            conversations = bot.qa.service.conversations  # type: ignore[union-attr]
            await double.dispatch("MESSAGE_CREATE", double.dm_message(FESTIVAL_Q))
            await nth_post(double, DM_CHANNEL, 1)
            await double.wait_until(
                lambda: len(conversations.history(dm_conversation(DM_CHANNEL))) == 1, 30
            )
            await double.dispatch("MESSAGE_CREATE", double.dm_message(FOLLOW_UP))
            created = await nth_post(double, DM_CHANNEL, 2)
            message_id = created.response["id"]
            final = await double.wait_for_request(
                lambda r: (
                    r.method == "PATCH"
                    and r.path.endswith(f"/messages/{message_id}")
                    and bool(r.json.get("components"))
                ),
                timeout=30,
            )
    rewrite = llm.requests[1]
    assert rewrite.body.get("stream") is not True
    assert f"Q: {FESTIVAL_Q}" in rewrite.user_message
    assert f"Last question: {FOLLOW_UP}" in rewrite.user_message
    assert f"Question: {standalone}" in llm.requests[2].user_message
    embed = final.json["embeds"][0]
    assert "Marta Ilves" in rendered(embed["description"]) and "llm" in embed["footer"]["text"]
    assert LANTERNS_TITLE in sources(final.json)
    assert all(w.json["allowed_mentions"] == NO_PINGS for w in double.edits_of(message_id))

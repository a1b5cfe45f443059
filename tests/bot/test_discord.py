"""The Discord transport, end to end: the real discord.py client against a local Discord double.

Nothing of ours is mocked: the bot logs in over HTTP, syncs its commands, connects to the
double's gateway and answers with the real model over a real index. Most tests run `QABot`
in the test's event loop (fast, shares the session's model); the first one runs
`python -m bot` as a separate process, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import discord
import pytest
import pytest_asyncio
from discord_double import (
    APP_ID,
    BOT_USER_ID,
    DiscordDouble,
    Recorded,
    bot_settings,
    connected,
)
from discord_markdown import rendered

from bot.feedback import export_feedback
from bot.service import QAService
from bot.settings import Settings
from bot.transports.discord_client import QABot, configure_endpoints
from bot.transports.qa_cog import PROGRESS_EDIT_SECONDS, REINDEX_BUSY, REINDEX_REFUSED, THANKS

pytestmark = pytest.mark.asyncio(loop_scope="session")

SEED_QUESTION = "what did Obama say to Putin?"
SEED_TITLE = "Vladimir Putin was 'really clear' with Obama when confronted over US election hack"
NO_PINGS = {"parse": []}
EPHEMERAL = 64
MANAGE_GUILD = 0x20

ZORBLAX = """The Zorblax lantern festival of Quillerton
Every year on the second Sunday of March, the village of Quillerton holds the Zorblax lantern \
festival. Residents float exactly four hundred paper lanterns down the river Wend to \
remember the flood of 1911. The festival was founded by the schoolteacher Marta Ilves.
"""

PINGS = """Notice board of the Brackenfield chess club
The Brackenfield chess club meets every Thursday in the old library. The club secretary \
posted: @everyone the tournament moves to Friday, ask <@123456789012345678> for the keys. \
Members pay an annual fee of twelve pounds.
"""


# ------------------------------------------------------------------------------ fixtures


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def double() -> AsyncIterator[DiscordDouble]:
    d = DiscordDouble()
    await d.start()
    yield d
    await d.close()


@pytest.fixture
def make_settings(
    tmp_path: Path, seed_index: Path, seeds_dir: Path, double: DiscordDouble
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return bot_settings(
            double,
            tmp_path / "data",
            **({"articles_dir": seeds_dir, "index_dir": seed_index} | overrides),
        )

    return make


def build_index(tmp_path: Path, seeds_dir: Path, embedder, *extra: tuple[str, str]) -> Settings:
    """A copy of the seeds plus `extra` (name, text) articles, indexed under tmp_path."""
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    articles = tmp_path / "articles"
    shutil.copytree(seeds_dir, articles, dirs_exist_ok=True)
    for name, text in extra:
        (articles / name).write_text(text, encoding="utf-8")
    settings = IndexSettings(articles_dir=articles, index_dir=tmp_path / "index")
    rebuild(settings, lambda: embedder)
    return settings


@contextlib.asynccontextmanager
async def running_bot(
    double: DiscordDouble, settings: Settings, service: QAService
) -> AsyncIterator[QABot]:
    """QABot connected to the double in this event loop; closed (and checked) on exit."""
    double.reset()
    configure_endpoints(settings)
    bot = QABot(settings, service)
    async with connected(double, bot):
        yield bot


async def ask(
    double: DiscordDouble, question: str, *, timeout: float = 30.0, **kwargs: Any
) -> tuple[JSONish, Recorded, Recorded]:
    """Dispatch /ask; return (interaction, callback, first follow-up)."""
    payload = double.interaction("ask", {"question": question}, **kwargs)
    await double.dispatch("INTERACTION_CREATE", payload)
    callback = await double.wait_for_request(is_callback(payload), timeout=5)
    followup = await double.wait_for_request(is_followup(payload), timeout=timeout)
    return payload, callback, followup


JSONish = dict[str, Any]


def is_callback(payload: JSONish) -> Callable[[Recorded], bool]:
    path = f"/interactions/{payload['id']}/{payload['token']}/callback"
    return lambda r: r.method == "POST" and r.path == path


def is_followup(payload: JSONish) -> Callable[[Recorded], bool]:
    path = f"/webhooks/{APP_ID}/{payload['token']}"
    return lambda r: r.method == "POST" and r.path == path


def is_original_edit(payload: JSONish, contains: str = "") -> Callable[[Recorded], bool]:
    path = f"/webhooks/{APP_ID}/{payload['token']}/messages/@original"
    return lambda r: (
        r.method == "PATCH" and r.path == path and contains in (r.json or {}).get("content", "")
    )


def embed_text(body: JSONish) -> str:
    """All the visible text of a message's embeds (as Discord shows it: escapes resolved)."""
    parts = []
    for e in body.get("embeds") or []:
        parts += [e.get("title") or "", e.get("description") or ""]
        for f in e.get("fields") or []:
            parts += [f["name"], f["value"]]
    return rendered("\n".join(parts))


def ack_delay(double: DiscordDouble, payload: JSONish, callback: Recorded) -> float:
    return callback.at - double.interactions[payload["token"]].dispatched_at


# ------------------------------------------------------------------------------ the process


async def test_python_m_bot_logs_in_syncs_and_answers_ask(
    double: DiscordDouble, tmp_path: Path, seed_index: Path, seeds_dir: Path
) -> None:
    double.reset()
    env = {
        **os.environ,
        "DISCORD_TOKEN": "x",
        "DISCORD_API_BASE_URL": double.base_url,
        "DISCORD_GATEWAY_URL": double.gateway_url,
        "INDEX_DIR": str(seed_index),
        "ARTICLES_DIR": str(seeds_dir),
        "FEEDBACK_DB": str(tmp_path / "data" / "feedback.sqlite"),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "bot.log"
    with open(log_path, "wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=env, stdout=log_file, stderr=log_file
        )
        try:
            try:
                await double.wait_for_request(lambda r: r.path == "/users/@me", timeout=60)
                put = await double.wait_for_request(
                    lambda r: r.method == "PUT" and r.path == f"/applications/{APP_ID}/commands",
                    timeout=30,
                )
                await double.wait_ready(timeout=30)
            except AssertionError:
                raise AssertionError(log_path.read_text(errors="replace")[-5000:]) from None
            assert "ask" in {c["name"] for c in put.json}
            assert double.find(lambda r: r.path == "/oauth2/applications/@me")
            assert double.identifies[-1]["token"] == "x"

            payload, callback, followup = await ask(double, SEED_QUESTION, timeout=60)
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()

    assert callback.json["type"] == 5  # deferred: "thinking…"
    assert callback.status == 200
    assert ack_delay(double, payload, callback) < 3
    assert followup.status == 200
    assert followup.json["allowed_mentions"] == NO_PINGS
    text = embed_text(followup.json)
    assert "cut it out" in text
    assert "[1]" in rendered(followup.json["embeds"][0]["description"])
    field = followup.json["embeds"][0]["fields"][0]
    assert field["name"].startswith("[1] ")
    assert SEED_TITLE in field["name"]
    assert "000_39a60bc8d7f6d11b.txt" in field["value"]
    assert double.messages_without_safe_mentions() == []
    assert (tmp_path / "data" / "command-sync.hash").is_file()
    assert process.returncode == 0  # SIGTERM closes the bot cleanly


# ------------------------------------------------------------------------------ in-process


@pytest.fixture
def service_for(embedder) -> Callable[[Settings], QAService]:
    return lambda settings: QAService(settings, embedder=embedder)


async def test_ask_in_process_defers_then_follows_up_with_citations(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload, callback, followup = await ask(double, SEED_QUESTION)
    assert callback.json == {"type": 5}  # public unless asked otherwise
    assert ack_delay(double, payload, callback) < 3
    assert "cut it out" in embed_text(followup.json)
    assert followup.json["allowed_mentions"] == NO_PINGS
    assert not followup.json.get("flags")
    # the 👍/👎 view rides along
    buttons = followup.json["components"][0]["components"]
    assert [b["emoji"]["name"] for b in buttons] == ["👍", "👎"]


async def test_private_ask_is_ephemeral(double: DiscordDouble, make_settings, service_for) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("ask", {"question": SEED_QUESTION, "private": True})
        await double.dispatch("INTERACTION_CREATE", payload)
        callback = await double.wait_for_request(is_callback(payload))
        followup = await double.wait_for_request(is_followup(payload), timeout=30)
    assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert followup.json["flags"] & EPHEMERAL


async def test_commands_sync_globally_only_when_changed(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    service = service_for(settings)
    is_global_put = lambda r: r.method == "PUT" and r.path == f"/applications/{APP_ID}/commands"  # noqa: E731
    async with running_bot(double, settings, service):
        put = double.find(is_global_put)
        assert len(put) == 1
        names = {c["name"] for c in put[0].json}
        assert names == {"ask", "sources", "reindex", "help", "forget", "add"}
        ask_cmd = next(c for c in put[0].json if c["name"] == "ask")
        assert ask_cmd["contexts"] == [0, 1, 2]  # guilds, bot DMs, private channels
        assert [o["name"] for o in ask_cmd["options"]] == ["question", "private"]
    async with running_bot(double, settings, service):  # same commands: no second sync
        assert double.find(is_global_put) == []
    (settings.feedback_db.parent / "command-sync.hash").write_text("stale\n")
    async with running_bot(double, settings, service):  # changed since: synced again
        assert len(double.find(is_global_put)) == 1


async def test_guild_ids_sync_to_each_guild_instead(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings(discord_guild_ids=[111, 222])
    async with running_bot(double, settings, service_for(settings)):
        puts = double.find(lambda r: r.method == "PUT")
    assert sorted(r.path for r in puts) == [
        f"/applications/{APP_ID}/guilds/111/commands",
        f"/applications/{APP_ID}/guilds/222/commands",
    ]
    names = {c["name"] for c in puts[0].json}
    assert names == {"ask", "sources", "reindex", "help", "forget", "add"}


async def test_dm_is_answered_with_typing_then_a_message(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        await double.dispatch("MESSAGE_CREATE", double.dm_message(SEED_QUESTION, channel_id=7777))
        sent = await double.wait_for_request(
            lambda r: r.method == "POST" and r.path == "/channels/7777/messages", timeout=30
        )
        typing = double.find(lambda r: r.path == "/channels/7777/typing")
    assert typing and typing[0].at <= sent.at
    assert "cut it out" in embed_text(sent.json)
    assert sent.json["allowed_mentions"] == NO_PINGS
    assert "message_reference" not in sent.json  # a DM gets a plain message


async def test_guild_messages_answered_only_when_mentioned(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    me = {"id": str(BOT_USER_ID), "username": "qa-bot", "discriminator": "0", "avatar": None}
    async with running_bot(double, settings, service_for(settings)):
        await double.dispatch("MESSAGE_CREATE", double.guild_message(SEED_QUESTION))
        other_bot = {**me, "id": "999", "username": "other-bot", "bot": True}
        await double.dispatch(
            "MESSAGE_CREATE",
            double.guild_message(f"<@{BOT_USER_ID}> {SEED_QUESTION}", mentions=[me])
            | {"author": other_bot},
        )
        await double.dispatch(
            "MESSAGE_CREATE",
            double.guild_message(f"<@{BOT_USER_ID}> {SEED_QUESTION}", mentions=[me])
            | {"author": me},
        )
        mention = double.guild_message(f"<@{BOT_USER_ID}> {SEED_QUESTION}", mentions=[me])
        await double.dispatch("MESSAGE_CREATE", mention)
        sent = await double.wait_for_request(
            lambda r: r.method == "POST" and r.path == "/channels/6666/messages", timeout=30
        )
        await asyncio.sleep(0.5)
        all_sent = double.find(lambda r: r.path == "/channels/6666/messages")
    assert len(all_sent) == 1  # not the unmentioned message, not the bot's own
    assert str(sent.json["message_reference"]["message_id"]) == mention["id"]
    assert "cut it out" in embed_text(sent.json)
    assert sent.json["allowed_mentions"] == NO_PINGS


async def test_reindex_refused_for_non_admins(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings(discord_admin_user_ids=[1])
    async with running_bot(double, settings, service_for(settings)):
        for guild_id in (5555, None):  # a member without Manage Server; a DM
            payload = double.interaction("reindex", user_id=4242, guild_id=guild_id)
            await double.dispatch("INTERACTION_CREATE", payload)
            callback = await double.wait_for_request(is_callback(payload))
            assert callback.json["type"] == 4
            assert callback.json["data"]["flags"] == EPHEMERAL
            assert callback.json["data"]["content"] == REINDEX_REFUSED
            assert callback.json["data"]["allowed_mentions"] == NO_PINGS


async def test_admin_reindex_serves_a_new_article_without_restart(
    double: DiscordDouble, tmp_path: Path, seeds_dir: Path, embedder, make_settings, service_for
) -> None:
    built = build_index(tmp_path, seeds_dir, embedder)
    settings = make_settings(
        articles_dir=built.articles_dir,
        index_dir=built.index_dir,
        discord_admin_user_ids=[777],
        discord_cooldown_seconds=0,
    )
    async with running_bot(double, settings, service_for(settings)):
        (built.articles_dir / "zorblax.txt").write_text(ZORBLAX, encoding="utf-8")

        # a bot admin (by user id), in a guild where they lack Manage Server
        payload = double.interaction("reindex", user_id=777, permissions=0)
        await double.dispatch("INTERACTION_CREATE", payload)
        callback = await double.wait_for_request(is_callback(payload))
        assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}
        assert ack_delay(double, payload, callback) < 3
        done = await double.wait_for_request(is_original_edit(payload, "Index rebuilt"), 60)
        assert "added 1" in done.json["content"]
        assert "unchanged 1" in done.json["content"]
        progress = double.find(is_original_edit(payload, "Rebuilding the index"))
        assert progress and all(p.at < done.at for p in progress)
        gaps = [b.at - a.at for a, b in itertools.pairwise(progress)]
        assert all(gap >= PROGRESS_EDIT_SECONDS - 0.1 for gap in gaps), gaps  # throttled

        _, _, followup = await ask(double, "When is the Zorblax lantern festival held?")
        text = embed_text(followup.json)
        assert "Zorblax lantern festival of Quillerton" in text
        assert "second Sunday of March" in text

        # a member with Manage Server may too; nothing changed since, so nothing is rebuilt
        payload = double.interaction("reindex", user_id=4243, permissions=MANAGE_GUILD)
        await double.dispatch("INTERACTION_CREATE", payload)
        done = await double.wait_for_request(is_original_edit(payload, "up to date"), 60)
        assert "unchanged 2" in done.json["content"]


async def test_second_reindex_while_one_runs_is_refused(
    double: DiscordDouble, tmp_path: Path, seeds_dir: Path, embedder, make_settings, service_for
) -> None:
    built = build_index(tmp_path, seeds_dir, embedder)
    settings = make_settings(
        articles_dir=built.articles_dir, index_dir=built.index_dir, discord_admin_user_ids=[777]
    )
    for i in range(4):  # enough new text that the first rebuild takes a moment
        (built.articles_dir / f"extra-{i}.txt").write_text(
            f"Extra article {i}\n" + f"Paragraph {i} about the harbour lights. " * 30,
            encoding="utf-8",
        )
    async with running_bot(double, settings, service_for(settings)):
        first = double.interaction("reindex", user_id=777)
        second = double.interaction("reindex", user_id=777)
        await double.dispatch("INTERACTION_CREATE", first)
        await double.wait_for_request(is_callback(first))
        await double.dispatch("INTERACTION_CREATE", second)
        refused = await double.wait_for_request(is_callback(second))
        assert refused.json["data"]["content"] == REINDEX_BUSY
        assert refused.json["data"]["flags"] == EPHEMERAL
        await double.wait_for_request(is_original_edit(first, "Index rebuilt"), 60)


async def test_fifty_concurrent_asks_are_acknowledged_in_time_and_answered(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings(discord_cooldown_seconds=10)  # 50 different people
    async with running_bot(double, settings, service_for(settings)):
        payloads = [
            double.interaction("ask", {"question": SEED_QUESTION}, user_id=10_000 + i)
            for i in range(50)
        ]
        await asyncio.gather(*(double.dispatch("INTERACTION_CREATE", p) for p in payloads))
        tokens = {p["token"] for p in payloads}
        callbacks = await double.wait_for_requests(
            lambda r: r.path.endswith("/callback") and r.path.split("/")[3] in tokens, 50, 10
        )
        followups = await double.wait_for_requests(
            lambda r: r.method == "POST" and r.path.split("/")[-1] in tokens, 50, 90
        )
    assert len(callbacks) == 50 and all(c.status == 200 for c in callbacks)
    by_token = {c.path.split("/")[3]: c for c in callbacks}
    delays = [ack_delay(double, p, by_token[p["token"]]) for p in payloads]
    assert max(delays) < 3, delays
    assert len({f.path for f in followups}) == 50
    assert all(f.status == 200 and "cut it out" in embed_text(f.json) for f in followups)


async def test_mentions_in_articles_never_ping(
    double: DiscordDouble, tmp_path: Path, seeds_dir: Path, embedder, make_settings, service_for
) -> None:
    built = build_index(tmp_path, seeds_dir, embedder, ("pings.txt", PINGS))
    settings = make_settings(articles_dir=built.articles_dir, index_dir=built.index_dir)
    question = "What did the Brackenfield chess club secretary post about the tournament?"
    async with running_bot(double, settings, service_for(settings)):
        _, _, followup = await ask(double, question)
        await double.dispatch("MESSAGE_CREATE", double.dm_message(question, channel_id=8888))
        dm = await double.wait_for_request(lambda r: r.path == "/channels/8888/messages", 30)
    for body in (followup.json, dm.json):
        text = embed_text(body)
        assert "@everyone" in text and "<@123456789012345678>" in text  # quoted verbatim
        assert body["allowed_mentions"] == NO_PINGS
    assert double.messages()
    assert double.messages_without_safe_mentions() == []


async def test_cooldown_refuses_a_second_question_politely(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings(discord_cooldown_seconds=30, discord_burst=1)  # a plain cooldown
    async with running_bot(double, settings, service_for(settings)):
        await ask(double, SEED_QUESTION, user_id=31)
        payload = double.interaction("ask", {"question": SEED_QUESTION}, user_id=31)
        await double.dispatch("INTERACTION_CREATE", payload)
        callback = await double.wait_for_request(is_callback(payload))
        await ask(double, SEED_QUESTION, user_id=32)  # someone else is not held back
    assert callback.json["type"] == 4
    assert callback.json["data"]["flags"] == EPHEMERAL
    assert re.fullmatch(
        r"You're asking too fast — try again in \d+ s\.", callback.json["data"]["content"]
    )


@pytest.mark.parametrize(
    ("question", "says"),
    [("   ", "Please type a question"), ("why " * 200, "characters long")],
    ids=["empty", "too-long"],
)
async def test_unusable_questions_get_a_polite_private_reply(
    double: DiscordDouble, make_settings, service_for, question: str, says: str
) -> None:
    settings = make_settings(discord_cooldown_seconds=30)
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("ask", {"question": question})
        await double.dispatch("INTERACTION_CREATE", payload)
        callback = await double.wait_for_request(is_callback(payload))
        # a refused question does not use up the cooldown
        await ask(double, SEED_QUESTION)
        await double.dispatch("MESSAGE_CREATE", double.dm_message(question, user_id=77))
        dm = await double.wait_for_request(lambda r: r.path == "/channels/7777/messages")
    assert callback.json["type"] == 4
    assert callback.json["data"]["flags"] == EPHEMERAL
    assert says in callback.json["data"]["content"]
    assert says in dm.json["content"]


async def test_index_problems_are_explained(
    double: DiscordDouble, tmp_path: Path, make_settings, service_for
) -> None:
    settings = make_settings(index_dir=tmp_path / "no-index-here")
    async with running_bot(double, settings, service_for(settings)):
        _, _, followup = await ask(double, SEED_QUESTION)
    assert "no index has been built" in followup.json["content"]
    assert followup.json["allowed_mentions"] == NO_PINGS


class BrokenQueries:
    """The real model, except that embedding a question fails: a bug nobody planned for."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode_queries(self, texts: Any) -> Any:
        raise RuntimeError("the model fell over")


async def test_unexpected_error_gets_an_apology_with_an_id(
    double: DiscordDouble, make_settings, embedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    service = QAService(settings, embedder=BrokenQueries(embedder))
    async with running_bot(double, settings, service):
        _, _, followup = await ask(double, SEED_QUESTION)
        await double.dispatch("MESSAGE_CREATE", double.dm_message(SEED_QUESTION))
        dm = await double.wait_for_request(lambda r: r.path == "/channels/7777/messages", 30)
    for content in (followup.json["content"], dm.json["content"]):
        match = re.fullmatch(r"Sorry, something went wrong \(error id ([0-9a-f]{8})\)\.", content)
        assert match, content
        logged = [r for r in caplog.records if match.group(1) in r.getMessage()]
        assert logged and logged[0].exc_info  # the traceback is in the log, not the reply


async def test_errors_outside_our_own_handling_reach_the_tree_handler(
    double: DiscordDouble, make_settings, service_for, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed option (a string where Discord promises an integer) breaks /sources after
    it deferred: the tree's error handler logs it and apologises through a follow-up."""
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("sources", {"page": "not a number"})
        await double.dispatch("INTERACTION_CREATE", payload)
        followup = await double.wait_for_request(is_followup(payload), 30)
    match = re.fullmatch(
        r"Sorry, something went wrong \(error id ([0-9a-f]{8})\)\.", followup.json["content"]
    )
    assert match, followup.json
    assert followup.json["flags"] & EPHEMERAL
    assert any(match.group(1) in r.getMessage() and r.exc_info for r in caplog.records)


async def test_sources_lists_articles_and_autocompletes_titles(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("sources", {"query": "putin"})
        await double.dispatch("INTERACTION_CREATE", payload)
        listed = await double.wait_for_request(is_followup(payload), 30)
        payload = double.interaction("sources", {"query": "no such title"})
        await double.dispatch("INTERACTION_CREATE", payload)
        empty = await double.wait_for_request(is_followup(payload), 30)
        payload = double.interaction("sources", {"query": "vlad"}, autocomplete="query")
        await double.dispatch("INTERACTION_CREATE", payload)
        completed = await double.wait_for_request(is_callback(payload))
    assert SEED_TITLE in embed_text(listed.json)
    assert "Page 1 of 1" in listed.json["embeds"][0]["footer"]["text"]
    assert "No indexed article matches" in embed_text(empty.json)
    assert completed.json["type"] == 8
    choices = completed.json["data"]["choices"]
    assert [c["name"] for c in choices] == [SEED_TITLE]
    assert all(len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in choices)


async def test_help_explains_commands_privately(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("help", guild_id=None)
        await double.dispatch("INTERACTION_CREATE", payload)
        callback = await double.wait_for_request(is_callback(payload))
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] == EPHEMERAL
    text = embed_text(callback.json["data"])
    for word in ("/ask", "/sources", "/reindex", "direct message"):
        assert word in text


async def test_feedback_buttons_store_votes(
    double: DiscordDouble, tmp_path: Path, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        _, _, followup = await ask(double, SEED_QUESTION)
        thumbs_up = followup.json["components"][0]["components"][0]["custom_id"]
        results = []
        for _ in range(2):  # the second click by the same person is not counted twice
            click = double.component_click(followup.response, thumbs_up, user_id=4242)
            await double.dispatch("INTERACTION_CREATE", click)
            results.append(await double.wait_for_request(is_callback(click)))
    assert results[0].json["data"]["content"] == THANKS
    assert results[0].json["data"]["flags"] == EPHEMERAL
    assert "already" in results[1].json["data"]["content"]
    import io
    import json

    out = io.StringIO()
    assert export_feedback(settings.feedback_db, out) == 1
    row = json.loads(out.getvalue())
    assert row["vote"] == 1 and row["question"] == SEED_QUESTION
    assert "cut it out" in row["answer"] and row["citations"][0]["n"] == 1
    assert "4242" not in row["user_hash"] and len(row["user_hash"]) == 64
    assert row["index_version"]


async def test_new_index_from_another_process_is_picked_up(
    double: DiscordDouble, tmp_path: Path, seeds_dir: Path, embedder, make_settings, service_for
) -> None:
    """A rebuild published by the CLI (here: a direct rebuild) is served without /reindex."""
    from index.rebuild import rebuild

    built = build_index(tmp_path, seeds_dir, embedder)
    settings = make_settings(
        articles_dir=built.articles_dir, index_dir=built.index_dir, index_poll_seconds=0.2
    )
    service = service_for(settings)
    async with running_bot(double, settings, service):
        await ask(double, SEED_QUESTION)
        before = service.index_version()
        (built.articles_dir / "zorblax.txt").write_text(ZORBLAX, encoding="utf-8")
        await asyncio.to_thread(rebuild, built, lambda: embedder)
        deadline = time.monotonic() + 10
        while service.index_version() == before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert service.index_version() != before
        _, _, followup = await ask(double, "When is the Zorblax lantern festival held?")
    assert "Zorblax lantern festival of Quillerton" in embed_text(followup.json)


async def test_the_bot_is_auto_sharded_and_can_run_its_share_of_shards(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)) as bot:
        assert isinstance(bot, discord.AutoShardedClient)
        assert double.find(lambda r: r.path == "/gateway/bot")  # Discord's recommended count
        assert double.identifies[-1]["shard"] == [0, 1]
    # one of two processes splitting the bot: it runs shard 1 of 2, and answers there
    settings = make_settings(discord_shard_count=2, discord_shard_ids=[1])
    async with running_bot(double, settings, service_for(settings)) as bot:
        assert list(bot.shard_ids or []) == [1]
        assert double.identifies[-1]["shard"] == [1, 2]
        _, callback, followup = await ask(double, SEED_QUESTION)
    assert callback.json == {"type": 5}
    assert "cut it out" in embed_text(followup.json)

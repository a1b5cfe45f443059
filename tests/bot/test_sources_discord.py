"""`/add url` and the background refresh, through the real discord.py client and the double.

The article server is tests/web_double.py on 127.0.0.1, which the bot may reach only
because these settings allow private addresses; the refusal test turns that off.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from discord_double import APP_ID, DiscordDouble, Recorded, bot_settings, connected
from web_double import WebDouble, page

from bot.service import QAService
from bot.settings import Settings
from bot.transports.discord_client import QABot, configure_endpoints
from bot.transports.sources_cog import ADD_REFUSED, SourcesCog
from index.rebuild import rebuild
from index.settings import IndexSettings

pytestmark = pytest.mark.asyncio(loop_scope="session")

EPHEMERAL = 64
NO_PINGS = {"parse": []}
ADMIN = 777
CHESS = [
    "The Brackenfield chess club will host the county championship in the old library on "
    "the first weekend of July, with sixty players expected.",
    "Entry costs twelve pounds for adults and is free for players under sixteen, the club "
    "secretary Ruth Okafor said on Monday.",
]
KITES = [
    "The Saltmarsh kite festival drew four thousand visitors to the dunes on Sunday, the "
    "largest crowd in its twenty-year history.",
    "A dragon kite forty metres long, built by pupils of the village school, won the prize "
    "for the best handmade kite.",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def double() -> AsyncIterator[DiscordDouble]:
    d = DiscordDouble()
    await d.start()
    yield d
    await d.close()


@pytest.fixture
def web() -> Iterator[WebDouble]:
    with WebDouble() as w:
        w.add("/club/championship", page("Chess championship comes to Brackenfield", CHESS,
                                         date="2024-06-03"))  # fmt: skip
        yield w


@pytest.fixture
def make_settings(tmp_path: Path, double: DiscordDouble, embedder) -> Callable[..., Settings]:
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "harbour.txt").write_text(
        "Harbour lights return\nThe old harbour lights were switched on again on Friday.\n",
        encoding="utf-8",
    )
    index_settings = IndexSettings(articles_dir=articles, index_dir=tmp_path / "index")
    rebuild(index_settings, lambda: embedder)

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "articles_dir": articles,
            "index_dir": tmp_path / "index",
            "discord_admin_user_ids": [ADMIN],
            "fetch_allow_private": True,
            "fetch_timeout_seconds": 2.0,
        }
        return bot_settings(double, tmp_path / "data", **(values | overrides))

    return make


@contextlib.asynccontextmanager
async def running_bot(double: DiscordDouble, settings: Settings, embedder) -> AsyncIterator[QABot]:
    double.reset()
    configure_endpoints(settings)
    bot = QABot(settings, QAService(settings, embedder=embedder))
    async with connected(double, bot):
        yield bot


def callback_of(payload: dict[str, Any]) -> Callable[[Recorded], bool]:
    path = f"/interactions/{payload['id']}/{payload['token']}/callback"
    return lambda r: r.method == "POST" and r.path == path


def original_edit(payload: dict[str, Any]) -> Callable[[Recorded], bool]:
    path = f"/webhooks/{APP_ID}/{payload['token']}/messages/@original"
    return lambda r: r.method == "PATCH" and r.path == path and bool((r.json or {}).get("content"))


async def add(double: DiscordDouble, url: str, **kwargs: Any) -> tuple[Recorded, Recorded | None]:
    payload = double.interaction("add", {"url": url}, **kwargs)
    await double.dispatch("INTERACTION_CREATE", payload)
    callback = await double.wait_for_request(callback_of(payload), timeout=5)
    if callback.json["type"] != 5:
        return callback, None
    return callback, await double.wait_for_request(original_edit(payload), timeout=90)


async def test_add_by_permitted_user_indexes_the_article_and_others_are_refused(
    double: DiscordDouble, make_settings, embedder, web: WebDouble
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, embedder):
        url = web.url("/club/championship")
        # a member without Manage Server, in a guild and in a DM: refused, nothing fetched
        for guild_id in (5555, None):
            callback, _ = await add(double, url, user_id=4242, guild_id=guild_id)
            assert callback.json["type"] == 4
            assert callback.json["data"]["content"] == ADD_REFUSED
            assert callback.json["data"]["flags"] == EPHEMERAL
        assert web.asked("/club/championship") == 0

        callback, done = await add(double, url, user_id=ADMIN)
        assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}
        assert done is not None
        text = done.json["content"]
        assert text.startswith("Added **Chess championship comes to Brackenfield** (2024-06-03)")
        assert "passage" in text and "searchable now" in text
        assert done.json["allowed_mentions"] == NO_PINGS

        # searchable at once, cited with its date and a link to the passage
        payload = double.interaction("ask", {"question": "How much does entry to the chess "
                                             "championship cost?"})  # fmt: skip
        await double.dispatch("INTERACTION_CREATE", payload)
        followup = await double.wait_for_request(
            lambda r: r.method == "POST" and r.path == f"/webhooks/{APP_ID}/{payload['token']}",
            timeout=60,
        )
        field = followup.json["embeds"][0]["fields"][0]
        assert "2024-06-03" in field["name"]
        assert f"]({url}#:~:text=" in field["value"]

        # a member with Manage Server may too; the same article again adds nothing
        callback, done = await add(double, url, user_id=4243, permissions=0x20)
        assert done is not None and done.json["content"].startswith("Already indexed")

        # /sources lists it with its date and link
        payload = double.interaction("sources")
        await double.dispatch("INTERACTION_CREATE", payload)
        listing = await double.wait_for_request(
            lambda r: r.method == "POST" and r.path == f"/webhooks/{APP_ID}/{payload['token']}",
            timeout=30,
        )
        description = listing.json["embeds"][0]["description"]
        assert f"]({url})" in description and "2024-06-03" in description


async def test_add_of_a_private_address_is_refused_with_its_reason(
    double: DiscordDouble, make_settings, embedder
) -> None:
    settings = make_settings(fetch_allow_private=False)
    async with running_bot(double, settings, embedder):
        for url, words in (
            ("http://169.254.169.254/latest/meta-data/", "link-local address"),
            ("http://10.0.0.1/admin", "private address"),
            ("ftp://files.example.org/a.txt", "only http and https"),
        ):
            _, done = await add(double, url, user_id=ADMIN)
            assert done is not None
            content = done.json["content"]
            assert content.startswith("Could not add") and words in content, content
    web_dir = settings.articles_dir / "web"
    assert not web_dir.exists() or not list(web_dir.rglob("*.md"))


async def test_background_refresh_adds_feed_entries(
    double: DiscordDouble, make_settings, embedder, web: WebDouble, tmp_path: Path
) -> None:
    web.add("/kites", page("Record crowd at the kite festival", KITES, date="2024-08-12"))
    web.add(
        "/rss.xml",
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Saltmarsh</title>'
        f"<item><title>Kites</title><link>{web.url('/kites')}</link></item></channel></rss>",
        content_type="application/rss+xml",
    )
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[feed]]\nurl = "{web.url("/rss.xml")}"\n', encoding="utf-8")
    settings = make_settings(sources_file=sources, refresh_minutes=60)
    async with running_bot(double, settings, embedder) as bot:
        cog = bot.get_cog("Sources")
        assert isinstance(cog, SourcesCog)
        assert cog._refresher is not None  # scheduled, since the file lists a feed
        report = await cog.refresh_once()
        assert report is not None
        assert [o.url for o in report.with_status("added")] == [web.url("/kites")]
        titles = [a.title for a in bot.service.articles()]
        assert "Record crowd at the kite festival" in titles

"""The Discord bot under load and under faults, against the Discord double.

The real discord.py client and the real answering service (the packaged model over a
one-article index); what fails is Discord: rate limits, 5xx and dropped connections on the
REST side, a closed gateway, an invalidated session, a connection that stops acknowledging
heartbeats, a user who refuses DMs. Every case must end with the answer delivered, or, where
Discord refuses for good, with one log line and no further request. The last tests run
`python -m bot` as a process: SIGTERM drains the answers in flight even while a rebuild is
stuck, and a bad token or an unreachable API is one line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from discord_double import (
    APP_ID,
    DiscordDouble,
    Recorded,
    bot_settings,
    embed_text,
    is_callback,
    is_channel_message,
    is_followup,
    is_original_edit,
)
from llm_double import LLMDouble, Reply, completion

from bot.service import QAService
from bot.settings import Settings
from bot.transports.discord_client import QABot, configure_endpoints
from bot.transports.qa_cog import REINDEX_INTERRUPTED, RESTARTING

pytestmark = pytest.mark.asyncio(loop_scope="session")

LANTERNS = """The Zorblax lantern festival of Quillerton
Every year on the second Sunday of March, the village of Quillerton holds the Zorblax lantern \
festival. Residents float exactly four hundred paper lanterns down the river Wend to \
remember the flood of 1911. The festival was founded by the schoolteacher Marta Ilves.
"""
QUESTION = "When is the Zorblax lantern festival held?"
ANSWER = "second Sunday of March"
TITLE = "The Zorblax lantern festival of Quillerton"
ADMIN = 777

# Written next to a subprocess bot and put first on its PYTHONPATH: a rebuild that never gets
# past reading the articles, as one stuck on a file would.
STUCK_REBUILD_HOOK = """\
import threading

import index.rebuild


def _stuck_reading(*args, **kwargs):
    threading.Event().wait()


index.rebuild.load_articles = _stuck_reading
"""


# ------------------------------------------------------------------------------ fixtures


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def double() -> AsyncIterator[DiscordDouble]:
    d = DiscordDouble()
    await d.start()
    yield d
    await d.close()


@pytest.fixture(scope="module")
def lanterns(tmp_path_factory: pytest.TempPathFactory, embedder) -> tuple[Path, Path]:
    """(articles folder, index folder) of one small article, indexed once for the module."""
    from index.rebuild import rebuild
    from index.settings import IndexSettings

    root = tmp_path_factory.mktemp("lanterns")
    articles = root / "articles"
    articles.mkdir()
    (articles / "lanterns.txt").write_text(LANTERNS, encoding="utf-8")
    rebuild(IndexSettings(articles_dir=articles, index_dir=root / "index"), lambda: embedder)
    return articles, root / "index"


@pytest.fixture
def make_settings(
    tmp_path: Path, lanterns: tuple[Path, Path], double: DiscordDouble
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return bot_settings(
            double,
            tmp_path / "data",
            **({"articles_dir": lanterns[0], "index_dir": lanterns[1]} | overrides),
        )

    return make


@pytest.fixture
def service_for(embedder) -> Callable[[Settings], QAService]:
    return lambda settings: QAService(settings, embedder=embedder)


@contextlib.asynccontextmanager
async def running_bot(
    double: DiscordDouble,
    settings: Settings,
    service: QAService,
    *,
    heartbeat_ms: int | None = None,
    heartbeat_timeout: float = 60.0,
) -> AsyncIterator[QABot]:
    """QABot connected to the double in this event loop; closed on exit."""
    double.reset()
    if heartbeat_ms is not None:
        double.heartbeat_ms = heartbeat_ms
    configure_endpoints(settings)
    bot = QABot(settings, service, heartbeat_timeout=heartbeat_timeout)
    async with bot:
        runner = asyncio.create_task(bot.start("x"))
        try:
            await asyncio.wait_for(bot.wait_until_ready(), 15)
            await asyncio.to_thread(service.live.get)  # model and index loaded before timing
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 10)
    assert double.messages_without_safe_mentions() == []


async def until_idle(bot: QABot, timeout: float = 30.0) -> None:
    """Until the bot has no question, command or DM in flight."""
    assert bot.qa is not None
    deadline = time.monotonic() + timeout
    while len(bot.qa.inflight) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not len(bot.qa.inflight), "still answering"


def ack_delay(double: DiscordDouble, payload: dict[str, Any], callback: Recorded) -> float:
    return callback.at - double.interactions[payload["token"]].dispatched_at


def bot_problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What our code logged at WARNING or above."""
    return [r for r in caplog.records if r.name.startswith("bot.") and r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------ load


async def test_two_hundred_concurrent_asks_are_acknowledged_within_3_s_and_all_answered(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings(discord_cooldown_seconds=10)  # 200 different people
    async with running_bot(double, settings, service_for(settings)) as bot:
        payloads = [
            double.interaction("ask", {"question": QUESTION}, user_id=20_000 + i)
            for i in range(200)
        ]
        tokens = {p["token"] for p in payloads}
        started = time.monotonic()
        await asyncio.gather(*(double.dispatch("INTERACTION_CREATE", p) for p in payloads))
        callbacks = await double.wait_for_requests(
            lambda r: r.path.endswith("/callback") and r.path.split("/")[3] in tokens, 200, 30
        )
        followups = await double.wait_for_requests(
            lambda r: r.method == "POST" and r.path.split("/")[-1] in tokens, 200, 300
        )
        answered = max(f.at for f in followups) - started
        await until_idle(bot)
    by_token = {c.path.split("/")[3]: c for c in callbacks}
    delays = sorted(ack_delay(double, p, by_token[p["token"]]) for p in payloads)
    print(
        f"\n200 concurrent /ask: acknowledged in median {statistics.median(delays):.2f} s, "
        f"p95 {delays[189]:.2f} s, max {delays[-1]:.2f} s; all answered after {answered:.1f} s"
    )
    assert all(c.status == 200 and c.json["type"] == 5 for c in callbacks)
    assert delays[-1] < 3, delays[-10:]
    assert len({f.path for f in followups}) == 200
    assert all(f.status == 200 and ANSWER in embed_text(f.json) for f in followups)


# ------------------------------------------------------------------------------ REST faults


def _fault(double: DiscordDouble, kind: str, where: Callable[[Recorded], bool]) -> None:
    match kind:
        case "429":
            double.rate_limit(where, retry_after=0.5)
        case "502" | "503":
            double.fail(where, int(kind))
        case "dropped":
            double.drop_connection(where)


@pytest.mark.parametrize(
    ("kind", "statuses"),
    [("429", [429, 200]), ("502", [502, 200]), ("dropped", [-1, 200])],
    ids=["rate-limited", "bad-gateway", "connection-dropped"],
)
async def test_a_failed_followup_is_sent_again_and_delivered(
    double: DiscordDouble, make_settings, service_for, kind: str, statuses: list[int]
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("ask", {"question": QUESTION})
        _fault(double, kind, is_followup(payload))
        await double.dispatch("INTERACTION_CREATE", payload)
        delivered = await double.wait_for_request(
            lambda r: is_followup(payload)(r) and r.status == 200, 30
        )
    attempts = double.find(is_followup(payload))
    assert [a.status for a in attempts] == statuses
    if kind == "429":  # retry_after was respected, not hammered
        assert attempts[1].at - attempts[0].at >= 0.5
    assert ANSWER in embed_text(delivered.json)


@pytest.mark.parametrize("kind", ["429", "503", "dropped"])
async def test_a_failed_dm_reply_is_sent_again_and_delivered(
    double: DiscordDouble, make_settings, service_for, kind: str
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        _fault(double, kind, is_channel_message(7100))
        await double.dispatch("MESSAGE_CREATE", double.dm_message(QUESTION, channel_id=7100))
        delivered = await double.wait_for_request(
            lambda r: is_channel_message(7100)(r) and r.status == 200, 30
        )
    attempts = double.find(is_channel_message(7100))
    assert len(attempts) == 2 and attempts[0].status != 200
    assert ANSWER in embed_text(delivered.json)


@pytest.mark.parametrize("typing_refused", [True, False], ids=["typing-refused", "send-refused"])
async def test_an_undeliverable_dm_is_one_log_line_and_no_second_request(
    double: DiscordDouble,
    make_settings,
    service_for,
    caplog: pytest.LogCaptureFixture,
    typing_refused: bool,
) -> None:
    settings = make_settings()
    caplog.set_level(logging.INFO)
    async with running_bot(double, settings, service_for(settings)) as bot:
        double.close_dms(9001, typing_refused=typing_refused)
        await double.dispatch("MESSAGE_CREATE", double.dm_message(QUESTION, channel_id=9001))
        await double.wait_for_request(lambda r: r.path.startswith("/channels/9001/"), 30)
        await until_idle(bot)
        await asyncio.sleep(0.3)  # anything still coming would be on its way by now
    to_channel = double.find(lambda r: r.path.startswith("/channels/9001/"))
    refused = [r for r in to_channel if r.status == 403]
    assert len(refused) == 1  # Discord counts each refused request toward an IP ban
    assert refused[0].response["code"] == 50007
    sent = [r for r in to_channel if r.path.endswith("/messages")]
    assert len(sent) == (0 if typing_refused else 1)  # no apology into the same DM
    problems = bot_problems(caplog)
    assert len(problems) == 1, [r.getMessage() for r in problems]
    assert "50007" in problems[0].getMessage() and "\n" not in problems[0].getMessage()
    assert problems[0].exc_info is None  # no traceback


# ------------------------------------------------------------------------------ gateway faults


async def test_a_closed_gateway_is_resumed_and_nothing_is_lost(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        payload = double.interaction("ask", {"question": QUESTION})
        await double.dispatch("INTERACTION_CREATE", payload)
        await double.wait_for_request(is_callback(payload))
        await double.close_gateway(4000)  # "unknown error": the client should resume
        await double.dispatch("MESSAGE_CREATE", double.dm_message(QUESTION, channel_id=7200))
        followup = await double.wait_for_request(is_followup(payload), 30)
        dm = await double.wait_for_request(is_channel_message(7200), 30)
        assert double.connected
    assert len(double.resumes) == 1 and len(double.identifies) == 1
    assert followup.status == 200 and ANSWER in embed_text(followup.json)
    assert dm.status == 200 and ANSWER in embed_text(dm.json)


async def test_an_invalidated_session_identifies_again_and_answers(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(double, settings, service_for(settings)):
        first = double.interaction("ask", {"question": QUESTION})
        await double.dispatch("INTERACTION_CREATE", first)
        await double.wait_for_request(is_callback(first))
        await double.invalidate_session(resumable=False)
        await double.wait_until(lambda: len(double.identifies) == 2 and double.connected, 30)
        second = double.interaction("ask", {"question": QUESTION}, user_id=4343)
        await double.dispatch("INTERACTION_CREATE", second)
        answers = [await double.wait_for_request(is_followup(p), 30) for p in (first, second)]
    assert double.resumes == []  # a new session, as INVALID_SESSION(false) demands
    assert all(a.status == 200 and ANSWER in embed_text(a.json) for a in answers)


async def test_missed_heartbeat_acks_reconnect_and_the_answer_arrives(
    double: DiscordDouble, make_settings, service_for
) -> None:
    settings = make_settings()
    async with running_bot(
        double, settings, service_for(settings), heartbeat_ms=200, heartbeat_timeout=1.5
    ):
        payload = double.interaction("ask", {"question": QUESTION})
        await double.dispatch("INTERACTION_CREATE", payload)
        await double.wait_for_request(is_callback(payload))
        double.zombie()  # no more ACKs, no more events on this connection
        beats = double.heartbeats
        await double.dispatch("MESSAGE_CREATE", double.dm_message(QUESTION, channel_id=7300))
        await double.wait_until(lambda: bool(double.resumes) and double.connected, 15)
        dm = await double.wait_for_request(is_channel_message(7300), 30)
        followup = await double.wait_for_request(is_followup(payload), 30)
    assert double.heartbeats > beats  # it kept beating into the silence before giving up
    assert len(double.identifies) == 1  # resumed, not a new session
    assert dm.status == 200 and ANSWER in embed_text(dm.json)  # replayed after the RESUME
    assert followup.status == 200 and ANSWER in embed_text(followup.json)


# ------------------------------------------------------------------------------ the process


def _bot_env(double: DiscordDouble, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DISCORD_TOKEN": "x",
        "DISCORD_API_BASE_URL": double.base_url,
        "DISCORD_GATEWAY_URL": double.gateway_url,
        "FEEDBACK_DB": str(tmp_path / "data" / "feedback.sqlite"),
        "DISCORD_COOLDOWN_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


async def until_logged(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged within {timeout} s")
        await asyncio.sleep(0.1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("problem", ["invalid-token", "unreachable-api"])
async def test_a_bad_token_or_an_unreachable_api_is_one_line(
    double: DiscordDouble, tmp_path: Path, lanterns: tuple[Path, Path], problem: str
) -> None:
    double.reset()
    env = _bot_env(double, tmp_path, INDEX_DIR=str(lanterns[1]), ARTICLES_DIR=str(lanterns[0]))
    if problem == "invalid-token":
        env["DISCORD_TOKEN"] = "not-the-token"
    else:
        env["DISCORD_API_BASE_URL"] = f"http://127.0.0.1:{_closed_port()}/api/v10"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    err = stderr.decode("utf-8", "replace")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert process.returncode not in (0, None)
    assert "Traceback" not in err and stdout == b"", err
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert ("DISCORD_TOKEN" if problem == "invalid-token" else "cannot reach") in errors[0]
    assert "not-the-token" not in err
    if problem == "invalid-token":
        assert double.find(lambda r: r.path == "/users/@me")[0].status == 401


async def test_sigterm_delivers_the_answers_in_flight_and_stops_a_stuck_rebuild(
    double: DiscordDouble, tmp_path: Path, lanterns: tuple[Path, Path]
) -> None:
    """10 answers are waiting on the LLM and /reindex is stuck reading articles when SIGTERM
    comes: the 10 are delivered, a new question is told to come back, the rebuild is
    abandoned with a notice, and the process exits cleanly within 10 s."""
    double.reset()
    articles, index = tmp_path / "articles", tmp_path / "index"
    shutil.copytree(lanterns[0], articles)
    shutil.copytree(lanterns[1], index)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(STUCK_REBUILD_HOOK, encoding="utf-8")
    llm_reply = completion(f"In Quillerton it is held every year on the {ANSWER} [1].")
    stderr_path = tmp_path / "stderr.log"
    with LLMDouble() as llm, open(stderr_path, "wb") as stderr:
        released = threading.Event()  # the LLM answers nobody before SIGTERM

        def slow_llm(request: Any) -> Reply:
            released.wait(30)
            return Reply(200, llm_reply, delay=0.5)

        for _ in range(10):
            llm.respond(slow_llm)
        env = _bot_env(
            double, tmp_path,
            INDEX_DIR=str(index), ARTICLES_DIR=str(articles),
            DISCORD_ADMIN_USER_IDS=str(ADMIN), DISCORD_ANSWER_WORKERS="10",
            DISCORD_DRAIN_SECONDS="7", LLM_BASE_URL=llm.base_url, LLM_MODEL="double",
            PYTHONPATH=os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]),
        )  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            try:
                await double.wait_for_request(
                    lambda r: r.method == "PUT" and r.path == f"/applications/{APP_ID}/commands",
                    timeout=90,
                )
                await double.wait_ready(timeout=30)
                await until_logged(stderr_path, "serving index version", 90)  # model loaded
            except AssertionError:
                raise AssertionError(stderr_path.read_text(errors="replace")[-5000:]) from None

            reindex = double.interaction("reindex", user_id=ADMIN)
            await double.dispatch("INTERACTION_CREATE", reindex)
            await double.wait_for_request(is_original_edit(reindex, "reading articles"), 30)

            asks = [
                double.interaction("ask", {"question": QUESTION}, user_id=30_000 + i)
                for i in range(10)
            ]
            for payload in asks:
                await double.dispatch("INTERACTION_CREATE", payload)
            for payload in asks:
                await double.wait_for_request(is_callback(payload), 10)
            in_flight = sum(not double.find(is_followup(p)) for p in asks)

            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # the signal reaches the loop asynchronously: a question dispatched before it is
            # handled is still in-flight work, not a late one
            await until_logged(stderr_path, "stopping: finishing", 10)
            late = double.interaction("ask", {"question": QUESTION}, user_id=31_000)
            await double.dispatch("INTERACTION_CREATE", late)
            refused = await double.wait_for_request(is_callback(late), 10)
            released.set()
            await asyncio.wait_for(process.wait(), 20)
            stopped = time.monotonic() - signalled
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    err = stderr_path.read_text(errors="replace")
    drained = re.search(r"drained in (\d+\.\d) s", err)
    drain_seconds = drained.group(1) if drained else "?"
    print(
        f"\nSIGTERM with {in_flight} answers in flight: drained in {drain_seconds} s, "
        f"process gone {stopped:.1f} s after the signal"
    )
    assert in_flight == 10
    followups = [double.wait_for_request(is_followup(p), 0.1) for p in asks]
    delivered = [await f for f in followups]
    assert all(f.status == 200 and ANSWER in embed_text(f.json) for f in delivered), [
        (f.status, f.json) for f in delivered
    ]
    assert refused.json["type"] == 4 and refused.json["data"]["content"] == RESTARTING
    assert double.find(is_original_edit(reindex, REINDEX_INTERRUPTED))
    assert not double.find(is_original_edit(reindex, "Index rebuilt"))
    assert stopped < 10, err[-3000:]
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-5000:]

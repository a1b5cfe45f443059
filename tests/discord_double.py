"""A local stand-in for Discord's REST API and gateway, for driving the real discord.py client.

Run it on 127.0.0.1 (random port), point the bot at `base_url` / `gateway_url` and the bot
logs in, syncs its commands and connects exactly as it would to Discord. The double records
every REST request (method, path, query, JSON body, headers, time) and lets a test inject
gateway events (`dispatch`) and wait for what the bot sends back (`wait_for_request`).

It enforces the Discord rules the bot must respect:

- an interaction must be acknowledged (callback) within 3 s of its dispatch, else
  `404 Unknown interaction` (code 10062), and only once (`400`, code 40060);
- follow-ups and edits of `@original` need an acknowledged interaction (`404`, 10015);
- JSON is answered with `Content-Type: application/json` exactly (discord.py parses JSON
  only then).

Faults a test can inject, each as Discord produces it:

- REST: `rate_limit` (429 with `retry_after`, the `Via` header discord.py requires to retry
  rather than suspect a Cloudflare ban), `fail` (any status, e.g. 502), `drop_connection`
  (the connection closes before an answer), `close_dms` (403, code 50007: the user does not
  accept DMs from the bot);
- gateway: `close_gateway` (a close code; 4000 is resumable), `invalidate_session`
  (INVALID_SESSION, op 9; a later RESUME of that session gets op 9 too), `zombie` (the
  connection stays open but nothing comes back, not even heartbeat ACKs), and a short
  `heartbeat_ms`. Events dispatched while the client is away are kept in the session's log
  and replayed on RESUME after the client's last sequence number, as Discord does.

Conversations: a guild can be made known to the client (`add_guild`: READY lists it and a
GUILD_CREATE with its text channels and the bot's permissions follows, as on Discord), the
bot may start threads from its messages (`POST /channels/{c}/messages/{m}/threads`; the
thread takes the message's id and THREAD_CREATE is dispatched; `deny_threads` answers 403,
code 50013, as Discord does without Create Public Threads), edit its messages
(`PATCH /channels/{c}/messages/{m}` and the webhook equivalents; every edit is recorded with
its time and the message gains an `edited_timestamp`), and a test can send replies
(`message_reference`), messages in threads, button clicks and THREAD_UPDATE (archived).

Payload shapes follow discord.py 2.7's parsers (`state.parse_ready`,
`Interaction._from_data`, `Message.__init__`, `AppCommand._from_data`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from bot.settings import Settings

APP_ID = 1100000000000000001
BOT_USER_ID = APP_ID  # like Discord: a bot's user id equals its application id
BOT_TOKEN = "x"
ACK_WINDOW = 3.0  # seconds Discord waits for an interaction callback
HEARTBEAT_MS = 41_250
CANNOT_DM = (403, "Cannot send messages to this user", 50007)
MISSING_PERMISSIONS = (403, "Missing Permissions", 50013)
ALL_PERMISSIONS = ((1 << 50) - 1) & ~(1 << 3)  # everything but Administrator (which overrides)
CREATE_PUBLIC_THREADS = 1 << 35

JSON = dict[str, Any]


@dataclass(slots=True)
class Recorded:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: float  # time.monotonic()
    status: int = 0
    response: Any = None

    @property
    def message(self) -> JSON | None:
        """The message this request creates or edits, if it does (else None)."""
        body = self.json
        if not isinstance(body, dict):
            return None
        if self.path.endswith("/callback"):
            data = body.get("data")
            return data if isinstance(data, dict) and body.get("type") in (4, 7) else None
        if ("content" in body or "embeds" in body) and self.method in ("POST", "PATCH"):
            return body
        return None


@dataclass(slots=True)
class _Fault:
    predicate: Callable[[Recorded], bool]
    times: int
    respond: Callable[[], web.Response] | None  # None: drop the connection instead


@dataclass(slots=True)
class _Interaction:
    id: int
    token: str
    dispatched_at: float
    channel_id: int = 6666
    acknowledged: bool = False
    original: JSON | None = None
    followups: list[JSON] = field(default_factory=list)


def _json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode("utf-8"),
        status=status,
        headers={"Content-Type": "application/json"},
    )


def _error(status: int, message: str, code: int) -> web.Response:
    return _json_response({"message": message, "code": code}, status)


def user_payload(user_id: int, name: str = "someone", *, bot: bool = False) -> JSON:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


BOT_USER = {**user_payload(BOT_USER_ID, "qa-bot", bot=True), "verified": True, "flags": 0}


class DiscordDouble:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.identifies: list[JSON] = []
        self.commands: dict[int | None, list[JSON]] = {}  # guild id (None: global) -> commands
        self.interactions: dict[str, _Interaction] = {}  # by token
        self._interactions_by_id: dict[int, _Interaction] = {}
        self._ids = itertools.count(1_300_000_000_000_000_000)
        self._seq = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._live: web.WebSocketResponse | None = None  # identified or resumed: gets events
        self._zombies: set[web.WebSocketResponse] = set()
        self._session_id: str | None = None
        self._sessions = itertools.count(1)
        self._log: list[tuple[int, str, JSON]] = []  # (seq, event, data) of the session
        self._faults: list[_Fault] = []
        self.closed_dms: dict[int, bool] = {}  # DM channel id -> typing refused too
        self.bot_messages: dict[int, JSON] = {}  # every message the bot sent, as last edited
        self.threads: dict[int, JSON] = {}  # threads the bot started, by id
        self.no_threads: set[int] = set()  # channels where starting a thread is refused (403)
        self.guilds: dict[int, JSON] = {}  # guilds the client learns of at READY
        self.heartbeat_ms = HEARTBEAT_MS
        self.heartbeats = 0
        self.resumes: list[JSON] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def reset(self) -> None:
        """Forget recorded requests, interactions and injected faults (between tests)."""
        self.requests.clear()
        self.identifies.clear()
        self.resumes.clear()
        self.interactions.clear()
        self._interactions_by_id.clear()
        self._faults.clear()
        self.closed_dms.clear()
        self.bot_messages.clear()
        self.threads.clear()
        self.no_threads.clear()
        self.guilds.clear()
        self.heartbeat_ms = HEARTBEAT_MS
        self.heartbeats = 0

    def snowflake(self) -> int:
        return next(self._ids)

    # ------------------------------------------------------------------ waiting

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(wait(), timeout)

    async def wait_for_request(
        self, predicate: Callable[[Recorded], bool], timeout: float = 10.0
    ) -> Recorded:
        """The first recorded request matching `predicate` (waiting for it if need be)."""
        found: list[Recorded] = []

        def match() -> bool:
            for r in self.requests:
                if r.status and predicate(r):
                    found.append(r)
                    return True
            return False

        try:
            await self.wait_until(match, timeout)
        except TimeoutError:
            seen = "\n".join(f"  {r.method} {r.path} -> {r.status}" for r in self.requests)
            raise AssertionError(f"no matching request within {timeout} s; saw:\n{seen}") from None
        return found[0]

    async def wait_for_requests(
        self, predicate: Callable[[Recorded], bool], count: int, timeout: float = 10.0
    ) -> list[Recorded]:
        def matching() -> list[Recorded]:
            return [r for r in self.requests if r.status and predicate(r)]

        try:
            await self.wait_until(lambda: len(matching()) >= count, timeout)
        except TimeoutError:
            raise AssertionError(
                f"saw {len(matching())} of {count} matching requests within {timeout} s"
            ) from None
        return matching()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until a client has identified (or resumed) and is receiving events."""
        await self.wait_until(lambda: self._live is not None, timeout)

    @property
    def connected(self) -> bool:
        """A client is identified or resumed on a connection that is not a zombie."""
        return self._live is not None and self._live not in self._zombies

    def find(self, predicate: Callable[[Recorded], bool]) -> list[Recorded]:
        return [r for r in self.requests if predicate(r)]

    def messages(self) -> list[Recorded]:
        """Every request that created or edited a message."""
        return [r for r in self.requests if r.message is not None]

    def messages_without_safe_mentions(self) -> list[Recorded]:
        """Messages the bot sent without `allowed_mentions` == {"parse": []}."""
        return [
            r for r in self.messages() if (r.message or {}).get("allowed_mentions") != {"parse": []}
        ]

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op = payload.get("op")
                if op == 1:  # heartbeat
                    self.heartbeats += 1
                    if ws not in self._zombies:
                        await ws.send_json({"op": 11})
                elif op == 2:  # identify
                    await self._identify(ws, payload["d"])
                elif op == 6:  # resume
                    await self._resume(ws, payload["d"])
        finally:
            self._sockets.remove(ws)
            self._zombies.discard(ws)
            if ws is self._live:
                self._live = None
            await self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> None:
        self.identifies.append(data)
        self._session_id = f"double-session-{next(self._sessions)}"
        self._log.clear()
        ready = {
            "v": 10,
            "user": BOT_USER,
            "session_id": self._session_id,
            "resume_gateway_url": self.gateway_url,
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
            "private_channels": [],
            "relationships": [],
            "application": {"id": str(APP_ID), "flags": 0},
        }
        if "shard" in data:  # as Discord does: an auto-sharded client reads it from READY
            ready["shard"] = data["shard"]
        await ws.send_json({"op": 0, "t": "READY", "s": next(self._seq), "d": ready})
        for guild in self.guilds.values():
            threads = [t for t in self.threads.values() if t["guild_id"] == guild["id"]]
            data = guild | {"threads": [t for t in threads if not t["thread_metadata"]["archived"]]}
            await ws.send_json({"op": 0, "t": "GUILD_CREATE", "s": next(self._seq), "d": data})
        self._live = ws
        await self._notify()

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> None:
        self.resumes.append(data)
        if data.get("session_id") != self._session_id:  # expired or invalidated
            await ws.send_json({"op": 9, "d": False})
            return
        last = data.get("seq") or 0
        for seq, event, event_data in self._log:
            if seq > last:
                if event == "INTERACTION_CREATE":  # reaches the bot only now
                    self._interactions_by_id[int(event_data["id"])].dispatched_at = time.monotonic()
                await ws.send_json({"op": 0, "t": event, "s": seq, "d": event_data})
        await ws.send_json({"op": 0, "t": "RESUMED", "s": next(self._seq), "d": {}})
        self._live = ws
        await self._notify()

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a gateway DISPATCH to the client of the session.

        While the client is away (disconnected, or its connection a zombie) the event waits
        in the session's log for its RESUME, as on Discord.
        """
        if self._session_id is None:
            raise AssertionError("no client is connected to the gateway")
        if event == "INTERACTION_CREATE":
            self._register_interaction(data)
        seq = next(self._seq)
        self._log.append((seq, event, data))
        ws = self._live
        if ws is not None and ws not in self._zombies and not ws.closed:
            with contextlib.suppress(ConnectionResetError):  # closing: kept for the RESUME
                await ws.send_json({"op": 0, "t": event, "s": seq, "d": data})

    def _register_interaction(self, data: JSON) -> None:
        item = _Interaction(
            id=int(data["id"]),
            token=data["token"],
            dispatched_at=time.monotonic(),
            channel_id=int(data.get("channel_id") or 6666),
        )
        self.interactions[item.token] = item
        self._interactions_by_id[item.id] = item

    # ------------------------------------------------------------------ injected faults

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the client's connection with `code` (4000-4003, 4005-4009: it may resume)."""
        if self._live is None:
            raise AssertionError("no client is connected to the gateway")
        ws, self._live = self._live, None
        await ws.close(code=code)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Send INVALID_SESSION (op 9); with `resumable` False the client must identify."""
        if self._live is None:
            raise AssertionError("no client is connected to the gateway")
        ws = self._live
        if not resumable:
            self._session_id = None
            self._log.clear()
        await ws.send_json({"op": 9, "d": resumable})

    def zombie(self) -> None:
        """From now on the current connection gets nothing: no heartbeat ACK, no event."""
        if self._live is None:
            raise AssertionError("no client is connected to the gateway")
        self._zombies.add(self._live)

    def rate_limit(
        self, predicate: Callable[[Recorded], bool], retry_after: float, times: int = 1
    ) -> None:
        """Answer the next `times` matching requests with 429 and `retry_after` seconds."""

        def respond() -> web.Response:
            response = _json_response(
                {"message": "You are being rate limited.", "retry_after": retry_after,
                 "global": False},
                429,
            )  # fmt: skip
            response.headers.update(
                {
                    "Via": "1.1 google",
                    "Retry-After": str(max(1, round(retry_after))),
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(retry_after),
                    "X-RateLimit-Bucket": "double-bucket",
                    "X-RateLimit-Scope": "user",
                }
            )
            return response

        self._faults.append(_Fault(predicate, times, respond))

    def fail(
        self, predicate: Callable[[Recorded], bool], status: int, times: int = 1,
        code: int = 0, message: str = "",
    ) -> None:  # fmt: skip
        """Answer the next `times` matching requests with `status` (a 5xx is retried)."""
        text = message or f"{status}: double fault"
        self._faults.append(_Fault(predicate, times, lambda: _error(status, text, code)))

    def drop_connection(self, predicate: Callable[[Recorded], bool], times: int = 1) -> None:
        """Close the connection of the next `times` matching requests before answering."""
        self._faults.append(_Fault(predicate, times, None))

    def close_dms(self, channel_id: int, *, typing_refused: bool = True) -> None:
        """The user behind DM `channel_id` accepts no DMs from the bot: 403, code 50007."""
        self.closed_dms[channel_id] = typing_refused

    def deny_threads(self, channel_id: int) -> None:
        """The bot lacks Create Public Threads in `channel_id`: 403, code 50013."""
        self.no_threads.add(channel_id)

    # ------------------------------------------------------------------ guilds and threads

    def add_guild(
        self, guild_id: int = 5555, channels: tuple[int, ...] = (6666,),
        permissions: int = ALL_PERMISSIONS,
    ) -> None:  # fmt: skip
        """A guild the next client learns of (READY, then GUILD_CREATE): text channels
        `channels`, and the bot's permissions there (those of @everyone)."""
        joined = "2024-01-01T00:00:00+00:00"
        self.guilds[guild_id] = {
            "id": str(guild_id),
            "name": "double guild",
            "icon": None,
            "owner_id": "1",
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "system_channel_flags": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": str(permissions),
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                },
            ],
            "emojis": [],
            "stickers": [],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "joined_at": joined,
            "channels": [
                {
                    "id": str(c),
                    "type": 0,
                    "name": f"channel-{c}",
                    "position": i,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                    "guild_id": str(guild_id),
                    "topic": None,
                    "last_message_id": None,
                    "rate_limit_per_user": 0,
                }
                for i, c in enumerate(channels)
            ],
            "members": [
                {
                    "user": BOT_USER,
                    "roles": [],
                    "joined_at": joined,
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                    "nick": None,
                    "avatar": None,
                    "pending": False,
                },
            ],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def archive_thread(self, thread_id: int) -> None:
        """Discord archived the thread (inactivity): THREAD_UPDATE with `archived` true."""
        thread = self.threads[thread_id]
        thread["thread_metadata"] = thread["thread_metadata"] | {
            "archived": True, "archive_timestamp": datetime.now(UTC).isoformat()
        }  # fmt: skip
        await self.dispatch("THREAD_UPDATE", thread)

    def edits_of(self, message_id: int | str) -> list[Recorded]:
        """Every accepted request that created or edited message `message_id`, in order."""
        wanted = str(message_id)
        return [
            r for r in self.requests
            if r.status == 200 and isinstance(r.response, dict)
            and r.response.get("id") == wanted and r.message is not None
        ]  # fmt: skip

    def _take_fault(self, record: Recorded) -> _Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.predicate(record):
                fault.times -= 1
                return fault
        return None

    # ------------------------------------------------------------------ payload builders

    def interaction(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int = 4242,
        guild_id: int | None = 5555,
        channel_id: int = 6666,
        permissions: int = 0,
        autocomplete: str | None = None,
    ) -> JSON:
        """An APPLICATION_COMMAND (type 2) interaction, or AUTOCOMPLETE (4) for one option.

        `guild_id=None` makes it a DM with the bot (`user` instead of `member`).
        """
        kinds = {str: 3, bool: 5, int: 4, float: 10}
        opts = []
        for key, value in (options or {}).items():
            opt: JSON = {"name": key, "type": kinds[type(value)], "value": value}
            if key == autocomplete:
                opt["focused"] = True
            opts.append(opt)
        interaction_id = self.snowflake()
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": 4 if autocomplete else 2,
            "token": f"token-{interaction_id}",
            "version": 1,
            "attachment_size_limit": 8 * 1024 * 1024,
            "data": {"id": str(APP_ID + 1), "name": name, "type": 1, "options": opts},
            "channel_id": str(channel_id),
            "app_permissions": "562949953421311",
            "locale": "en-US",
            "entitlements": [],
        }
        user = user_payload(user_id)
        if guild_id is not None:
            payload |= {
                "guild_id": str(guild_id),
                "guild_locale": "en-US",
                "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                "channel": {
                    "id": str(channel_id),
                    "type": 0,
                    "guild_id": str(guild_id),
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                },
                "member": {
                    "user": user,
                    "roles": [],
                    "permissions": str(permissions),
                    "joined_at": "2024-01-01T00:00:00+00:00",
                    "flags": 0,
                    "deaf": False,
                    "mute": False,
                    "nick": None,
                    "avatar": None,
                    "pending": False,
                },
                "authorizing_integration_owners": {"0": str(guild_id)},
                "context": 0,
            }
        else:
            payload |= {
                "channel": {"id": str(channel_id), "type": 1, "recipients": [user]},
                "user": user,
                "authorizing_integration_owners": {"0": str(user_id)},
                "context": 1,
            }
        return payload

    def component_click(
        self, message: JSON, custom_id: str, *, user_id: int = 4242, guild_id: int | None = 5555
    ) -> JSON:
        """A button click (type 3) on `message` (as the double returned it)."""
        payload = self.interaction("_", user_id=user_id, guild_id=guild_id)
        payload["type"] = 3
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        payload["message"] = message
        payload["channel_id"] = message["channel_id"]
        payload["channel"]["id"] = message["channel_id"]
        return payload

    def dm_message(
        self, content: str, *, user_id: int = 4242, channel_id: int = 7777,
        reply_to: JSON | None = None,
    ) -> JSON:  # fmt: skip
        """MESSAGE_CREATE for a direct message to the bot (no guild_id)."""
        data = self._message(content, user_id=user_id, channel_id=channel_id, guild_id=None)
        return self._replying(data, reply_to)

    def guild_message(
        self,
        content: str,
        *,
        user_id: int = 4242,
        channel_id: int = 6666,
        guild_id: int = 5555,
        mentions: list[JSON] | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """MESSAGE_CREATE in a guild channel or thread; `reply_to` (a message as the double
        returned it) makes it a reply (type 19, `message_reference`)."""
        data = self._message(
            content, user_id=user_id, channel_id=channel_id, guild_id=guild_id, mentions=mentions
        )
        return self._replying(data, reply_to)

    @staticmethod
    def _replying(data: JSON, reply_to: JSON | None) -> JSON:
        if reply_to is None:
            return data
        reference: JSON = {
            "type": 0,
            "message_id": reply_to["id"],
            "channel_id": reply_to["channel_id"],
            "fail_if_not_exists": False,
        }
        if "guild_id" in data:
            reference["guild_id"] = data["guild_id"]
        return data | {
            "type": 19, "message_reference": reference, "referenced_message": reply_to
        }  # fmt: skip

    def _message(
        self,
        content: str,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        mentions: list[JSON] | None = None,
        author: JSON | None = None,
    ) -> JSON:
        data: JSON = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "type": 0,
            "content": content,
            "author": author or user_payload(user_id),
            "attachments": [],
            "embeds": [],
            "mentions": mentions or [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            data["member"] = {"roles": [], "joined_at": "2024-01-01T00:00:00+00:00", "flags": 0}
        return data

    def _bot_message(self, channel_id: int | str, body: JSON, flags: int = 0) -> JSON:
        message = self._message(
            body.get("content") or "",
            user_id=BOT_USER_ID,
            channel_id=int(channel_id),
            guild_id=None,
            author=BOT_USER,
        )
        message["embeds"] = body.get("embeds") or []
        message["components"] = body.get("components") or []
        message["flags"] = int(body.get("flags") or flags)
        message["webhook_id"] = None
        message["application_id"] = str(APP_ID)
        self.bot_messages[int(message["id"])] = message
        return message

    def _edit(self, message_id: int, body: JSON) -> web.Response:
        message = self.bot_messages.get(message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        for key in ("content", "embeds", "components"):
            if key in body:
                empty: Any = "" if key == "content" else []
                message[key] = body[key] if body[key] is not None else empty
        message["edited_timestamp"] = datetime.now(UTC).isoformat()
        return _json_response(message)

    def _start_thread(self, channel_id: int, message_id: int, body: JSON) -> web.Response:
        if channel_id in self.no_threads:
            return _error(*MISSING_PERMISSIONS)
        message = self.bot_messages.get(message_id)
        if message is None or int(message["channel_id"]) != channel_id:
            return _error(404, "Unknown Message", 10008)
        if message_id in self.threads:
            return _error(400, "A thread has already been created for this message", 160004)
        if channel_id in self.threads:
            return _error(400, "Cannot execute action on this channel type", 50024)
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            return _error(400, "Invalid Form Body (name)", 50035)
        guild_id = next(
            (g for g, data in self.guilds.items()
             if any(int(c["id"]) == channel_id for c in data["channels"])),
            5555,
        )  # fmt: skip
        thread: JSON = {
            "id": str(message_id),  # as on Discord: a thread from a message takes its id
            "guild_id": str(guild_id),
            "parent_id": str(channel_id),
            "owner_id": str(BOT_USER_ID),
            "type": 11,
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration") or 4320,
                "archive_timestamp": datetime.now(UTC).isoformat(),
                "locked": False,
            },
        }
        self.threads[message_id] = thread
        if self._session_id is not None:
            asyncio.get_running_loop().create_task(
                self.dispatch("THREAD_CREATE", thread | {"newly_created": True})
            )
        return _json_response(thread, 201)

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = Recorded(
            method=request.method,
            path=path,
            query=dict(request.query),
            json=body,
            headers=dict(request.headers),
            at=time.monotonic(),
        )
        self.requests.append(record)
        fault = self._take_fault(record)
        if fault is not None and fault.respond is None:
            record.status = -1  # no answer: the connection was dropped
            await self._notify()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=204)
        try:
            if fault is not None and fault.respond is not None:
                response = fault.respond()
            else:
                response = self._route(request.method, path.split("/")[1:], record)
        except Exception as exc:  # a bug in the double: make it loud (a 5xx would be retried)
            response = _error(400, f"double error: {exc!r}", 0)
        record.status = response.status
        record.response = json.loads(response.body) if response.body else None  # type: ignore[arg-type]
        await self._notify()
        return response

    def _authorised(self, record: Recorded) -> bool:
        return record.headers.get("Authorization") == f"Bot {BOT_TOKEN}"

    def _route(self, method: str, parts: list[str], record: Recorded) -> web.Response:
        body = record.json if isinstance(record.json, dict) else {}
        match method, parts:
            # interactions and webhooks: authorised by their token, not the bot token
            case "POST", ["interactions", interaction_id, token, "callback"]:
                return self._callback(int(interaction_id), token, body)
            case "POST", ["webhooks", _app, token]:
                item = self.interactions.get(token)
                if item is None or not item.acknowledged:
                    return _error(404, "Unknown Webhook", 10015)
                message = self._bot_message(item.channel_id, body)
                item.followups.append(message)
                if item.original is None:
                    item.original = message
                return _json_response(message)
            case (("PATCH" | "GET"), ["webhooks", _app, token, "messages", "@original"]):
                item = self.interactions.get(token)
                if item is None or not item.acknowledged:
                    return _error(404, "Unknown Webhook", 10015)
                if item.original is None:
                    item.original = self._bot_message(item.channel_id, {})
                if method == "PATCH":
                    item.original |= {k: v for k, v in body.items() if k in ("content", "embeds")}
                return _json_response(item.original)
            case "PATCH", ["webhooks", _app, token, "messages", message_id]:
                item = self.interactions.get(token)
                if item is None or not item.acknowledged:
                    return _error(404, "Unknown Webhook", 10015)
                if not any(m["id"] == message_id for m in item.followups):
                    return _error(404, "Unknown Message", 10008)
                return self._edit(int(message_id), body)
        if not self._authorised(record):
            return _error(401, "401: Unauthorized", 0)
        match method, parts:
            case "GET", ["users", "@me"]:
                return _json_response(BOT_USER)
            case "GET", ["oauth2", "applications", "@me"]:
                return _json_response(
                    {
                        "id": str(APP_ID),
                        "name": "qa-bot",
                        "description": "",
                        "icon": None,
                        "bot_public": True,
                        "bot_require_code_grant": False,
                        "owner": user_payload(1, "owner"),
                        "verify_key": "0" * 64,
                        "flags": 0,
                        "team": None,
                    }
                )
            case "GET", ["gateway"] | ["gateway", "bot"]:
                return _json_response(
                    {
                        "url": self.gateway_url,
                        "shards": 1,
                        "session_start_limit": {
                            "total": 1000, "remaining": 1000, "reset_after": 0,
                            "max_concurrency": 1,
                        },
                    }
                )  # fmt: skip
            case "PUT", ["applications", _app, "commands"]:
                return _json_response(self._store_commands(None, record.json))
            case "PUT", ["applications", _app, "guilds", guild_id, "commands"]:
                return _json_response(self._store_commands(int(guild_id), record.json))
            case "GET", ["applications", _app, "commands"]:
                return _json_response(self.commands.get(None, []))
            case "GET", ["applications", _app, "guilds", guild_id, "commands"]:
                return _json_response(self.commands.get(int(guild_id), []))
            case "POST", ["channels", channel_id, "messages"]:
                if int(channel_id) in self.closed_dms:
                    return _error(*CANNOT_DM)
                return _json_response(self._bot_message(channel_id, body))
            case "PATCH", ["channels", channel_id, "messages", message_id]:
                message = self.bot_messages.get(int(message_id))
                if message is None or message["channel_id"] != channel_id:
                    return _error(404, "Unknown Message", 10008)
                return self._edit(int(message_id), body)
            case "POST", ["channels", channel_id, "messages", message_id, "threads"]:
                return self._start_thread(int(channel_id), int(message_id), body)
            case "POST", ["channels", channel_id, "typing"]:
                if self.closed_dms.get(int(channel_id)):
                    return _error(*CANNOT_DM)
                return web.Response(status=204)
            case "POST", ["users", "@me", "channels"]:
                recipient = body.get("recipient_id", "0")
                return _json_response(
                    {
                        "id": str(self.snowflake()),
                        "type": 1,
                        "recipients": [user_payload(int(recipient))],
                        "last_message_id": None,
                    }
                )
        return _error(404, f"404: Not Found ({method} {'/'.join(parts)})", 0)

    def _store_commands(self, guild_id: int | None, payload: Any) -> list[JSON]:
        stored = []
        for command in payload or []:
            item = dict(command)
            item.update(
                id=str(self.snowflake()), application_id=str(APP_ID), version=str(self.snowflake())
            )
            if guild_id is not None:
                item["guild_id"] = str(guild_id)
            item.setdefault("default_member_permissions", None)
            stored.append(item)
        self.commands[guild_id] = stored
        return stored

    def _callback(self, interaction_id: int, token: str, body: JSON) -> web.Response:
        item = self._interactions_by_id.get(interaction_id)
        if item is None or item.token != token:
            return _error(404, "Unknown interaction", 10062)
        if time.monotonic() - item.dispatched_at > ACK_WINDOW:
            return _error(404, "Unknown interaction", 10062)
        if item.acknowledged:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        item.acknowledged = True
        kind = body.get("type")
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        response: JSON = {
            "interaction": {
                "id": str(interaction_id),
                "type": 2,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & 64),
            },
            "resource": {"type": kind},
        }
        if kind in (4, 5):
            message = self._bot_message(item.channel_id, data if kind == 4 else {}, flags)
            item.original = message
            response["interaction"]["response_message_id"] = message["id"]
            if kind == 4:
                response["resource"]["message"] = message
        return _json_response(response)


# ---------------------------------------------------------------------- matching requests


def is_callback(payload: JSON) -> Callable[[Recorded], bool]:
    """The interaction's callback (its acknowledgement)."""
    path = f"/interactions/{payload['id']}/{payload['token']}/callback"
    return lambda r: r.method == "POST" and r.path == path


def is_followup(payload: JSON) -> Callable[[Recorded], bool]:
    """A follow-up message of the interaction."""
    path = f"/webhooks/{APP_ID}/{payload['token']}"
    return lambda r: r.method == "POST" and r.path == path


def is_original_edit(payload: JSON, contains: str = "") -> Callable[[Recorded], bool]:
    """An edit of the interaction's first response whose content contains `contains`."""
    path = f"/webhooks/{APP_ID}/{payload['token']}/messages/@original"
    return lambda r: (
        r.method == "PATCH" and r.path == path and contains in (r.json or {}).get("content", "")
    )


def is_channel_message(channel_id: int) -> Callable[[Recorded], bool]:
    return lambda r: r.method == "POST" and r.path == f"/channels/{channel_id}/messages"


def embed_text(body: JSON) -> str:
    """All the visible text of a message's embeds."""
    parts = []
    for e in body.get("embeds") or []:
        parts += [e.get("title") or "", e.get("description") or ""]
        for f in e.get("fields") or []:
            parts += [f["name"], f["value"]]
    return "\n".join(parts)


def bot_settings(double: DiscordDouble, data: Path, **overrides: Any) -> Settings:
    """Settings of a bot that talks to `double`, with its databases under `data`: the one
    factory every Discord test file builds its bots from (pass articles_dir, index_dir)."""
    from bot.settings import Settings

    values: dict[str, Any] = {
        "feedback_db": data / "feedback.sqlite",
        "conversations_db": data / "conversations.sqlite",
        "discord_token": "x",
        "discord_api_base_url": double.base_url,
        "discord_gateway_url": double.gateway_url,
        "discord_cooldown_seconds": 0,
        "index_poll_seconds": 1.0,
    }
    return Settings(**(values | overrides))


@contextlib.asynccontextmanager
async def connected(double: DiscordDouble, bot: Any) -> AsyncIterator[Any]:
    """`bot` (a discord.py client made in this event loop) logged in to `double` until the
    block ends; then closed, and every message it sent checked for mentions left enabled."""
    async with bot:
        runner = asyncio.create_task(bot.start("x"))
        try:
            await asyncio.wait_for(bot.wait_until_ready(), 15)
            yield bot
        finally:
            await bot.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 10)
    assert double.messages_without_safe_mentions() == []

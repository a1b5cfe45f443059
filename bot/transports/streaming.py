"""Streaming an LLM answer into one Discord message, edited at most once per interval.

`QAService.answer_stream` is a blocking generator (text pieces as the model writes, then the
validated `Answer`); `pump` runs it in a worker thread and hands its items to the event loop.
`LiveText` shows the text so far by editing one message, never more often than
`EDIT_SECONDS` (Discord allows about five edits per five seconds per channel, and every
refused request counts toward a temporary ban), and `finish` waits out the same interval
before the final edit, which carries the validated answer and its citations. `finish`
waits for an edit in progress rather than cancelling it (a cancelled request may still
land, after the final edit); only `abandon` (an error, a shutdown) cancels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

import discord

from ..formatting import DESCRIPTION_LIMIT, INFO_COLOUR, TITLE_LIMIT, md_text, one_line
from .work import Workers

T = TypeVar("T")

EDIT_SECONDS = 1.0  # at most one message write (send or edit) per this interval
TYPING_MARK = " …"  # after the text while the model is still writing


async def pump(workers: Workers, produce: Callable[[], Iterable[T]]) -> AsyncIterator[T]:
    """Iterate `produce()` in a worker thread; yield its items here, in order.

    An exception raised by the iterable is raised here after the items before it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, T | None]] = asyncio.Queue()

    def run() -> None:  # in the worker thread
        for item in produce():
            loop.call_soon_threadsafe(queue.put_nowait, (False, item))

    task = asyncio.ensure_future(workers.run(run))
    # settled after every item above was queued (same thread, same loop, in order)
    task.add_done_callback(lambda _: queue.put_nowait((True, None)))
    while True:
        done, item = await queue.get()
        if done:
            task.result()  # raises what the iterable raised
            return
        yield item  # type: ignore[misc]


class LiveText:
    """The text of an answer being written, shown by `show(text)` at most once per interval.

    `show` creates the message on its first call and edits it afterwards (the caller's
    business); `finish` stops the updates and returns once a final write is allowed.
    """

    def __init__(
        self, show: Callable[[str], Awaitable[object]], interval: float = EDIT_SECONDS
    ) -> None:
        self._show = show
        self.interval = interval
        self.text = ""
        self.writes = 0
        self._shown = ""
        self._last: float | None = None  # monotonic time of the last write
        self._changed = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def append(self, piece: str) -> None:
        self.text += piece
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-text")

    def wrote(self) -> None:
        """Count a write made outside `show` (it starts the interval again)."""
        self._last = time.monotonic()

    async def _wait_interval(self) -> None:
        if self._last is not None:
            await asyncio.sleep(max(0.0, self._last + self.interval - time.monotonic()))

    async def _run(self) -> None:
        while not self._closed:
            await self._changed.wait()
            self._changed.clear()
            await self._wait_interval()
            if self._closed:
                return
            text = self.text
            if text.strip() and text != self._shown:
                self._shown = text
                await self._show(text)
                self.writes += 1
                self._last = time.monotonic()

    async def finish(self) -> None:
        """Stop updating (after the write in progress, if any) and wait out the interval."""
        self._closed = True
        self._changed.set()
        if self._task is not None:
            await self._task
        await self._wait_interval()

    async def abandon(self) -> None:
        """Stop updating without waiting for the interval (cancellation, errors)."""
        self._closed = True
        self._changed.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()


def partial_embed(question: str, text: str) -> discord.Embed:
    """The answer while the model writes: its text so far, unchecked, with no sources yet.

    Escaped like every article-derived text (the model may repeat an article's Markdown);
    the final edit replaces it with the validated answer and its citations.
    """
    embed = discord.Embed(
        title=md_text(one_line(question), TITLE_LIMIT) or None,
        description=md_text(text.strip(), DESCRIPTION_LIMIT - len(TYPING_MARK)) + TYPING_MARK,
        colour=INFO_COLOUR,
    )
    embed.set_footer(text="writing… sources follow when the answer is checked")
    return embed

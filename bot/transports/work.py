"""Where the Discord bot's work runs, and how a shutdown lets it finish.

Blocking calls (embedding, search, a rebuild, SQLite) run in daemon threads, not in
`asyncio.to_thread`: the default executor's threads are joined when the event loop closes and
again at interpreter exit, so a single call that never returns (a rebuild stuck on a file)
would keep the process alive after SIGTERM. A daemon thread is abandoned at exit instead;
everything run here must be safe to abandon (a rebuild publishes atomically, feedback rows are
SQLite transactions). A limit keeps answers from crowding the two cores of a small host and
starving the event loop that acknowledges interactions.

`InFlight` is the set of handlers (one asyncio task each) that took work on: a shutdown stops
new work, waits for these up to a deadline, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

CANCEL_GRACE_SECONDS = 2.0  # for cancelled handlers to tell their user before the bot closes


class Workers:
    """Runs blocking calls in daemon threads, at most `limit` at once (None: no limit).

    A slot is held until the thread ends, even when the awaiting task is cancelled, so the
    limit counts threads really running.
    """

    def __init__(self, name: str, limit: int | None = None) -> None:
        self.name = name
        self._slots = asyncio.Semaphore(limit) if limit else None
        self._numbers = itertools.count(1)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._slots is not None:
            await self._slots.acquire()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()

        def settle(ok: bool, value: object) -> None:  # in the event loop
            if self._slots is not None:
                self._slots.release()
            if future.done():  # the caller was cancelled
                return
            if ok:
                future.set_result(value)  # type: ignore[arg-type]
            else:
                future.set_exception(value)  # type: ignore[arg-type]

        def work() -> None:  # in the thread
            try:
                outcome: tuple[bool, object] = (True, context.run(fn, *args, **kwargs))
            except Exception as exc:
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(settle, *outcome)

        thread = threading.Thread(
            target=work, name=f"{self.name}-{next(self._numbers)}", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        return await future


@dataclass(frozen=True, slots=True)
class DrainReport:
    finished: int  # handlers that ended on their own during the drain
    abandoned: int  # handlers cancelled at the deadline
    seconds: float


class InFlight:
    """Handlers at work; `stopping` tells new ones to refuse, `drain` waits for the rest."""

    def __init__(self) -> None:
        self.stopping = False
        self._tasks: set[asyncio.Task[object]] = set()
        self._hurry = asyncio.Event()

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count the current task as in flight while the block runs."""
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing a drain could wait for
            yield
            return
        self._tasks.add(task)
        try:
            yield
        finally:
            self._tasks.discard(task)

    def hurry(self) -> None:
        """End a drain now: what is still in flight is cancelled."""
        self._hurry.set()

    async def drain(
        self, seconds: float, *, cancel_first: set[asyncio.Task[object]]
    ) -> DrainReport:
        """Stop taking work; wait up to `seconds` for handlers in flight, then cancel them.

        `cancel_first` are tasks not worth waiting for (a rebuild can always run again):
        they are cancelled at once. Handlers that start during the drain refuse their work
        quickly and are waited for like the rest.
        """
        started = time.monotonic()
        self.stopping = True
        for task in cancel_first:
            task.cancel()
        deadline = started + max(0.0, seconds)
        seen: set[asyncio.Task[object]] = set()
        while True:
            pending = set(self._tasks) | {t for t in cancel_first if not t.done()}
            seen |= pending
            left = deadline - time.monotonic()
            if not pending or left <= 0 or self._hurry.is_set():
                break
            hurry = asyncio.ensure_future(self._hurry.wait())
            await asyncio.wait({*pending, hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
        finished = len(seen - pending - cancel_first)
        return DrainReport(finished, len(pending), time.monotonic() - started)

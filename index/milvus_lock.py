"""One rebuild at a time per Milvus collection, across machines: a lease row in Milvus itself.

Bot processes on several machines may serve one collection, and any of them (or the CLI)
may rebuild it. They share no folder, so the FAISS store's file lock cannot keep two rebuilds
apart; what they share is Milvus. A rebuild holds a *lease*: a row in `<collection>_lock`
naming its owner (a random id, with host and pid for the busy message) and when the lease
lapses. A thread renews it every third of MILVUS_REBUILD_LEASE_SECONDS; a killed rebuild's
row lapses and the next rebuild deletes it, so nothing blocks for longer than one lease.

Milvus has no insert-if-absent or compare-and-set (primary keys are not unique on insert,
upsert overwrites), so a claim is made and then verified: the claimant inserts its own row,
reads all rows back (the collection is read with Strong consistency, so a read follows
every write acknowledged before it), and holds the lease only if its row is the only live
one; otherwise it deletes its row and is refused. Two claims racing may both be refused,
never both admitted: whichever reads second sees the other's row. A renewal that finds its
row gone or another live claim, or that comes too late (less than a quarter of the lease
left, so the write might land after a newcomer judged the row lapsed), marks the lease
*lost*, and the rebuild stops at its next `check` (before each batch it writes, and before
the meta row) with `RebuildBusy`. Expiry times are the writers' wall clocks: the machines'
clocks must agree to well within the lease (NTP does).

With Milvus Lite the URI is a file on this machine, so the file lock next to it
(`<file>.<collection>.rebuild.lock`) is taken first: it also keeps apart two rebuilds of one
process (a bot's /add and its refresh) and is dropped by the OS if the process dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import RebuildBusy
from .milvus_store import MilvusConfig, MilvusStore, MilvusUnavailable, lite_path
from .store import hold_lock

log = logging.getLogger(__name__)

OWNER_BYTES = 64
HOST_BYTES = 255


@dataclass(frozen=True, slots=True)
class Claim:
    """One row of the lock collection: who claims the collection, and until when."""

    owner: str
    host: str
    pid: int
    expires_at: float  # seconds since the epoch, by the claimant's clock

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires_at, UTC).strftime("%H:%M:%S UTC")
        return f"on {self.host}, pid {self.pid}, lease until {until}"


class RebuildLease:
    """This process's claim on one collection; see the module docstring.

    Args:
        store: the collections' store (its client and name).
        seconds: how long the lease lasts unless renewed.
        clock: wall-clock time in seconds since the epoch (tests move it).
    """

    def __init__(
        self, store: MilvusStore, seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.seconds = seconds
        self.name = f"{store.config.collection}_lock"
        self.owner = secrets.token_hex(16)
        self.host = socket.gethostname()[:HOST_BYTES] or "?"
        self.pid = os.getpid()
        self._clock = clock
        self._expires = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- Milvus calls

    def _ensure_collection(self) -> None:
        from pymilvus import DataType

        c = self.store.client
        with self.store.calling("opening the rebuild lock"):
            if not c.has_collection(self.name):
                s = c.create_schema(auto_id=False)
                s.add_field("owner", DataType.VARCHAR, max_length=OWNER_BYTES, is_primary=True)
                s.add_field("host", DataType.VARCHAR, max_length=HOST_BYTES * 4)
                s.add_field("pid", DataType.INT64)
                s.add_field("expires_at", DataType.DOUBLE)
                s.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector
                ip = c.prepare_index_params()
                ip.add_index("unused", index_type="AUTOINDEX", metric_type="IP")
                try:
                    c.create_collection(
                        self.name, schema=s, index_params=ip, consistency_level="Strong"
                    )
                except Exception:
                    if not c.has_collection(self.name):  # else another claimant made it first
                        raise
            c.load_collection(self.name)

    def claims(self) -> list[Claim]:
        """Every row of the lock collection, live or lapsed."""
        with self.store.calling("reading the rebuild lock"):
            rows = self.store.client.query(
                self.name, filter='owner != ""', output_fields=["host", "pid", "expires_at"]
            )
        return [Claim(r["owner"], r["host"], int(r["pid"]), float(r["expires_at"])) for r in rows]

    def _write(self, expires_at: float) -> None:
        row = {
            "owner": self.owner, "host": self.host, "pid": self.pid,
            "expires_at": expires_at, "unused": [1.0, 0.0],
        }  # fmt: skip
        with self.store.calling("writing the rebuild lock"):
            self.store.client.upsert(self.name, [row])

    def _delete(self, owners: list[str]) -> None:
        with self.store.calling("releasing the rebuild lock"):
            self.store.client.delete(self.name, ids=owners)

    # -- the lease

    def _busy(self, holder: Claim) -> RebuildBusy:
        return RebuildBusy(
            f"another rebuild of {self.store.config.where} is running ({holder.describe()}); "
            "try again when it ends"
        )

    def _live_others(self, claims: list[Claim], now: float) -> list[Claim]:
        return [c for c in claims if c.owner != self.owner and c.expires_at > now]

    def acquire(self) -> None:
        """Claim the collection.

        Raises:
            RebuildBusy: another live claim holds it (or was made at the same moment).
            MilvusUnavailable: Milvus refused a call.
        """
        self._ensure_collection()
        live = self._live_others(self.claims(), self._clock())
        if live:  # the common case of a running rebuild: refused without writing
            raise self._busy(live[0])
        expires = self._clock() + self.seconds
        self._write(expires)
        claims = self.claims()
        live = self._live_others(claims, self._clock())
        if live:
            with contextlib.suppress(MilvusUnavailable):
                self._delete([self.owner])
            raise self._busy(live[0])
        self._expires = expires
        lapsed = [c for c in claims if c.owner != self.owner]
        for c in lapsed:
            log.warning("took over the rebuild lock of a rebuild that stopped renewing it (%s)",
                        c.describe())  # fmt: skip
        if lapsed:
            self._delete([c.owner for c in lapsed])

    def renew(self) -> bool:
        """Push the lease's end out by `seconds`; False (and the lease lost) when it cannot be
        kept: taken over, its row gone, or too little of it left to renew safely."""
        if self._lost is not None:
            return False
        now = self._clock()
        if now > self._expires - self.seconds / 4:
            return self._lose("it was not renewed in time")
        claims = self.claims()
        if self.owner not in {c.owner for c in claims}:
            return self._lose("its row was deleted by a rebuild that judged it lapsed")
        live = self._live_others(claims, now)
        if live:
            return self._lose(f"another rebuild claimed it ({live[0].describe()})")
        expires = now + self.seconds
        self._write(expires)
        self._expires = expires
        return True

    def _lose(self, why: str) -> bool:
        self._lost = (
            f"this rebuild lost its lock on {self.store.config.where} ({why}); "
            "it stopped, run it again"
        )
        log.warning("%s", self._lost)
        return False

    def check(self) -> None:
        """Raise when the lease is lost or has lapsed: another rebuild may be writing.

        Raises:
            RebuildBusy: it is.
        """
        if self._lost is None and self._clock() >= self._expires:
            self._lose("it lapsed before it could be renewed")
        if self._lost is not None:
            raise RebuildBusy(self._lost)

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.renew():
                    return
            except MilvusUnavailable as exc:  # tried again next time, while time is left
                log.warning("could not renew the rebuild lock: %s", exc)

    def start_renewing(self) -> None:
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{self.name}", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the row; if that fails, the lease lapses on its own."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._lost is not None:
            return  # the row is another's business now
        try:
            self._delete([self.owner])
        except MilvusUnavailable as exc:
            log.warning("could not release the rebuild lock (it lapses by itself): %s", exc)


@contextlib.contextmanager
def _lite_file_lock(config: MilvusConfig) -> Iterator[None]:
    path = lite_path(config)
    lock = path.with_name(f"{path.name}.{config.collection}.rebuild.lock")
    try:
        handle = open(lock, "a+")  # noqa: SIM115 - closed below, after the yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MilvusUnavailable(f"cannot create the rebuild lock {lock}: {reason}") from exc
    busy = f"another rebuild of {config.where} is running; try again when it ends"
    with handle, hold_lock(handle, busy):
        yield


@contextlib.contextmanager
def milvus_rebuild_lock(config: MilvusConfig, lease_seconds: float) -> Iterator[RebuildLease]:
    """Hold the collection for one rebuild: the Lite file lock, then the lease, renewed.

    Raises:
        RebuildBusy: another rebuild holds it.
        MilvusUnavailable: Milvus cannot be reached or refused a call.
    """
    with contextlib.ExitStack() as stack:
        if config.is_lite:  # before connecting: Lite opens a file in one process only
            stack.enter_context(_lite_file_lock(config))
        lease = RebuildLease(MilvusStore(config), lease_seconds)
        lease.acquire()
        stack.callback(lease.release)
        lease.start_renewing()
        yield lease

"""The SQLite provider's connection: inline, with grouped writes.

One connection, used inline on the event loop's thread:
a local WAL transaction takes tens of microseconds, far less than a hop to
another thread and back, and one runtime's dispatcher and worker then share
the connection without locking. Writes issued during one event-loop tick
are grouped into one transaction (see `SqliteConnection._transaction`).
(A mode running SQL on a dedicated thread was measured slower and removed.)

Several processes may open the same file (a crashed worker is restarted
next to the survivors): writes take the write lock up front (``BEGIN
IMMEDIATE``) so that a read-then-write never fails half-way with
``SQLITE_BUSY``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from perdure._errors import StorageError
from perdure.providers._base import Channel
from perdure.providers._sqlite_schema import check_database, migrate
from perdure.providers._sqlite_wal import WalZeroes
from perdure.providers.helpers import LocalWakeups

__all__ = ["SqliteConnection"]

_T = TypeVar("_T")


# After a disk-full error (see SqliteConnection._after_failure): checkpoint
# every ~256 KiB of WAL (1 KiB pages) instead of ~10 MiB, and cut the WAL
# file back to 256 KiB whenever it restarts, so that it never again takes
# the room the database needs.
#: How much a committed write survives (``SqliteProvider(durability=...)``).
Durability = Literal["power-loss", "process-crash"]
# "power-loss": every commit group is fsynced before it is acknowledged
# (WAL, synchronous=FULL), like PostgreSQL, Temporal and Restate; one
# fsync covers all the writes of one loop tick (group commit).
# "process-crash": WAL with synchronous=NORMAL: a killed process loses
# nothing, a power loss or OS crash can undo the last commits.
_SYNCHRONOUS: dict[str, str] = {"power-loss": "FULL", "process-crash": "NORMAL"}

_TIGHT_PRAGMAS = (
    "PRAGMA wal_autocheckpoint = 256",
    f"PRAGMA journal_size_limit = {256 * 1024}",
)


def _storage_error(owner: SqliteConnection, exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return StorageError(f"SQLite error on {owner.path!r}: {exc}")
    return exc


def _create_owner_only(path: str) -> None:
    """Create a missing database file readable by its owner only (0600).

    It holds every input, output and error in clear text; SQLite gives the
    ``-wal`` and ``-shm`` files the database file's mode. An existing file
    keeps its mode, and any failure is left for ``sqlite3.connect`` to report.
    """
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class SqliteConnection:
    """The connection plumbing `SqliteProvider` is built on.

    Args:
        path: Database file, or ``":memory:"``.
        clock: Returns the current Unix time (default `time.time`); tests
            pass a fake one to make time pass without sleeping.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] | None = None,
        durability: Durability = "power-loss",
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(
                "durability must be 'power-loss' or 'process-crash',"
                f" not {durability!r}"
            )
        self.path = path
        self.durability: Durability = durability
        self._clock = clock if clock is not None else time.time
        # Set by a write that failed with "disk full"; see _after_failure.
        self._disk_full = False
        self._last_reclaim = -1e9
        self._opened = False
        self._conn: sqlite3.Connection | None = None
        # Zeroes ahead of the WAL: fsynced commits then need no size change.
        self._zeroes: WalZeroes | None = None
        # Whether this tick's group is flushed at the next tick (no write in
        # it wakes anyone), and whether that flush must wait one more tick
        # (a write that wakes someone joined it); see _transaction.
        self._soon = False
        self._defer = False
        # Inline writes waiting for this tick's grouped transaction.
        self._group: list[
            tuple[Callable[[sqlite3.Connection, float], Any], asyncio.Future[Any]]
        ] = []
        self._wakeups = LocalWakeups()

    def clock(self) -> float:
        """Return this machine's time: every process sharing the file uses it."""
        return self._clock()

    async def _call(self, fn: Callable[[], _T]) -> _T:
        """Run *fn* on the connection (a read, or a single-statement write)."""
        if not self._opened:
            raise StorageError(f"{self!r} is not open; await its open() first")
        self._wakeups.mark()
        try:
            # Yield once so that a caller that always finds work (the
            # dispatcher under load) cannot starve the other tasks.
            await asyncio.sleep(0)
            return fn()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path!r}: {exc}") from exc

    async def _transaction(
        self,
        fn: Callable[[sqlite3.Connection, float], _T],
        wake: tuple[Channel, ...] = (),
    ) -> _T:
        """Run *fn* in a write transaction.

        Writes issued during the same event-loop tick (the
        dispatcher's commit, the worker's acknowledgements, a client's
        start) are grouped into one transaction, each in its own savepoint:
        one commit instead of several, with the same per-call atomicity.

        *wake* names the channels this write will give work to. Their
        waiters are woken at once, before the write, and the group is
        flushed one tick later, so the fetch a woken dispatcher or worker
        makes joins this very transaction (after the write, so it sees it):
        a completed activity and the turn that consumes it cost one commit,
        not two. The callers notify again after the commit, so a waiter
        that looked too early is not left behind. A group that wakes no one
        is flushed at the next tick (a sequential step's commit: one loop
        iteration less).
        """
        if not self._opened:
            raise StorageError(f"{self!r} is not open; await its open() first")
        self._wakeups.mark()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._group.append((fn, future))
        if len(self._group) == 1:
            self._defer = False
            self._soon = not wake
            if wake:
                loop.call_soon(loop.call_soon, self._flush_group)
            else:
                loop.call_soon(self._flush_group)
        elif wake and self._soon:
            # Flushed one tick later than planned (see _flush_group), after
            # the waiters woken now have had their turn to join.
            self._defer = True
        if wake:
            self._wakeups.notify(*wake)
        return await future  # type: ignore[no-any-return]

    def _flush_group(self) -> None:
        if self._defer:
            # A write that wakes someone joined a group planned for this
            # tick: the woken run now, so wait one more tick for them.
            self._defer = False
            asyncio.get_running_loop().call_soon(self._flush_group)
            return
        group, self._group = self._group, []
        if not group:
            return  # already flushed (by close)
        try:
            conn = self._db()
            if self._disk_full:
                self._reclaim(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                if self._zeroes is not None:
                    self._zeroes.extend()  # holding the write lock, nothing written
                outcomes = self._run_group(conn, group, self._clock())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            self._after_failure(exc)
            error = _storage_error(self, exc)
            outcomes = [(future, None, error) for _, future in group]
        for future, result, failure in outcomes:
            if future.done():
                continue  # its caller was cancelled meanwhile
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(result)

    def _run_group(
        self,
        conn: sqlite3.Connection,
        group: list[
            tuple[Callable[[sqlite3.Connection, float], Any], asyncio.Future[Any]]
        ],
        now: float,
    ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        # Fast path: every call in turn, no savepoints. Calls fail rarely
        # (a duplicate id, a corrupt row); then the transaction is rolled
        # back and the group redone with a savepoint per call, so each call
        # stays atomic on its own. Redoing is safe: a call's only effects
        # are its statements, and its result is not handed out until the
        # group commits.
        try:
            return [(future, fn(conn, now), None) for fn, future in group]
        except Exception:
            if len(group) == 1:
                raise  # alone in its transaction: the rollback isolates it
        conn.execute("ROLLBACK")
        conn.execute("BEGIN IMMEDIATE")
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        for fn, future in group:
            conn.execute("SAVEPOINT op")
            try:
                result = fn(conn, now)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                outcomes.append((future, None, _storage_error(self, exc)))
            else:
                outcomes.append((future, result, None))
            conn.execute("RELEASE op")
        return outcomes

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"{self!r} is not open; await its open() first")
        return self._conn

    def _after_failure(self, exc: BaseException) -> None:
        """Note a write that failed because the disk is full (probe F11).

        With 1 KiB pages and ``wal_autocheckpoint = 10000`` the WAL only
        checkpoints at ~10 MiB, so on a small volume the WAL itself refills
        any space an operator frees and no write ever succeeds again. Once a
        write has failed that way, every write first tries a TRUNCATE
        checkpoint (`_reclaim`), which succeeds as soon as there is room
        for the database file to take the WAL's pages (usually far fewer:
        the same pages are rewritten again and again), and then gives the
        WAL's space back.

        The volume is tight from then on, so the WAL is also kept small for
        the rest of the connection's life (`_TIGHT_PRAGMAS`): otherwise,
        after the first reclaim, it grows again towards 10,000 pages, fills
        the space that was freed, and this time no checkpoint can succeed
        (the database file cannot grow to take the WAL's pages), although
        the data itself would fit.
        """
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            self._disk_full = True
            if self._zeroes is not None:
                self._zeroes.disable()  # they would take the room it needs
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    for pragma in _TIGHT_PRAGMAS:
                        self._conn.execute(pragma)

    def _reclaim(self, conn: sqlite3.Connection) -> None:
        """After a disk-full error: shrink the WAL before writing (see above)."""
        now = time.monotonic()
        if now - self._last_reclaim < 0.05:
            return
        self._last_reclaim = now
        try:
            busy, log, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return  # still no room: the next write tries again
        if busy == 0 and log == done:
            self._disk_full = False

    # --- lifecycle --------------------------------------------------------

    async def open(self) -> None:
        """Connect and apply pending migrations (idempotent)."""
        if self._opened:
            return
        try:
            self._open_sync()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite error on {self.path!r}: {exc}") from exc
        self._opened = True

    def _open_sync(self) -> None:
        if self.path not in ("", ":memory:"):
            _create_owner_only(self.path)
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=5.0, cached_statements=256
        )
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            check_database(conn, self.path)
            # Small pages (new files only): a turn dirties ~9 pages spread
            # over the queue tables and their indexes, and every dirty page
            # is written to the WAL at commit; 1 KiB instead of 4 KiB pages
            # made a long sequential history ~10 % faster per step.
            conn.execute("PRAGMA page_size = 1024")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.durability]}")
            # A larger page cache and rarer checkpoints: the hot tables stay
            # in memory and the WAL is folded back in bigger, fewer batches
            # (measured: commits ~40% cheaper on the race workload).
            conn.execute("PRAGMA cache_size = -32768")
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
            migrate(conn, self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        # Only where every commit is fsynced (and there is a file).
        if self.durability == "power-loss" and self.path not in ("", ":memory:"):
            self._zeroes = WalZeroes(self.path)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self._opened:
            return
        if self._group:
            self._defer = False
            self._flush_group()  # writes already accepted must not be lost
        try:
            await self._call(self._close_sync)
        finally:
            self._opened = False

    def _close_sync(self) -> None:
        if self._zeroes is not None:
            self._zeroes.close()
            self._zeroes = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

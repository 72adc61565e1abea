"""Sessions of the PostgreSQL provider: settings, pooler detection, outages.

Every connection the provider opens carries ``application_name =
perdure-<role>-<host>-<pid>`` (a startup parameter, which PgBouncer passes
on), and, when it talks to PostgreSQL directly, ``statement_timeout`` and
``lock_timeout`` as startup ``options`` (no extra round trip). Behind a
transaction-mode pooler no session state survives a transaction and
PgBouncer refuses the ``options`` startup parameter, so there the provider
uses no server-side prepared statements and bounds each call on the client
side instead (see `PgSettings`).

Connection-level failures (the server went away, is in recovery, or is now a
read-only standby) become `TransientStorageError`, which callers such as the
`Client` retry; `Outage` logs one line when the database becomes
unreachable and one when it is back, instead of one per failed call.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from perdure._errors import StorageError

__all__ = [
    "FLAP_WINDOW",
    "Outage",
    "PgSettings",
    "TransientStorageError",
    "application_name",
    "detect_pooler",
    "is_transient",
    "server_address",
    "storage_error",
]

_log = logging.getLogger("perdure.providers.postgres")

# SQLSTATEs that mean "this server cannot take the call now", not "the call
# is wrong": admin/crash shutdown, starting up or in recovery, a read-only
# (standby) session, too many connections. Class 08 is connection errors.
_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "25006", "53300"})
# Of those, the ones the server refuses before running the statement, so a
# retry cannot apply a write twice.
_REFUSED_STATES = frozenset({"57P03", "25006", "53300"})


class TransientStorageError(StorageError):
    """A connection-level `StorageError`: retrying later may succeed.

    Attributes:
        transient: Always ``True`` (callers test this attribute, so they
            need not import the provider).
        maybe_applied: ``False`` when the statement surely did not run
            (no connection could be had, or the server refused it before
            running it); ``True`` when the connection broke while it ran, so
            a write may have committed.
    """

    transient = True

    def __init__(self, message: str, *, maybe_applied: bool) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


@dataclass(frozen=True, slots=True)
class PgSettings:
    """How the provider's sessions are set up.

    Attributes:
        role: Names the process's part in ``application_name``
            (``runtime``, ``client``, ``listen``, ``doctor``).
        statement_timeout: Seconds a statement may run (``0``: no limit).
        lock_timeout: Seconds a statement may wait for a lock (``0``: no
            limit).
        pooled: A transaction-mode pooler is in between.
    """

    role: str = "runtime"
    statement_timeout: float = 30.0
    lock_timeout: float = 10.0
    pooled: bool = False

    def connect_kwargs(self, conninfo: str, role: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.AsyncConnection.connect`` / the pool."""
        given = _params(conninfo)
        kwargs: dict[str, Any] = {"autocommit": True}
        if not given.get("application_name"):
            kwargs["application_name"] = application_name(role or self.role)
        if self.pooled:
            # Prepared statements live in one server session; a transaction
            # pooler hands the next transaction to another one.
            kwargs["prepare_threshold"] = None
            return kwargs
        limits = [
            f"-c {name}={int(seconds * 1000)}"
            for name, seconds in (
                ("statement_timeout", self.statement_timeout),
                ("lock_timeout", self.lock_timeout),
            )
            if seconds > 0
        ]
        if limits:
            kwargs["options"] = " ".join([given.get("options", ""), *limits]).strip()
        return kwargs

    @property
    def client_timeout(self) -> float | None:
        """Client-side bound of one call behind a pooler (no server-side limits)."""
        if not self.pooled or self.statement_timeout <= 0:
            return None
        return self.statement_timeout + 5.0


def application_name(role: str) -> str:
    """``perdure-<role>-<host>-<pid>``, cut to PostgreSQL's 63 bytes."""
    name = f"perdure-{role}-{socket.gethostname()}-{os.getpid()}"
    return name.encode()[:63].decode(errors="ignore")


def _params(conninfo: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    except psycopg.Error:
        return {}


def server_address(conn: psycopg.AsyncConnection[Any]) -> str:
    """``host:port`` the connection reached (for messages; never a password)."""
    info = conn.info
    return f"{info.host}:{info.port}"


async def detect_pooler(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether something between us and PostgreSQL answers on another port.

    The server's own ``port`` setting differs from the port we connected to
    when a pooler (or any proxy) is in between. A port-mapping proxy that is
    not a pooler is a false positive; it only costs prepared statements and
    LISTEN (pass ``pooler=False`` to the provider to override).
    """
    cursor = await conn.execute("SELECT current_setting('port')")
    row = await cursor.fetchone()
    return row is not None and str(row[0]) != str(conn.info.port)


def is_transient(exc: BaseException) -> bool:
    """Whether *exc* is a connection-level failure worth retrying."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:
        # No SQLSTATE: raised by the driver itself (connection refused or
        # lost, pool timeout), never by a statement the server rejected.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in _TRANSIENT_STATES


def storage_error(where: str, exc: psycopg.Error, *, sent: bool) -> StorageError:
    """The `StorageError` for *exc* (transient ones as `TransientStorageError`).

    Args:
        where: Names the database in the message.
        exc: The driver's error.
        sent: The statement may have reached the server.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    message = f"PostgreSQL error on {where}: {text}"
    if not is_transient(exc):
        return StorageError(message)
    refused = exc.sqlstate in _REFUSED_STATES
    return TransientStorageError(message, maybe_applied=sent and not refused)


#: Seconds after the database came back during which a new failure counts
#: as the same outage (a failover's connections fail, succeed and fail
#: again while the standby is promoted).
FLAP_WINDOW = 10.0


class Outage:
    """Logs one warning when the database goes away and one when it is back."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._since: float | None = None
        self._back_at = -FLAP_WINDOW

    def failed(self, exc: BaseException) -> None:
        """A call failed with a transient error."""
        if self._since is not None:
            return
        now = time.monotonic()
        self._since = now
        if now - self._back_at < FLAP_WINDOW:
            return  # a failover flaps: still the same outage, already logged
        text = " ".join(str(exc).split())
        _log.warning(
            "PostgreSQL %s unreachable (%s); retrying until it is back",
            self._where,
            text,
        )

    def succeeded(self) -> None:
        """A call went through."""
        if self._since is not None:
            now = time.monotonic()
            _log.warning(
                "PostgreSQL %s reachable again after %.1f s",
                self._where,
                now - self._since,
            )
            self._since = None
            self._back_at = now

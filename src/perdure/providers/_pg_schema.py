"""The PostgreSQL provider's setup: URL and schema parsing, migrations, channels."""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from psycopg import AsyncConnection, Error
from psycopg.conninfo import conninfo_to_dict

from perdure._errors import StorageError
from perdure.providers._base import Channel
from perdure.providers.helpers import load_migrations

__all__ = [
    "DEFAULT_SCHEMA",
    "channel_names",
    "migrate",
    "quote_ident",
    "split_url",
]

DEFAULT_SCHEMA = "perdure"

# PostgreSQL truncates identifiers (and LISTEN channel names) to 63 bytes.
_MAX_IDENT = 63


def split_url(url: str, schema: str | None) -> tuple[str, str]:
    """Return ``(conninfo, schema)``: the URL without ``schema=``, and the schema.

    The ``schema`` query parameter is perdure's, not libpq's (which would
    reject it), so it is removed before the URL reaches the driver; the rest
    of the URL is passed on untouched. A libpq ``key=value`` string is
    accepted too (the schema then comes from the keyword only).

    Raises:
        ValueError: The URL and the keyword name different schemas, or the
            schema name is empty, too long, or has a NUL or a ``%``.
    """
    conninfo, from_url = url, None
    if url.lower().startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        pairs = parts.query.split("&") if parts.query else []
        found = [unquote_plus(p.partition("=")[2]) for p in pairs if _is_schema(p)]
        if len(set(found)) > 1:
            raise ValueError(f"PostgreSQL URL names several schemas: {found}")
        from_url = found[0] if found else None
        kept = "&".join(p for p in pairs if not _is_schema(p))
        conninfo = urlunsplit(parts._replace(query=kept))
    if schema is not None and from_url is not None and schema != from_url:
        raise ValueError(
            f"schema {schema!r} given as an argument, but the URL says {from_url!r}"
        )
    if schema == "" or from_url == "":
        # An empty value must not fall back to the default schema: that
        # could point an application at another one's data (probe F15).
        raise ValueError("the PostgreSQL schema name is empty")
    chosen = schema or from_url or DEFAULT_SCHEMA
    if len(chosen.encode()) > _MAX_IDENT or "\x00" in chosen or "%" in chosen:
        # '%' would be read as a query placeholder in every statement.
        raise ValueError(
            f"invalid PostgreSQL schema name {chosen!r} (1 to 63 bytes, no NUL, no '%')"
        )
    return conninfo, chosen


def _is_schema(pair: str) -> bool:
    return unquote_plus(pair.partition("=")[0]) == "schema"


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (the schema name is user input)."""
    return '"' + name.replace('"', '""') + '"'


def channel_names(schema: str) -> dict[Channel, str]:
    """NOTIFY channel of each wake-up kind, qualified by schema.

    Qualified so that applications sharing a database (one schema each) do
    not wake each other; a long schema name is replaced by a digest so the
    channel stays within PostgreSQL's 63-byte identifier limit.
    """
    prefix = f"perdure:{schema}"
    if len(prefix.encode()) > _MAX_IDENT - len(":orchestrations"):
        prefix = "perdure:" + hashlib.sha256(schema.encode()).hexdigest()[:32]
    kinds: tuple[Channel, ...] = ("orchestrations", "activities", "instances")
    return {kind: f"{prefix}:{kind}" for kind in kinds}


def _lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for *schema*'s migrations."""
    digest = hashlib.sha256(f"perdure-migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(conn: AsyncConnection[Any], schema: str) -> None:
    """Create *schema* if needed and apply pending migrations, in one transaction.

    *conn* is a psycopg ``AsyncConnection`` in autocommit mode. A
    transaction-scoped advisory lock serialises check-and-apply, so several
    processes starting at once on a fresh database are safe: the first
    applies, the others wait and then find nothing to do. Each migration's
    SQL runs with ``search_path`` set to the schema.

    Raises:
        StorageError: The schema is newer than the packaged migrations
            (nothing is written).
    """
    ident = quote_ident(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        # Look before creating: "CREATE ... IF NOT EXISTS" needs the CREATE
        # privilege even when the object exists, and a user may have been
        # given an existing schema (or a migrated one, read-only) instead.
        cursor = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
            " to_regclass(%s) IS NOT NULL",
            (schema, f"{ident}.schema_version"),
        )
        has_schema, has_versions = await cursor.fetchone() or (False, False)
        if not has_schema:
            await conn.execute(f"CREATE SCHEMA {ident}")
        if not has_versions:
            await conn.execute(
                f"CREATE TABLE {ident}.schema_version"
                " (version integer PRIMARY KEY, applied_at double precision NOT NULL)"
            )
        cursor = await conn.execute(f"SELECT version FROM {ident}.schema_version")
        applied = {row[0] for row in await cursor.fetchall()}
        migrations = load_migrations("postgres")
        newest = migrations[-1][0]
        if applied and max(applied) > newest:
            raise StorageError(
                f"PostgreSQL schema {schema!r} has schema version {max(applied)},"
                f" but this perdure supports versions up to {newest};"
                " upgrade perdure to use it"
            )
        pending = [(v, sql) for v, sql in migrations if v not in applied]
        if not pending:
            return
        await conn.execute(f"SET LOCAL search_path TO {ident}")
        for version, script in pending:
            # Simple query protocol (no parameters): a script may hold
            # several statements.
            await conn.execute(script.encode())
            await conn.execute(
                f"INSERT INTO {ident}.schema_version (version, applied_at)"
                " VALUES (%s, extract(epoch FROM clock_timestamp()))",
                (version,),
            )


def describe(conninfo: str) -> str:
    """``host/dbname`` for messages (never the password)."""
    try:
        params = conninfo_to_dict(conninfo)
    except Error:
        return "?"
    return f"{params.get('host') or 'localhost'}/{params.get('dbname') or ''}"


async def measure_skew(conn: AsyncConnection[Any]) -> float:
    """Database clock minus this machine's, from one round trip."""
    before = time.time()
    cursor = await conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8")
    row = await cursor.fetchone()
    after = time.time()
    assert row is not None
    return float(row[0]) - (before + after) / 2

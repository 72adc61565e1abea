"""Storage providers: the `Provider` contract, its record types, and `open_provider`.

``perdure.providers.sqlite.SqliteProvider`` (stdlib, the default) and
``perdure.providers.postgres.PostgresProvider`` (the ``postgres`` extra)
implement the contract; `open_provider` picks one from a URL. A new backend
composes `perdure.providers.helpers` and proves itself with the pytest
suite in `perdure.providers.conformance` (see docs/providers.md).
"""

from __future__ import annotations

from typing import Any

from perdure._errors import StorageError
from perdure.providers._base import (
    ActivityClaim,
    ActivityHeartbeat,
    ActivityItem,
    ActivityLimit,
    ActivityResult,
    ActivityRouting,
    ActivityWork,
    Channel,
    Handlers,
    InstanceBatch,
    InstanceQuery,
    InstanceRecord,
    InstanceStatus,
    Message,
    NewInstance,
    OrchestrationItem,
    Outbound,
    Provider,
    QueuedMessage,
    RoutesActivities,
    SavesHeartbeats,
    TurnCommit,
    WorkRef,
)
from perdure.providers._urls import redact_url

__all__ = [
    "ActivityHeartbeat",
    "ActivityItem",
    "ActivityLimit",
    "ActivityResult",
    "ActivityClaim",
    "ActivityRouting",
    "ActivityWork",
    "Channel",
    "Handlers",
    "InstanceBatch",
    "InstanceQuery",
    "InstanceRecord",
    "InstanceStatus",
    "Message",
    "NewInstance",
    "OrchestrationItem",
    "Outbound",
    "Provider",
    "QueuedMessage",
    "RoutesActivities",
    "SavesHeartbeats",
    "TurnCommit",
    "WorkRef",
    "open_provider",
]


def open_provider(url_or_provider: str | Provider) -> Provider:
    """Return the provider a storage URL names (not yet opened).

    Accepted forms:

    - ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``
      (three slashes, then the path; a fourth slash makes it absolute);
    - ``sqlite://:memory:`` or ``sqlite:///:memory:`` (private, in memory);
    - a SQLite URL may end with ``?durability=process-crash`` (see
      `perdure.providers.sqlite.SqliteProvider`);
    - ``postgresql://...`` or ``postgres://...`` (needs the ``postgres``
      extra);
    - an object that already is a `Provider`, returned as is.

    The caller still has to ``await provider.open()``.

    Raises:
        ValueError: The URL has an unknown scheme or no path.
        StorageError: The provider's optional dependencies are not
            installed.
        TypeError: *url_or_provider* is neither a string nor a provider.
    """
    if not isinstance(url_or_provider, str):
        if isinstance(url_or_provider, Provider):
            return url_or_provider
        raise TypeError(
            "expected a storage URL or a Provider, got"
            f" {type(url_or_provider).__name__}"
        )
    url = url_or_provider
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(
            f"storage URL {redact_url(url)!r} has no scheme; use e.g. 'sqlite:///perdure.db'"
            " or 'postgresql://user@host/db'"
        )
    if scheme == "sqlite":
        from perdure.providers.sqlite import SqliteProvider

        rest, _, query = rest.partition("?")
        return SqliteProvider(
            _sqlite_path(url, rest), durability=_durability(url, query)
        )
    if scheme in ("postgresql", "postgres"):
        try:
            from perdure.providers.postgres import (  # type: ignore[import-not-found, unused-ignore]
                PostgresProvider,
            )
        except ImportError as exc:
            raise StorageError(
                "PostgreSQL storage needs optional dependencies:"
                f' pip install "perdure[postgres]" ({exc})'
            ) from exc
        return PostgresProvider(url)  # type: ignore[no-any-return, unused-ignore]
    raise ValueError(
        f"unknown storage URL scheme {scheme!r} in {redact_url(url)!r};"
        " expected 'sqlite://' or 'postgresql://'"
    )


def _durability(url: str, query: str) -> Any:
    """The ``durability`` of a SQLite URL's query (``?durability=...``)."""
    options = dict(part.partition("=")[::2] for part in query.split("&") if part)
    unknown = set(options) - {"durability"}
    if unknown:
        raise ValueError(
            f"SQLite URL {redact_url(url)!r}: unknown option(s)"
            f" {', '.join(sorted(unknown))}; only 'durability' is known"
        )
    return options.get("durability", "power-loss")


def _sqlite_path(url: str, rest: str) -> str:
    """Map what follows ``sqlite://`` to a `SqliteProvider` path."""
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    # "sqlite:///x.db" leaves "/x.db": the first slash separates the empty
    # host from the path, as in SQLAlchemy URLs.
    path = rest[1:] if rest.startswith("/") else ""
    if not path:
        raise ValueError(
            f"SQLite URL {url!r} has no path; use 'sqlite:///relative.db',"
            " 'sqlite:////absolute/path.db' or 'sqlite://:memory:'"
        )
    return path

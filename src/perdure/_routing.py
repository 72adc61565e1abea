"""Activity routing and flow control, the runtime's side (docs/routing.md).

What a scheduling call may ask for (`routing_options`: tag, session,
priority, carried in the activity's options like its retry policy, never
in history), what ``@perdure.activity`` may declare (`check_limits`:
concurrency and rate limits), and what one runtime's worker may fetch
(`routing_for`: registered names, served tags, declared limits, its owner
id for sessions).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from ._names import check_name
from ._retry import RetryPolicy, seconds
from .providers._base import ActivityLimit, ActivityRouting

__all__ = [
    "MAX_RATE",
    "ROUTING_KEYS",
    "activity_options",
    "check_limits",
    "check_tags",
    "owner_id",
    "routing_for",
    "routing_options",
    "split_routing",
]

#: Largest ``rate_limit`` count: the start times of the window are stored
#: (express a higher rate over a shorter window).
MAX_RATE = 10_000
#: Priorities are stored as 32-bit integers.
_PRIORITY = (-(2**31), 2**31 - 1)
#: Option keys that route an item rather than run it (see `split_routing`).
ROUTING_KEYS = ("tag", "session", "priority")


def activity_options(
    retry: RetryPolicy | None,
    timeout: float | timedelta | None,
    heartbeat_timeout: float | timedelta | None,
    routing: dict[str, Any],
) -> dict[str, Any] | None:
    """The options ``ctx.schedule_activity`` stores with the work item.

    Raises:
        ValueError: *heartbeat_timeout* is not > 0 seconds.
    """
    options: dict[str, Any] | None = None
    if retry is not None or timeout is not None:
        options = {
            "retry": retry.to_json() if retry is not None else None,
            "timeout": seconds(timeout, "timeout") if timeout is not None else None,
        }
    if heartbeat_timeout is not None:
        quiet = seconds(heartbeat_timeout, "heartbeat_timeout")
        if quiet <= 0:
            raise ValueError("heartbeat_timeout must be > 0 seconds")
        options = {**(options or {}), "heartbeat_timeout": quiet}
    if routing:
        options = {**(options or {}), **routing}
    return options


def routing_options(
    tag: str | None, session: str | None, priority: int
) -> dict[str, Any]:
    """The routing part of an activity's options (only what is not default).

    Raises:
        ValueError: An empty or unstorable *tag* or *session*, or a
            *priority* outside 32-bit integers.
        TypeError: *priority* is not an int.
    """
    options: dict[str, Any] = {}
    if tag is not None:
        options["tag"] = check_name(tag, "activity tag")
    if session is not None:
        options["session"] = check_name(session, "activity session")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, got {priority!r}")
    if not _PRIORITY[0] <= priority <= _PRIORITY[1]:
        raise ValueError(f"priority must fit in 32 bits, got {priority}")
    if priority:
        options["priority"] = priority
    return options


def split_routing(options: Any) -> tuple[Any, dict[str, Any]]:
    """Split stored activity options into ``(run options, routing fields)``.

    The routing fields are `ActivityWork`'s ``tag``/``session``/``priority``
    keyword arguments; the rest goes into the item's body. Options without
    routing come back unchanged (the same object).
    """
    if not isinstance(options, dict) or not any(k in options for k in ROUTING_KEYS):
        return options, {}
    rest = {k: v for k, v in options.items() if k not in ROUTING_KEYS}
    fields = {k: options[k] for k in ROUTING_KEYS if k in options}
    return (rest or None), fields


def check_limits(
    name: str,
    concurrency: int | None,
    rate_limit: tuple[int, float | timedelta] | None,
) -> ActivityLimit | None:
    """The `ActivityLimit` ``@perdure.activity`` declares, if any.

    Raises:
        ValueError: *concurrency* is not an int >= 1, or *rate_limit* is not
            ``(count, window)`` with 1 <= count <= `MAX_RATE` and a window
            > 0 seconds.
    """
    if concurrency is None and rate_limit is None:
        return None
    # type() rather than isinstance(): True is no concurrency.
    if concurrency is not None and (type(concurrency) is not int or concurrency < 1):
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    rate: int | None = None
    per = 1.0
    if rate_limit is not None:
        try:
            count, window = rate_limit
        except (TypeError, ValueError):
            raise ValueError(
                f"rate_limit must be (count, seconds), got {rate_limit!r}"
            ) from None
        if type(count) is not int:
            raise ValueError(f"rate_limit count must be an int, got {count!r}")
        if not 1 <= count <= MAX_RATE:
            raise ValueError(
                f"rate_limit count must be 1..{MAX_RATE}, got {count} (express a "
                "higher rate over a shorter window)"
            )
        per = seconds(window, "rate_limit window")
        if per <= 0:
            raise ValueError(f"rate_limit window must be > 0 seconds, got {window!r}")
        rate = count
    return ActivityLimit(name=name, concurrency=concurrency, rate=rate, per=per)


def check_tags(tags: Iterable[str] | None) -> frozenset[str]:
    """The ``activity_tags`` of a `Runtime`, checked.

    Raises:
        TypeError: A single str was given (it would be read as characters).
        ValueError: A tag is empty or cannot be stored.
    """
    if tags is None:
        return frozenset()
    if isinstance(tags, str):
        raise TypeError(f"activity_tags must be a set of str, not the str {tags!r}")
    return frozenset(check_name(tag, "activity tag") for tag in tags)


def owner_id() -> str:
    """A new id for one runtime's worker: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def routing_for(
    names: Iterable[str],
    limits: Iterable[ActivityLimit],
    tags: frozenset[str],
    owner: str,
) -> ActivityRouting:
    """What a worker with these registrations may fetch."""
    return ActivityRouting(
        names=tuple(sorted(names)), tags=tags, limits=tuple(limits), owner=owner
    )

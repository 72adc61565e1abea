"""Values a database driver refuses, and what storage writes instead.

A ``str`` holding a lone surrogate (``os.fsdecode`` of a Latin-1 file name,
``json.loads`` of a cut emoji) cannot be encoded by either driver, and
PostgreSQL text refuses NUL. The runtime's codec should refuse such values
where they are made; this is the storage's own line of defence (probe F1,
F2): a turn or result carrying one fails alone, never its batch.

This is the one place in `perdure.providers` that knows a message kind: an
activity result that cannot be written becomes an ``activity_failed``
message, so the instance learns why at once instead of the activity running
again on every lease expiry until it turns into poison.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from perdure.providers._base import ActivityResult

__all__ = ["describe", "log_dropped", "log_rejected", "printable", "replacement"]

_log = logging.getLogger("perdure.providers")


def printable(text: str) -> str:
    r"""*text* with lone surrogates and NUL escaped (``\udce9``, ``\x00``)."""
    escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return escaped.replace("\x00", "\\x00")


def describe(cause: BaseException) -> str:
    """``Type: message`` of a driver's error, safe to store and to log."""
    return printable(f"{type(cause).__name__}: {cause}")


def replacement(result: ActivityResult, cause: BaseException) -> ActivityResult | None:
    """The result to write instead of *result*, which storage refused.

    A completion becomes an ``activity_failed`` message with a
    ``PayloadError`` (the type the codec raises for a value it refuses); a
    failure keeps its error, with its text escaped. ``None`` if *result*'s
    body does not name the work it answers (then it is dropped: its item
    stays locked until the lease expires).
    """
    # Imported here: perdure._messages imports perdure.providers._base.
    from perdure import _messages as m
    from perdure._errors import ErrorInfo

    try:
        body: Any = json.loads(result.message.body)
        link = {"execution_id": body["execution_id"], "event_id": body["event_id"]}
        if not all(type(value) is int for value in link.values()):
            return None
        stored = body.get("error")
        if result.message.kind == m.ACTIVITY_FAILED and isinstance(stored, dict):
            old = ErrorInfo.from_json(stored)
            error = ErrorInfo(printable(old.type), printable(old.message), old.category)
        else:
            error = ErrorInfo(
                "PayloadError",
                f"the activity's result cannot be stored: {describe(cause)}",
            )
        message = m.message(
            m.ACTIVITY_FAILED,
            {**link, "error": error.to_json()},
            visible_at=result.message.visible_at,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    _log.warning(
        "the result of activity work %d of %r cannot be stored (%s); "
        "recording it as failed",
        result.id,
        result.instance_id,
        describe(cause),
    )
    return dataclasses.replace(result, message=message)


def log_dropped(result: ActivityResult, cause: BaseException) -> None:
    """Log a result that could be neither written nor replaced."""
    _log.error(
        "the result of activity work %d of %r cannot be stored (%s); dropped, "
        "the activity runs again when its lease expires",
        result.id,
        result.instance_id,
        describe(cause),
    )


def log_rejected(instance_id: str, cause: BaseException) -> None:
    """Log a turn rejected because storage cannot write it."""
    _log.warning(
        "the turn of %r cannot be stored (%s); rejected, the instance is "
        "fetched again (max_attempts fails it as poison)",
        instance_id,
        describe(cause),
    )

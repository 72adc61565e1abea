"""The instance's values: what ``ctx.set_value`` stored, as the code sees it.

A small key-value store per instance, kept by the driver and changed only
by orchestration code: each ``set_value``/``clear_value`` is a scheduling
event (`._history_values`), matched on replay like any other call, so the
values the code reads are the same on every replay. An execution starts
with the values its `OrchestrationStarted` carries (those a continue-as-new
ended with; none for a new instance or a sub-orchestration).

Limits, checked before anything is recorded (`ValueTooLarge`): a key of at
most `MAX_KEY_CHARS` characters, one value's JSON of at most
`MAX_VALUE_BYTES`, all keys and values' JSON together at most
`MAX_TOTAL_BYTES` (UTF-8 bytes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._codec import dumps, loads
from .._errors import PayloadError, ValueTooLarge
from ._history import (
    Event,
    OrchestrationStarted,
    StateValueCleared,
    StateValueSet,
)

__all__ = [
    "MAX_KEY_CHARS",
    "MAX_TOTAL_BYTES",
    "MAX_VALUE_BYTES",
    "Values",
    "check_key",
    "fold_values",
]

#: Longest key, in characters.
MAX_KEY_CHARS = 256
#: Largest JSON of one value, in UTF-8 bytes.
MAX_VALUE_BYTES = 64 * 1024
#: Largest size of all of an instance's keys and values' JSON together.
MAX_TOTAL_BYTES = 256 * 1024

_SCALARS = (str, int, float, bool, type(None))


def check_key(key: object) -> str:
    """Return *key* if it can name a value.

    Raises:
        PayloadError: Not a non-empty str, or it has a NUL character or a
            lone surrogate.
        ValueTooLarge: Longer than `MAX_KEY_CHARS`.
    """
    if not isinstance(key, str) or not key:
        raise PayloadError(f"value key must be a non-empty str, got {key!r}")
    if len(key) > MAX_KEY_CHARS:
        raise ValueTooLarge(
            f"value key is {len(key)} characters; the limit is {MAX_KEY_CHARS}"
        )
    if "\x00" in key:
        raise PayloadError(f"value key {key!r} contains a NUL character")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError(
                f"value key {key!r} has a lone surrogate, which UTF-8 cannot encode"
            ) from None
    return key


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class Values:
    """The values of one execution: key -> (JSON value, its JSON text)."""

    __slots__ = ("_items", "_total")

    def __init__(self) -> None:
        self._items: dict[str, tuple[Any, str]] = {}
        self._total = 0

    def load(self, values: dict[str, Any] | None) -> None:
        """Start from *values* (an `OrchestrationStarted`'s; None: empty)."""
        self._items = {}
        self._total = 0
        for key, value in (values or {}).items():
            text = dumps(value)
            self._items[key] = (value, text)
            self._total += _size(key) + _size(text)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of *key* (a fresh copy of a list or dict), else *default*."""
        item = self._items.get(key)
        if item is None:
            return default
        value, text = item
        # A copy: mutating what was read must not change the values
        # behind the history's back.
        return value if isinstance(value, _SCALARS) else loads(text)

    def set(self, key: str, value: Any) -> None:
        """Store JSON *value* under *key*.

        Raises:
            ValueTooLarge: The value, or all values with it, is over its
                limit; nothing changes.
        """
        text = dumps(value)
        size = _size(text)
        if size > MAX_VALUE_BYTES:
            raise ValueTooLarge(
                f"value {key!r} is {size} bytes as JSON; the limit is {MAX_VALUE_BYTES}"
            )
        old = self._items.get(key)
        total = self._total + _size(key) + size
        if old is not None:
            total -= _size(key) + _size(old[1])
        if total > MAX_TOTAL_BYTES:
            raise ValueTooLarge(
                f"setting value {key!r} makes the instance's values {total} "
                f"bytes (keys and JSON values); the limit is {MAX_TOTAL_BYTES}"
            )
        self._items[key] = (value, text)
        self._total = total

    def clear(self, key: str) -> None:
        """Remove *key* (nothing happens if it has no value)."""
        old = self._items.pop(key, None)
        if old is not None:
            self._total -= _size(key) + _size(old[1])

    def snapshot(self) -> dict[str, Any]:
        """All values, as a new dict of fresh JSON values (key order: first set)."""
        return {key: loads(text) for key, (_, text) in self._items.items()}


def fold_values(events: Iterable[Event]) -> dict[str, Any]:
    """The values an execution's *events* end with.

    The start's ``values``, then every `StateValueSet` and
    `StateValueCleared` in order: what the driver holds after the same
    events, derived from the history alone (for tools and tests). A rewind
    voids no value event (it voids failures and cancellations only).
    """
    values: dict[str, Any] = {}
    for event in events:
        if isinstance(event, OrchestrationStarted):
            values = dict(event.values or {})
        elif isinstance(event, StateValueSet):
            values[event.key] = event.value
        elif isinstance(event, StateValueCleared):
            values.pop(event.key, None)
    return values

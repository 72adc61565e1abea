"""History events of the instance's values: ``ctx.set_value`` and ``clear_value``.

Kept apart from `._history` (the rest of the vocabulary), which imports
and registers them like its own. Both are scheduling events: replay
matches them in order against the code's calls (DESIGN §2), the key and
the value of a set, the key of a clear; ``scope`` is informational.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._event_base import Event

__all__ = ["StateValueCleared", "StateValueSet"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateValueSet(Event):
    """``ctx.set_value(key, value)`` was called: *key* now holds *value*."""

    role = "scheduling"
    match_keys = ("key", "value")

    key: str
    value: Any = None
    scope: str = "0"


@dataclass(frozen=True, slots=True, kw_only=True)
class StateValueCleared(Event):
    """``ctx.clear_value(key)`` was called: *key* holds nothing any more."""

    role = "scheduling"
    match_keys = ("key",)

    key: str
    scope: str = "0"

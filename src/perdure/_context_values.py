"""The instance-values calls of `OrchestrationContext` (``ctx.set_value``...).

A mixin, kept apart so that `perdure._context` stays short; the rules are
in `perdure._core._values` and docs/state.md.
"""

from __future__ import annotations

from typing import Any

from ._codec import to_json
from ._core._driver import Driver
from ._core._values import check_key

__all__ = ["InstanceValues"]


class InstanceValues:
    """Calls on the instance's values: a small key-value store per instance.

    Values are JSON payloads. Setting and clearing are recorded in the
    history (replay matches them like any other call) and stored on the
    instance, so `perdure.Client.get_values` reads them without running the
    orchestration, as soon as the turn that changed them commits. A
    continue-as-new carries them to the new execution; a sub-orchestration
    starts with none of its parent's.
    """

    _driver: Driver

    def set_value(self, key: str, value: Any) -> None:
        """Store *value* (JSON: dataclasses and pydantic models allowed) under *key*.

        Synchronous, and deterministic: replay checks the key and value
        against the history. Like a scheduling call, it raises
        `perdure.Cancelled` inside a cancelled task (use ``ctx.shield``).

        Args:
            key: A non-empty str of at most 256 characters.
            value: Its JSON may be at most 64 KiB; all of the instance's
                keys and values together at most 256 KiB.

        Raises:
            PayloadError: *value* cannot be serialised, or *key* is not a
                non-empty str without NUL or lone surrogate; nothing is
                recorded.
            ValueTooLarge: (a `PayloadError`) over a size limit; nothing is
                recorded and the values stay as they were.
        """
        self._driver.set_value(check_key(key), to_json(value, f"value {key!r}"))

    def get_value(self, key: str, default: Any = None) -> Any:
        """The value stored under *key* (as JSON values), else *default*.

        A list or dict is a fresh copy: changing it changes nothing stored
        until it is given to `set_value` again.
        """
        return self._driver.values.get(key, default)

    def clear_value(self, key: str) -> None:
        """Remove the value stored under *key* (recorded even if there is none).

        Raises:
            PayloadError: *key* is not a non-empty str (see `set_value`).
        """
        self._driver.clear_value(check_key(key))

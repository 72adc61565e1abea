"""Scheduling calls: what orchestration code asks the driver for.

`Calls` is the part of the driver that orchestration code calls while it
runs (through `OrchestrationContext`): each scheduling call creates work
owned by the running task and emits an `Action` into the FIFO that replay
matches against history and a new turn turns into events (`._driver`).
Work created inside ``ctx.shield`` is flagged ``shielded`` in its event and
held: the execution waits for it (DESIGN §8).
"""

from __future__ import annotations

import random as _random
from collections import deque
from collections.abc import Callable
from typing import Any

from .._errors import Cancelled
from . import _history as h
from ._actions import Action
from ._inbox import Inbox
from ._patches import Patches
from ._rewind import Rewind
from ._runner import Runner
from ._seeds import Seeds
from ._tasks import CANCELLED, PENDING, DurableFuture, WorkFuture
from ._values import Values

__all__ = ["Calls"]

# Enum member as a plain global: on Python 3.11 ``WorkKind.WAIT`` is a
# descriptor call, ten times a global lookup, on the driver's hot path.
_WAIT = h.WorkKind.WAIT


class Calls(Runner):
    """The scheduling calls of one execution's driver (see `Driver`)."""

    def __init__(self, instance_id: str, execution_id: int) -> None:
        super().__init__()
        self._emitted: deque[Action] = deque()
        self._cancels: deque[WorkFuture[Any]] = deque()
        self._inbox = Inbox()
        self._token = 0
        self._seeds = Seeds(instance_id, execution_id)
        self._patches = Patches()
        # From replay(..., rewind=True) to the end of the rewind turn.
        self._rewind: Rewind | None = None
        # The instance's values (ctx.set_value), and whether this turn
        # changed them (reset by ``begin_turn``).
        self.values = Values()
        self.values_changed = False

    def schedule(
        self,
        cls: type[h.Event],
        fields: dict[str, Any],
        label: str,
        *,
        decode: Callable[[Any], Any] | None = None,
        options: Any = None,
    ) -> DurableFuture[Any]:
        """Create work owned by the running task and emit its action.

        Args:
            cls: The scheduling event to emit.
            fields: Its fields (``scope`` is the running task's).
            label: The work's name in errors (for a wait: the event name).
            decode: Turns a completion's result into the awaited value.
            options: Activity options for the runtime (retry, timeout).
        """
        task = self._require_task()
        if task is None:
            return self.refused_future()
        work_kind = cls.work
        assert work_kind is not None, cls
        self._token += 1
        work: WorkFuture[Any] = WorkFuture(
            self, work_kind, self._token, task, label, decode
        )
        task.children.append(work)
        fields["scope"] = task.path
        if work.shielded or task.under_shield:
            # Compensation: marked, and the execution waits for it (work a
            # shielded task leaves unawaited included).
            fields["shielded"] = True
            self.hold(work)
        event = cls(event_id=0, timestamp=0.0, **fields)
        self._emitted.append(Action(event, work, options))
        if work_kind is _WAIT:
            self._inbox.open_wait(work, fields["name"])
        return work

    def emit(self, cls: type[h.Event], fields: dict[str, Any]) -> None:
        """Emit an action that creates no work (custom status, detached start)."""
        if self._require_task() is not None:
            self._emitted.append(Action(cls(event_id=0, timestamp=0.0, **fields), None))

    def set_value(self, key: str, value: Any) -> None:
        """Store JSON *value* under *key* and emit its `StateValueSet`.

        Raises:
            ValueTooLarge: Over a size limit (`._values`): nothing emitted.
            Cancelled: Called inside a cancelled task, as a scheduling call.
        """
        task = self._require_task()
        if task is None:
            return
        self.values.set(key, value)
        self.values_changed = True
        event = h.StateValueSet(
            event_id=0, timestamp=0.0, key=key, value=value, scope=task.path
        )
        self._emitted.append(Action(event, None))

    def clear_value(self, key: str) -> None:
        """Remove *key*'s value and emit its `StateValueCleared`."""
        task = self._require_task()
        if task is None:
            return
        self.values.clear(key)
        self.values_changed = True
        event = h.StateValueCleared(event_id=0, timestamp=0.0, key=key, scope=task.path)
        self._emitted.append(Action(event, None))

    def patched(self, patch_id: str) -> bool:
        """Answer ``ctx.patched(patch_id)``; see `._patches` for the rules.

        The first live decision for an id emits its `PatchApplied` marker.
        Unlike scheduling calls it works in a cancelled task too: it is a
        decision, not work.
        """
        task = self.current
        if task is None:
            # A coroutine being closed (see `close_refusal`): decide nothing.
            error = self.close_refusal()
            if error is not None:
                raise error
            return bool(self._patches.decided(patch_id))
        answer, record = self._patches.decide(patch_id, self.is_replaying)
        if record:
            marker = h.PatchApplied(
                event_id=0, timestamp=0.0, patch_id=patch_id, scope=task.path
            )
            rewinding = self._rewind
            if rewinding is not None and not rewinding.begun:
                rewinding.held.append(Action(marker, None))  # until replay ends
            else:
                self._emitted.append(Action(marker, None))
        return answer

    def cancel_work(self, work: WorkFuture[Any], reason: str) -> None:
        """Cancel unfinished work and record its cancel event for this turn."""
        if work._state != PENDING:
            return
        if work.kind is _WAIT:
            self._inbox.close_wait(work, work.label)  # a wait's label: its name
        # Recorded before settling, so cancellations its waiters trigger
        # come after it in history.
        self._cancels.append(work)
        work._settle(CANCELLED, Cancelled(reason))

    def new_guid(self) -> str:
        """Return a deterministic UUID string."""
        return self._seeds.guid()

    def new_random(self) -> _random.Random:
        """Return a deterministically seeded `random.Random`."""
        return self._seeds.random()

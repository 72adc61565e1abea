"""Patch decisions: what ``ctx.patched(patch_id)`` answers (DESIGN §9).

A patch lets one function serve instances started before and after a code
change: ``if ctx.patched("id"): new code else: old code``. The rules, per
execution (a continue-as-new starts a new one, which decides afresh):

* The first call for an id decides; every later call for it, from any
  task, gets the same answer and records nothing. An execution never
  switches branches half way.
* Asked in a live turn (code running past the point for the first time):
  True, and a `PatchApplied` marker is written with the turn's scheduling
  events, in the scope of the asking task.
* Asked while stored history is replayed: True if this execution's history
  holds a marker for the id (it was asked live before), False if not: the
  history was written before the patch existed, so the old code ran here.
  Replay reads every marker of the execution before running the code.
* Markers are never matched against the code: a marker the code no longer
  asks for is passed over. That is the deprecation rule: once no instance
  started before the patch is still running, the ``patched`` call and the
  old branch can be deleted and histories with markers keep replaying.
  Skipping one cannot hide a divergence: a marker schedules no work, and
  every piece of work is still matched in order.

A marker records a decision, not an action: a call made inside a task that
is being cancelled (a ``finally`` block) is answered like any other.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._history import Event, PatchApplied

__all__ = ["Patches"]


class Patches:
    """The patch decisions of one execution."""

    __slots__ = ("_decided", "_recorded")

    def __init__(self) -> None:
        # Ids with a marker in the stored history this execution replays.
        self._recorded: set[str] = set()
        # Every decision made so far, in this driver's life (live or replay).
        self._decided: dict[str, bool] = {}

    def read(self, events: Iterable[Event]) -> None:
        """Note the markers of stored *events*, before they are replayed."""
        for event in events:
            if type(event) is PatchApplied:
                self._recorded.add(event.patch_id)

    def decide(self, patch_id: str, replaying: bool) -> tuple[bool, bool]:
        """Answer ``patched(patch_id)``.

        Args:
            patch_id: The patch asked about.
            replaying: Whether stored history is being replayed.

        Returns:
            ``(answer, record)``: *record* is True when the caller must
            write a marker (the first, live, decision for the id).
        """
        answer = self._decided.get(patch_id)
        if answer is not None:
            return answer, False
        recorded = patch_id in self._recorded
        answer = not replaying or recorded
        self._decided[patch_id] = answer
        # A marker already in the history is not written twice (a rewind
        # re-runs, live, the step that first asked).
        return answer, not replaying and not recorded

    def decided(self, patch_id: str) -> bool | None:
        """The answer already given for *patch_id*, if any."""
        return self._decided.get(patch_id)

"""Patch markers (``ctx.patched``) in the scope tree of ``perdure history``."""

from __future__ import annotations

from perdure._core import _history as h
from perdure._tree import render_history

T = 1000.0


def started() -> h.Event:
    return h.OrchestrationStarted(event_id=1, timestamp=T, name="P", version="1")


def marker(i: int, patch_id: str, scope: str = "0") -> h.Event:
    return h.PatchApplied(event_id=i, timestamp=T, patch_id=patch_id, scope=scope)


def act(i: int, name: str, scope: str = "0") -> h.Event:
    return h.ActivityScheduled(event_id=i, timestamp=T, name=name, scope=scope)


def test_markers_show_in_the_scope_that_asked() -> None:
    events = [
        started(),
        marker(2, "tax-v2"),
        act(3, "TaxV2"),
        marker(4, "fast-path", "0.1"),
        act(5, "Fast", "0.1"),
        h.ActivityCompleted(event_id=6, timestamp=T, source_event_id=5, result=1),
    ]
    assert render_history(events) == (
        "orchestration P 1\n"
        "scope 0  … running\n"
        "├── #2 patched 'tax-v2'  ✓ new code\n"
        "├── #3 activity TaxV2()  … pending\n"
        "└── task 0.1  ✓ done\n"
        "    ├── #4 patched 'fast-path'  ✓ new code\n"
        "    └── #5 activity Fast()  ✓ → 1 (#6)\n"
        "… running\n"
    )
    assert "|-- #2 patched 'tax-v2'  OK new code" in render_history(events, ascii=True)


def test_a_marker_is_never_pending_and_does_not_hide_a_failure() -> None:
    error = {"type": "ValueError", "message": "boom", "category": "application"}
    events = [
        started(),
        act(2, "Step", "0.1"),
        h.ActivityFailed(event_id=3, timestamp=T, source_event_id=2, error=error),
        marker(4, "late", "0.1"),
    ]
    text = render_history(events)
    assert "task 0.1  ✗ failed" in text
    assert "#4 patched 'late'  ✓ new code" in text


def test_a_patch_id_with_control_characters_is_escaped() -> None:
    text = render_history([started(), marker(2, "bad\x1b[2J")])
    assert "\x1b" not in text
    assert "patched 'bad\\x1b[2J'" in text

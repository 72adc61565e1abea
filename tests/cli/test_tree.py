"""The scope-tree renderer over handcrafted histories (no storage)."""

from __future__ import annotations

from typing import Any

from perdure._core import _history as h
from perdure._tree import render_history

T = 1000.0


def started(input: Any = None) -> h.Event:
    return h.OrchestrationStarted(
        event_id=1, timestamp=T, name="Race", version="1.0.0", input=input
    )


def act(i: int, name: str, scope: str = "0", input: Any = None) -> h.Event:
    return h.ActivityScheduled(
        event_id=i, timestamp=T, name=name, input=input, scope=scope
    )


def done(i: int, src: int, result: Any = None) -> h.Event:
    return h.ActivityCompleted(
        event_id=i, timestamp=T, source_event_id=src, result=result
    )


def failed(i: int, src: int, message: str) -> h.Event:
    error = {"type": "ValueError", "message": message, "category": "application"}
    return h.ActivityFailed(event_id=i, timestamp=T, source_event_id=src, error=error)


def cancel(i: int, src: int, reason: str = "lost select") -> h.Event:
    return h.ActivityCancelRequested(
        event_id=i, timestamp=T, source_event_id=src, reason=reason
    )


def timer(i: int, delay: float, scope: str = "0") -> h.Event:
    return h.TimerCreated(event_id=i, timestamp=T, fire_at=T + delay, scope=scope)


def completed(i: int, output: Any) -> h.Event:
    return h.OrchestrationCompleted(event_id=i, timestamp=T, output=output)


def line_of(text: str, needle: str) -> str:
    matches = [line for line in text.splitlines() if needle in line]
    assert len(matches) == 1, (needle, text)
    return matches[0]


def test_design_4_5_example_marks_winner_and_cancelled_loser() -> None:
    events = [
        started({"id": "o1"}),
        act(2, "Fast", "0", "o1"),
        act(3, "Step1", "0.1", "o1"),
        done(4, 3, "s1"),
        act(5, "Step2", "0.1", "s1"),
        done(6, 2, "fast"),
        cancel(7, 5),
        completed(8, "0:fast"),
    ]
    assert render_history(events, title="instance o1") == (
        "instance o1\n"
        'orchestration Race 1.0.0  input {"id": "o1"}\n'
        "scope 0  ✓ done\n"
        '├── #2 activity Fast("o1")  ✓ winner → "fast" (#6)\n'
        "└── task 0.1  ✗ cancelled: lost select\n"
        '    ├── #3 activity Step1("o1")  ✓ → "s1" (#4)\n'
        '    └── #5 activity Step2("s1")  ✗ cancelled: lost select (#7)\n'
        '#8 ✓ completed → "0:fast"\n'
    )


def test_completion_after_the_cancellation_in_the_same_turn_is_ignored() -> None:
    # Fast and Step completed in the same turn: Fast's completion decided the
    # select and cancelled 0.1, so Step's completion (#5) was ignored.
    events = [started(), act(2, "Fast"), act(3, "Step", "0.1"), done(4, 2), done(5, 3)]
    events += [cancel(6, 3), completed(7, None)]
    text = render_history(events)
    assert "#2 activity Fast()  ✓ winner → null (#4)" in text
    assert line_of(text, "task 0.1").endswith("✗ cancelled: lost select")
    assert "Step()  ✗ cancelled: lost select (#6), late result ignored (#5)" in text


def test_ascii_mode_has_only_ascii() -> None:
    events = [
        started(),
        act(2, "Fast"),
        act(3, "Slow", "0.1"),
        done(4, 2),
        cancel(5, 3),
    ]
    text = render_history(events, ascii=True)
    assert text.isascii()
    assert "`-- task 0.1  X cancelled: lost select" in text
    assert "OK winner -> null (#4)" in text
    assert text.endswith("... running\n")


def test_block_winner_and_a_select_inside_the_block() -> None:
    # 0.1 races A against a timer inside itself, then runs B; it then wins
    # the outer race against Slow. The inner loser is only the timer.
    events = [
        started(),
        act(2, "Slow"),
        act(3, "A", "0.1"),
        timer(4, 5.0, "0.1"),
        done(5, 3, "a"),
        h.TimerCancelled(
            event_id=6, timestamp=T, source_event_id=4, reason="lost select"
        ),
        act(7, "B", "0.1"),
        done(8, 7, "b"),
        cancel(9, 2),
        completed(10, "b"),
    ]
    text = render_history(events)
    assert line_of(text, "task 0.1").endswith("task 0.1  ✓ winner")
    assert "activity Slow()  ✗ cancelled: lost select (#9)" in text
    assert 'activity A()  ✓ winner → "a" (#5)' in text
    assert "timer 5 s  ✗ cancelled: lost select (#6)" in text
    assert 'activity B()  ✓ → "b" (#8)' in text


def test_timeout_cancels_the_whole_nested_block() -> None:
    events = [
        started(),
        timer(2, 2.5),
        act(3, "Outer", "0.1"),
        act(4, "Inner", "0.1.1"),
        h.TimerFired(event_id=5, timestamp=T + 2.5, source_event_id=2),
        cancel(6, 3),
        cancel(7, 4),
        completed(8, "timeout"),
    ]
    text = render_history(events)
    assert "├── #2 timer 2.5 s  ✓ winner, fired (#5)" in text
    assert "└── task 0.1  ✗ cancelled: lost select" in text
    assert "    └── task 0.1.1  ✗ cancelled: lost select" in text
    assert "        └── #4 activity Inner()  ✗ cancelled" in text


def test_join_failure_marks_failed_block_and_cancelled_sibling() -> None:
    error = {"type": "ActivityFailed", "message": "card declined"}
    events = [
        started(),
        act(2, "Charge", "0.1"),
        act(3, "Ship", "0.2"),
        failed(4, 2, "card declined"),
        cancel(5, 3, "join failed"),
        h.OrchestrationFailed(event_id=6, timestamp=T, error=error),
    ]
    text = render_history(events)
    assert line_of(text, "scope 0").endswith("✗ failed")
    assert line_of(text, "task 0.1").endswith("task 0.1  ✗ failed")
    assert "✗ failed: ValueError: card declined (#4)" in text
    assert line_of(text, "task 0.2").endswith("✗ cancelled: join failed")
    assert "winner" not in text
    assert text.endswith("#6 ✗ failed: ActivityFailed: card declined\n")


def test_instance_cancel_waits_subs_notes_and_late_results() -> None:
    events = [
        started(),
        h.EventRaised(event_id=2, timestamp=T, name="early", data=1),
        h.EventWaitStarted(event_id=3, timestamp=T, name="go", scope="0.1"),
        h.EventWaitStarted(event_id=4, timestamp=T, name="early"),
        act(5, "Work", "0.1"),
        h.SubOrchestrationScheduled(
            event_id=6, timestamp=T, name="Child", instance_id="i::sub::6", scope="0.1"
        ),
        h.CustomStatusUpdated(event_id=7, timestamp=T, value="waiting"),
        h.OrchestrationChained(
            event_id=8, timestamp=T, name="Audit", instance_id="audit-1"
        ),
        h.EventRaised(event_id=9, timestamp=T, name="other", data="x"),
        h.OrchestrationCancelRequested(event_id=10, timestamp=T, reason="user"),
        h.EventWaitCancelled(
            event_id=11, timestamp=T, source_event_id=3, reason="user"
        ),
        cancel(12, 5, "user"),
        h.SubOrchestrationCancelRequested(
            event_id=13, timestamp=T, source_event_id=6, reason="user"
        ),
        h.OrchestrationCancelled(event_id=14, timestamp=T, reason="user"),
        done(15, 5, "late"),
    ]
    text = render_history(events)
    assert line_of(text, "scope 0").endswith("✗ cancelled: user")
    assert line_of(text, "task 0.1").endswith("✗ cancelled: user")
    assert "wait for event 'go'  ✗ cancelled: user (#11)" in text
    assert "Work()  ✗ cancelled: user (#12), late result ignored (#15)" in text
    assert "sub-orchestration Child() [i::sub::6]  ✗ cancelled: user (#13)" in text
    assert "#4 wait for event 'early'  ✓ → 1 (#2)" in text
    assert '#7 custom status = "waiting"' in text
    assert "#8 started detached Audit() [audit-1]" in text
    assert "#9 event 'other' raised  buffered \"x\" (not consumed)" in text
    assert "#10 instance cancel requested  user" in text
    assert text.endswith("#14 ✗ cancelled: user\n")


def test_running_history_shows_pending_work_and_long_values_are_cut() -> None:
    events = [started(), act(2, "Big", "0.1", "x" * 500)]
    text = render_history(events)
    assert line_of(text, "task 0.1").endswith("… running")
    assert "… pending" in line_of(text, "#2")
    assert len(line_of(text, "#2")) < 100
    assert text.endswith("… running\n")


def test_work_order_follows_event_ids_across_scopes() -> None:
    events = [started(), act(2, "A", "0.2"), act(3, "B", "0.1"), act(4, "C")]
    assert render_history(events).splitlines()[2:-1] == [
        "├── task 0.2  … running",
        "│   └── #2 activity A()  … pending",
        "├── task 0.1  … running",
        "│   └── #3 activity B()  … pending",
        "└── #4 activity C()  … pending",
    ]


def test_scope_without_own_work_appears_through_its_child() -> None:
    events = [started(), act(2, "Deep", "0.1.1"), done(3, 2, 7), completed(4, 7)]
    assert render_history(events).splitlines()[2:] == [
        "└── task 0.1  ✓ done",
        "    └── task 0.1.1  ✓ done",
        "        └── #2 activity Deep()  ✓ → 7 (#3)",
        "#4 ✓ completed → 7",
    ]

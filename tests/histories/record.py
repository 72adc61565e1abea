"""Record the golden histories: ``python tests/histories/record.py [--force] [names]``.

Every scenario below runs a program of ``_programs.py`` and writes one JSON
file per execution it produces (``tests/histories/<name>.json``). Without
``--force`` only missing files are written, so recorded goldens stay frozen;
with ``--force`` the named files (all, if none are named) are re-recorded.
Re-recording an existing golden defeats its purpose: do it only for a
deliberate, documented history format change (see README.md).

Most scenarios use the pure `perdure.testing.Simulator` (deterministic: the
test decides every completion and the virtual clock); those that need real
activities, retries, continue-as-new or several instances run a real
`perdure.Runtime` on a temporary SQLite file and read the histories back
with ``Client.get_history``. Turn boundaries are captured as the engine
commits them (Simulator turns; ``commit_turns`` calls of the provider).

Record from an unchanged engine: the recording is only a golden if it comes
from code that is known good, e.g. a frozen worktree::

    PYTHONPATH=/path/to/frozen-worktree/src python tests/histories/record.py

After writing, every new file is checked against the engine that recorded
it (replay and turn-by-turn re-drive, as ``test_golden.py`` does).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _programs as p

import perdure
from perdure._core import _history as h
from perdure.testing import Simulator, replay

if TYPE_CHECKING:
    pass

import _record_runtime  # noqa: F401  (registers the Runtime scenarios)
from _recording import HERE, SCENARIOS, Recording, Scenario, add

# ------------------------------------------------------------ Simulator


class _Sim(Simulator):
    """A Simulator that remembers the event-id span of every turn."""

    def __init__(
        self, orchestration: Callable[..., Any], input: Any, instance_id: str
    ) -> None:
        self.turns: list[list[int]] = []
        super().__init__(orchestration, input, instance_id=instance_id)

    def _run_turn(self, messages: Any) -> None:
        before = len(self.history)
        super()._run_turn(messages)
        after = len(self.history)
        if after > before:
            self.turns.append([before + 1, after])

    def id_of(self, name: str, kind: str = "activity") -> int:
        """Event id of the one pending work item of *kind* named *name*."""
        found = [w.event_id for w in self.pending(kind) if w.name == name]
        assert len(found) == 1, (name, self.pending())
        return found[0]

    def timers(self) -> list[int]:
        """Event ids of the pending timers."""
        return [w.event_id for w in self.pending("timer")]


def simulated(
    orchestration: Callable[..., Any],
    input: Any = None,
    *,
    name: str = "",
    rewound_with: Callable[..., Any] | None = None,
) -> Callable[[Callable[[_Sim], None]], Callable[[_Sim], None]]:
    """Register a Simulator scenario; the decorated function drives it.

    *rewound_with*: the scenario rewinds *orchestration*'s failure with
    this fix (`Simulator.rewind`), which is then the golden's program.
    """

    def register(drive: Callable[[_Sim], None]) -> Callable[[_Sim], None]:
        scenario_name = name or drive.__name__
        description = " ".join((drive.__doc__ or "").split())

        def record() -> list[Recording]:
            iid = f"golden-{scenario_name}"
            sim = _Sim(orchestration, input, iid)
            drive(sim)
            if rewound_with is not None:
                return [
                    Recording(
                        scenario_name,
                        description,
                        rewound_with,
                        iid,
                        sim.history,
                        sim.turns,
                        failed_with=orchestration,
                    )
                ]
            return [
                Recording(
                    scenario_name,
                    description,
                    orchestration,
                    iid,
                    sim.history,
                    sim.turns,
                )
            ]

        add(Scenario(scenario_name, description, (scenario_name,), record))
        return drive

    return register


@simulated(p.single_activity, "world")
def single_activity(sim: _Sim) -> None:
    """One activity scheduled and completed; its result is the output."""
    sim.complete(sim.id_of("Greet"), "Hello, world!")


@simulated(p.activity_chain, "x")
def activity_chain(sim: _Sim) -> None:
    """Three activities in sequence, each turn completing one."""
    for step in ("Step1", "Step2", "Step3"):
        pending = sim.pending("activity")[0]
        sim.now += 1
        sim.complete(sim.id_of(step), f"{pending.input}>{step}")


@simulated(p.activity_failure_caught, "order-7")
def activity_failure_caught(sim: _Sim) -> None:
    """An activity fails (ValueError); the code catches ActivityFailed and
    runs a compensating activity."""
    sim.fail(sim.id_of("Charge"), ValueError("card declined"))
    sim.complete(sim.id_of("Notify"), "customer notified")


@simulated(p.activity_failure_uncaught, "order-8")
def activity_failure_uncaught(sim: _Sim) -> None:
    """The second activity fails and nothing catches it: instance Failed."""
    sim.complete(sim.id_of("Reserve"), "reserved")
    sim.fail(sim.id_of("Charge"), RuntimeError("gateway down"))


@simulated(p.timer, 30.0)
def timer(sim: _Sim) -> None:
    """A 30 s durable timer fires; utc_now before/after in the output."""
    sim.advance(30)


@simulated(p.custom_status, 2)
def custom_status(sim: _Sim) -> None:
    """set_custom_status before, between and after two activities."""
    sim.complete(sim.id_of("Work"), 10)
    sim.complete(sim.id_of("Work"), 32)


@simulated(p.deterministic_values)
def deterministic_values(sim: _Sim) -> None:
    """new_guid, random and utc_now (seeded by instance id) in the output."""
    sim.now += 5
    work = sim.pending("activity")[0]
    sim.complete(work.event_id, work.input)


@simulated(p.event_buffered_before_wait)
def event_buffered_before_wait(sim: _Sim) -> None:
    """The event is raised before its wait exists; the later wait takes it
    from the buffer at once."""
    sim.raise_event("Approval", {"by": "ann"})
    sim.complete(sim.id_of("Prepare"), "ready")


@simulated(p.event_fifo)
def event_fifo(sim: _Sim) -> None:
    """Two same-name events in one turn, before any wait; two waits take
    them first-in first-out."""
    with sim.turn():
        sim.raise_event("Item", "first")
        sim.raise_event("Item", "second")
    sim.advance(10)


@simulated(p.event_wait_then_raise, "Approval")
def event_wait_then_raise(sim: _Sim) -> None:
    """The wait is open first; the event arrives a minute later."""
    sim.now += 60
    sim.raise_event("Approval", True)


@simulated(p.sub_orchestration_completed, 5)
def sub_orchestration_completed(sim: _Sim) -> None:
    """Two children (default id, explicit id) complete in reverse order."""
    first, second = (w.event_id for w in sim.pending("sub"))
    sim.complete(second, 12)
    sim.complete(first, 10)


@simulated(p.sub_orchestration_failed)
def sub_orchestration_failed(sim: _Sim) -> None:
    """A child fails; the parent catches SubOrchestrationFailed."""
    sim.fail(sim.id_of("Child", "sub"), ValueError("child exploded"))


@simulated(p.detached_start, 2)
def detached_start(sim: _Sim) -> None:
    """Two fire-and-forget starts (OrchestrationChained), then an activity."""
    sim.complete(sim.id_of("Done"), "ok")


@simulated(p.join_activities, ["a", "b", "c"])
def join_activities(sim: _Sim) -> None:
    """Fan-out of three activities joined; they complete c, a, b."""
    ids = {w.input: w.event_id for w in sim.pending("activity")}
    for item in ("c", "a", "b"):
        sim.complete(ids[item], item.upper())


@simulated(p.join_fail_fast, ["a", "b", "c"])
def join_fail_fast(sim: _Sim) -> None:
    """One join member fails: the unfinished activity and timer are
    cancelled, the completed one is not."""
    ids = {w.input: w.event_id for w in sim.pending("activity")}
    sim.complete(ids["a"], "A")
    sim.fail(ids["b"], ValueError("b broke"))


@simulated(p.join_return_exceptions, ["a", "b", "c"])
def join_return_exceptions(sim: _Sim) -> None:
    """join(return_exceptions=True): a failure lands in the list."""
    ids = {w.input: w.event_id for w in sim.pending("activity")}
    sim.fail(ids["a"], KeyError("no a"))
    sim.complete(ids["c"], "C")
    sim.complete(ids["b"], "B")


@simulated(p.select_activity_vs_timer, 60.0, name="select_activity_wins")
def select_activity_wins(sim: _Sim) -> None:
    """select2(activity, timer): the activity wins, the timer is cancelled."""
    sim.now += 1
    sim.complete(sim.id_of("Fetch"), "payload")


@simulated(p.select_activity_vs_timer, 5.0, name="select_timer_wins")
def select_timer_wins(sim: _Sim) -> None:
    """select2(activity, timer): the timer wins, the activity is cancelled."""
    sim.advance(5)


@simulated(p.select_same_turn)
def select_same_turn(sim: _Sim) -> None:
    """Three select members complete in one turn (C, A, B delivered): the
    first in history order wins."""
    with sim.turn():
        for name in ("C", "A", "B"):
            sim.complete(sim.id_of(name), name.lower())


@simulated(p.loser_activity)
def loser_activity(sim: _Sim) -> None:
    """Race loser is an activity: ActivityCancelRequested."""
    sim.complete(sim.id_of("Fast"), "fast")


@simulated(p.loser_timer)
def loser_timer(sim: _Sim) -> None:
    """Race loser is a timer: TimerCancelled."""
    sim.complete(sim.id_of("Fast"), "fast")


@simulated(p.loser_event_wait)
def loser_event_wait(sim: _Sim) -> None:
    """Race loser is an event wait: EventWaitCancelled; it consumed nothing,
    so the event raised afterwards goes to the next wait."""
    sim.complete(sim.id_of("Fast"), "fast")
    sim.raise_event("Signal", "later")


@simulated(p.loser_sub_orchestration)
def loser_sub_orchestration(sim: _Sim) -> None:
    """Race loser is a sub-orchestration: SubOrchestrationCancelRequested."""
    sim.advance(5)


@simulated(p.loser_nested_block)
def loser_nested_block(sim: _Sim) -> None:
    """Race loser is a block with a nested block: its child, timer, the
    nested block's wait are cancelled depth-first; finished work is not."""
    sim.complete(sim.id_of("Outer1"), "o1")
    sim.complete(sim.id_of("Inner1"), "i1")
    sim.advance(30)
    sim.complete(sim.id_of("Fast"), "fast")


@simulated(p.block_vs_timer, 60.0, name="block_vs_timer_block_wins")
def block_vs_timer_block_wins(sim: _Sim) -> None:
    """A two-step durable_async block beats a timer; the timer is cancelled."""
    sim.complete(sim.id_of("StepA"), "a")
    sim.complete(sim.id_of("StepB"), "b")


@simulated(p.block_vs_timer, 10.0, name="block_vs_timer_timer_wins")
def block_vs_timer_timer_wins(sim: _Sim) -> None:
    """A timer beats a durable_async block in its second step; the step is
    cancelled, the finished first step is not."""
    sim.complete(sim.id_of("StepA"), "a")
    sim.advance(10)


@simulated(p.explicit_cancel)
def explicit_cancel(sim: _Sim) -> None:
    """DurableFuture.cancel() on a block (with a reason) and on a timer."""
    sim.complete(sim.id_of("First"), "first")
    sim.complete(sim.id_of("After"), "after")


@simulated(p.late_result_ignored)
def late_result_ignored(sim: _Sim) -> None:
    """The timer wins; the cancelled activity's result arrives later and is
    recorded but ignored."""
    slow = sim.id_of("Slow")
    sim.advance(1)
    sim.now += 2
    sim.complete(slow, "too late")
    sim.complete(sim.id_of("After"), "after")


@simulated(p.cancel_instance_nested)
def cancel_instance_nested(sim: _Sim) -> None:
    """cancel_instance while nested blocks hold a wait, an activity, a child,
    a timer (one inner activity already finished): everything cancelled."""
    sim.complete(sim.id_of("OuterDone"), "outer")
    sim.complete(sim.id_of("InnerWork"), "inner")
    sim.now += 3
    sim.cancel("operator stop")


ORDER = {"id": "o-17", "customer": "c-42", "sku": "sku-9"}


@simulated(p.ex1_racing_activity_vs_pipeline, ORDER, name="ex1_quick_wins")
def ex1_quick_wins(sim: _Sim) -> None:
    """Example 1: QuickCheck beats the pipeline while CreditCheck runs;
    CreditCheck is cancelled, the finished ValidateCustomer is not."""
    sim.complete(sim.id_of("ValidateCustomer"), "c-42:valid")
    sim.complete(sim.id_of("QuickCheck"), "o-17:ok")


@simulated(p.ex1_racing_activity_vs_pipeline, ORDER, name="ex1_pipeline_wins")
def ex1_pipeline_wins(sim: _Sim) -> None:
    """Example 1: the three-step pipeline finishes first; QuickCheck is
    cancelled."""
    sim.complete(sim.id_of("ValidateCustomer"), "c-42:valid")
    sim.complete(sim.id_of("CreditCheck"), "c-42:valid:credit-ok")
    sim.complete(sim.id_of("ReserveInventory"), "sku-9:reserved")


@simulated(
    p.ex2_timeout_with_polling,
    {"poll_seconds": 10, "timeout": 300},
    name="ex2_provisioned",
)
def ex2_provisioned(sim: _Sim) -> None:
    """Example 2: polling loop with timers finishes before the timeout."""
    sim.complete(sim.id_of("CreateVM"), "vm-1")
    sim.complete(sim.id_of("CheckVMStatus"), "booting")
    sim.advance(10)
    sim.complete(sim.id_of("CheckVMStatus"), "ready")
    for _ in range(3):
        sim.complete(sim.id_of("InstallPackage"), None)


@simulated(
    p.ex2_timeout_with_polling,
    {"poll_seconds": 10, "timeout": 35},
    name="ex2_timed_out",
)
def ex2_timed_out(sim: _Sim) -> None:
    """Example 2: the VM never boots; the timeout cancels the polling block
    (a pending poll timer) and the VM is deleted."""
    sim.activities = {"CreateVM": "vm-2", "CheckVMStatus": "booting", "DeleteVM": None}
    sim.run()


@simulated(p.ex3_racing_two_pipelines, "input", name="ex3_path_a_wins")
def ex3_path_a_wins(sim: _Sim) -> None:
    """Example 3: path A's three steps beat path B, whose rate-limit timer
    is cancelled."""
    sim.complete(sim.id_of("A1"), "input>a1")
    sim.complete(sim.id_of("B1"), "input>b1")
    sim.complete(sim.id_of("A2"), "input>a1>a2")
    sim.complete(sim.id_of("A3"), "input>a1>a2>a3")


def _batch(timeout: float, *items: str) -> dict[str, Any]:
    parsed = [item.partition(":") for item in items]
    return {
        "items": [{"id": i, "priority": pr or "normal"} for i, _, pr in parsed],
        "timeout": timeout,
        "skip_low_priority": True,
        "max_failures": 1,
        "throttle": 0.02,
    }


def _standard(item: str) -> str:
    if item.startswith("bad"):
        raise ValueError(f"cannot process {item}")
    return f"{item}:done"


_BATCH_FAKES = {
    "PriorityProcess": lambda item: f"{item}:express",
    "StandardProcess": _standard,
}


@simulated(
    p.ex4_batch_with_early_exit,
    _batch(30, "i1:high", "i2", "i3:low", "bad-4", "i5"),
    name="ex4_completed",
)
def ex4_completed(sim: _Sim) -> None:
    """Example 4: skips, a tolerated failure, throttle timers; completes."""
    sim.activities = dict(_BATCH_FAKES)
    sim.run()


@simulated(
    p.ex4_batch_with_early_exit,
    _batch(30, "bad-1", "bad-2", "i3:high"),
    name="ex4_aborted",
)
def ex4_aborted(sim: _Sim) -> None:
    """Example 4: a second failure raises BatchAborted out of the block and
    the select; the deadline timer is cancelled; instance Failed."""
    sim.activities = dict(_BATCH_FAKES)
    sim.run()


@simulated(
    p.ex4_batch_with_early_exit,
    _batch(0.5, "i1", "slow-2", "i3"),
    name="ex4_timed_out",
)
def ex4_timed_out(sim: _Sim) -> None:
    """Example 4: the deadline fires while slow-2 runs; it is cancelled and
    TimeoutError fails the instance."""
    sim.complete(sim.id_of("StandardProcess"), "i1:done")
    sim.advance(0.02)
    sim.advance(0.5)


@simulated(
    p.ex5_nested_durable_async,
    {"name": "fast-job", "timeout": 60},
    name="ex5_inner_b_wins",
)
def ex5_inner_b_wins(sim: _Sim) -> None:
    """Example 5 (DESIGN §4.6): InnerB, scheduled by the outer block right
    after the inner block opened, wins the inner race; only InnerA1 (inner
    scope) is cancelled, Finalize runs, the overall timeout is cancelled."""
    sim.complete(sim.id_of("Setup"), "fast-job:ready")
    sim.complete(sim.id_of("InnerB"), "fast-job:ready>b")
    sim.complete(sim.id_of("Finalize"), "fast-job:ready>b>final")


@simulated(
    p.ex5_nested_durable_async,
    {"name": "slow-job", "timeout": 0.5},
    name="ex5_timed_out",
)
def ex5_timed_out(sim: _Sim) -> None:
    """Example 5: the overall timeout cascades into the outer block (InnerB)
    and the nested one (InnerA1)."""
    sim.complete(sim.id_of("Setup"), "slow-job:ready")
    sim.advance(0.5)


_PAID = {"customer": "c1", "sku": "s1", "payment": "visa", "timeout": 30}
_STALLED = {"customer": "c2", "sku": "s2", "payment": "slow-gateway", "timeout": 0.5}


@simulated(p.ex6_helper_functions, _PAID, name="ex6_paid")
def ex6_paid(sim: _Sim) -> None:
    """Example 6: helper coroutines' work is in the block's scope; paid."""
    sim.complete(sim.id_of("ValidateCustomer"), "c1:valid")
    sim.complete(sim.id_of("CheckInventory"), "s1:in-stock")
    sim.complete(sim.id_of("ChargeCard"), "visa:charged")


@simulated(p.ex6_helper_functions, _STALLED, name="ex6_stalled")
def ex6_stalled(sim: _Sim) -> None:
    """Example 6: the timeout cancels ChargeCard inside a helper; Failed."""
    sim.complete(sim.id_of("ValidateCustomer"), "c2:valid")
    sim.complete(sim.id_of("CheckInventory"), "s2:in-stock")
    sim.advance(0.5)


@simulated(p.ex7_direct_await, "x", name="ex7_direct_await")
def ex7_direct_await(sim: _Sim) -> None:
    """A durable_async block awaited directly is the same as inline code."""
    sim.complete(sim.id_of("Step1"), "x>1")
    sim.complete(sim.id_of("Step2"), "x>1>2")
    sim.complete(sim.id_of("Step3"), "x>1>2>3")


@simulated(p.patched_greeting, "ada")
def patched_greeting(sim: _Sim) -> None:
    """A new instance: patched("formal-greeting") is True and writes one
    marker; asked again after the branch, True again and nothing written."""
    sim.complete(sim.id_of("GreetFormally"), "Dear Ada")
    sim.complete(sim.id_of("Farewell"), "Goodbye, Ada")


@simulated(p.patched_in_blocks)
def patched_in_blocks(sim: _Sim) -> None:
    """Two blocks ask "fast-path" in different turns: one marker, in scope
    0.1; "audit-v2" is first asked in the turn the orchestration completes."""
    sim.advance(1)
    sim.complete(sim.id_of("Fast"), "a done")
    sim.advance(1)
    sim.complete(sim.id_of("Fast"), "b done")


@simulated(p.patched_in_loser)
def patched_in_loser(sim: _Sim) -> None:
    """The timer wins; the losing block's finally asks ctx.patched while it
    is cancelled: the marker (scope 0.1) precedes the wait's cancel event."""
    sim.advance(5)


@simulated(p.rewind_order_buggy, "o-9", rewound_with=p.rewind_order_fixed)
def rewind_patched_fix(sim: _Sim) -> None:
    """The approval has no total: a KeyError fails the order with its charge,
    reminder timer and courier child open (cancelled). A minute later it is
    rewound with the fix behind ctx.patched: the rewind turn's marker, the
    patch decided in the failed step, then the charge and courier answer,
    the join wins and the reminder is cancelled."""
    sim.complete(sim.id_of("Reserve"), "reserved")
    sim.now += 5
    sim.raise_event("Approval", {"by": "ann"})
    sim.now += 60
    sim.rewind(p.rewind_order_fixed)
    sim.complete(sim.id_of("Charge"), "charged")
    sim.now += 1
    sim.complete(sim.id_of("Courier", "sub"), "shipped")


@simulated(p.rewind_order_buggy, "o-10", rewound_with=p.rewind_order_fixed)
def rewind_twice(sim: _Sim) -> None:
    """Rewound with the bug still in, the order fails again in the rewind
    turn itself; a second rewind, with the fix, voids that failure too (two
    markers); the courier answers before the charge."""
    sim.complete(sim.id_of("Reserve"), "reserved")
    sim.raise_event("Approval", {"by": "bob", "note": "no total"})
    sim.now += 60
    sim.rewind()
    sim.now += 60
    sim.rewind(p.rewind_order_fixed)
    sim.complete(sim.id_of("Courier", "sub"), "shipped")
    sim.complete(sim.id_of("Charge"), "charged")


# ------------------------------------------ structured concurrency (§8)


@simulated(p.saga_under_deadline, "o-20")
def saga_timed_out(sim: _Sim) -> None:
    """Reserve and charge succeed, ship outruns the deadline: ship is
    cancelled, refund then release run shielded, then the timeout raises."""
    (timer,) = sim.timers()
    sim.complete(sim.id_of("Reserve"), "r1")
    sim.complete(sim.id_of("Charge"), "c1")
    sim.fire(timer)
    sim.complete(sim.id_of("Refund"), None)
    sim.complete(sim.id_of("Release"), None)


@simulated(p.saga_under_deadline, "o-21")
def saga_step_failed(sim: _Sim) -> None:
    """Charge fails: release runs shielded, the failure is raised, the
    deadline timer is cancelled."""
    sim.complete(sim.id_of("Reserve"), "r1")
    sim.fail(sim.id_of("Charge"), ValueError("card declined"))
    sim.complete(sim.id_of("Release"), None)


@simulated(p.saga_under_deadline, "o-22")
def saga_cancelled_mid_compensation(sim: _Sim) -> None:
    """The deadline passes, the instance is cancelled while refund runs:
    release still runs, then the instance ends Cancelled."""
    (timer,) = sim.timers()
    sim.complete(sim.id_of("Reserve"), "r1")
    sim.complete(sim.id_of("Charge"), "c1")
    sim.fire(timer)
    sim.cancel("operator")
    sim.complete(sim.id_of("Refund"), None)
    sim.complete(sim.id_of("Release"), None)


@simulated(p.shielded_audit, "o-23")
def shielded_audit_holds_end(sim: _Sim) -> None:
    """The code returned in the first turn; the execution completes when
    the shielded audit does, cancelling the unshielded leftover then."""
    sim.complete(sim.id_of("Audit"), "logged")


@simulated(p.refused_cleanup, "o-24")
def refused_then_shielded_cleanup(sim: _Sim) -> None:
    """Fast wins; the loser's unshielded call is refused, its shielded
    cleanup task runs and holds the end."""
    sim.complete(sim.id_of("Fast"), "f")
    sim.complete(sim.id_of("Cleanup"), "cleaned")


@simulated(p.structured_as_completed, 3)
def as_completed_order(sim: _Sim) -> None:
    """Job2, then a failing Job0, then Job1, collected in that order."""
    sim.complete(sim.id_of("Job2"), "two")
    sim.fail(sim.id_of("Job0"), ValueError("zero"))
    sim.complete(sim.id_of("Job1"), "one")


@simulated(p.structured_task_group, "o-25")
def task_group_two_failures(sim: _Sim) -> None:
    """The shared check fails: both tasks waiting on it fail at that point
    (an ExceptionGroup of two), the third task is cancelled."""
    sim.fail(sim.id_of("Check"), ValueError("no stock"))


# --------------------------------------------------------------- output


def all_files() -> list[str]:
    """Every golden file name (without .json) the scenarios produce."""
    return [f for s in SCENARIOS.values() for f in s.files]


def engine_commit() -> str:
    """Git commit of the perdure package being used (``+dirty`` if modified)."""
    src = Path(perdure.__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=src, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def to_document(rec: Recording, commit: str) -> dict[str, Any]:
    """The JSON document of one recording (expected outcome from replay)."""
    start = rec.events[0]
    assert isinstance(start, h.OrchestrationStarted)
    result = replay(
        rec.orchestration,
        rec.events,
        activities=rec.activities,
        instance_id=rec.instance_id,
        execution_id=rec.execution_id,
    )
    error = result.error
    rewound = (
        {} if rec.failed_with is None else {"failed_with": rec.failed_with.__name__}
    )
    return {
        "name": rec.name,
        "description": rec.description,
        "orchestration": rec.orchestration.__name__,
        **rewound,
        "activities": [a.__name__ for a in rec.activities],
        "input": start.input,
        "instance_id": rec.instance_id,
        "execution_id": rec.execution_id,
        "recorded_with": commit,
        "recorded_by": rec.recorded_by,
        "turns": rec.turns,
        "events": [h.event_to_json(e) for e in rec.events],
        "expected": {
            "status": result.status,
            "output": result.output,
            "error": None if error is None else error.to_json(),
        },
    }


def dump_document(doc: dict[str, Any]) -> str:
    """JSON text of a golden document (one turn span per line)."""
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    text = re.sub(r"\[\n\s+(\d+),\n\s+(\d+)\n\s+\]", r"[\1, \2]", text)
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    """Record missing (or, with --force, the named/all) golden histories."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="overwrite files")
    parser.add_argument("names", nargs="*", help="scenario or file names")
    args = parser.parse_args(argv)
    known = set(SCENARIOS) | set(all_files())
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    commit = engine_commit()
    print(f"recording with perdure from {Path(perdure.__file__).parent} ({commit})")
    written: list[Path] = []
    for scenario in SCENARIOS.values():
        wanted = not args.names or scenario.name in args.names
        targets = [f for f in scenario.files if wanted or f in args.names]
        if not targets:
            continue
        missing = [f for f in targets if not (HERE / f"{f}.json").exists()]
        if not args.force and not missing:
            continue
        recordings = {r.name: r for r in scenario.record()}
        assert set(recordings) == set(scenario.files), (scenario.name, recordings)
        for file in targets if args.force else missing:
            path = HERE / f"{file}.json"
            doc = to_document(recordings[file], commit)
            path.write_text(dump_document(doc))
            written.append(path)
            print(f"wrote {path.name}")
    # test_golden imports "record": let it find this module, not register
    # every scenario a second time under that name.
    sys.modules.setdefault("record", sys.modules[__name__])
    import test_golden  # the same checks the test suite runs

    for path in written:
        test_golden.check_file(path)
    print(f"{len(written)} file(s) written and checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())

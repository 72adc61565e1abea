"""Schedules replay without computing a cron slot (docs/schedules.md).

``perdure.schedule`` 2.0.0 takes its cron slots from its execution's input
and computes new ones only in a turn that ends the execution, so a replay
gives the same actions whatever the cron library computes now. Version
1.0.0 computed them in the loop; its histories still replay, on the 1.0.0
code kept for them, until their next continue-as-new moves them to 2.0.0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure import _schedule_slots, _schedules
from perdure._core._history import OrchestrationChained
from perdure.testing import ReplayResult, Simulator, replay

LEGACY = json.loads(
    (Path(__file__).parent / "legacy_schedule_histories.json").read_text()
)
T0 = datetime(2026, 1, 1, 0, 3, tzinfo=UTC).timestamp()
CRON = "*/5 * * * *"


def other_cron(expr: str, after: datetime) -> datetime:
    """A different slot function: what a changed cron library might compute."""
    return after + timedelta(seconds=7)


def new_spec(
    name: str = "c", cron: str | None = CRON, every: float | None = None
) -> Any:
    return _schedules.schedule_spec(
        name, "tick", cron=cron, every=every, input={"n": 1},
        overlap="skip", start_at=None, version=None,
    )  # fmt: skip


def simulate(orchestration: Any, spec: Any, now: float) -> Simulator:
    return Simulator(
        orchestration, spec, instance_id=f"schedule:{spec['schedule_id']}",
        start_time=now,
    )  # fmt: skip


def fire(sim: Simulator, running: bool = False) -> None:
    """Fire the pending timer; answer the overlap check, if one is made."""
    [timer] = sim.pending("timer")
    sim.fire(timer.event_id)
    for work in sim.pending("activity"):
        sim.complete(work.event_id, running)


def drive(sim: Simulator) -> None:
    """Fires, a skip, a late catch-up fire, pause and resume, a fire."""
    fire(sim)
    fire(sim)
    fire(sim, running=True)
    sim.now += 1000
    fire(sim)
    sim.raise_event(_schedules.CONTROL_EVENT, "pause")
    sim.now += 700
    sim.raise_event(_schedules.CONTROL_EVENT, "resume")
    fire(sim)


def runs(history: list[Any]) -> list[str]:
    return [e.instance_id for e in history if isinstance(e, OrchestrationChained)]


def same(result: ReplayResult, sim: Simulator) -> None:
    assert result.status == "Running"
    assert result.custom_status == sim.result.custom_status
    assert len(result.history) == len(sim.history)


# ------------------------------------------------------------ 2.0.0
def started(spec: Any) -> Simulator:
    """Execution 2 of a new cron schedule (execution 1 computes the slots)."""
    first = simulate(_schedules.schedule_orchestration, spec, T0)
    assert first.result.status == "ContinuedAsNew"
    assert [e.type for e in first.history][1:] == [
        "CustomStatusUpdated",
        "OrchestrationContinuedAsNew",
    ]
    spec2 = first.result.output
    assert spec2["next"] == datetime(2026, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    assert len(spec2["slots"]) == _schedules.SLOTS_PER_REFILL - 1
    return simulate(_schedules.schedule_orchestration, spec2, T0 + 0.5)


def test_a_schedule_replays_with_another_slot_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = started(new_spec())
    drive(sim)
    assert runs(sim.history) == [
        f"c:2026-01-01T00:{minute}:00+00:00" for minute in ("05", "10", "20", "45")
    ]
    monkeypatch.setattr(_schedule_slots, "cron_after", other_cron)
    # The swap is in effect: computing slots now gives other ones ...
    assert _schedule_slots.first_slot(new_spec(), T0) == T0 + 7
    # ... but the replay computes none: same actions, no divergence.
    result = replay(
        _schedules.schedule_orchestration, sim.history, instance_id=sim.instance_id
    )
    same(result, sim)


def test_the_1_0_0_code_diverged_with_another_slot_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Why 2.0.0 exists: the same swap makes a 1.0.0 history diverge.
    doc = LEGACY[0]
    assert doc["input"]["cron"] is not None
    monkeypatch.setattr(_schedule_slots, "cron_after", other_cron)
    with pytest.raises(perdure.NondeterminismError, match="next_fire"):
        replay(_schedules.schedule_orchestration_v1, doc["events"])


@pytest.mark.parametrize("doc", LEGACY, ids=[d["name"] for d in LEGACY])
def test_1_0_0_histories_still_replay(doc: dict[str, Any]) -> None:
    assert doc["events"][0]["version"] == _schedules.LEGACY_VERSION
    result = replay(
        _schedules.schedule_orchestration_v1,
        doc["events"],
        instance_id=doc["instance_id"],
    )
    assert result.status == "Running"
    assert result.custom_status == doc["custom_status"]
    assert len(result.history) == len(doc["events"])


def test_the_queue_refills_in_a_turn_that_continues_as_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_schedules, "SLOTS_PER_REFILL", 3)
    sim = started(new_spec())
    fire(sim)
    fire(sim)
    assert sim.result.status == "Running"
    fire(sim)  # the queue ran dry: this turn fires, refills and ends
    assert sim.result.status == "ContinuedAsNew"
    assert [e.type for e in sim.last_turn][-3:] == [
        "OrchestrationChained",
        "CustomStatusUpdated",
        "OrchestrationContinuedAsNew",
    ]
    spec = sim.result.output
    assert spec["next"] == datetime(2026, 1, 1, 0, 20, tzinfo=UTC).timestamp()
    assert len(spec["slots"]) == 2
    assert spec["fires"] == 3


def test_a_late_fire_skips_the_missed_slots_in_the_queue() -> None:
    sim = started(new_spec())
    sim.now += 3 * 3600  # downtime: 36 slots pass
    fire(sim)
    fire(sim)
    assert runs(sim.history) == [
        "c:2026-01-01T00:05:00+00:00",
        "c:2026-01-01T03:05:00+00:00",
    ]


def test_a_1_0_0_execution_continues_on_2_0_0_without_a_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_schedules, "FIRES_PER_EXECUTION", 2)
    spec = {k: v for k, v in new_spec().items() if k != "slots"}  # 1.0.0's spec
    old = simulate(_schedules.schedule_orchestration_v1, spec, T0)
    fire(old)
    fire(old)
    assert old.result.status == "ContinuedAsNew"
    moved = old.result.output
    assert "slots" not in moved
    sim = simulate(_schedules.schedule_orchestration, moved, old.now)
    fire(sim)  # no queue: this turn refills and continues as new
    assert sim.result.status == "ContinuedAsNew"
    assert runs(old.history + sim.history) == [
        f"c:2026-01-01T00:{minute}:00+00:00" for minute in ("05", "10", "15")
    ]
    assert sim.result.output["next"] == (
        datetime(2026, 1, 1, 0, 20, tzinfo=UTC).timestamp()
    )


def test_interval_slots_stay_in_the_loop() -> None:
    # Plain arithmetic, no library: an interval schedule never refills.
    sim = simulate(_schedules.schedule_orchestration, new_spec(cron=None, every=90), T0)
    drive(sim)
    assert sim.result.status == "Running"
    assert sim.result.custom_status["fires"] == 4
    assert "OrchestrationContinuedAsNew" not in [e.type for e in sim.history]

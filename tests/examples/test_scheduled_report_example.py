"""examples/scheduled_report.py: a schedule runs a report, is paused and deleted."""

from __future__ import annotations

from _examples_support import load

example = load("scheduled_report")


async def test_scheduled_report(storage_url: str) -> None:
    seen = await example.run(storage_url, runs=3)
    runs = seen["runs"]
    # Each run is one slot of the schedule: its id names the schedule and
    # the slot, and no slot ran twice.
    assert len(runs) >= 3 and len(set(runs)) == len(runs)
    assert all(run.startswith(f"{example.SCHEDULE}:") for run in runs)
    assert all(out == {"eu": 12, "us": 30} for out in seen["outputs"])
    info = seen["info"]
    assert info.paused and info.fires >= 3 and info.every == 1.0
    assert seen["left"] == []

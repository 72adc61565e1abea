"""`perdure check`'s verdict on one history, and its report (no storage).

Histories are made with the `Simulator`, which writes exactly what the
runtime would store.
"""

from __future__ import annotations

import json
from typing import Any

import check_app_v1
import check_app_v2
import pytest

import perdure
from perdure import OrchestrationContext
from perdure._cli_check import Verdict, _json_report, _text_report, verdict
from perdure._core._history import event_to_json
from perdure._registry import Registry
from perdure.providers._base import InstanceRecord
from perdure.testing import Simulator

V1 = Registry(check_app_v1.ORCHESTRATIONS, check_app_v1.ACTIVITIES)
V2 = Registry([check_app_v2.order, check_app_v2.order_2], check_app_v1.ACTIVITIES)


def _record(iid: str = "o1", name: str = "Order", version: str = "1.0.0") -> Any:
    return InstanceRecord(
        instance_id=iid, name=name, version=version, execution_id=1, status="Running"
    )


def _charged() -> list[str]:
    """Rows of an ``Order`` 1.0.0 that reserved and charged, waiting for "ship"."""
    sim = Simulator(
        check_app_v1.order, "o1", activities={"reserve": "r", "charge": "c"}
    )
    sim.raise_event("go")
    assert not sim.run().is_finished
    return [event_to_json(e) for e in sim.history]


def test_a_history_the_code_replays_is_ok() -> None:
    assert verdict(V1, _record(), _charged()) == Verdict(
        "o1", "Order", "1.0.0", "Running", "ok"
    )


def test_a_reordered_activity_breaks_with_the_nondeterminism_message() -> None:
    result = verdict(V2, _record(), _charged())
    assert result.outcome == "breaks"
    assert result.reason == (
        "NondeterminismError: history has ActivityScheduled(name='reserve', "
        "input='o1') (event 4), but the orchestration scheduled "
        "ActivityScheduled(name='charge', input='o1')"
    )


def test_code_that_raises_on_replay_breaks_and_says_what_it_raised() -> None:
    @perdure.orchestration(name="Order")
    async def raises(ctx: OrchestrationContext, order: str) -> None:
        await ctx.schedule_wait("go")
        settings: dict[str, str] = {}
        return print(settings["missing"])

    result = verdict(Registry([raises]), _record(), _charged())
    assert result.outcome == "breaks"
    assert "NondeterminismError: " in result.reason
    assert result.reason.endswith("; the code raised KeyError: 'missing'")


def test_an_unregistered_name_or_version_is_skipped() -> None:
    rows = _charged()
    assert verdict(Registry([check_app_v1.report]), _record(), rows).reason == (
        "this code does not register orchestration 'Order'"
    )
    only_0_9 = Registry([check_app_v1.order_0_9])
    result = verdict(only_0_9, _record(), rows)
    assert (result.outcome, result.reason) == (
        "skipped",
        "this code registers only version(s) 0.9.0",
    )


def test_the_history_decides_name_and_version_over_the_row() -> None:
    result = verdict(V1, _record(name="Stale", version="9"), _charged())
    assert (result.name, result.version, result.outcome) == ("Order", "1.0.0", "ok")


def test_an_instance_not_started_yet_starts_on_the_code() -> None:
    # No history yet: an unpinned version ("") is the latest registered.
    assert verdict(V2, _record(version=""), []).outcome == "ok"
    assert verdict(V2, _record(version="0.9.0"), []).outcome == "skipped"


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (lambda rows: rows[1:], "does not begin with OrchestrationStarted"),
        (lambda rows: [*rows[:2], *rows[3:]], "corrupted history: event id"),
        (lambda rows: [*rows[:-1], "{not json"], "StorageError"),
    ],
)
def test_a_corrupted_history_breaks(mutate: Any, text: str) -> None:
    result = verdict(V1, _record(), mutate(_charged()))
    assert result.outcome == "breaks"
    assert text in result.reason


def test_a_history_of_a_newer_engine_breaks() -> None:
    rows = _charged()
    start = json.loads(rows[0])
    start["engine"] = 99
    result = verdict(V1, _record(), [json.dumps(start), *rows[1:]])
    assert result.outcome == "breaks"
    assert "written by engine version 99" in result.reason


def test_the_text_report_is_one_line_per_instance_and_escaped() -> None:
    verdicts = [
        Verdict("evil\x1b[2J\nid", "Order", "1.0.0", "Running", "breaks", "x" * 900),
        Verdict("s1", "Order", "0.9.0", "Running", "skipped", "not here"),
        Verdict("s2", "Order", "0.9.0", "Suspended", "skipped", "not here"),
        Verdict("k", "Order", "1.0.0", "Running", "ok"),
    ]
    lines = _text_report(verdicts, "app").splitlines()
    assert lines[0].startswith("would break: evil\\x1b[2J id (Order 1.0.0, Running): ")
    assert lines[0].endswith("x" * 500 + "...")
    assert lines[1] == (
        "skipped 2 instance(s) of Order 0.9.0: not here; "
        "they wait for a runtime that has it"
    )
    assert "ctx.patched" in lines[2]
    assert lines[3].endswith("app: 1 ok, 1 would break, 2 skipped")
    report = json.loads(_json_report(verdicts))
    assert report["would_break"][0]["reason"] == "x" * 900
    assert [s["instance_id"] for s in report["skipped"]] == ["s1", "s2"]

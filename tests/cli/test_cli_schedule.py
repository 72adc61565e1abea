"""``perdure schedule create|list|show|pause|resume|delete`` (docs/schedules.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from _cli_run import run

import perdure

WAIT = 30.0


@perdure.orchestration(name="CliTick")
async def cli_tick(ctx: perdure.OrchestrationContext, input: Any) -> Any:
    return input


def run_until(url: str, done: Callable[[perdure.ScheduleInfo], bool]) -> None:
    """Run a runtime until schedule ``s1`` is *done* (timeout: AssertionError)."""

    async def go() -> None:
        async with perdure.Runtime(
            url, orchestrations=[cli_tick], poll_interval=0.05, lock_timeout=2.0
        ) as rt:
            deadline = time.monotonic() + WAIT
            while True:
                found = [
                    s for s in await rt.client.list_schedules() if s.schedule_id == "s1"
                ]
                if found and done(found[0]):
                    return
                assert time.monotonic() < deadline, found
                await asyncio.sleep(0.05)

    asyncio.run(go())


def show(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = run(capsys, "--db", url, "schedule", "show", "s1", "--json")
    assert (code, err) == (0, ""), err
    shown: dict[str, Any] = json.loads(out)
    return shown


def test_create_list_show_pause_resume_delete(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", storage_url)
    code, out, err = run(
        capsys, *db, "schedule", "create", "CliTick", "s1",
        "--every", "0.2", "--input", '{"n": 1}',
    )  # fmt: skip
    assert (code, out, err) == (0, "created schedule s1: CliTick every 0.2s\n", "")
    code, out, _ = run(capsys, *db, "schedule", "list")
    assert code == 0
    assert out.splitlines()[1].split() == ["s1", "-", "-", "new", "-", "0"]

    run_until(storage_url, lambda s: s.fires >= 2)
    code, out, _ = run(capsys, *db, "schedule", "list")
    header, row = out.splitlines()
    assert header.split() == [
        "SCHEDULE", "ORCHESTRATION", "TIMETABLE", "STATE", "NEXT", "FIRE", "FIRES",
    ]  # fmt: skip
    assert row.split()[:5] == ["s1", "CliTick", "every", "0.2s", "active"]
    shown = show(storage_url, capsys)
    assert shown["orchestration"] == "CliTick" and shown["every"] == 0.2
    assert shown["last_run"].startswith("s1:") and shown["next_fire"] is not None
    code, out, _ = run(capsys, *db, "schedule", "show", "s1")
    assert "timetable  every 0.2s\n" in out and "state      active\n" in out

    code, out, err = run(capsys, *db, "schedule", "pause", "s1")
    assert (code, out, err) == (0, "paused schedule s1\n", "")
    run_until(storage_url, lambda s: s.paused)
    shown = show(storage_url, capsys)
    assert (shown["paused"], shown["next_fire"]) == (True, None)
    code, out, _ = run(capsys, *db, "schedule", "resume", "s1")
    assert (code, out) == (
        0,
        "resumed schedule s1; slots that passed while it was paused are skipped\n",
    )
    fires = shown["fires"]
    run_until(storage_url, lambda s: not s.paused and s.fires > fires)

    code, out, _ = run(capsys, *db, "schedule", "list", "--json")
    [listed] = json.loads(out)
    assert listed["schedule_id"] == "s1" and listed["status"] == "Running"
    code, out, err = run(capsys, *db, "schedule", "delete", "s1")
    assert (code, out, err) == (
        0,
        "deleted schedule s1; the runs it started stay\n",
        "",
    )
    assert run(capsys, *db, "schedule", "list")[1] == "no schedules\n"
    # The runs stay: one instance per fire.
    code, out, _ = run(capsys, *db, "list", "--name", "CliTick", "--json")
    assert len(json.loads(out)["items"]) >= fires + 1


def test_cron_create_and_a_taken_id(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", sqlite_url)  # the file does not exist yet: create makes it
    argv = ("schedule", "create", "CliTick", "s1", "--cron", "0 2 * * *")
    code, out, err = run(
        capsys, *db, *argv, "--overlap", "allow", "--start-at", "2030-01-01T00:00Z"
    )
    assert (code, err) == (0, "")
    assert out == (
        "created schedule s1: CliTick cron 0 2 * * *, from 2030-01-01T00:00:00+00:00\n"
    )
    code, out, err = run(capsys, *db, *argv)
    assert (code, out, err) == (1, "", "perdure: error: schedule 's1' already exists\n")
    run_until(sqlite_url, lambda s: s.next_fire is not None)
    shown = show(sqlite_url, capsys)
    assert (shown["cron"], shown["overlap"]) == ("0 2 * * *", "allow")
    assert shown["next_fire"] == "2030-01-01T02:00:00+00:00"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cron", "61 * * * *"], "perdure: error: bad cron expression '61 * * * *'"),
        (["--cron", "not cron"], "perdure: error: bad cron expression 'not cron'"),
        (["--every", "0"], "must be a finite number of seconds above 0, not '0'"),
        (["--every", "nan"], "must be a finite number of seconds above 0"),
        ([], "one of the arguments --every --cron is required"),
        (["--every", "1", "--cron", "* * * * *"], "not allowed with argument"),
        (["--every", "1", "--overlap", "queue"], "invalid choice: 'queue'"),
        (["--every", "1", "--input", "{x"], "--input is not valid JSON"),
        (["--every", "1", "--start-at", "2030-01-01"], "has no timezone"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    db = ("--db", sqlite_url)
    run(capsys, *db, "start", "CliTick", "other")  # the file exists
    code, out, err = run(capsys, *db, "schedule", "create", "CliTick", "s1", *options)
    assert (code, out) == (2, "")
    assert message in err
    assert run(capsys, *db, "schedule", "list") == (0, "no schedules\n", "")


def test_a_bad_id_is_refused(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", sqlite_url)
    code, _, err = run(capsys, *db, "schedule", "create", "CliTick", "", "--every", "1")
    assert code == 2 and err.startswith("perdure: error: schedule_id")
    assert run(capsys, *db, "schedule", "list") == (0, "no schedules\n", "")


@pytest.mark.parametrize("action", ["show", "pause", "resume", "delete"])
def test_an_unknown_schedule_is_exit_1(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    db = ("--db", sqlite_url)
    run(capsys, *db, "start", "CliTick", "other")
    code, out, err = run(capsys, *db, "schedule", action, "nope")
    assert (code, out, err) == (1, "", "perdure: error: schedule 'nope' not found\n")


def test_a_finished_schedule_takes_no_pause(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", sqlite_url)
    assert (
        run(capsys, *db, "schedule", "create", "CliTick", "s1", "--every", "60")[0] == 0
    )
    assert run(capsys, *db, "cancel", "schedule:s1")[0] == 0

    async def cancelled() -> None:
        async with perdure.Runtime(sqlite_url, poll_interval=0.05) as rt:
            await rt.client.wait_for_orchestration("schedule:s1", timeout=WAIT)

    asyncio.run(cancelled())
    code, out, err = run(capsys, *db, "schedule", "pause", "s1")
    assert (code, out) == (1, "")
    assert err == (
        "schedule s1 is Cancelled: it takes no pause; delete it and create it again\n"
    )
    code, out, _ = run(capsys, *db, "schedule", "list")
    assert out.splitlines()[1].split()[4] == "Cancelled"

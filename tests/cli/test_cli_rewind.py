"""``perdure rewind``, and ``history`` and ``check`` on rewound instances."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from _cli_run import run

import perdure


@perdure.activity
def step_a(ctx: perdure.ActivityContext) -> str:
    return "a"


@perdure.orchestration(name="Lookup")
async def buggy(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
    await ctx.schedule_activity(step_a)
    return table["missing"]


@perdure.orchestration(name="Lookup")
async def fixed(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
    await ctx.schedule_activity(step_a)
    return table.get("missing", -1)


@perdure.orchestration(name="Lookup")
async def changed(ctx: perdure.OrchestrationContext, table: dict[str, int]) -> int:
    return len(table)  # no longer schedules step_a: cannot replay


APP = """\
import perdure


@perdure.activity
def step_a(ctx):
    return "a"


@perdure.orchestration(name="Lookup")
async def lookup(ctx, table):
    await ctx.schedule_activity(step_a)
    return {body}
"""


async def _fail(url: str) -> None:
    async with perdure.Runtime(url, orchestrations=[buggy], activities=[step_a]) as rt:
        await rt.client.start_orchestration("look", "Lookup", {"x": 1})
        await rt.client.start_orchestration("done", "Lookup", {"missing": 7})
        for iid in ("look", "done"):
            await rt.client.wait_for_orchestration(iid, timeout=20)


async def _finish(url: str) -> perdure.OrchestrationState:
    async with perdure.Runtime(url, orchestrations=[fixed], activities=[step_a]) as rt:
        return await rt.client.wait_for_orchestration("look", timeout=20)


async def _suspend(url: str) -> None:
    async with perdure.Runtime(url, orchestrations=[changed]) as rt:
        for _ in range(2000):
            state = await rt.client.get_status("look")
            if state is not None and state.status == "Suspended":
                return
            await asyncio.sleep(0.01)
    raise AssertionError("not suspended")


def test_rewind_from_the_command_line(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_fail(storage_url))
    code, _, err = run(capsys, "--db", storage_url, "rewind", "done")
    assert code == 1 and "Completed, not Failed" in err
    code, _, err = run(capsys, "--db", storage_url, "rewind", "nobody")
    assert code == 1 and "Traceback" not in err
    code, out, _ = run(capsys, "--db", storage_url, "rewind", "look")
    assert code == 0 and "look rewound to before its failure" in out
    code, _, err = run(capsys, "--db", storage_url, "rewind", "look")
    assert code == 1 and "Running, not Failed" in err
    state = asyncio.run(_finish(storage_url))
    assert (state.status, state.output) == ("Completed", -1)
    code, out, _ = run(capsys, "--db", storage_url, "history", "look")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "instance look  execution 1  Completed"
    assert "└── #4 failed: KeyError: 'missing'  ↺ rewound (#5)" in lines
    assert lines[-1] == "#6 ✓ completed → -1"
    code, out, _ = run(capsys, "--db", storage_url, "history", "look", "--json")
    assert code == 0
    rewound = [e for e in json.loads(out) if e["type"] == "ExecutionRewound"]
    assert rewound == [
        {
            "type": "ExecutionRewound",
            "event_id": 5,
            "timestamp": rewound[0]["timestamp"],
            "source_event_id": 4,
            "voided_from": 4,
        }
    ]


def test_check_replays_an_instance_waiting_for_its_rewind(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The rewind turn of "look" met code that cannot replay it: Suspended,
    # its history still ending Failed. check replays it as its rewind.
    asyncio.run(_fail(sqlite_url))
    assert run(capsys, "--db", sqlite_url, "rewind", "look")[0] == 0
    asyncio.run(_suspend(sqlite_url))
    for name, body in (
        ("rw_fixed", 'table.get("missing", -1)'),
        ("rw_buggy", 'table["missing"]'),
    ):
        (tmp_path / f"{name}.py").write_text(APP.format(body=body))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run(capsys, "check", "rw_fixed", "--db", sqlite_url)
    assert code == 0, out
    assert "1 ok, 0 would break" in out
    code, out, _ = run(capsys, "check", "rw_buggy", "--db", sqlite_url)
    assert code == 1
    assert (
        "would break: look (Lookup 1.0.0, Suspended): rewinding it fails again" in out
    )
    assert "KeyError" in out

"""``perdure check`` on real storage: SQLite always, PostgreSQL when configured.

One runtime with the v1 code (`check_app_v1`) leaves instances in every
state a deploy meets; `check_app_v2` is new code that reorders two
activities of ``Order`` 1.0.0 and no longer registers ``Order`` 0.9.0 nor
``Report``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import check_app_v1
import check_app_v2
import pytest
from _cli_run import run

import perdure
from perdure import _cli_check
from perdure.cli import main
from perdure.providers import open_provider
from perdure.providers._base import InstanceStatus

HERE = Path(__file__).parent

#: Live instances the scenario leaves, by what the v2 code does with them.
BREAK = {"mid-1", "mid-2"}  # reserved and charged: v2 charges first
OK = {"early-1", "early-2", "queued-1"}  # nothing scheduled yet, or not started
SKIPPED = {"old-1", "report-1"}  # Order 0.9.0 and Report: not in v2


async def _wait_until(
    client: perdure.Client, iid: str, done: Callable[[list[Any]], bool]
) -> None:
    for _ in range(1000):
        if done(await client.get_history(iid)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{iid} did not get there")


def _waits_for(name: str) -> Callable[[list[Any]], bool]:
    return lambda history: any(
        e.type == "EventWaitStarted" and e.name == name for e in history
    )


async def populate(url: str) -> None:
    """Leave instances of the v1 code in flight, and one finished."""
    async with perdure.Runtime(
        url,
        orchestrations=check_app_v1.ORCHESTRATIONS,
        activities=check_app_v1.ACTIVITIES,
        poll_interval=0.05,
    ) as rt:
        client = rt.client
        for iid in ("early-1", "early-2", "mid-1", "mid-2", "done-1"):
            await client.start_orchestration(iid, "Order", iid)
        await client.start_orchestration("old-1", "Order", "o", version="0.9.0")
        await client.start_orchestration("report-1", "Report")
        for iid in ("mid-1", "mid-2", "done-1"):
            await _wait_until(client, iid, _waits_for("go"))
            await client.raise_event(iid, "go")
        for iid in ("mid-1", "mid-2", "done-1"):
            await _wait_until(client, iid, _waits_for("ship"))
        await client.raise_event("done-1", "ship")
        assert (await client.wait_for_orchestration("done-1", 30)).status == (
            "Completed"
        )
        for iid in ("early-1", "early-2", "old-1", "report-1"):
            await _wait_until(client, iid, _waits_for("go"))
    # Started while no runtime runs: Running with no history yet.
    async with perdure.Client(url) as client:
        await client.start_orchestration("queued-1", "Order", "q")


def snapshot(url: str) -> list[Any]:
    """Every row perdure stores, in a stable order."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return list(conn.iterdump())
    import psycopg

    # conftest.with_schema appends the parameter: "<url>?schema=x" or "&schema=x".
    base, _, schema = url.rpartition("schema=")
    rows: list[Any] = []
    with psycopg.connect(base[:-1]) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
        for (table,) in sorted(tables):
            data = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            rows.append((table, sorted(map(repr, data))))
    return rows


def test_check_flags_exactly_the_instances_that_would_break(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(populate(storage_url))
    before = snapshot(storage_url)

    code, out, err = run(capsys, "check", "check_app_v2:HANDLERS", "--db", storage_url)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    breaks = [line for line in lines if line.startswith("would break: ")]
    assert sorted(line.split()[2] for line in breaks) == sorted(BREAK)
    assert all("(Order 1.0.0, Running): NondeterminismError: " in x for x in breaks)
    assert "history has ActivityScheduled(name='reserve', input='mid-1')" in out
    assert "but the orchestration scheduled ActivityScheduled(name='charge'" in out
    assert (
        "skipped 1 instance(s) of Order 0.9.0: this code registers only "
        "version(s) 1.0.0, 2.0.0; they wait for a runtime that has it"
    ) in lines
    assert (
        "skipped 1 instance(s) of Report 1.0.0: this code does not register "
        "orchestration 'Report'; they wait for a runtime that has it"
    ) in lines
    assert lines[-1] == (
        f"checked 7 instance(s) ({', '.join(_cli_check.LIVE_STATUSES)}) against "
        "check_app_v2:HANDLERS: 3 ok, 2 would break, 2 skipped"
    )

    code, out, _ = run(
        capsys, "--db", storage_url, "check", "check_app_v2:HANDLERS", "--json"
    )
    report = json.loads(out)
    assert code == 1
    assert (report["checked"], report["ok"]) == (7, len(OK))
    assert {v["instance_id"] for v in report["would_break"]} == BREAK
    assert {v["instance_id"] for v in report["skipped"]} == SKIPPED
    assert {v["status"] for v in report["would_break"]} == {"Running"}

    assert snapshot(storage_url) == before  # nothing written


def test_check_passes_code_that_replays_every_instance(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(populate(storage_url))
    before = snapshot(storage_url)
    code, out, err = run(capsys, "check", "check_app_v1", "--db", storage_url)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"checked 7 instance(s) ({', '.join(_cli_check.LIVE_STATUSES)}) against "
        "check_app_v1: 7 ok, 0 would break, 0 skipped"
    ]
    assert snapshot(storage_url) == before


def test_check_runs_in_read_only_transactions_on_postgres(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session that cannot write at all (as on a replica) is enough."""
    if not storage_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL session option")
    asyncio.run(populate(storage_url))
    read_only = f"{storage_url}&options=-c%20default_transaction_read_only%3Don"
    code, out, err = run(capsys, "check", "check_app_v2:HANDLERS", "--db", read_only)
    assert (code, err) == (1, "")
    assert out.splitlines()[-1].endswith(": 3 ok, 2 would break, 2 skipped")


async def test_check_reads_every_instance_past_the_first_page(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await populate(sqlite_url)
    monkeypatch.setattr(_cli_check, "PAGE", 2)
    calls: list[tuple[str, Any]] = []
    provider = open_provider(sqlite_url)

    class Spy:
        """The provider, recording which verbs the check uses."""

        def __getattr__(self, verb: str) -> Any:
            attr = getattr(provider, verb)
            if not callable(attr):
                return attr

            def call(*args: Any, **kwargs: Any) -> Any:
                calls.append((verb, kwargs.get("limit")))
                return attr(*args, **kwargs)

            return call

    code = await _cli_check.run_check("check_app_v1", Spy(), as_json=False)
    assert code == 0
    verbs = {verb for verb, _ in calls}
    assert verbs <= {"open", "close", "clock", "list_instances", "read_history"}
    limits = [limit for verb, limit in calls if verb == "list_instances"]
    # Running: 7 instances (2 is full, 8 is not); then the other statuses.
    assert limits == [2, 8] + [2] * (len(_cli_check.LIVE_STATUSES) - 1)
    assert sum(verb == "read_history" for verb, _ in calls) == 7


def test_check_of_suspended_instances(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Suspended instance is checked like a Running one (DESIGN §9)."""
    if "Suspended" not in _cli_check.LIVE_STATUSES:
        pytest.skip("InstanceStatus has no Suspended yet")

    async def suspend() -> None:
        await populate(sqlite_url)
        # The v2 code suspends the instances it cannot replay.
        async with perdure.Runtime(
            sqlite_url,
            orchestrations=[check_app_v2.order],
            activities=check_app_v1.ACTIVITIES,
            poll_interval=0.05,
        ) as rt:
            for iid in sorted(BREAK):
                await rt.client.raise_event(iid, "ship")
            for iid in sorted(BREAK):
                for _ in range(1000):
                    state = await rt.client.get_status(iid)
                    if state is not None and state.status == "Suspended":
                        break
                    await asyncio.sleep(0.01)

    asyncio.run(suspend())
    code, out, _ = run(capsys, "check", "check_app_v2:HANDLERS", "--db", sqlite_url)
    assert code == 1
    breaks = [x.split()[2] for x in out.splitlines() if x.startswith("would break")]
    assert sorted(breaks) == sorted(BREAK)
    assert "(Order 1.0.0, Suspended)" in out
    code, out, _ = run(capsys, "check", "check_app_v1", "--db", sqlite_url)
    assert code == 0, out


# ------------------------------------------------------------- exit status 2
def _assert_one_line_error(code: int, out: str, err: str, text: str) -> None:
    assert code == 2
    assert out == ""
    assert err.startswith("perdure: error: ") and err.count("\n") == 1, err
    assert text in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("target", "text"),
    [
        ("no_such_module_xyz", "cannot import module 'no_such_module_xyz'"),
        ("check_app_v1:NOPE", "has no attribute 'NOPE'"),
        ("check_app_v1:ACTIVITIES", "names no orchestrations"),
        ("broken_app", "cannot import 'broken_app': ZeroDivisionError"),
        ("twice_app", "registered twice"),
        (":x", "expected MODULE or MODULE:ATTR"),
    ],
)
def test_code_that_cannot_be_loaded_is_exit_2(
    target: str,
    text: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(populate(sqlite_url))
    (tmp_path / "broken_app.py").write_text("import perdure\nx = 1 / 0\n")
    (tmp_path / "twice_app.py").write_text(
        "import perdure\n"
        "@perdure.orchestration(name='Order')\nasync def a(ctx): pass\n"
        "@perdure.orchestration(name='Order')\nasync def b(ctx): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _assert_one_line_error(*run(capsys, "check", target, "--db", sqlite_url), text)


@pytest.mark.parametrize(
    ("db", "text"),
    [
        ("postgresql://nobody@127.0.0.1:1/none", "cannot open the storage"),
        ("missing.db", "no database at "),
        ("", "the storage URL is empty"),
        ("mysql://x/y", "cannot open the storage"),
    ],
)
def test_storage_that_cannot_be_read_is_exit_2(
    db: str,
    text: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _assert_one_line_error(*run(capsys, "check", "check_app_v1", "--db", db), text)
    assert not (tmp_path / "missing.db").exists()


def test_bad_arguments_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check"])
    assert exc.value.code == 2
    assert "MODULE[:ATTR]" in capsys.readouterr().err


def test_the_command_exits_with_the_status(sqlite_url: str) -> None:
    """As a CI step runs it: a process, its exit status, no traceback."""
    asyncio.run(populate(sqlite_url))
    for target, status in (("check_app_v1", 0), ("check_app_v2:HANDLERS", 1)):
        proc = subprocess.run(
            [sys.executable, "-m", "perdure", "check", target, "--db", sqlite_url],
            capture_output=True,
            text=True,
            cwd=HERE,
            timeout=60,
        )
        assert (proc.returncode, proc.stderr) == (status, ""), proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "perdure", "check", "nope_xyz", "--db", sqlite_url],
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_live_statuses_follow_the_provider_contract() -> None:
    from typing import get_args

    assert "Running" in _cli_check.LIVE_STATUSES
    assert set(_cli_check.LIVE_STATUSES) <= set(get_args(InstanceStatus))

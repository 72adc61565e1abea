"""CLI: ``delete``, ``purge``, ``start --start-at/--if-exists``, ``raise --start``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from _cli_run import run
from operate_app import history_types, settle, status_of

LATER = str(time.time() + 3600)  # every instance here finishes before this


def test_delete_takes_the_sub_orchestrations_and_needs_force_when_running(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", storage_url)
    assert run(capsys, *db, "start", "OpParent", "p1", "--input", '"x"')[0] == 0
    assert run(capsys, *db, "start", "OpParent", "p2", "--input", '"y"')[0] == 0
    settle(storage_url, {"p1-child": "Running", "p2-child": "Running"})

    code, out, err = run(capsys, *db, "delete", "p1")
    assert (code, out) == (1, "")
    assert err == (
        "p1 is Running; cancel it first (perdure cancel p1) or delete it "
        "anyway with --force\n"
    )
    assert status_of(storage_url, "p1") is not None
    code, out, err = run(capsys, *db, "delete", "p1", "--force")
    assert (code, err) == (0, "")
    assert out == "deleted p1 (Running) with its history and sub-orchestrations\n"
    assert status_of(storage_url, "p1") is None
    assert status_of(storage_url, "p1-child") is None

    # A finished parent needs no --force; its child goes too.
    assert run(capsys, *db, "raise", "p2-child", "go", "--data", "1")[0] == 0
    settle(storage_url, {"p2": "Completed", "p2-child": "Completed"})
    code, out, _ = run(capsys, *db, "delete", "p2")
    assert (code, out) == (
        0,
        "deleted p2 (Completed) with its history and sub-orchestrations\n",
    )
    assert status_of(storage_url, "p2-child") is None

    code, out, err = run(capsys, *db, "delete", "p2")
    assert (code, out, err) == (1, "", "perdure: error: instance 'p2' not found\n")
    code, _, err = run(capsys, *db, "delete")
    assert code == 2 and "INSTANCE" in err


def _finished_set(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """c1 Completed (with child c1-child), f1 Failed, x1 Cancelled, r1 Running."""
    db = ("--db", url)
    for argv in (
        ["start", "OpParent", "c1", "--input", "1"],
        ["start", "OpBoom", "f1"],
        ["start", "OpChild", "x1"],
        ["start", "OpChild", "r1"],
    ):
        assert run(capsys, *db, *argv)[0] == 0
    settle(url, {"c1-child": "Running", "x1": "Running", "f1": "Failed"})
    assert run(capsys, *db, "raise", "c1-child", "go")[0] == 0
    assert run(capsys, *db, "cancel", "x1")[0] == 0
    settle(url, {"c1": "Completed", "x1": "Cancelled"})


def test_purge_counts_top_level_instances_and_deletes_their_children(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _finished_set(storage_url, capsys)
    db = ("--db", storage_url)
    before = datetime.fromtimestamp(float(LATER), UTC).isoformat(timespec="seconds")

    code, out, err = run(capsys, *db, "purge", "--finished-before", LATER, "--dry-run")
    assert (code, err) == (0, "")
    assert out == (
        "dry run: would delete 3 instances (Completed, Failed, Cancelled) that "
        f"finished before {before}, with their sub-orchestrations; nothing deleted\n"
    )
    assert status_of(storage_url, "c1") is not None

    # Nothing finished before 2000.
    code, out, _ = run(capsys, *db, "purge", "--finished-before", "2000-01-01T00:00Z")
    assert (code, out.split(" that ")[0]) == (
        0,
        "deleted 0 instances (Completed, Failed, Cancelled)",
    )

    argv = ("purge", "--finished-before", LATER, "--status", "failed")
    code, out, _ = run(capsys, *db, *argv, "--dry-run")
    assert out.startswith("dry run: would delete 1 instance (Failed) that ")
    code, out, _ = run(capsys, *db, *argv)
    assert (code, out.split(" that ")[0]) == (0, "deleted 1 instance (Failed)")
    assert status_of(storage_url, "f1") is None
    assert status_of(storage_url, "c1") is not None

    # Several statuses: after one --status, or --status repeated.
    code, out, _ = run(
        capsys, *db, "purge", "--finished-before", LATER, "--dry-run",
        "--status", "Completed", "--status", "Cancelled", "Completed",
    )  # fmt: skip
    assert out.startswith("dry run: would delete 2 instances (Completed, Cancelled) ")
    code, out, _ = run(
        capsys, *db, "purge", "--finished-before", LATER,
        "--status", "Cancelled", "Completed",
    )  # fmt: skip
    assert out.startswith("deleted 2 instances (Cancelled, Completed) that ")
    for gone in ("c1", "c1-child", "x1"):
        assert status_of(storage_url, gone) is None, gone
    state = status_of(storage_url, "r1")
    assert state is not None and state.status == "Running"  # never purged
    code, out, _ = run(capsys, *db, "purge", "--finished-before", LATER, "--dry-run")
    assert out.startswith("dry run: would delete 0 instances ")


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--status", "Running"], 2, "not Running ones: cancel an instance first"),
        (["--status", "Completed", "suspended"], 2, "not Suspended ones"),
        (["--status", "Gone"], 2, "invalid choice: 'Gone'"),
        (["--status"], 2, "expected at least one argument"),
    ],
)
def test_purge_refuses_live_statuses_and_bad_times(
    storage_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    db = ("--db", storage_url)
    assert run(capsys, *db, "start", "OpChild", "r1")[0] == 0
    got, out, err = run(capsys, *db, "purge", "--finished-before", LATER, *argv)
    assert (got, out) == (code, "")
    assert message in err and "Traceback" not in err
    assert status_of(storage_url, "r1") is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: --finished-before"),
        (["--finished-before", "2025-06-01 12:00"], "has no timezone"),
        (["--finished-before", "last week"], "is not a time"),
        (["--finished-before=-inf"], "not a finite Unix time"),
    ],
)
def test_purge_needs_a_time_with_a_timezone(
    storage_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert run(capsys, "--db", storage_url, "start", "OpChild", "r1")[0] == 0
    code, out, err = run(capsys, "--db", storage_url, "purge", *argv)
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err


def test_start_at_delays_the_start(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", storage_url)
    soon = time.time() + 0.5
    far = datetime.fromtimestamp(time.time() + 3600, UTC).replace(microsecond=0)
    code, out, _ = run(
        capsys, *db, "start", "OpChild", "late", "--start-at", far.isoformat()
    )
    assert (code, out) == (
        0,
        f"scheduled late (OpChild) to start at {far.isoformat()}\n",
    )
    argv = ("start", "OpBoom", "soon", "--start-at", repr(soon))
    code, out, _ = run(capsys, *db, *argv)
    assert code == 0 and out.startswith("scheduled soon (OpBoom) to start at ")
    assert history_types(storage_url, "soon") == []
    settle(storage_url, {"soon": "Failed"})
    assert time.time() >= soon
    assert history_types(storage_url, "soon")[0] == "OrchestrationStarted"
    state = status_of(storage_url, "late")
    assert state is not None and state.status == "Running"
    assert history_types(storage_url, "late") == []  # not started yet

    code, out, err = run(
        capsys, *db, "start", "OpChild", "naive", "--start-at", "2030-01-01T08:00"
    )
    assert (code, out) == (2, "")
    assert "--start-at '2030-01-01T08:00' has no timezone" in err
    assert status_of(storage_url, "naive") is None


def test_start_if_exists(storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ("--db", storage_url)
    assert run(capsys, *db, "start", "OpBoom", "b1", "--if-exists", "ignore") == (
        0,
        "started b1 (OpBoom)\n",
        "",
    )
    assert run(capsys, *db, "start", "OpChild", "b1", "--if-exists", "ignore") == (
        0,
        "b1 already exists (Running); nothing started (--if-exists ignore)\n",
        "",
    )
    code, out, err = run(capsys, *db, "start", "OpChild", "b1", "--if-exists", "error")
    assert (code, out, err) == (1, "", "perdure: error: instance 'b1' already exists\n")
    assert run(capsys, *db, "start", "OpChild", "b1")[0] == 1
    state = status_of(storage_url, "b1")
    assert state is not None and state.name == "OpBoom"
    code, _, err = run(capsys, *db, "start", "OpChild", "b2", "--if-exists", "maybe")
    assert code == 2 and "invalid choice: 'maybe'" in err


def test_raise_with_start_creates_then_delivers(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # On SQLite the file does not exist yet: --start may create it.
    db = ("--db", storage_url)
    code, out, err = run(
        capsys, *db, "raise", "s1", "go", "--data", '"ok"',
        "--start", "OpChild", "--start-input", '{"n": 1}',
    )  # fmt: skip
    assert (code, out, err) == (
        0,
        "raised event 'go' on s1 (started it as OpChild)\n",
        "",
    )
    settle(storage_url, {"s1": "Completed"})
    state = status_of(storage_url, "s1")
    assert state is not None and state.output == [{"n": 1}, "ok"]

    # An instance that exists just gets the event.
    assert run(capsys, *db, "start", "OpChild", "s2")[0] == 0
    code, out, _ = run(capsys, *db, "raise", "s2", "go", "--start", "OpBoom")
    assert (code, out) == (0, "raised event 'go' on s2\n")
    settle(storage_url, {"s2": "Completed"})
    state = status_of(storage_url, "s2")
    assert state is not None and state.name == "OpChild"

    code, out, _ = run(
        capsys, *db, "raise", "s3", "go", "--start", "OpChild", "--start-version", "v9"
    )
    assert code == 0
    state = status_of(storage_url, "s3")
    assert state is not None and (state.name, state.version) == ("OpChild", "v9")

    for argv, message in [
        (["--start-input", "1"], "--start-input and --start-version need --start"),
        (["--start-version", "v1"], "--start-input and --start-version need --start"),
        (["--start", "OpChild", "--start-input", "{x"], "--start-input is not valid"),
    ]:
        code, out, err = run(capsys, *db, "raise", "s4", "go", *argv)
        assert (code, out) == (2, "")
        assert message in err
    assert status_of(storage_url, "s4") is None
    code, out, err = run(capsys, *db, "raise", "s4", "go")
    assert (code, err) == (1, "perdure: error: instance 's4' not found\n")


def test_raise_on_a_finished_instance_says_so_and_fails(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _finished_set(storage_url, capsys)
    db = ("--db", storage_url)
    for instance_id, status in [
        ("c1", "Completed"),
        ("f1", "Failed"),
        ("x1", "Cancelled"),
    ]:
        before = history_types(storage_url, instance_id)
        for extra in ([], ["--start", "OpChild"]):
            code, out, err = run(capsys, *db, "raise", instance_id, "go", *extra)
            assert (code, out) == (1, "")
            assert err == (
                f"{instance_id} is {status}: a finished instance takes no events; "
                "'go' was not raised\n"
            )
        assert history_types(storage_url, instance_id) == before
    # A live one still takes it.
    code, out, _ = run(capsys, *db, "raise", "r1", "go", "--data", "2")
    assert (code, out) == (0, "raised event 'go' on r1\n")
    settle(storage_url, {"r1": "Completed"})

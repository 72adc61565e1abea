"""CLI subcommands, run in-process through ``perdure.cli.main``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import cli_app
import pytest
from _cli_run import run

import perdure
from perdure.cli import main


def finish(url: str, *instance_ids: str) -> None:
    """Run a Runtime until every instance has ended."""

    async def go() -> None:
        async with perdure.Runtime(
            url,
            orchestrations=cli_app.ORCHESTRATIONS,
            activities=cli_app.ACTIVITIES,
            poll_interval=0.05,
        ) as rt:
            for instance_id in instance_ids:
                await rt.client.wait_for_orchestration(instance_id, timeout=30)

    asyncio.run(go())


def test_start_status_list_and_history(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(
        capsys, "--db", sqlite_url, "start", "Greet", "g1", "--input", '"ada"'
    ) == (
        0,
        "started g1 (Greet)\n",
        "",
    )
    code, out, _ = run(capsys, "status", "g1", "--db", sqlite_url)
    assert code == 0
    assert "status     Running" in out
    finish(sqlite_url, "g1")

    code, out, _ = run(capsys, "--db", sqlite_url, "status", "g1")
    assert code == 0
    assert "status     Completed" in out
    assert 'output     "hello ada!hello hello ada"' in out
    code, out, _ = run(capsys, "--db", sqlite_url, "status", "g1", "--json")
    data = json.loads(out)
    assert (data["status"], data["name"], data["error"]) == ("Completed", "Greet", None)

    code, out, _ = run(capsys, "--db", sqlite_url, "list")
    assert out.splitlines()[0].split() == ["INSTANCE", "NAME", "STATUS", "UPDATED"]
    assert out.splitlines()[1].split()[:3] == ["g1", "Greet", "Completed"]
    assert run(capsys, "--db", sqlite_url, "list", "--status", "Running")[1] == (
        "no instances\n"
    )
    code, out, _ = run(capsys, "--db", sqlite_url, "list", "--json", "--limit", "1")
    assert [s["instance_id"] for s in json.loads(out)["items"]] == ["g1"]

    code, out, _ = run(capsys, "--db", sqlite_url, "history", "g1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "instance g1  execution 1  Completed"
    assert "#2 timer 3600 s  ✗ cancelled: lost select" in out
    assert "└── task 0.1  ✓ winner" in out
    assert '#3 activity hello("ada")  ✓ → "hello ada" (#4)' in out
    assert lines[-1].endswith('✓ completed → "hello ada!hello hello ada"')

    code, out, _ = run(capsys, "--db", sqlite_url, "history", "g1", "--json")
    events = json.loads(out)
    assert [e["type"] for e in events][:3] == [
        "OrchestrationStarted",
        "TimerCreated",
        "ActivityScheduled",
    ]
    assert events[-1]["type"] == "OrchestrationCompleted"


def test_raise_cancel_and_wait(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", sqlite_url)
    assert run(capsys, *db, "start", "WaitFor", "w1")[0] == 0
    assert run(capsys, *db, "start", "Forever", "f1")[0] == 0
    assert run(capsys, *db, "start", "Fail", "x1", "--input", '"card declined"')[0] == 0
    code, out, _ = run(capsys, *db, "raise", "w1", "go", "--data", '{"k": [1, 2]}')
    assert (code, out) == (0, "raised event 'go' on w1\n")
    code, out, _ = run(capsys, *db, "cancel", "f1", "--reason", "changed my mind")
    assert (code, out) == (0, "cancellation of f1 requested\n")

    code, out, err = run(capsys, *db, "wait", "w1", "--timeout", "0.2")
    assert code == 1
    assert err == "perdure: error: instance 'w1' still running after 0.2 s\n"

    finish(sqlite_url, "w1", "f1", "x1")
    code, out, _ = run(capsys, *db, "wait", "w1", "--json")
    assert code == 0
    assert json.loads(out)["output"] == {"k": [1, 2]}
    code, out, _ = run(capsys, *db, "wait", "f1")
    assert code == 1
    assert "status     Cancelled" in out
    code, out, _ = run(capsys, *db, "wait", "x1")
    assert code == 1
    assert "card declined" in out
    assert (
        run(capsys, *db, "cancel", "f1")[1]
        == "f1 is already Cancelled; nothing to cancel\n"
    )

    code, out, _ = run(capsys, *db, "history", "f1")
    assert "instance cancel requested  changed my mind" in out
    assert "timer 3600 s  ✗ cancelled: changed my mind" in out
    code, out, _ = run(capsys, *db, "history", "x1")
    assert "✗ failed: ValueError: card declined" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["status", "nope"], 1, "instance 'nope' not found"),
        (["wait", "nope"], 1, "instance 'nope' not found"),
        (["history", "nope"], 1, "instance 'nope' not found"),
        (["raise", "nope", "go"], 1, "instance 'nope' not found"),
        (["cancel", "nope"], 1, "instance 'nope' not found"),
        (["start", "Greet", "g1"], 1, "instance 'g1' already exists"),
        (["history", "g1", "--execution", "7"], 1, "has no execution 7 (latest is 1)"),
        (["start", "Greet", "g2", "--input", "{oops"], 2, "--input is not valid JSON"),
        (["raise", "g1", "go", "--data", "not json"], 2, "--data is not valid JSON"),
    ],
)
def test_errors_are_one_line_on_stderr(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    assert run(capsys, "--db", sqlite_url, "start", "Greet", "g1")[0] == 0
    got, out, err = run(capsys, "--db", sqlite_url, *argv)
    assert (got, out) == (code, "")
    assert err.startswith("perdure: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_storage_from_env_plain_path_and_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "list")
    assert code == 1
    assert "no database at perdure.db" in err
    assert not (tmp_path / "perdure.db").exists()  # reading never creates one

    assert run(capsys, "start", "Greet", "default")[0] == 0  # sqlite:///perdure.db
    assert (tmp_path / "perdure.db").exists()
    monkeypatch.setenv("PERDURE_DB", str(tmp_path / "env.db"))
    assert run(capsys, "start", "Greet", "from-env")[0] == 0
    assert run(capsys, "--db", "perdure.db", "list")[1].count("default") == 1
    listed = run(capsys, "list", "--json")[1]
    assert [s["instance_id"] for s in json.loads(listed)["items"]] == ["from-env"]

    code, _, err = run(capsys, "--db", "ftp://host/x", "list")
    assert code == 1
    assert "unknown storage URL scheme 'ftp'" in err


def test_help_documents_worker_targets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "ORCHESTRATIONS and ACTIVITIES" in out
    assert "callable taking no arguments" in out
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2

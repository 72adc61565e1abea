"""``perdure list``: filters, pages, the "more instances match" line, JSON."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from datetime import UTC, datetime

import pytest
from _cli_run import run

import perdure
from perdure.cli import main

# Created in this order, 30 ms apart: newest first is the reverse.
SEEDED = [
    ("a1", "Alpha", None),
    ("a2", "Alpha", "2"),
    ("b1", "Beta", None),
    ("b2", "Beta", "2"),
    ("b3", "Beta", "2"),
]


def seed(url: str) -> dict[str, float]:
    """Create the SEEDED instances (all Running); their creation times."""

    async def go() -> dict[str, float]:
        async with perdure.Client(url) as client:
            for instance_id, name, version in SEEDED:
                await client.start_orchestration(instance_id, name, version=version)
                await asyncio.sleep(0.03)
            created = {}
            for instance_id, _, _ in SEEDED:
                state = await client.get_status(instance_id)
                assert state is not None
                created[instance_id] = state.created_at.timestamp()
            return created

    return asyncio.run(go())


def ids(out: str) -> list[str]:
    """Instance ids of a ``perdure list`` table."""
    lines = out.splitlines()
    assert lines[0].split() == ["INSTANCE", "NAME", "STATUS", "UPDATED"]
    return [line.split()[0] for line in lines[1:]]


def json_ids(out: str) -> list[str]:
    return [item["instance_id"] for item in json.loads(out)["items"]]


def next_command(err: str) -> list[str]:
    """The arguments of the command on a "more instances match" line."""
    prefix = "more instances match: perdure "
    assert err.startswith(prefix) and err.count("\n") == 1, err
    return shlex.split(err[len(prefix) :])


def test_filters_combine(storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed(storage_url)
    db = ("--db", storage_url)
    code, out, err = run(capsys, *db, "list")
    assert (code, err) == (0, "")
    assert ids(out) == ["b3", "b2", "b1", "a2", "a1"]
    assert ids(run(capsys, *db, "list", "--name", "Beta")[1]) == ["b3", "b2", "b1"]
    assert ids(run(capsys, *db, "list", "--version", "2")[1]) == ["b3", "b2", "a2"]
    out = run(capsys, *db, "list", "--name", "Alpha", "--version", "2")[1]
    assert ids(out) == ["a2"]
    out = run(capsys, *db, "list", "--status", "Running", "--name", "Beta")[1]
    assert ids(out) == ["b3", "b2", "b1"]
    # Any letter case names a status.
    assert ids(run(capsys, *db, "list", "--status", "running")[1])[0] == "b3"
    for status in ("Completed", "Suspended", "Failed", "Cancelled"):
        assert run(capsys, *db, "list", "--status", status) == (
            0,
            "no instances\n",
            "",
        )
    assert run(capsys, *db, "list", "--name", "Gamma")[1] == "no instances\n"


def test_created_after_and_before_take_iso_and_unix_seconds(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    created = seed(storage_url)
    db = ("--db", storage_url)
    # Between a2 and b1, and between b2 and b3.
    t1 = (created["a2"] + created["b1"]) / 2
    t2 = (created["b2"] + created["b3"]) / 2
    iso_utc = datetime.fromtimestamp(t1, UTC).isoformat()
    iso_z = iso_utc.replace("+00:00", "Z")
    iso_plus2 = datetime.fromtimestamp(t1, UTC).astimezone().isoformat()
    for text in (iso_utc, iso_z, iso_plus2, repr(t1)):
        out = run(capsys, *db, "list", "--created-after", text)[1]
        assert ids(out) == ["b3", "b2", "b1"], text
        out = run(capsys, *db, "list", "--created-before", text)[1]
        assert ids(out) == ["a2", "a1"], text
    code, out, _ = run(
        capsys, *db, "list", "--created-after", iso_z, "--created-before", repr(t2)
    )
    assert (code, ids(out)) == (0, ["b2", "b1"])
    out = run(capsys, *db, "list", "--created-after", str(int(time.time()) + 3600))[1]
    assert out == "no instances\n"


def test_pages_print_the_next_command_until_the_last(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(storage_url)
    argv = ["--db", storage_url, "list", "--limit", "2"]
    seen: list[str] = []
    for expected in (["b3", "b2"], ["b1", "a2"], ["a1"]):
        code, out, err = run(capsys, *argv)
        assert code == 0
        assert ids(out) == expected
        seen += expected
        if expected == ["a1"]:
            assert err == ""  # the last page: nothing more
            break
        argv = next_command(err)
        # Exactly this command, with the page's cursor.
        assert argv[:5] == ["--db", storage_url, "list", "--limit", "2"]
        assert argv[5] == "--cursor" and len(argv) == 7
    assert seen == ["b3", "b2", "b1", "a2", "a1"]


def test_the_next_command_keeps_every_filter(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    created = seed(storage_url)
    after = datetime.fromtimestamp(created["a1"] - 1, UTC).isoformat()
    argv = [
        "--db",
        storage_url,
        "list",
        "--status",
        "running",
        "--name",
        "Beta",
        "--version",
        "2",
        "--created-after",
        after,
        "--created-before",
        str(time.time() + 60),
        "--limit",
        "1",
        "--json",
    ]
    code, out, err = run(capsys, *argv)
    assert (code, json_ids(out)) == (0, ["b3"])
    cursor = json.loads(out)["next_cursor"]
    again = next_command(err)
    assert again == [*argv[:4], "Running", *argv[5:], "--cursor", cursor]
    code, out, err = run(capsys, *again)
    assert (code, json_ids(out), json.loads(out)["next_cursor"], err) == (
        0,
        ["b2"],
        None,
        "",
    )


def test_the_next_command_hides_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    from argparse import Namespace

    from perdure._cli_operate import _next_command

    args = Namespace(
        db="postgresql://app:s3cret@db/app",
        status=None,
        name="it's",
        version=None,
        created_after=None,
        created_before=None,
        limit=None,
        json=False,
    )
    assert _next_command(args, "c1:5.0:3") == (
        "perdure --db 'postgresql://app:***@db/app' list --name 'it'\"'\"'s' "
        "--cursor c1:5.0:3"
    )


def test_all_pages_through_everything(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(storage_url)
    db = ("--db", storage_url)
    for limit in ((), ("--limit", "2"), ("--limit", "1")):
        code, out, err = run(capsys, *db, "list", "--all", *limit)
        assert (code, ids(out), err) == (0, ["b3", "b2", "b1", "a2", "a1"], "")
        code, out, err = run(capsys, *db, "list", "--all", "--json", *limit)
        assert (code, err) == (0, "")
        assert json.loads(out) == {
            "items": json.loads(out)["items"],
            "next_cursor": None,
        }
        assert json_ids(out) == ["b3", "b2", "b1", "a2", "a1"]
    out = run(capsys, *db, "list", "--all", "--name", "Alpha", "--limit", "1")[1]
    assert ids(out) == ["a2", "a1"]
    code, out, err = run(capsys, *db, "list", "--all", "--cursor", "c1:1.0:1")
    assert (code, out) == (2, "")
    assert "not allowed with argument" in err


def test_json_is_an_object_with_items_and_next_cursor(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--db", storage_url)
    assert run(capsys, *db, "start", "Alpha", "only")[0] == 0
    code, out, err = run(capsys, *db, "list", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert list(data) == ["items", "next_cursor"]
    assert data["next_cursor"] is None
    [item] = data["items"]
    assert item["instance_id"] == "only"
    assert (item["name"], item["status"], item["version"]) == ("Alpha", "Running", "")
    assert set(item) == {
        "instance_id",
        "name",
        "version",
        "execution_id",
        "status",
        "output",
        "error",
        "custom_status",
        "created_at",
        "updated_at",
    }
    code, out, err = run(capsys, *db, "list", "--json", "--status", "Failed")
    assert (code, json.loads(out), err) == (0, {"items": [], "next_cursor": None}, "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--created-after", "2025-01-31T09:00"], "has no timezone"),
        (["--created-before", "2025-01-31"], "2025-01-31T00:00Z"),
        (["--created-after", "yesterday"], "is not a time"),
        (["--created-before", "nan"], "not a finite Unix time"),
        (["--created-after", "inf"], "not a finite Unix time"),
        (["--cursor", "page-2"], "is not a cursor that perdure list printed"),
        (["--status", "Done"], "invalid choice: 'Done'"),
        (["--limit", "0"], "must be from 1 to 10000"),
        (["--limit", "10001"], "must be from 1 to 10000"),
        (["--limit", "many"], "not a whole number"),
    ],
)
def test_bad_arguments_exit_2_in_plain_words(
    storage_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert run(capsys, "--db", storage_url, "start", "Alpha", "x")[0] == 0
    code, out, err = run(capsys, "--db", storage_url, "list", *argv)
    assert (code, out) == (2, "")
    assert message in err
    assert "Traceback" not in err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    commands = (
        "demo worker check start status wait raise cancel resume rewind list "
        "delete purge history doctor"
    )
    for command in commands.split():
        assert f"\n    {command} " in out, command
    for command, option in [
        ("list", "--created-before"),
        ("purge", "--dry-run"),
        ("delete", "--force"),
        ("start", "--if-exists"),
        ("raise", "--start-input"),
    ]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert option in capsys.readouterr().out

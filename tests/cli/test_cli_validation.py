"""The CLI refuses arguments that would hang, mislead or crash (probe F15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli_run import run

from perdure.providers._pg_schema import split_url


def test_an_empty_db_is_refused_not_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "--db", "", "list")
    assert code == 1
    assert "storage URL is empty" in err
    monkeypatch.setenv("PERDURE_DB", "")
    code, _, err = run(capsys, "list")
    assert code == 1
    assert "storage URL is empty" in err
    assert not (tmp_path / "perdure.db").exists()


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "soon"])
def test_wait_refuses_a_timeout_that_never_ends(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    code, _, err = run(capsys, "--db", sqlite_url, "wait", "x", "--timeout", timeout)
    assert code == 2
    assert "seconds" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("execution", ["1180591620717411303424", "0", "-3", "two"])
def test_history_refuses_impossible_execution_ids_in_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], execution: str
) -> None:
    code, _, err = run(
        capsys, "--db", sqlite_url, "history", "seed", "--execution", execution
    )
    assert code == 2
    assert "execution" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h/db?schema=", "schema name is empty"),
        ("postgresql://u@h/db?schema=app%25s", "no '%'"),
    ],
)
def test_postgres_schema_names_that_would_misbehave_are_refused(
    url: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split_url(url, None)

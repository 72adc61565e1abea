"""``perdure ui``: its options, and a clear error without the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from perdure import _cli_ui
from perdure.cli import build_parser, main


def test_defaults_bind_loopback() -> None:
    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port, args.read_only) == ("127.0.0.1", 8089, False)
    assert _cli_ui.loopback("127.0.0.1") and _cli_ui.loopback("::1")
    assert _cli_ui.loopback("localhost") and _cli_ui.loopback("[::1]")
    assert not _cli_ui.loopback("0.0.0.0") and not _cli_ui.loopback("example.com")


def test_missing_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["ui", "--db", "sqlite:///:memory:"]) == 1
    assert 'pip install "perdure[ui]"' in capsys.readouterr().err


def test_bad_port_and_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ui", "--db", str(tmp_path / "x.db"), "--port", "0"]) == 1
    assert "--port must be 1 to 65535" in capsys.readouterr().err
    assert main(["ui", "--db", str(tmp_path / "x.db")]) == 1
    assert "no database at" in capsys.readouterr().err


def test_serves_until_interrupted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import uvicorn

    seen: dict[str, object] = {}

    def fake_run(app: object, **options: object) -> None:
        seen.update(options, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    db = tmp_path / "x.db"
    db.touch()
    argv = ["ui", "--db", str(db), "--port", "9999", "--read-only"]
    assert main(argv) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9999)
    assert "http://127.0.0.1:9999/ (read-only)" in capsys.readouterr().out

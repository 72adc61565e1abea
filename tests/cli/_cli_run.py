"""Run the ``perdure`` CLI in-process and capture what it printed."""

from __future__ import annotations

import pytest

from perdure.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``perdure *argv``: its exit status (argparse's too), stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err

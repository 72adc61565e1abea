"""A storage outage is one log line per loop, not a traceback per failed call."""

from __future__ import annotations

import logging

import pytest

from perdure import StorageError
from perdure._outage import QUIET_FOR, log_failure


class Unreachable(StorageError):
    """What a provider raises while the database is unreachable."""

    transient = True


def test_a_transient_failure_is_one_line_per_loop(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logging.getLogger("perdure.test_outage")
    clock = [1000.0]
    monkeypatch.setattr("perdure._outage.time.monotonic", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="perdure.test_outage"):
        for _ in range(50):  # a loop retrying through an outage
            log_failure(
                log, Unreachable("server closed the connection"), "fetch failed"
            )
            log_failure(log, Unreachable("server closed the connection"), "ack failed")
            clock[0] += 1.0
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            (
                "WARNING",
                "fetch failed (storage unavailable: server closed the connection; "
                f"retrying quietly for {QUIET_FOR:g} s)",
            ),
            (
                "WARNING",
                "ack failed (storage unavailable: server closed the connection; "
                f"retrying quietly for {QUIET_FOR:g} s)",
            ),
        ]
        assert all(r.exc_info is None for r in caplog.records)  # no traceback
        clock[0] += QUIET_FOR  # still down a minute later: one more line
        log_failure(log, Unreachable("still down"), "fetch failed")
        assert len(caplog.records) == 3


def test_any_other_failure_keeps_its_traceback_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("perdure.test_outage")
    with caplog.at_level(logging.INFO, logger="perdure.test_outage"):
        for n in range(3):
            try:
                raise KeyError(n)
            except KeyError as exc:
                log_failure(log, exc, "turn of %s failed", "i1")
    assert [r.levelname for r in caplog.records] == ["ERROR"] * 3
    assert all(r.exc_info is not None for r in caplog.records)
    assert caplog.records[0].getMessage() == "turn of i1 failed"

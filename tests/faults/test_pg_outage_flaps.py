"""A failover that flaps (down, up for a moment, down) is one logged outage."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("psycopg")

from perdure.providers._pg_conn import FLAP_WINDOW, Outage


def test_a_failure_soon_after_recovery_is_the_same_outage(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr("perdure.providers._pg_conn.time.monotonic", lambda: clock[0])
    outage = Outage("db:5432")
    with caplog.at_level(logging.WARNING, logger="perdure.providers.postgres"):
        outage.failed(OSError("server closed the connection"))
        clock[0] += 2
        outage.succeeded()  # a call got through to the old primary
        clock[0] += 1
        outage.failed(OSError("server closed the connection"))  # flapping
        clock[0] += 3
        outage.succeeded()
        clock[0] += FLAP_WINDOW + 1
        outage.failed(OSError("connection refused"))  # a new outage
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(unreachable) == 2
    assert len(back) == 2

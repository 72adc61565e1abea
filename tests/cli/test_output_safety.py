"""What the CLI prints cannot hurt the operator (reliability probe F12, F14).

Ids and names are printed with control characters escaped, so a hostile
instance id cannot send escape sequences to a terminal, and the worker's
start-up line never shows the storage password.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import cli_app
import pytest

import perdure
from perdure import _cli_worker
from perdure._tree import printable
from perdure.cli import main

HOSTILE = "ord-\x1b[2J\x1b[32mGREEN\x1b[0m"
NAME = "Gr\x1b]0;pwned\x07eet"


def test_printable_escapes_controls_and_bidi_overrides() -> None:
    assert printable(HOSTILE) == "ord-\\x1b[2J\\x1b[32mGREEN\\x1b[0m"
    assert printable("a\nb\tc\x9b\u202ed é✓") == "a\\x0ab\\x09c\\x9b\\u202ed é✓"


def test_ids_and_names_are_escaped_in_list_status_and_history(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def setup() -> None:
        async with perdure.Runtime(
            sqlite_url,
            orchestrations=cli_app.ORCHESTRATIONS,
            activities=cli_app.ACTIVITIES,
            poll_interval=0.05,
        ) as rt:
            await rt.client.start_orchestration(HOSTILE, "Greet", "ada")
            await rt.client.wait_for_orchestration(HOSTILE, timeout=30)
        async with perdure.Client(sqlite_url) as client:
            await client.start_orchestration("named", NAME, None)

    asyncio.run(setup())
    outputs = []
    for argv in (
        ["list"],
        ["status", HOSTILE],
        ["status", "named"],
        ["history", HOSTILE],
        ["status", HOSTILE + "-missing"],
    ):
        main(["--db", sqlite_url, *argv])
        out, err = capsys.readouterr()
        outputs.append(out + err)
        assert "\x1b" not in out + err and "\x07" not in out + err, argv
    assert "ord-\\x1b[2J" in outputs[0] and "Gr\\x1b]0;pwned\\x07eet" in outputs[0]
    assert all("\\x1b" in text for text in outputs)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_worker_banner_hides_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class FakeRuntime:
        def __init__(self, url: str, **kw: Any) -> None:
            self.url = url

        async def start(self) -> None:
            # The banner comes right after start(); then stop like Ctrl+C.
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

        async def shutdown(self, timeout: float) -> None:
            pass

        failed = None

        async def wait(self) -> None:  # until the runtime fails: never here
            await asyncio.Event().wait()

    monkeypatch.setattr(_cli_worker, "Runtime", FakeRuntime)
    url = "postgresql://postgres:s3cretPW@127.0.0.1:5432/test?schema=probe_sec"
    asyncio.run(_cli_worker.run_worker(url, [], [], shutdown_timeout=1.0, options={}))
    out, err = capsys.readouterr()
    assert "s3cretPW" not in out + err
    assert "postgresql://postgres:***@127.0.0.1:5432/test?schema=probe_sec" in out

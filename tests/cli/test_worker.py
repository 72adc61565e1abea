"""``perdure worker``: handler loading and a real worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import perdure
from perdure._cli_worker import CliError, load_handlers
from perdure._registry import name_of

HERE = Path(__file__).parent

MODULE = """
import perdure

@perdure.activity
def act_a(ctx, x):
    return x

@perdure.activity(name="B")
async def act_b(ctx, x):
    return x

@perdure.orchestration(name="Flow")
async def flow(ctx, x):
    return x

def helper():
    raise RuntimeError("plain functions are never called by a module scan")

def returns_none():
    return None

HANDLERS = [flow, [act_a, (act_b,)]]
MAPPING = {"orchestrations": [flow], "activities": [act_a]}
def factory():
    return [flow], [act_a, act_b]
NOT_HANDLERS = "flow"
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh handler module in a temporary current directory."""
    name = f"handlers_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    yield name
    sys.modules.pop(name, None)


def names(handlers: tuple[list[Any], list[Any]]) -> tuple[list[str], list[str]]:
    orchestrations, activities = handlers
    return [name_of(h) for h in orchestrations], [name_of(h) for h in activities]


def test_module_scan_finds_decorated_functions_from_the_cwd(module: str) -> None:
    assert names(load_handlers(module)) == (["Flow"], ["act_a", "B"])


@pytest.mark.parametrize(
    ("attr", "expected"),
    [
        ("HANDLERS", (["Flow"], ["act_a", "B"])),
        ("MAPPING", (["Flow"], ["act_a"])),
        ("factory", (["Flow"], ["act_a", "B"])),
        ("act_b", ([], ["B"])),
    ],
)
def test_attribute_forms(
    module: str, attr: str, expected: tuple[list[str], list[str]]
) -> None:
    assert names(load_handlers(f"{module}:{attr}")) == expected


def test_module_lists_take_precedence() -> None:
    import cli_app

    orchestrations, activities = load_handlers("cli_app")
    assert orchestrations == cli_app.ORCHESTRATIONS
    assert activities == cli_app.ACTIVITIES


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{m}:missing", "has no attribute 'missing'"),
        ("{m}:NOT_HANDLERS", "expected handlers, got the string 'flow'"),
        ("{m}:returns_none", "None is not an orchestration, an activity"),
        ("no_such_module_xyz", "cannot import module 'no_such_module_xyz'"),
        ("json", "'json' names no orchestrations or activities"),
        (":x", "expected MODULE or MODULE:ATTR"),
    ],
)
def test_bad_targets(module: str, spec: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        load_handlers(spec.format(m=module))


def test_worker_process_runs_instances_and_stops_on_sigterm(sqlite_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    argv = [sys.executable, "-m", "perdure", "worker", "cli_app", "--db", sqlite_url]
    argv += ["--lock-timeout", "2", "--poll-interval", "0.05"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "perdure worker (pid" in banner
        assert "4 orchestration(s) and 2 activity(ies)" in banner

        async def drive() -> perdure.OrchestrationState:
            async with perdure.Client(sqlite_url) as client:
                await client.start_orchestration("g1", "Greet", "bo")
                return await client.wait_for_orchestration("g1", timeout=30)

        state = asyncio.run(drive())
        assert (state.status, state.output) == ("Completed", "hello bo!hello hello bo")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "perdure worker: stopping..." in err


def test_worker_tags_reach_the_runtime(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `perdure worker --tag gpu --tag fast` runs tagged activities too.
    from perdure import _cli_worker, cli

    seen: dict[str, object] = {}

    async def fake_run_worker(url: str, *_: object, **kw: object) -> None:
        seen.update(kw)

    monkeypatch.setattr(cli, "run_worker", fake_run_worker)
    assert _cli_worker.run_worker is not fake_run_worker
    code = cli.main(
        ["worker", "--db", sqlite_url, "perdure._demo", "--tag", "gpu", "--tag", "fast"]
    )
    assert code == 0
    options = seen["options"]
    assert isinstance(options, dict)
    assert options["activity_tags"] == {"gpu", "fast"}

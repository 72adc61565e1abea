"""The public types: what mypy infers for user code (`mypy.api.run`)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SNIPPET = """
from typing import reveal_type

import perdure
from perdure import ActivityContext, OrchestrationContext


@perdure.activity
async def fetch(ctx: ActivityContext, url: str) -> str:
    return url


@perdure.activity(name="Measure")
def measure(ctx: ActivityContext, n: int) -> float:
    return n / 2


@perdure.activity
async def tick(ctx: ActivityContext) -> int:
    return 1


@perdure.orchestration
async def orch(ctx: OrchestrationContext, _: None) -> None:
    a = ctx.schedule_activity(fetch, "u")
    reveal_type(a)  # fetch
    b = ctx.schedule_activity(measure, 3, timeout=5)
    reveal_type(b)  # measure
    reveal_type(ctx.schedule_activity(tick))  # tick
    reveal_type(ctx.schedule_activity("Measure", 3))  # by-name
    won = await ctx.select2(a, b)
    reveal_type(won)  # select2
    if won[0] == 0:
        reveal_type(won[1])  # narrowed
    ctx.schedule_activity(measure, "three")  # wrong-input
"""


def _mypy(tmp_path: Path) -> dict[str, str]:
    """Type-check SNIPPET under --strict; map each ``# tag`` to its message."""
    src = tmp_path / "snippet.py"
    src.write_text(textwrap.dedent(SNIPPET))
    out, err, _ = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(src),
        ]
    )
    assert not err, err
    lines = SNIPPET.splitlines()
    found: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r".*snippet\.py:(\d+): (\w+): (.*)", line)
        assert match, line
        tag = lines[int(match[1]) - 1].partition("# ")[2]
        assert tag, line
        # Type names vary with the mypy version and the module layout.
        message = re.sub(r"builtins\.|[\w.]*(?=DurableFuture)", "", match[3])
        found[tag] = f"{match[2]}: {message}"
    return found


def test_public_types_as_mypy_sees_them(tmp_path: Path) -> None:
    found = _mypy(tmp_path)
    future = "DurableFuture"
    assert found == {
        "fetch": f'note: Revealed type is "{future}[str]"',
        "measure": f'note: Revealed type is "{future}[float]"',
        "tick": f'note: Revealed type is "{future}[int]"',
        "by-name": f'note: Revealed type is "{future}[Any]"',
        "select2": (
            'note: Revealed type is "tuple[Literal[0], str] | tuple[Literal[1], float]"'
        ),
        "narrowed": 'note: Revealed type is "str"',
        "wrong-input": found.get("wrong-input", "missing"),
    }
    assert found["wrong-input"].startswith("error: "), found["wrong-input"]

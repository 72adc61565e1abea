"""examples/routing_and_limits.py: tags, sessions, limits, priorities, both backends."""

from __future__ import annotations

from _examples_support import load

example = load("routing_and_limits")


async def test_routing_and_limits(storage_url: str) -> None:
    outcome = await example.run(storage_url)
    # Tagged work ran on the gpu runtime only.
    assert outcome["transcoded_on"] == ["gpu"] * len(example.VIDEOS)
    # Each video's chunks were stored on one runtime (its session's owner).
    assert all(len(where) == 1 for where in outcome["chunks_on"].values())
    # The concurrency limit held; the priority went first within the rate.
    assert outcome["most_thumbnails_at_once"] <= 2
    assert outcome["editor_in_first_four"] is True

"""Argument handling of `OrchestrationContext` calls (kept out of `._context`)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ._codec import from_json
from ._core._tasks import DurableFuture

__all__ = ["await_it", "decoder", "flatten"]

T = TypeVar("T")


async def await_it(awaitable: Awaitable[T]) -> T:
    """A coroutine awaiting *awaitable* (a task runs coroutines only)."""
    return await awaitable


def flatten(futures: Iterable[Any]) -> list[DurableFuture[Any]]:
    """The futures of ``select(a, b)`` or ``select([a, b])``, checked.

    Raises:
        TypeError: Something other than a durable future was given.
    """
    items = list(futures)
    if len(items) == 1 and isinstance(items[0], list | tuple):
        items = list(items[0])
    for item in items:
        if not isinstance(item, DurableFuture):
            raise TypeError(
                "select, join and as_completed take durable futures, got "
                f"{type(item).__name__}; "
                "wrap coroutines with durable_async(ctx, coro)"
            )
    return items


def decoder(hint: Any) -> Callable[[Any], Any] | None:
    """What turns an activity result into *hint*'s type (None: as decoded)."""
    if hint is None or hint in (str, int, float, bool, dict, list, Any):
        return None
    return functools.partial(from_json, hint=hint)

"""``perdure worker``: load handlers from ``MODULE[:ATTR]`` and host a Runtime.

What ``MODULE[:ATTR]`` may name (documented in ``perdure worker --help``):

- a module: its ``ORCHESTRATIONS`` and ``ACTIVITIES`` lists if it defines
  either, otherwise every `orchestration`/`activity`-decorated function in
  its namespace;
- a decorated function, or an iterable (list, tuple, nested) of them;
- a mapping with ``"orchestrations"`` and/or ``"activities"`` keys;
- a callable taking no arguments that returns any of the above.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._registry import _ACT_ATTR, _ORCH_ATTR
from ._runtime import Runtime
from .providers._urls import redact_url

__all__ = ["CliError", "load_handlers", "run_worker"]

Handler = Callable[..., Any]

# A factory returning a factory returning ... is almost certainly a mistake;
# the bound keeps a self-returning callable from recursing forever.
_MAX_DEPTH = 8


class CliError(Exception):
    """A user-facing command failure: printed as one line, exit status 1."""


def load_handlers(spec: str) -> tuple[list[Handler], list[Handler]]:
    """Import ``MODULE[:ATTR]`` and return its (orchestrations, activities).

    The current directory is put on ``sys.path`` first, as ``python -m``
    does, so ``perdure worker app:handlers`` finds ``./app.py``.

    Raises:
        CliError: The module cannot be imported, the attribute is missing, or
            it names no orchestration or activity.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise CliError(f"expected MODULE or MODULE:ATTR, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import module {module_name!r}: {exc}") from exc
    for part in attr.split(".") if attr else ():
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(
                f"module {module_name!r} has no attribute {attr!r}"
            ) from None
    orchestrations: list[Handler] = []
    activities: list[Handler] = []
    _collect(target, orchestrations, activities, 0)
    if not orchestrations and not activities:
        raise CliError(f"{spec!r} names no orchestrations or activities")
    return orchestrations, activities


def _collect(
    obj: Any, orchestrations: list[Handler], activities: list[Handler], depth: int
) -> None:
    if depth > _MAX_DEPTH:
        raise CliError("handler factories nest too deeply")
    for attr, bucket in ((_ORCH_ATTR, orchestrations), (_ACT_ATTR, activities)):
        if getattr(obj, attr, None) is not None:
            if not any(fn is obj for fn in bucket):
                bucket.append(obj)
            return
    if isinstance(obj, types.ModuleType):
        lists = [getattr(obj, n, None) for n in ("ORCHESTRATIONS", "ACTIVITIES")]
        if any(x is not None for x in lists):
            for item in lists:
                _collect(item or (), orchestrations, activities, depth + 1)
            return
        for item in list(vars(obj).values()):
            if any(getattr(item, a, None) is not None for a in (_ORCH_ATTR, _ACT_ATTR)):
                _collect(item, orchestrations, activities, depth + 1)
        return
    if isinstance(obj, Mapping):
        for key in ("orchestrations", "activities"):
            _collect(obj.get(key, ()), orchestrations, activities, depth + 1)
        return
    if isinstance(obj, str | bytes):
        raise CliError(f"expected handlers, got the string {obj!r}")
    if isinstance(obj, Iterable):
        for item in obj:
            _collect(item, orchestrations, activities, depth + 1)
        return
    if callable(obj) and not isinstance(obj, type):
        _collect(obj(), orchestrations, activities, depth + 1)
        return
    raise CliError(
        f"{obj!r} is not an orchestration, an activity, a list or mapping of "
        "them, a module or a factory"
    )


async def run_worker(
    url: str,
    orchestrations: list[Handler],
    activities: list[Handler],
    *,
    shutdown_timeout: float,
    options: dict[str, Any],
) -> None:
    """Host a `Runtime` until SIGINT or SIGTERM, then shut it down gracefully."""
    runtime = Runtime(
        url, orchestrations=orchestrations, activities=activities, **options
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows' proactor loop: Ctrl+C then arrives as
        # KeyboardInterrupt, which `main` turns into exit status 130.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runtime._on_stuck = _exit_stuck
    await runtime.start()
    try:
        print(
            f"perdure worker (pid {os.getpid()}) running {len(orchestrations)} "
            f"orchestration(s) and {len(activities)} activity(ies) on "
            f"{redact_url(url)}; stop with Ctrl+C or SIGTERM",
            flush=True,
        )
        # Ends on a signal, or when the runtime fails (its loops kept dying):
        # then the shutdown below raises RuntimeFailed, exit status 1.
        failed = asyncio.ensure_future(runtime.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (failed, stopped):
            waiter.cancel()
        if failed.done() and not failed.cancelled():
            failed.exception()  # retrieved: the shutdown below raises it
        if runtime.failed is None:
            print("perdure worker: stopping...", file=sys.stderr, flush=True)
    finally:
        try:
            await runtime.shutdown(timeout=shutdown_timeout)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)


def _exit_stuck(error: BaseException) -> None:
    # Called from the watchdog thread: the event loop is blocked for good
    # (a turn swallows every attempt to stop it), so SIGTERM would never be
    # handled. Exit with status 3 so that a supervisor restarts the worker.
    print(f"perdure worker: {error}", file=sys.stderr, flush=True)
    os._exit(3)

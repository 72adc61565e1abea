"""Decorators that mark orchestrations and activities, and the name registry."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast, overload

from ._core._traps import IN_ORCHESTRATION
from ._errors import HandlerNotFound
from ._routing import check_limits
from .providers._base import ActivityLimit

__all__ = [
    "ActivityDef",
    "OrchestrationDef",
    "Registry",
    "activity",
    "name_of",
    "orchestration",
]

F = TypeVar("F", bound=Callable[..., Any])

_ORCH_ATTR = "__perdure_orchestration__"
_ACT_ATTR = "__perdure_activity__"


@dataclass(frozen=True, slots=True)
class _Signature:
    has_input: bool
    input_hint: Any
    return_hint: Any


def _signature(fn: Callable[..., Any]) -> _Signature:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        raise TypeError(f"{fn.__qualname__} must take a context as first parameter")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    has_input = len(params) >= 2
    input_hint = hints.get(params[1].name) if has_input else None
    return _Signature(has_input, input_hint, hints.get("return"))


@dataclass(frozen=True, slots=True)
class OrchestrationDef:
    """A registered orchestration: name, version and its function."""

    name: str
    version: str
    fn: Callable[..., Any]
    has_input: bool
    input_hint: Any
    return_hint: Any


@dataclass(frozen=True, slots=True)
class ActivityDef:
    """A registered activity: name, its (sync or async) function, its limits."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    has_input: bool
    input_hint: Any
    return_hint: Any
    limit: ActivityLimit | None = None


@overload
def orchestration(fn: F, /) -> F: ...
@overload
def orchestration(
    *, name: str | None = None, version: str = "1.0.0"
) -> Callable[[F], F]: ...
def orchestration(
    fn: Any = None, /, *, name: str | None = None, version: str = "1.0.0"
) -> Any:
    """Mark an ``async def (ctx, input)`` function as an orchestration.

    Args:
        fn: The function (when used without parentheses).
        name: Registered name; the function's name by default.
        version: Version string, ``"1.0.0"`` by default.

    The function stays callable as a plain function.
    """

    def mark(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"orchestration {func.__qualname__} must be an async def")
        sig = _signature(func)
        setattr(
            func,
            _ORCH_ATTR,
            OrchestrationDef(
                name or func.__name__,
                version,
                func,
                sig.has_input,
                sig.input_hint,
                sig.return_hint,
            ),
        )
        return func

    return mark(fn) if fn is not None else mark


@overload
def activity(fn: F, /) -> F: ...
@overload
def activity(
    *,
    name: str | None = None,
    concurrency: int | None = None,
    rate_limit: tuple[int, float | timedelta] | None = None,
) -> Callable[[F], F]: ...
def activity(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    concurrency: int | None = None,
    rate_limit: tuple[int, float | timedelta] | None = None,
) -> Any:
    """Mark a function ``(ctx, input)`` as an activity (``async def`` or ``def``).

    Args:
        fn: The function (when used without parentheses).
        name: Registered name; the function's name by default.
        concurrency: At most this many attempts of it run at once, over
            every runtime sharing the storage (docs/routing.md).
        rate_limit: ``(count, window)``: at most *count* attempts start in
            any *window* seconds (or `timedelta`), over every runtime.

    Sync activities run in a thread pool. The function stays callable
    (tests, other activities), except from orchestration code: there a
    direct call would run it inline on every replay, so it raises
    `TypeError` saying to schedule it instead.

    Raises:
        ValueError: *concurrency* or *rate_limit* is out of range.
    """
    check_limits(name or "activity", concurrency, rate_limit)  # fail early

    def mark(func: F) -> F:
        sig = _signature(func)
        registered = name or func.__name__
        definition = ActivityDef(
            registered,
            func,
            inspect.iscoroutinefunction(func),
            sig.has_input,
            sig.input_hint,
            sig.return_hint,
            check_limits(registered, concurrency, rate_limit),
        )
        guarded = _guard(func, definition.name, definition.is_async)
        setattr(guarded, _ACT_ATTR, definition)
        return cast(F, guarded)

    return mark(fn) if fn is not None else mark


def _guard(func: Callable[..., Any], name: str, is_async: bool) -> Callable[..., Any]:
    """Wrap an activity so a direct call from orchestration code is refused."""

    def refuse() -> TypeError:
        return TypeError(
            f"activity {name!r} was called directly from orchestration code, "
            "where it would run again on every replay; schedule it instead: "
            f"await ctx.schedule_activity({func.__name__}, ...)"
        )

    if is_async:

        @functools.wraps(func)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            if IN_ORCHESTRATION.get():
                raise refuse()
            return await func(*args, **kwargs)

        return guarded_async

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if IN_ORCHESTRATION.get():
            raise refuse()
        return func(*args, **kwargs)

    return guarded


def name_of(target: str | Callable[..., Any]) -> str:
    """Return the registered name of a decorated function, or the string itself."""
    if isinstance(target, str):
        return target
    for attr in (_ORCH_ATTR, _ACT_ATTR):
        definition = getattr(target, attr, None)
        if definition is not None:
            return str(definition.name)
    name = getattr(target, "__name__", None)
    if name is None:
        raise TypeError(f"expected a name or a decorated function, got {target!r}")
    return str(name)


def _version_key(version: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for piece in version.replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)


class Registry:
    """Orchestrations by (name, version) and activities by name."""

    def __init__(
        self,
        orchestrations: Iterable[Callable[..., Any]] = (),
        activities: Iterable[Callable[..., Any]] = (),
    ) -> None:
        self.orchestrations: dict[str, dict[str, OrchestrationDef]] = {}
        self.activities: dict[str, ActivityDef] = {}
        for fn in orchestrations:
            odef = getattr(fn, _ORCH_ATTR, None)
            if odef is None:
                odef = getattr(orchestration(fn), _ORCH_ATTR)
            versions = self.orchestrations.setdefault(odef.name, {})
            if odef.version in versions:
                raise ValueError(
                    f"orchestration {odef.name!r} version {odef.version!r} "
                    "is registered twice"
                )
            versions[odef.version] = odef
        for fn in activities:
            adef = getattr(fn, _ACT_ATTR, None)
            if adef is None:
                adef = getattr(activity(fn), _ACT_ATTR)
            if adef.name in self.activities:
                raise ValueError(f"activity {adef.name!r} is registered twice")
            self.activities[adef.name] = adef

    def orchestration(self, name: str, version: str | None = None) -> OrchestrationDef:
        """Resolve an orchestration; the latest version when *version* is None.

        Raises:
            HandlerNotFound: Nothing registered under that name/version.
        """
        versions = self.orchestrations.get(name)
        if not versions:
            known = ", ".join(_user(self.orchestrations)) or "none"
            raise HandlerNotFound(
                f"orchestration {name!r} is not registered with this runtime "
                f"(registered: {known})"
            )
        if version is None:
            return versions[max(versions, key=_version_key)]
        found = versions.get(version)
        if found is None:
            raise HandlerNotFound(
                f"orchestration {name!r} has no version {version!r} "
                f"(registered: {', '.join(sorted(versions))})"
            )
        return found

    def handlers(self) -> list[tuple[str, str]]:
        """Every registered ``(name, version)``: what version routing takes."""
        return [
            (name, version)
            for name, versions in sorted(self.orchestrations.items())
            for version in sorted(versions)
        ]

    def latest_version(self, name: str) -> str | None:
        """Return the newest registered version of *name*, if any."""
        versions = self.orchestrations.get(name)
        return max(versions, key=_version_key) if versions else None

    def activity(self, name: str) -> ActivityDef:
        """Resolve an activity by name.

        Raises:
            HandlerNotFound: No activity registered under that name.
        """
        found = self.activities.get(name)
        if found is None:
            known = ", ".join(_user(self.activities)) or "none"
            raise HandlerNotFound(
                f"activity {name!r} is not registered with this runtime "
                f"(registered: {known})"
            )
        return found

    def activity_limits(self) -> list[ActivityLimit]:
        """The declared limits of the registered activities."""
        return [a.limit for a in self.activities.values() if a.limit is not None]

    def activity_return_hint(self, name: str) -> Any:
        """Return hint of a registered activity (for decoding results), or None."""
        found = self.activities.get(name)
        return found.return_hint if found is not None else None


def _user(names: Iterable[str]) -> list[str]:
    """*names* sorted, without the built-in ``perdure.*`` handlers (schedules)."""
    return sorted(name for name in names if not name.startswith("perdure."))

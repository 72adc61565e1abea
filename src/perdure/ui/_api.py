"""The web UI's JSON API (``/api/...``), on top of `perdure.Client`.

Reads: ``GET /api/instances`` (filters and a cursor, as
`Client.list_instances`), ``GET /api/instances/{id}`` (its status),
``.../history`` (the raw events) and ``.../tree`` (`history_tree`), the last
two with ``?execution=N``. Actions: ``POST /api/instances/{id}/raise``
(``{"name": ..., "data": ...}``), ``.../cancel`` (``{"reason": ...}``),
``.../resume`` and ``.../rewind``; refused with 403 in read-only mode. An
action's body must be JSON (``Content-Type: application/json``): a plain
HTML form on another site cannot send that without a CORS preflight, which
this API never grants. Errors are ``{"error": message}`` with 400 (bad
input), 403 (read-only), 404 (unknown instance), 409 (wrong status) or 415.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast, get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._cli_commands import state_json as cli_state_json
from .._client import Client
from .._core._history import event_to_json
from .._errors import InstanceNotFound, PerdureError
from .._state import OrchestrationState
from .._tree_data import history_tree
from ..providers._base import InstanceStatus

__all__ = ["UiState", "api_routes", "state_json"]

_STATUSES: tuple[str, ...] = get_args(InstanceStatus)
_MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class UiState:
    """What every handler of one application shares."""

    client: Client
    read_only: bool
    #: The storage as the page header shows it (no credentials).
    label: str = ""


class _BadRequest(Exception):
    pass


def state_json(state: OrchestrationState[Any]) -> dict[str, Any]:
    """An instance's state as JSON values (times in Unix seconds).

    The fields of ``perdure status --json``; only the times differ (the
    browser's clock arithmetic wants numbers).
    """
    data = cli_state_json(state)
    data["created_at"] = state.created_at.timestamp()
    data["updated_at"] = state.updated_at.timestamp()
    return data


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]


def _guard(handler: Handler) -> Handler:
    """Map perdure's errors to HTTP statuses."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except _BadRequest as exc:
            return _error(400, str(exc))
        except InstanceNotFound as exc:
            return _error(404, f"no instance {exc.args[0]!r}" if exc.args else "")
        except ValueError as exc:  # PayloadError too: bad input
            return _error(400, str(exc))
        except PerdureError as exc:
            return _error(409, str(exc))

    return guarded


def _time(text: str | None, what: str) -> float | datetime | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _BadRequest(f"{what}: not a time: {text!r}") from None


def _int(text: str | None, what: str, default: int | None) -> int | None:
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise _BadRequest(f"{what}: not a number: {text!r}") from None


class _Api:
    def __init__(self, ui: UiState) -> None:
        self.ui = ui
        self.client = ui.client

    async def config(self, request: Request) -> Response:
        return JSONResponse({"read_only": self.ui.read_only})

    async def instances(self, request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in _STATUSES:
            raise _BadRequest(f"status must be one of {', '.join(_STATUSES)}")
        limit = _int(q.get("limit"), "limit", 50)
        assert limit is not None
        if not 1 <= limit <= _MAX_LIMIT:
            raise _BadRequest(f"limit must be 1 to {_MAX_LIMIT}")
        page = await self.client.list_instances(
            status=cast("InstanceStatus | None", status),
            name=q.get("name") or None,
            version=q.get("version") or None,
            created_after=_time(q.get("created_after"), "created_after"),
            created_before=_time(q.get("created_before"), "created_before"),
            limit=limit,
            cursor=q.get("cursor") or None,
        )
        return JSONResponse(
            {
                "items": [state_json(s) for s in page.items],
                "next_cursor": page.next_cursor,
            }
        )

    async def _state(self, request: Request) -> OrchestrationState[Any]:
        instance_id = request.path_params["instance_id"]
        state = await self.client.get_status(instance_id)
        if state is None:
            raise InstanceNotFound(instance_id)
        return state

    async def status(self, request: Request) -> Response:
        return JSONResponse(state_json(await self._state(request)))

    async def _events(self, request: Request) -> tuple[int, list[Any]]:
        state = await self._state(request)
        execution = _int(request.query_params.get("execution"), "execution", None)
        execution = state.execution_id if execution is None else execution
        if not 1 <= execution <= state.execution_id:
            raise _BadRequest(f"no execution {execution} (1 to {state.execution_id})")
        events = await self.client.get_history(state.instance_id, execution)
        return execution, events

    async def history(self, request: Request) -> Response:
        execution, events = await self._events(request)
        return JSONResponse(
            {
                "execution_id": execution,
                "events": [json.loads(event_to_json(e)) for e in events],
            }
        )

    async def tree(self, request: Request) -> Response:
        execution, events = await self._events(request)
        return JSONResponse({"execution_id": execution, **history_tree(events)})

    async def action(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        action = request.path_params["action"]
        run = self._actions.get(action)
        if run is None:
            return _error(404, f"no action {action!r}")
        if self.ui.read_only:
            return _error(403, "the UI is read-only (perdure ui --read-only)")
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return _error(415, "send the action's body as application/json")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise _BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object")
        await run(self, instance_id, body)
        return JSONResponse({"ok": True, "action": action})

    async def _raise(self, instance_id: str, body: dict[str, Any]) -> None:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise _BadRequest("name: the event name is required")
        await self.client.raise_event(instance_id, name, body.get("data"))

    async def _cancel(self, instance_id: str, body: dict[str, Any]) -> None:
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise _BadRequest("reason must be a string")
        await self.client.cancel_instance(instance_id, reason)

    async def _resume(self, instance_id: str, body: dict[str, Any]) -> None:
        await self.client.resume(instance_id)

    async def _rewind(self, instance_id: str, body: dict[str, Any]) -> None:
        await self.client.rewind(instance_id)

    _actions: ClassVar[
        dict[str, Callable[[_Api, str, dict[str, Any]], Awaitable[None]]]
    ] = {
        "raise": _raise,
        "cancel": _cancel,
        "resume": _resume,
        "rewind": _rewind,
    }


def api_routes(ui: UiState) -> list[Route]:
    """The API's routes (an id may hold ``/``: the sub-resources match first)."""
    api = _Api(ui)
    base = "/api/instances/{instance_id:path}"
    return [
        Route("/api/config", _guard(api.config)),
        Route("/api/instances", _guard(api.instances)),
        Route(f"{base}/history", _guard(api.history)),
        Route(f"{base}/tree", _guard(api.tree)),
        Route(base + "/{action:str}", _guard(api.action), methods=["POST"]),
        Route(base, _guard(api.status)),
    ]

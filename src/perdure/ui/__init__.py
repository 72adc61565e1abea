"""perdure's web UI: ``pip install "perdure[ui]"``, then ``perdure ui``.

`create_app` returns a Starlette application: an instance list (filters,
paging, live), an instance page (scope tree, timeline, payloads, actions)
and the JSON API both are built on (DESIGN §10). Serve it with any ASGI
server; ``perdure ui`` runs it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'perdure.ui needs the "ui" extra: pip install "perdure[ui]"'
    ) from exc

from ._app import create_app

__all__ = ["create_app"]

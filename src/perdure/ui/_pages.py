"""The web UI's HTML pages and static files.

The pages are shells: plain HTML built here with every user value escaped
(`html.escape`), filled and kept live by ``static/ui.js`` from the JSON API.
The script builds the DOM with ``textContent`` only, never ``innerHTML``, so
instance ids, names and payloads are always text.
"""

from __future__ import annotations

import html
from importlib import resources
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ._api import UiState

__all__ = ["page_routes", "storage_label"]

_STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}
_STATUSES = ("Running", "Suspended", "Completed", "Failed", "Cancelled")


def storage_label(url: str) -> str:
    """*url* without credentials or query (shown in the page header)."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "sqlite" or not parts.netloc:
        return url.split("?")[0]
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _shell(request: Request, ui: UiState, page: str, title: str, body: str) -> str:
    base = _e(request.scope.get("root_path", ""))
    ro = "true" if ui.read_only else "false"
    badge = '<span class="ro-badge">read-only</span>' if ui.read_only else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · perdure</title>
<link rel="stylesheet" href="{base}/static/ui.css">
</head>
<body data-page="{page}" data-base="{base}" data-read-only="{ro}">
<header class="top">
<a class="brand" href="{base}/">perdure</a>
<span class="storage" title="storage">{_e(ui.label)}</span>{badge}
</header>
<main>
{body}
</main>
<script src="{base}/static/ui.js"></script>
</body>
</html>
"""


def _list_body(request: Request) -> str:
    q = request.query_params
    current = q.get("status", "")
    options = "".join(
        f'<option value="{s}"{" selected" if s == current else ""}>{s}</option>'
        for s in _STATUSES
    )
    return f"""<h1>Instances</h1>
<form id="filters" class="filters" method="get" action="">
<label>Status <select name="status"><option value="">any</option>{options}</select>
</label>
<label>Name <input name="name" value="{_e(q.get("name", ""))}" size="18"></label>
<label>Version <input name="version" value="{_e(q.get("version", ""))}" size="8">
</label>
<button type="submit">Filter</button>
<a class="clear" href="?">Clear</a>
<label class="live"><input type="checkbox" id="live" checked> live</label>
</form>
<p id="list-info" class="info" role="status">Loading…</p>
<table id="instances" class="instances">
<thead><tr><th>Instance</th><th>Orchestration</th><th>Version</th><th>Status</th>
<th>Created</th><th>Updated</th></tr></thead>
<tbody></tbody>
</table>
<nav class="pager">
<button type="button" id="first" disabled>&laquo; First</button>
<button type="button" id="prev" disabled>&lsaquo; Previous</button>
<span id="page-no"></span>
<button type="button" id="next" disabled>Next &rsaquo;</button>
</nav>
"""


_ACTIONS = """<section id="actions" class="actions">
<h2>Actions</h2>
<form id="raise-form" class="action">
<input name="name" placeholder="event name" required aria-label="event name">
<textarea name="data" rows="1" placeholder="data as JSON (optional)"
 aria-label="event data"></textarea>
<button type="submit" id="raise">Raise event</button>
</form>
<form id="cancel-form" class="action">
<input name="reason" placeholder="reason (optional)" aria-label="cancel reason">
<button type="submit" id="cancel" class="danger">Cancel instance</button>
</form>
<div class="action">
<button type="button" id="resume">Resume</button>
<button type="button" id="rewind">Rewind</button>
</div>
<p id="action-result" class="info" role="status"></p>
</section>
"""


def _instance_body(ui: UiState, instance_id: str) -> str:
    actions = "" if ui.read_only else _ACTIONS
    return f"""<h1>Instance <code id="instance-id">{_e(instance_id)}</code>
<span id="status" class="badge"></span></h1>
<div id="instance" data-instance-id="{_e(instance_id)}">
<p id="load-error" class="error" hidden></p>
<dl id="facts" class="facts"></dl>
{actions}<section>
<h2>Scope tree <select id="execution" aria-label="execution" hidden></select></h2>
<div id="tree" class="tree"></div>
</section>
<section>
<h2>Timeline</h2>
<div id="timeline" class="timeline"></div>
</section>
<section>
<h2>Input, output and errors</h2>
<div id="payloads" class="payloads"></div>
</section>
<section>
<details id="raw-history"><summary>Raw history (JSON)</summary><pre id="raw"></pre>
</details>
</section>
</div>
"""


def page_routes(ui: UiState) -> list[Route]:
    """The pages and the static files."""
    package = resources.files("perdure.ui") / "static"
    static = {name: (package / name).read_bytes() for name in _STATIC}

    async def instances(request: Request) -> Response:
        body = _list_body(request)
        return HTMLResponse(_shell(request, ui, "list", "Instances", body))

    async def instance(request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        body = _instance_body(ui, instance_id)
        title = f"Instance {instance_id}"
        return HTMLResponse(_shell(request, ui, "instance", title, body))

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(static[name], media_type=_STATIC[name])

    return [
        Route("/", instances),
        Route("/instances/{instance_id:path}", instance),
        Route("/static/{name}", asset),
    ]

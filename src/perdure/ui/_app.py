"""`create_app`: the web UI's Starlette application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._client import Client
from ..providers._base import Provider
from ._api import UiState, api_routes
from ._pages import page_routes, storage_label

__all__ = ["create_app"]

# No inline script or style anywhere (the JS sets styles through the CSSOM),
# so a payload that slipped through escaping still could not run.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; "
        b"img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class _SecurityHeaders:
    """Adds `_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    storage: str | Provider | Client,
    *,
    read_only: bool = False,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """Build the web UI for the instances in *storage*.

    Args:
        storage: A storage URL, a provider, or a `Client` (left open: its
            owner closes it). A URL or provider gets a client of its own,
            closed when the application shuts down (ASGI lifespan).
        read_only: Hide the action buttons and refuse every action
            (raise, cancel, resume, rewind) with HTTP 403.
        allowed_hosts: Accept only requests whose ``Host`` header is one of
            these (``"*"`` patterns as Starlette's `TrustedHostMiddleware`);
            ``perdure ui`` passes the loopback names when it listens on a
            loopback address, which stops DNS-rebinding pages from reading
            or driving it. ``None``: any host.

    Returns:
        The ASGI application: pages at ``/`` and ``/instances/{id}``, the
        JSON API under ``/api``.
    """
    owns = not isinstance(storage, Client)
    client = Client(storage) if not isinstance(storage, Client) else storage
    url = storage if isinstance(storage, str) else getattr(client, "_storage", None)
    label = storage_label(url) if isinstance(url, str) else ""
    ui = UiState(client, read_only, label)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns:
                await client.close()

    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
        )
    return Starlette(
        routes=[*api_routes(ui), *page_routes(ui)],
        middleware=middleware,
        lifespan=lifespan,
    )

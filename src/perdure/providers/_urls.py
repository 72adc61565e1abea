"""Storage URLs in messages: the password is never shown."""

from __future__ import annotations

import re

__all__ = ["redact_url"]

# ``password=...`` in a libpq key=value string or a URL query.
_PASSWORD_PARAM = re.compile(
    r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&#]+)", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """Return *url* with any password replaced by ``***``.

    Covers ``scheme://user:password@host/...`` (up to the last ``@``, so an
    unencoded ``@`` in the password is still hidden) and ``password=...`` in
    a query or a libpq ``key=value`` string. A SQLite path is left alone.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        at = rest.rfind("@")
        user, colon, _ = rest[: max(at, 0)].partition(":")
        if at >= 0 and colon and "/" not in user:
            rest = f"{user}:***{rest[at:]}"
        url = scheme + sep + rest
    return _PASSWORD_PARAM.sub(r"\1***", url)

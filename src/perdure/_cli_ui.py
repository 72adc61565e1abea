"""``perdure ui``: serve the web UI (``pip install "perdure[ui]"``)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from ._cli_worker import CliError

__all__ = ["LOOPBACK_HOSTS", "add_parser", "loopback", "run_ui"]

#: The ``Host`` headers accepted when the UI listens on a loopback address.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]

_HELP = """\
Serve the web UI: the instance list (filters, paging, live), each
instance's scope tree, timeline and payloads, and buttons to raise an
event, cancel, resume or rewind (hidden and refused with --read-only).
It listens on 127.0.0.1 unless --host says otherwise: anyone who can reach
it can act on the instances (there is no login), so put an authenticating
proxy in front before listening on another address.
"""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``ui`` subcommand to *sub* (the subparsers of ``perdure``)."""
    ui = sub.add_parser(
        "ui",
        parents=parents,
        help="serve the web UI (needs perdure[ui])",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ui.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8089, help="port (default 8089)")
    ui.add_argument(
        "--read-only",
        action="store_true",
        help="show, never act: no buttons, and the API refuses actions (403)",
    )


def loopback(host: str) -> bool:
    """Whether *host* is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_ui(args: argparse.Namespace, url: str) -> int:
    """Serve the UI on ``args.host:args.port`` until interrupted.

    Raises:
        CliError: The ``ui`` extra is not installed, the port is invalid,
            or the SQLite file does not exist.
    """
    try:
        import uvicorn

        from .ui import create_app
    except ImportError:
        raise CliError(
            'the web UI needs the "ui" extra: pip install "perdure[ui]"'
        ) from None
    if not 0 < args.port < 65536:
        raise CliError(f"--port must be 1 to 65535, not {args.port}")
    from .cli import _sqlite_file

    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise CliError(f"no database at {path} (use --db or set PERDURE_DB)")
    hosts = LOOPBACK_HOSTS if loopback(args.host) else None
    app = create_app(url, read_only=args.read_only, allowed_hosts=hosts)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    mode = " (read-only)" if args.read_only else ""
    print(f"perdure ui: http://{shown}:{args.port}/{mode}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        ws="none",
        lifespan="on",
    )
    return 0

"""Regenerate the web UI screenshots of the docs (``docs/img/ui-*.png``).

Run from the repository root: ``python -m tests.ui.screenshots [DIR]``
(default ``docs/img``). Needs chromium and chromium-driver (``apt-get``).
It starts a runtime on a fresh SQLite file with a few instances (the nested
race, a failure, waiting ones), serves the UI and takes two pictures: the
instance list and the nested race's page.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).parent))

from ui_app import (
    ACTIVITIES,
    ORCHESTRATIONS,
    nested,
    start_failed,
    start_nested,
    start_waiters,
)
from ui_support import browser, running, served, wait_for

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def take(out: Path) -> list[Path]:
    """Save ``ui-list.png`` and ``ui-instance.png`` in *out*; return them."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/ui.db"
        with running(db, ORCHESTRATIONS, ACTIVITIES) as rt:
            start_failed(rt, "invoice-1007")
            start_nested(rt)
            start_waiters(rt, "order-1042", "order-1043", "order-1044")
            with served(db) as url, browser(1280, 760) as driver:
                driver.get(url + "/")
                wait_for(
                    driver,
                    lambda d: (
                        d.execute_script(
                            "return document.querySelectorAll("
                            "'#instances tr[data-status]').length"
                        )
                        >= 5
                    ),
                )
                shots = [out / "ui-list.png", out / "ui-instance.png"]
                driver.save_screenshot(str(shots[0]))
                driver.set_window_size(1280, 1400)
                driver.get(url + "/instances/" + quote(nested.FAST, safe=""))
                wait_for(
                    driver,
                    lambda d: (
                        d.execute_script(
                            "return document.querySelectorAll("
                            "'#timeline .tl-row').length"
                        )
                        == 5
                    ),
                )
                driver.save_screenshot(str(shots[1]))
    return shots


if __name__ == "__main__":
    for path in take(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS_IMG):
        print(path)

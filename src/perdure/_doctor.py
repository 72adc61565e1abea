"""``perdure doctor``: is this database ready for perdure, and if not, why.

`run_doctor` prints one line per check and returns the exit status: 0 when
every check passed, 1 otherwise, with the first problem repeated as the
last line on stderr (host and port named, never a password). PostgreSQL
gets the full report (`perdure._doctor_pg`); a SQLite file a reduced one.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._tree import printable
from .providers._urls import redact_url
from .providers.helpers import load_migrations

__all__ = ["Check", "Report", "run_doctor"]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report.

    Attributes:
        name: What was checked.
        ok: ``False`` makes the database unhealthy.
        detail: The finding, and what it means.
    """

    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class Report:
    """The checks of one database, in order."""

    target: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> None:
        """Record a check."""
        self.checks.append(Check(name, ok, detail))

    @property
    def problems(self) -> list[Check]:
        """The failed checks."""
        return [check for check in self.checks if not check.ok]


def schema_check(report: Report, dialect: str, applied: int | None) -> None:
    """Compare the stored schema version with the code's."""
    newest = load_migrations(dialect)[-1][0]
    if applied is None:
        report.add("schema", True, f"not created yet (code: {newest}; open creates it)")
    elif applied > newest:
        report.add(
            "schema",
            False,
            f"version {applied} is newer than this perdure's {newest}: upgrade perdure",
        )
    elif applied < newest:
        report.add(
            "schema", True, f"version {applied}, code {newest} (open migrates it)"
        )
    else:
        report.add("schema", True, f"version {applied}, same as the code")


def _sqlite(url: str) -> Report:
    rest = url.partition("://")[2]
    path = Path(rest[1:]) if rest.startswith("/") else Path(rest)
    report = Report(f"SQLite {path}")
    if str(path) in (":memory:", "/:memory:", ""):
        report.add("file", True, "in memory: private to one process, nothing to check")
        return report
    if not path.exists():
        report.add("file", False, f"no database at {path}")
        return report
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        report.add("server", True, f"SQLite {sqlite3.sqlite_version} (one machine)")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        report.add("journal", True, f"{mode}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        applied = None
        if "schema_version" in tables:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            applied = row[0]
        schema_check(report, "sqlite", applied)
    except sqlite3.Error as exc:
        report.add("file", False, f"{path} is not a readable SQLite database ({exc})")
    finally:
        conn.close()
    report.add("wake-ups", True, "in-process only: one runtime process per file")
    return report


def print_report(report: Report) -> None:
    """Print the report to stdout, one line per check."""
    print(f"perdure doctor: {printable(report.target)}")
    width = max((len(check.name) for check in report.checks), default=0)
    for check in report.checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  {mark} {check.name.ljust(width)}  {printable(check.detail)}")


async def run_doctor(url: str, *, runtimes: int = 1, pool_size: int = 10) -> int:
    """Check the database at *url*, print the report, return the exit status.

    Args:
        url: Storage URL (``postgresql://...`` or ``sqlite:///...``).
        runtimes: Runtime processes that will share the database.
        pool_size: Each runtime's pool size (``PostgresProvider`` max_size).
    """
    started = time.monotonic()
    if url.lower().startswith(("postgresql://", "postgres://")):
        try:
            from ._doctor_pg import check_postgres
        except ImportError as exc:
            report = Report("PostgreSQL")
            report.add("driver", False, f'pip install "perdure[postgres]" ({exc})')
        else:
            report = await check_postgres(url, runtimes=runtimes, pool_size=pool_size)
    else:
        report = _sqlite(url)
    print_report(report)
    problems = report.problems
    if not problems:
        print(f"healthy ({time.monotonic() - started:.2f} s)")
        return 0
    first = problems[0]
    reason = " ".join(f"{first.name}: {first.detail}".split())
    print(
        f"perdure: unhealthy: {printable(redact_url(reason))} ({report.target})",
        file=sys.stderr,
    )
    return 1

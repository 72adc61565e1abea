"""``python -m perdure demo`` end to end, in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_crashes_resumes_and_prints_the_scope_tree(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    db.write_text("an old file the demo must replace")
    proc = subprocess.run(
        [sys.executable, "-m", "perdure", "demo", "--db", str(db)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SIGKILL sent to the worker" in out
    assert "Worker killed (exit status" in out
    assert "order-1001 is Running" in out
    assert "resuming with a new Runtime" in out
    assert "order-1001 Completed" in out
    tree = out[out.index("History as task scopes:") :]
    assert '#2 activity QuickCheck("order-1001")  ✗ cancelled: lost select' in tree
    assert "├── task 0.1  ✓ winner" in tree
    assert "│   └── task 0.1.1  ✓ done" in tree
    assert '#3 activity ValidateCustomer("ada")  ✓ → "ada verified" (#4)' in tree
    assert '"approved_by": "full validation"' in out
    # ValidateCustomer completed before the kill: it never ran again.
    assert out.count("ValidateCustomer(ada) running") == 1
    assert f"perdure --db sqlite:///{db.resolve()} history order-1001" in out

"""MkDocs hook: the guide page is README.md, so the two cannot drift."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_README = Path(__file__).resolve().parents[2] / "README.md"
# Links into docs/ become site links; links to other repository files
# (examples/, bench/, CHANGELOG.md) have no page on the site: keep the text.
_DOCS_LINK = re.compile(r"\]\(docs/")
_REPO_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)")


def on_page_markdown(markdown: str, *, page: Any, **_: Any) -> str:
    """Replace the guide page's placeholder with README.md."""
    if page.file.src_uri != "guide.md":
        return markdown
    text = _DOCS_LINK.sub("](", _README.read_text(encoding="utf-8"))
    docs = _README.parent / "docs"
    return _REPO_LINK.sub(lambda m: m[0] if (docs / m[2]).is_file() else m[1], text)

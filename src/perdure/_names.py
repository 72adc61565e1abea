"""Instance ids and names every backend stores the same way.

Ids and names are indexed text: a NUL byte, a lone surrogate or a megabyte
of text is accepted by one backend and refused by another (probe F15), or
refused only when the turn that carries it is committed (F2). Checking them
where they are given, the client call or the orchestration's scheduling
call, fails that call alone, with a message that says why.
"""

from __future__ import annotations

__all__ = ["MAX_NAME_CHARS", "check_name"]

#: Longest instance id or name: ids are indexed, and PostgreSQL's index
#: entries must stay well under 2.7 kB however the text is encoded.
MAX_NAME_CHARS = 512


def check_name(value: object, what: str) -> str:
    """Return *value* if it is a usable id or name.

    Raises:
        ValueError: Not a non-empty str, longer than `MAX_NAME_CHARS`, or
            containing a NUL character or a lone surrogate.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(
            f"{what} is {len(value)} characters; the limit is {MAX_NAME_CHARS}"
        )
    if value.isascii():
        if "\x00" in value:
            raise ValueError(f"{what} {value!r} contains a NUL character")
        return value
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} {value!r} has a lone surrogate, which UTF-8 cannot encode"
        ) from None
    return value

"""Payload encoding: JSON values, dataclasses and pydantic models.

Payloads are stored as JSON values inside history events. `to_json` turns a
user value into a JSON-compatible value (and checks it really is one, and
that it is not too big); `from_json` turns it back, guided by a type hint.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import typing
import uuid
from typing import Any

from ._errors import PayloadError

__all__ = ["MAX_PAYLOAD_BYTES", "check_size", "dumps", "from_json", "loads", "to_json"]

#: Largest encoded payload (input, result, event data, output) accepted.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

_SCALARS = (str, int, float, bool, type(None))
_INF = float("inf")
# Values written as JSON strings and rebuilt from a type hint.
_TEXT_TYPES = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    uuid.UUID,
    decimal.Decimal,
)
# One encoder for the process: json.dumps with options builds a new one per
# call, which showed up in profiles of the turn loop.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _check_text(text: str, path: str) -> None:
    """Refuse a string storage cannot write (a lone surrogate).

    ``os.listdir`` (surrogateescape) and JSON with a truncated escape make
    such strings; caught here, the call that made one fails with a
    `PayloadError` instead of a later commit failing for everything batched
    with it.
    """
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(
            f"{path}: string has a lone surrogate {text[exc.start]!r} at index "
            f"{exc.start}, which UTF-8 cannot encode (decode bytes with "
            "errors='replace', or send them base64-encoded)"
        ) from None


def _convert(value: Any, path: str) -> Any:
    if isinstance(value, _SCALARS):
        if isinstance(value, float) and value != value:  # NaN is not JSON
            raise PayloadError(f"{path}: NaN is not a JSON value")
        if isinstance(value, float) and value in (_INF, -_INF):
            raise PayloadError(f"{path}: {value} is not a JSON value")
        if isinstance(value, str):
            _check_text(value, path)
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(
                    f"{path}: dict key {key!r} is a {type(key).__name__}; "
                    "JSON object keys must be str"
                )
            _check_text(key, path)
            out[key] = _convert(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_convert(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, enum.Enum):
        return _convert(value.value, path)
    if isinstance(value, _TEXT_TYPES):
        # As pydantic's JSON mode writes them; from_json rebuilds them from
        # the type hint (a dataclass field typed datetime, ...).
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _convert(getattr(value, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 model
        return _convert(dump(mode="json"), path)
    raise PayloadError(
        f"{path}: value of type {type(value).__name__} is not serialisable "
        "(use JSON types, a dataclass or a pydantic model)"
    )


def to_json(value: Any, what: str = "payload") -> Any:
    """Return *value* as a JSON-compatible value.

    Raises:
        PayloadError: The value cannot be represented as JSON, or its encoded
            size exceeds `MAX_PAYLOAD_BYTES`.
    """
    try:
        converted = _convert(value, what)
    except RecursionError:
        raise PayloadError(f"{what} is nested too deeply to encode") from None
    check_size(converted, what)
    return converted


def check_size(value: Any, what: str) -> None:
    """Raise `PayloadError` if *value* encodes to more than the limit."""
    if isinstance(value, _SCALARS) and not isinstance(value, str):
        return
    size = len(dumps(value))
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"{what} is {size} bytes encoded; the limit is {MAX_PAYLOAD_BYTES}"
        )


def dumps(value: Any) -> str:
    """Encode a JSON-compatible value compactly."""
    return _ENCODE(value)


def loads(text: str) -> Any:
    """Decode JSON text."""
    return json.loads(text)


# Hints a JSON value of exactly that type already satisfies.
_PLAIN = frozenset({str, int, float, bool, dict, list})


def from_json(value: Any, hint: Any) -> Any:
    """Decode a JSON value into *hint* when the hint asks for a richer type.

    Dataclasses, pydantic models, enums, datetimes, dates, times, UUIDs,
    decimals, and lists/dicts/optionals of them are rebuilt; anything else
    is returned unchanged.

    Raises:
        PayloadError: The value does not fit the requested type.
    """
    if hint is None or hint is Any or value is None:
        return value
    if type(value) is hint and hint in _PLAIN:
        return value  # nothing to rebuild (most activity inputs and results)
    try:
        return _decode(value, hint)
    except PayloadError:
        raise
    except Exception as exc:
        raise PayloadError(f"cannot decode {value!r} as {hint!r}: {exc}") from exc


def _decode(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is not None:
        args = typing.get_args(hint)
        if origin in (list, tuple, set, frozenset) and args and isinstance(value, list):
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                return tuple(_decode(v, a) for v, a in zip(value, args, strict=False))
            return origin(_decode(v, args[0]) for v in value)
        if origin is dict and len(args) == 2 and isinstance(value, dict):
            return {k: _decode(v, args[1]) for k, v in value.items()}
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            for arg in args:
                if arg is type(None):
                    continue
                try:
                    return _decode(value, arg)
                except Exception:
                    continue
        return value
    if not isinstance(hint, type):
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        kwargs = {
            f.name: _decode(value[f.name], hints.get(f.name, Any))
            for f in dataclasses.fields(hint)
            if f.name in value
        }
        return hint(**kwargs)
    validate = getattr(hint, "model_validate", None)
    if callable(validate):
        return validate(value)
    if issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(value, str) and issubclass(hint, _TEXT_TYPES):
        return _from_text(hint, value)
    return value


def _from_text(hint: type[Any], value: str) -> Any:
    if issubclass(hint, datetime.date | datetime.time):
        return hint.fromisoformat(value)
    return hint(value)

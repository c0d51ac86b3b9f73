"""JSON text of stored values, fast (pure; no Django).

>>> dumps({"b": 1, "a": "é"})
'{"b":1,"a":"é"}'
>>> dumps({"x": float("nan")})
'{"x": NaN}'
"""

from __future__ import annotations

import json
import math

import orjson

# orjson writes what json.dumps writes, ~10x faster; these make it refuse (TypeError) what it
# would write differently from the standard library (dataclasses, datetimes, subclasses of
# str/int/dict/list), so those take the standard encoder and fail or succeed as before.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def dumps(value) -> str:
    """JSON text of ``value``: the same JSON value as ``json.dumps(value, ensure_ascii=False)``.

    Written by orjson (compact separators; key order kept). Everything that reads these columns
    parses them (JSONField, ``json.loads``, SQLite's JSON functions), so the value matters, not
    the spacing. Where orjson would write a different value or refuses one (NaN and infinities,
    which it writes as null; integers beyond 64 bits; non-string keys; lone surrogates; types
    JSON has no word for) the standard encoder writes it, as before.
    """
    try:
        out = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False)
    if b"null" in out and _has_nonfinite(value):
        return json.dumps(value, ensure_ascii=False)
    return out.decode()


def _has_nonfinite(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, float) and not math.isfinite(v):
            return True
    return False

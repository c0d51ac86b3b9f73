"""Text the database cannot store, found before it is written (pure; no Django).

A lone UTF-16 surrogate (JSON ``"\\ud800"``) is not a character: it cannot be encoded as UTF-8, so
neither SQLite nor PostgreSQL takes it. PostgreSQL's text columns also refuse NUL (``"\\u0000"``).
Both come from JSON escapes, so a file without ``\\u0000`` or ``\\ud8``..``\\udf`` escapes cannot hold
them (:func:`may_hold_unstorable`, one scan of the file), and only such files are checked record by
record (:func:`check`).

>>> check({"turns": [{"user": "a\\x00b"}]}, None)
Traceback (most recent call last):
...
annotate.trajectory.SchemaError: turns[0].user: holds a NUL character (\\u0000), which cannot be stored
"""

from __future__ import annotations

import re
from typing import Any

from annotate.trajectory import SchemaError, Trajectory

_ESCAPES = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def may_hold_unstorable(text: str) -> bool:
    """Whether a file's JSON text has an escape that could decode to a NUL or a lone surrogate."""
    return _ESCAPES.search(text) is not None or "\x00" in text


def check(record: Any, traj: Trajectory | None) -> None:
    """Raise SchemaError naming the first field of ``record`` (or, for text parsed out of it such as
    arguments given as JSON text, of ``traj``) that holds a NUL or a lone surrogate."""
    found = _first_unstorable(record, "")
    if found is None and traj is not None:
        found = _first_unstorable(traj.to_dict(), "")
        if found is not None:
            found = (f"(in the imported trajectory) {found[0]}", found[1])
    if found is not None:
        raise SchemaError(found[1], found[0])


def _first_unstorable(value: Any, base: str) -> tuple[str, str] | None:
    stack = [(value, base)]
    while stack:
        v, path = stack.pop()
        if type(v) is dict:
            for k, x in v.items():
                p = f"{path}.{k}" if path else str(k)
                problem = _problem(k) if type(k) is str else None
                if problem:
                    return p, f"the key {problem}"
                stack.append((x, p))
        elif type(v) is list:
            stack.extend((x, f"{path}[{i}]") for i, x in enumerate(v))
        elif type(v) is str:
            problem = _problem(v)
            if problem:
                return path, problem
    return None


def _problem(s: str) -> str | None:
    if "\x00" in s:
        return "holds a NUL character (\\u0000), which cannot be stored"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"holds a lone surrogate ({s[e.start]!r} at character {e.start}), which is not a character "
                "and cannot be stored")
    return None

"""Checks every importer of a public data set must pass: the raw export round-trips, and no value of
the input is lost on the way (its leaves, or for text formats its words, are in the raw export)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from annotate import formats
from annotate.trajectory import Trajectory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def records(path: Path) -> list[dict]:
    """The records of a fixture file: a JSON array, or JSON Lines."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def raw_export(traj: Trajectory) -> dict:
    return formats.FORMATS["raw"].write(traj)


def raw_round_trip(traj: Trajectory) -> Trajectory:
    """Export to the raw format, through JSON text, and import again."""
    record = json.loads(json.dumps(raw_export(traj), ensure_ascii=False))
    return formats.FORMATS["raw"].read(record, source=traj.meta.source)


def leaves(value: Any, keys: bool = True) -> list:
    """The strings and numbers of a JSON value (its object keys too, unless ``keys`` is false)."""
    out: list = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if keys:
                out.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out.append(v)
    return out


def missing_leaves(source: Any, exported: dict) -> list:
    """The values of ``source`` (its keys being its syntax) that are neither a leaf of ``exported`` nor
    inside one of its strings."""
    out_leaves = leaves(exported)
    strings = [s for s in out_leaves if isinstance(s, str)]
    found = set(out_leaves)
    missing = []
    for leaf in leaves(source, keys=False):
        if leaf in found:
            continue
        text = leaf.strip() if isinstance(leaf, str) else json.dumps(leaf)
        if not any(text in s for s in strings):
            missing.append(leaf)
    return missing


WORD = re.compile(r"\w+")


def missing_words(source: Any, exported: dict, markers: set[str] = frozenset()) -> set[str]:
    """The words of the source's strings (markers of the source's syntax aside) absent from the export."""
    have = {w for s in leaves(exported) for w in WORD.findall(str(s))}
    want = {w for s in leaves(source, keys=False) for w in WORD.findall(str(s))}
    return want - have - set(markers)

"""Reading a file of preference records of any format into pairs, every problem naming its line and field (pure).

A record with ``candidates`` is the candidates shape (:mod:`annotate.pairs.candidates`); any other is
detected as an import format (:mod:`annotate.formats`) whose ``pairs`` reader gives its pairs
(When2Call's test questions and preference rows, ToolBench answer trees).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from annotate import formats
from annotate.pairs.candidates import pairs_from_candidates
from annotate.pairs.core import Pair, PairError
from core import strict_json

@dataclass
class CandidatesResult:
    """Pairs read from a file of candidate records: ``(line, pair)`` and problems naming line and field."""

    file: str
    pairs: list[tuple[int, Pair]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    records: int = 0
    # The formats of the records read, in order ("candidates", "when2call", "toolbench" ...).
    formats: dict[str, None] = field(default_factory=dict)


def pairs_from_record(record: Any, categories: dict | None = None, override: str = "") -> tuple[str, list[Pair]]:
    """``(format, pairs)`` for one record of any format that holds preference data.

    A record with ``candidates`` is read by :func:`pairs_from_candidates`; any other is detected as
    an import format (``annotate.formats``) whose ``pairs`` reader gives its pairs (When2Call's
    test questions and preference rows, ToolBench answer trees). Raises ``PairError``. ``override``
    (a lead's reason) keeps chosen sides that fail validation.
    """
    name = formats.detect(record) if isinstance(record, dict) and "candidates" not in record else None
    if name is None:  # the candidates shape, or nothing known: its reader names what is missing
        return "candidates", pairs_from_candidates(record, categories, override)
    fmt = formats.FORMATS[name]
    if fmt.pairs is None:
        raise PairError(f"a {fmt.title or fmt.name} record holds no preference pairs (import it as trajectories): "
                        "expected 'question' with 'candidates' and 'correct', a When2Call test question or "
                        "preference row, or a ToolBench answer tree", "candidates")
    return fmt.name, fmt.pairs(record, categories, override)


def parse_candidates(data: bytes, filename: str, categories: dict | None = None, *,
                     skip_invalid: bool = False, override: str = "") -> CandidatesResult:
    """Read a JSON Lines file, a JSON array or one JSON object of preference records into pairs;
    never raises on user data (see :func:`pairs_from_record` for the record shapes).

    All-or-nothing: when any record is bad, no pair comes back and every problem is listed, unless
    ``skip_invalid`` asks for the pairs of the good records (the bad ones are still listed).

    >>> r = parse_candidates(b'{"question": "hi", "candidates": [{"answer": "a"}, {"answer": "b"}], "correct": 0}\\n'
    ...                      b'{"question": "x"}\\n', "p.jsonl")
    >>> r.pairs, r.errors
    ([], [{'file': 'p.jsonl', 'line': 2, 'field': 'candidates', 'message': 'must be a list of at least two candidates'}])
    """
    out = CandidatesResult(file=filename)

    def problem(line, field_, message):
        out.errors.append({"file": filename, "line": line, "field": field_, "message": message})

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problem(data.count(b"\n", 0, e.start) + 1, "", f"not UTF-8: byte 0x{data[e.start]:02x}")
        return out
    stripped = text.lstrip()
    whole = None
    if stripped.startswith("{") and "\n" in stripped.rstrip():
        try:  # one pretty-printed object (a ToolBench answer file); JSON Lines fails here at once
            whole = strict_json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None
    if isinstance(whole, dict):
        records = [(1 + text[:len(text) - len(stripped)].count("\n"), whole)]
    elif stripped.startswith("["):
        try:
            items = strict_json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            problem(getattr(e, "lineno", None), "", f"not valid JSON: {getattr(e, 'msg', 'nested too deeply')}")
            return out
        records = [(i + 1, r) for i, r in enumerate(items)]  # "line" is the record's position here
    else:
        records = []
        for i, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            try:
                records.append((i + 1, strict_json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as e:
                problem(i + 1, "", f"not valid JSON: {getattr(e, 'msg', 'nested too deeply')}")
    out.records = len(records) + len(out.errors)
    for line, rec in records:
        try:
            name, got = pairs_from_record(rec, categories, override)
        except PairError as e:
            problem(line, e.field, e.message)
            continue
        except RecursionError:
            problem(line, "", "nested too deeply to read")
            continue
        except Exception as e:  # a reader bug must not lose the report for the other records
            problem(line, "", f"could not read this record ({type(e).__name__}: {e}); please report it")
            continue
        out.formats[name] = None
        out.pairs.extend((line, p) for p in got)
    if out.errors and not skip_invalid:
        out.pairs = []
    return out

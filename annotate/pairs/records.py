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
from annotate.ingest.reader import MAX_LISTED, Problems, split_lines, stopped_note, unlisted_note
from core import strict_json

@dataclass
class CandidatesResult:
    """Pairs read from a file of candidate records: ``(line, pair)`` and problems naming line and field."""

    file: str
    pairs: list[tuple[int, Pair]] = field(default_factory=list)
    errors: Problems = field(default_factory=Problems)  # (the first MAX_LISTED listed, the others counted)
    records: int = 0
    # The formats of the records read, in order ("candidates", "when2call", "toolbench" ...).
    formats: dict[str, None] = field(default_factory=dict)
    skipped: int = 0  # the records with problems


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


class _Unreadable(str):
    """A line of JSON Lines that is not JSON, as what :func:`_json_lines` gives for its record: the problem."""


def _json_lines(text: str):
    """``(line, record)`` of each line of JSON Lines, read one at a time; a line that is not JSON
    gives an :class:`_Unreadable` (its problem) as its record."""
    for i, line in enumerate(split_lines(text), 1):
        if line.strip():
            try:
                yield i, strict_json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                yield i, _Unreadable(f"not valid JSON: {getattr(e, 'msg', 'nested too deeply')}")


def parse_candidates(data: bytes, filename: str, categories: dict | None = None, *,
                     skip_invalid: bool = False, override: str = "") -> CandidatesResult:
    """Read a JSON Lines file, a JSON array or one JSON object of preference records into pairs;
    never raises on user data (see :func:`pairs_from_record` for the record shapes).

    All-or-nothing: when any record is bad, no pair comes back and the problems are listed, unless
    ``skip_invalid`` asks for the pairs of the good records (the bad ones are still listed). The
    first ``MAX_LISTED`` problems are listed, the others counted (``errors.unlisted``; a note first says
    so), and without ``skip_invalid`` reading stops once that many are found (a note says so too):
    a 3 MB file of a million ``{}`` lines made a million problems, 450 MB.

    >>> r = parse_candidates(b'{"question": "hi", "candidates": [{"answer": "a"}, {"answer": "b"}], "correct": 0}\\n'
    ...                      b'{"question": "x"}\\n', "p.jsonl")
    >>> r.pairs, r.errors
    ([], [{'file': 'p.jsonl', 'line': 2, 'field': 'candidates', 'message': 'must be a list of at least two candidates'}])
    """
    out = CandidatesResult(file=filename)
    stopped = False

    def problem(line, field_, message):
        out.skipped += 1  # (a record has one problem at most: the reading of a record stops at its first)
        out.errors.append({"file": filename, "line": line, "field": field_, "message": message})

    def full() -> bool:
        return not skip_invalid and len(out.errors) >= MAX_LISTED

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
        records = _json_lines(text)  # (read as they are converted: what is not kept is freed at once)
    for line, rec in records:
        if full():
            stopped = True
            break
        out.records += 1
        if type(rec) is _Unreadable:
            problem(line, "", str(rec))
            continue
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
    notes = [stopped_note(out.skipped)] if stopped else []
    if out.errors.unlisted:
        notes.append(unlisted_note(out.errors.unlisted, len(out.errors)))
    out.errors[:0] = [{"file": filename, "line": None, "field": "", "message": m} for m in notes]
    if out.errors and not skip_invalid:
        out.pairs = []
    return out

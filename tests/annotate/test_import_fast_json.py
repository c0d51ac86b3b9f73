"""The import reads JSON Lines with orjson (a third faster), and what it imports or reports is what the
standard library's reading gives: integers beyond 64 bits (which orjson reads as floats), 1, 1.0 and
true told apart, and numbers Python cannot read refused naming the line, never a crash."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.formats import raw
from annotate.ingest import reader
from annotate.ingest.reader import parse_file
from core import strict_json
from tests.annotate.test_format_new_properties import SAMPLES, places

BASE = {"system": "Be brief.",
        "tools": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}],
        "turns": [{"user": "hi", "assistant_tool": {"name": "f", "arguments": {"a": 1}}, "tool_result": "r",
                   "assistant_answer": "ok"}]}
# Numbers at the edges of what orjson reads exactly (64-bit integers), and the values Python finds
# equal to each other (1 == 1.0 == True).
EDGES = [2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1, -2**63, -2**63 - 1, -2**64, 10**30, -10**30, 1e19, -1e19,
         9.2e18, 1, 1.0, True, 0, 0.0, -0.0, False, 2.5]
NUMBERS = st.one_of(st.sampled_from(EDGES), st.integers(), st.floats(allow_nan=False, allow_infinity=False))


def both_ways(data: bytes, **kw):
    """parse_file's outcome (trajectories written out exactly by repr, errors, counts) with orjson,
    and with the standard library alone."""
    out = []
    for fast in (True, False):
        reader.FAST_JSON = fast
        try:
            r = parse_file(data, "f.jsonl", **kw)
        finally:
            reader.FAST_JSON = True
        out.append(([(line, repr(t)) for line, t in r.trajectories], [str(e) for e in r.errors], r.records, r.format))
    return out


@st.composite
def files(draw):
    """A few records, each a sample of some format (or the raw BASE), with numbers put anywhere."""
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(["raw", "raw", *sorted(SAMPLES)]))
        rec = copy.deepcopy(BASE if name == "raw" else SAMPLES[name])
        spots = sorted(places(rec), key=lambda pv: repr(pv[0]))
        for _ in range(draw(st.integers(0, 3))):
            path, target = draw(st.sampled_from(spots))
            value = draw(NUMBERS)
            if isinstance(target, dict) and (not target or draw(st.booleans())):
                target[draw(st.sampled_from(["zz_extra", "default", "id_"]))] = value
            elif isinstance(target, dict):
                target[draw(st.sampled_from(sorted(target)))] = value
            elif target:
                target[draw(st.integers(0, len(target) - 1))] = value
        lines.append(json.dumps(rec))
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files(), st.booleans())
def test_reading_with_orjson_gives_what_the_standard_library_gives(data, skip_invalid):
    fast, exact = both_ways(data, skip_invalid=skip_invalid)
    assert fast == exact


NUMBERS_BEYOND = (-2**63, -2**63 - 1, 2**64, -2**63 - 1, 10**30, 2**63, 2**64 - 1, 2**64 + 1)


@pytest.mark.parametrize("where", ["arguments", "extra", "reference", "tool_default", "result"])
def test_integers_beyond_64_bits_keep_every_digit(where):
    """orjson reads 18446744073709551616 as the float 1.8446744073709552e19: the import must not."""
    lines = []
    # (-2**63 first: orjson reads -2**63 - 1 as the float -2.0**63, which Python finds equal to it)
    for n in NUMBERS_BEYOND:
        rec = copy.deepcopy(BASE)
        if where == "arguments":
            rec["turns"][0]["assistant_tool"]["arguments"]["a"] = n
        elif where == "extra":
            rec["big"] = n
        elif where == "reference":
            rec["meta"] = {"reference": {"n": n}}
        elif where == "tool_default":
            rec["tools"][0]["parameters"]["properties"]["a"]["default"] = n
        else:
            rec["turns"][0]["tool_result"] = {"n": n}
        lines.append(json.dumps(rec))
    r = parse_file(("\n".join(lines) + "\n").encode(), "big.jsonl")
    assert r.errors == []
    exported = "\n".join(json.dumps(raw.from_trajectory(t)) for _, t in r.trajectories)
    for n in NUMBERS_BEYOND:
        assert str(n) in exported
    assert "e+" not in exported and "e19" not in exported and "e30" not in exported


def test_tools_that_differ_only_as_1_1_0_and_true_keep_their_own_values():
    """Python finds 1 == 1.0 == True: the per-file tool memo handed a record the previous record's
    tool when the two were equal that way (a default of true became the earlier record's 1)."""
    lines = []
    for default in (1, True, 1.0, 1):
        rec = copy.deepcopy(BASE)
        rec["tools"][0]["parameters"]["properties"]["a"]["default"] = default
        lines.append(json.dumps(rec))
    r = parse_file(("\n".join(lines) + "\n").encode(), "tools.jsonl")
    assert r.errors == []
    got = [t.tools[0]["parameters"]["properties"]["a"]["default"] for _, t in r.trajectories]
    assert [(type(v), v) for v in got] == [(int, 1), (bool, True), (float, 1.0), (int, 1)]


@pytest.mark.parametrize("shape", ["jsonl", "array", "second line"])
def test_an_integer_of_5000_digits_is_refused_naming_its_line(shape):
    """Python refuses to read integers of over 4,300 digits with a ValueError: the import crashed."""
    rec = '{"turns": [{"user": "hi", "assistant_answer": "yo"}], "x": %s}' % ("9" * 5000)
    ok = '{"turns": [{"user": "hi", "assistant_answer": "yo"}]}'
    data = {"jsonl": rec + "\n", "array": f"[{rec}]", "second line": f"{ok}\n{rec}\n"}[shape]
    r = parse_file(data.encode(), "huge.jsonl")
    line = 2 if shape == "second line" else 1
    assert [str(e).split(" (write")[0] for e in r.errors] == [
        f"huge.jsonl:{line}: not valid JSON: a number has over 4,300 digits"]
    assert r.trajectories == []


def test_strict_json_refuses_an_integer_of_5000_digits_as_a_json_error():
    """Every other reader of user JSON (pairs, eval sets, arguments typed in the editor) catches
    json.JSONDecodeError; Python's ValueError for too many digits got past them."""
    with pytest.raises(json.JSONDecodeError, match="over 4,300 digits"):
        strict_json.loads("[" + "9" * 5000 + "]")
    assert strict_json.loads("[12345678901234567890123]") == [12345678901234567890123]

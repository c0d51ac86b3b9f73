"""Nothing lost at the door, for ToolBench and When2Call: the published samples with extra keys at any
level and odd values anywhere import with every string and number kept in the trajectory's document
(what the raw export writes), or are refused naming the field."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.ingest.reader import parse_file
from tests.annotate.test_format_toolbench import RECORD as TOOLBENCH
from tests.annotate.test_format_when2call import MCQ, PREF, leaves

SFT = {"tools": PREF["tools"], "messages": PREF["messages"] + [PREF["rejected_response"]]}
SAMPLES = {"toolbench": TOOLBENCH, "when2call": MCQ, "when2call_pref": PREF, "when2call_sft": SFT}

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def places(value, path=()):
    """Every (path, object or list) inside ``value``."""
    out = []
    stack = [(path, value)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, dict):
            out.append((p, v))
            stack.extend((p + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            out.append((p, v))
            stack.extend((p + (i,), x) for i, x in enumerate(v))
    return out


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SAMPLES)))
    rec = copy.deepcopy(SAMPLES[name])
    spots = sorted(places(rec), key=lambda pv: repr(pv[0]))
    for _ in range(draw(st.integers(1, 3))):
        path, target = draw(st.sampled_from(spots))
        value = draw(VALUES)
        if isinstance(target, dict) and (not target or draw(st.booleans())):
            target[draw(st.sampled_from(["zz_extra", "Extra Key", "id_"]))] = value  # an extra key
        elif isinstance(target, dict):
            target[draw(st.sampled_from(sorted(target)))] = value  # an odd value where another was
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = value
    return name, rec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_every_value_is_kept_or_the_record_is_refused_naming_the_field(case):
    name, rec = case
    r = parse_file(json.dumps(rec).encode(), "f.jsonl")
    if r.errors:
        [e] = r.errors
        assert "please report" not in e.message, e.message
        assert e.field or e.message.startswith("cannot tell"), str(e)
        return
    [(_, t)] = r.trajectories
    document = set(map(repr, leaves(t.to_dict())))
    # A tool result given as another JSON value is kept as its JSON text (by design): its leaves
    # are then in that text, as JSON writes them.
    texts = " ".join(s.text for _, _, s in t.steps() if s.kind == "tool_result")
    lost = [v for v in leaves(rec) if repr(v) not in document and not (
        isinstance(v, (int, float, str)) and json.dumps(v, ensure_ascii=False) in texts)]
    assert lost == [], (r.format, lost)


def test_a_control_character_in_a_value_kept_as_json_text_is_found_kept():
    """Found by the property test above: a ToolBench function message whose content is a list is
    kept as its JSON text, where JSON escapes control characters ('0\\u001fA'); the conservation
    check looked for the raw value, split it into words and refused the record as a converter bug."""
    rec = copy.deepcopy(TOOLBENCH)
    messages = rec["answer_generation"]["train_messages"][-1]
    at = next(i for i, m in enumerate(messages) if m.get("role") == "function")
    messages[at]["content"] = ["0\x1fA", "tab\there", "quote \" and \\"]
    r = parse_file(json.dumps(rec).encode(), "f.jsonl")
    assert r.errors == []
    [(_, t)] = r.trajectories
    texts = [s.text for _, _, s in t.steps() if s.kind == "tool_result"]
    assert json.dumps(["0\x1fA", "tab\there", "quote \" and \\"], ensure_ascii=False) in texts

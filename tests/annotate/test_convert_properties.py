"""Properties over generated data: export then import gives identical trajectories, and no input
makes a converter raise anything but a SchemaError."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.formats import bfcl as convert_bfcl, messages as convert_messages, raw as convert_raw
from annotate.formats import sharegpt as convert_sharegpt, tau_bench as convert_tau, toolrl as convert_toolrl
from annotate.formats import dump_jsonl, export_records
from annotate.ingest.reader import parse_file
from annotate.trajectory import CASE_TYPES, SPLITS, Meta, SchemaError, Step, Trajectory, Turn

# Text that trips naive converters: tags, error-looking prefixes, blank and multi-line strings.
TRICKY = ["", " ", "\n", "<think>x</think>", "<think>", "</think>", "Error: failed", '{"error": "x"}',
          "<tool_call>{}</tool_call>", "null", "{}", "[1, 2]", '"quoted"', "é ✓ 漢字"]
# (No NUL and no lone surrogate: the importer refuses them, as the database cannot store them.)
texts = st.one_of(st.sampled_from(TRICKY), st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                                                   max_size=30))
names = st.text("abcdefghij_.-", min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
arguments = st.one_of(st.dictionaries(names, json_values, max_size=3), json_values)
extras = st.dictionaries(names, json_values, max_size=2)  # a source's values with no canonical place
annotation = st.fixed_dictionaries({"labels": st.lists(names, max_size=2), "note": texts, "train": st.booleans(),
                                    "extra": extras})


@st.composite
def turns(draw, n_turns: int) -> list[Turn]:
    """Turns whose results answer earlier open calls only (what an importer accepts), ids unique."""
    out, open_calls, serial = [], {}, 0
    for _ in range(n_turns):
        steps: list[Step] = []
        for _ in range(draw(st.integers(0, 6))):
            ann = draw(annotation)
            kind = draw(st.sampled_from(["think", "answer", "calls", "result"]))
            if kind == "result" and open_calls:
                cid = draw(st.sampled_from(sorted(open_calls)))
                name = draw(st.sampled_from([open_calls.pop(cid), "other_name"]))
                steps.append(Step("tool_result", draw(texts), name, None, cid, draw(st.booleans()), **ann))
            elif kind == "calls":
                for _ in range(draw(st.integers(1, 3))):  # one call, or parallel calls
                    serial += 1
                    cid = draw(st.sampled_from([f"call_{serial}", f"id {serial} ✓"]))
                    name = draw(names)
                    open_calls[cid] = name
                    steps.append(Step("tool_call", "", name, draw(arguments), cid, True, **ann))
            elif kind in ("think", "answer"):
                steps.append(Step(kind, draw(texts), **ann))
        out.append(Turn(draw(texts), steps, draw(extras)))
    return out


tools = st.lists(st.builds(lambda n, d: {"name": n, "description": d,
                                         "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}},
                           names, texts), max_size=2, unique_by=lambda t: t["name"])
metas = st.builds(Meta, source=texts, external_id=texts, case_types=st.lists(st.sampled_from(CASE_TYPES), unique=True),
                  split=st.sampled_from(SPLITS), tags=st.lists(names, max_size=2),
                  reference=st.none() | json_values, extra=st.dictionaries(names, json_values, max_size=2))
trajectories = st.builds(Trajectory, system=texts, tools=tools, turns=st.integers(0, 3).flatmap(turns), meta=metas)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt", ["raw", "messages"])
@PROPERTY
@given(trajs=st.lists(trajectories, min_size=1, max_size=3))
def test_export_then_import_gives_identical_trajectories(fmt, trajs):
    data = dump_jsonl(export_records(trajs, fmt)).encode()
    result = parse_file(data, f"export.{fmt}.jsonl")
    assert result.errors == []
    assert [t for _, t in result.trajectories] == trajs
    # and once more: a second round trip changes nothing either
    again = parse_file(dump_jsonl(export_records(trajs, fmt)).encode(), "again.jsonl")
    assert [t for _, t in again.trajectories] == trajs


CONVERTERS = [convert_raw.to_trajectory, convert_messages.to_trajectory, convert_sharegpt.to_trajectory,
              convert_bfcl.to_trajectory, convert_tau.to_trajectory, convert_toolrl.to_trajectory]
KEYS = ["turns", "messages", "conversations", "traj", "question", "function", "output", "input", "instruction",
        "example", "tools", "system", "meta", "id", "role", "content", "tool_calls", "from", "value", "user",
        "assistant_tool", "tool_result", "assistant_think", "assistant_answer", "steps", "name", "arguments",
        "function_call", "tool_call_id", "kind", "call_id", "info", "reward"]
ROLES = ["system", "user", "assistant", "tool", "function", "human", "gpt", "observation", "function_call",
         "assistant_think", "assistant_tool", "assistant_answer", "tool_result"]
fuzz_leaf = st.none() | st.booleans() | st.integers() | st.sampled_from(ROLES + TRICKY) | texts
fuzz = st.recursive(fuzz_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(KEYS) | texts, inner, max_size=5), max_leaves=25)


@pytest.mark.parametrize("convert", CONVERTERS, ids=lambda f: f.__module__.rsplit(".", 1)[-1])
@settings(max_examples=120, deadline=None)
@given(record=st.dictionaries(st.sampled_from(KEYS), fuzz, max_size=6))
def test_any_record_converts_or_raises_a_schema_error(convert, record):
    try:
        t = convert(record)
    except SchemaError as e:
        assert isinstance(e.field, str) and e.message
    else:
        json.dumps(t.to_dict())  # what came back is plain JSON data


@PROPERTY
@given(trajs=st.lists(trajectories, min_size=1, max_size=3))
def test_the_import_writes_each_trajectory_the_search_text_the_search_module_gives(trajs):
    """The import's row builder writes the search text from its own walk over the steps (sharing the
    arguments' JSON text with the step rows); a save and the index rebuild use search_text: the
    same trajectory must get the same words either way."""
    from annotate.ingest.rows import RowBuilder
    from annotate.search import search_text

    rows = RowBuilder(1, "draft", "2026-01-01", True)
    for i, t in enumerate(trajs):
        rows.add(i, t)
    assert rows.rows()[4] == [(i, search_text(t)) for i, t in enumerate(trajs)]

"""A property over the public-data-set formats: a real record with extra keys (JSON values of any
kind) and odd text imports with every value of the input in the raw export, or is refused naming a
field; never a silent drop, never another exception."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.ingest.reader import parse_file
from tests.annotate.format_checks import FIXTURES, missing_leaves, raw_export, records

TRICKY = ["", " ", "\n", "USER:", "ASSISTANT: hi", "<functioncall>", "<|endoftext|>", "[f(a=1)]", "[x]", "{}",
          "null", "Error: failed", "é ✓ 漢字", "it's", '"quoted"']
texts = st.one_of(st.sampled_from(TRICKY), st.text(st.characters(exclude_categories=("Cs",)), max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=6)
extras = st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6).map(lambda k: "x_" + k), json_values, max_size=3)

SAMPLES = {
    "bfcl_multi_turn": records(FIXTURES / "bfcl_multi_turn" / "BFCL_v4_multi_turn_miss_func.json")[3],
    "xlam": records(FIXTURES / "xlam" / "xlam_function_calling_60k_sample.json")[0],
    "glaive": records(FIXTURES / "glaive" / "glaive-function-calling-v2_sample.json")[1],
    "toolace": records(FIXTURES / "toolace" / "ToolACE_data_sample.json")[0],
}


def entries(fmt: str, record: dict) -> list[dict]:
    """The objects inside a record that an extra key may be added to and that map to a turn or step."""
    if fmt == "bfcl_multi_turn":
        return [m for turn in record["question"] for m in turn]
    if fmt == "toolace":
        return record["conversations"]
    return []


def vary(fmt: str, record: dict, draw) -> dict:
    record = copy.deepcopy(record)
    record.update(draw(extras))
    for e in entries(fmt, record):
        e.update(draw(extras))
    if fmt == "bfcl_multi_turn":
        record["question"][0][0]["content"] = draw(texts)
    elif fmt == "xlam":
        record["query"] = draw(texts)
        tools = json.loads(record["tools"])
        tools[0].update(draw(extras))
        tools[0]["parameters"]["type"]["x_note"] = draw(json_values)
        record["tools"] = json.dumps(tools) if draw(st.booleans()) else tools  # a string or a list
    elif fmt == "glaive":
        record["chat"] = record["chat"].replace("I have a text here", draw(texts).replace("\n", " "), 1)
    elif fmt == "toolace":
        record["conversations"][3]["value"] = draw(texts)
    return record


def source_values(fmt: str, record: dict):
    """What must reach the export: the whole record for the JSON formats (xLAM's strings parsed),
    for the text formats the values of the keys they do not parse."""
    if fmt == "xlam":
        tools = record["tools"]
        return {**record, "tools": json.loads(tools) if isinstance(tools, str) else tools,
                "answers": json.loads(record["answers"])}
    if fmt == "bfcl_multi_turn":
        return record
    known = ("system", "chat") if fmt == "glaive" else ("system",)
    kept = {k: v for k, v in record.items() if k not in known}
    if fmt == "toolace":  # conversation values that are not calls (calls are mapped to name + arguments)
        kept["conversations"] = [{**c, "value": c["value"] if not c["value"].startswith("[") else ""}
                                 for c in kept["conversations"]]
    return kept


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_every_value_reaches_the_raw_export_or_the_record_is_refused_naming_a_field(fmt, data):
    record = vary(fmt, SAMPLES[fmt], data.draw)
    result = parse_file(json.dumps([record]).encode(), "p.json")
    if result.errors:
        assert [(e.line, bool(e.field)) for e in result.errors] == [(1, True)], result.errors
        return
    assert result.format == fmt
    (_, traj), = result.trajectories
    assert missing_leaves(source_values(fmt, record), raw_export(traj)) == []


def test_each_documented_example_is_detected_as_its_format_and_imports():
    from annotate import formats

    for name in sorted(SAMPLES):
        example = formats.FORMATS[name].example
        assert formats.detect(example) == name
        result = parse_file(json.dumps(example).encode(), "example.json")
        assert result.errors == [] and len(result.trajectories) == 1, name

"""Nothing lost at the door: every value of an imported record is mapped, kept in ``extra``, or the
record is refused with an error naming the field; in every format (pure, no database)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate import formats
from annotate.formats import Format, conservation
from annotate.formats.raw import from_trajectory, to_trajectory
from annotate.ingest.reader import parse_file
from annotate.trajectory import Meta, Step, Trajectory, Turn


def imported(record: dict) -> Trajectory:
    result = parse_file(json.dumps(record).encode(), "t.jsonl")
    assert result.errors == []
    return result.trajectories[0][1]


def raw_export_text(t: Trajectory) -> str:
    """Every string and number of the raw export, one per line (what a user gets back)."""
    out: list[str] = []
    stack = [from_trajectory(t)]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(repr(v))
    return "\n".join(out)


# --- the cases from the issue, reproduced -----------------------------------------------------------

def turn_with_result(result) -> dict:
    return {"turns": [{"user": "Weather in Paris?", "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}},
                       "tool_result": result, "assistant_answer": "Done."}]}


def test_a_tool_result_given_as_a_json_object_keeps_its_json_text():
    t = imported(turn_with_result({"forecast": "rain"}))
    result = t.turns[0].steps[1]
    assert (result.kind, json.loads(result.text), result.ok) == ("tool_result", {"forecast": "rain"}, True)


def test_a_list_of_objects_answering_one_call_is_that_calls_result():
    t = imported(turn_with_result([{"forecast": "rain"}, {"forecast": "sun"}]))
    assert [s.kind for s in t.turns[0].steps] == ["tool_call", "tool_result", "answer"]
    assert json.loads(t.turns[0].steps[1].text) == [{"forecast": "rain"}, {"forecast": "sun"}]


def test_an_error_key_marks_the_result_failed_and_keeps_its_message():
    t = imported(turn_with_result({"error": "service unavailable"}))
    result = t.turns[0].steps[1]
    assert result.ok is False and "service unavailable" in result.text


def test_an_error_beside_content_is_kept_in_the_steps_extra():
    t = imported(turn_with_result({"content": "partial data", "error": "timeout after 3 s"}))
    result = t.turns[0].steps[1]
    assert (result.text, result.ok, result.extra) == ("partial data", False, {"error": "timeout after 3 s"})


def test_steps_spelled_with_type_and_content_become_steps():
    t = imported({"turns": [{"user": "Weather in Paris?", "steps": [
        {"type": "think", "content": "One call."},
        {"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"type": "tool_result", "content": "18 C"},
        {"type": "answer", "content": "18 C in Paris."}]}]})
    assert [(s.kind, s.text or s.name) for s in t.turns[0].steps] == [
        ("think", "One call."), ("tool_call", "get_weather"), ("tool_result", "18 C"), ("answer", "18 C in Paris.")]


def test_anthropic_style_steps_read_too():
    t = imported({"turns": [{"user": "Weather?", "steps": [
        {"type": "thinking", "thinking": "Call it."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C"}]},
        {"type": "text", "text": "18 C."}]}]})
    steps = t.turns[0].steps
    assert [s.kind for s in steps] == ["think", "tool_call", "tool_result", "answer"]
    assert (steps[1].call_id, steps[1].arguments, steps[2].call_id, steps[2].text) == (
        "toolu_1", {"city": "Paris"}, "toolu_1", "18 C")


@pytest.mark.parametrize("calls", [
    '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
    '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
    [{"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}, "id": "c1", "type": "function"}],
])
def test_tool_calls_may_be_objects_json_strings_or_lists(calls):
    t = imported({"turns": [{"user": "u", "assistant_tool": calls, "tool_result": "18 C"}]})
    call = t.turns[0].steps[0]
    assert (call.name, call.arguments, call.extra) == ("get_weather", {"city": "Paris"}, {})


def test_unknown_keys_at_every_level_are_kept_and_written_back():
    record = {"id": "r-7", "dataset": "handmade", "turns": [{
        "user": "Weather?", "lang": "en",
        "assistant_think": {"text": "Call it.", "confidence": 0.5},
        "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}, "latency_ms": 120},
        "tool_result": {"content": "18 C", "cached": True},
        "assistant_answer": "18 C."}]}
    t = imported(record)
    turn = t.turns[0]
    assert t.meta.external_id == "r-7" and t.meta.extra == {"dataset": "handmade"}
    assert turn.extra == {"lang": "en"}
    assert [s.extra for s in turn.steps] == [{"confidence": 0.5}, {"latency_ms": 120}, {"cached": True}, {}]
    assert to_trajectory(from_trajectory(t)) == t


def test_the_messages_format_keeps_unknown_keys_of_records_messages_and_calls():
    t = imported({"messages": [
        {"role": "system", "content": "Be brief.", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "Weather?", "name": "alice"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "index": 0, "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C", "latency": 3},
        {"role": "assistant", "content": "18 C.", "refusal": None}], "source_id": 42})
    steps = t.turns[0].steps
    assert t.turns[0].extra == {"name": "alice"}
    assert [s.extra for s in steps] == [{"index": 0}, {"latency": 3}, {"refusal": None}]
    assert t.meta.extra == {"source_id": 42, "messages[0]": {"cache_control": {"type": "ephemeral"}}}


# --- the check itself -------------------------------------------------------------------------------

def test_the_check_finds_a_dropped_value_and_names_its_field():
    t = Trajectory(turns=[Turn("hi", [Step("answer", "hello")])])
    assert conservation.missing({"turns": [{"user": "hi", "assistant_answer": "hello"}]}, t) is None
    assert conservation.missing({"turns": [{"user": "hi", "assistant_answer": "hello", "mood": "calm"}]}, t) == (
        "turns[0].mood", "calm")
    assert conservation.missing({"turns": [{"user": "hi", "score": 0.25}]}, t) == ("turns[0].score", 0.25)


def test_values_inside_json_text_are_looked_for_after_parsing():
    t = Trajectory(turns=[Turn("u", [Step("tool_call", name="w", arguments={"city": "Paris"}, call_id="c")])])
    assert conservation.missing({"arguments": '{"city": "Paris"}'}, t) is None
    assert conservation.missing({"arguments": '{"city": "Rome"}'}, t) == ("arguments", "Rome")


def test_json_inside_prose_is_looked_for_value_by_value_and_key_by_key():
    # (ToolACE: the tool list sits in the system prose; the reader keeps the prose and the list apart)
    prose = 'Use these: [{"name": "f", "description": "Finds it.", "required": null}]. Be brief.'
    kept_tools = [{"name": "f", "description": "Finds it.", "required": None}]
    t = Trajectory(system="Use these: . Be brief.", meta=Meta(extra={"original_tools": kept_tools}))
    assert conservation.missing({"system": prose}, t) is None  # null is JSON's, not a word to keep
    kept_tools[0]["description"] = "Looks up the weather."
    assert conservation.missing({"system": prose}, t) == ("system", "Finds")
    kept_tools[0] = {"name": "f", "description": "Finds it.", "needed": None}
    assert conservation.missing({"system": prose}, t) == ("system", "required")


@pytest.fixture
def lossy_format():
    """A format whose reader forgets a key: the import must refuse it, not drop the value."""
    def read(record, *, source="", tools=None, answer=None):
        return Trajectory(turns=[Turn(record["q"], [Step("answer", record["a"])])])

    fmt = formats.register(Format("lossy_test", detect=lambda r: "q" in r, read=read))
    yield fmt
    del formats.FORMATS["lossy_test"]


def test_an_import_that_would_drop_a_value_fails_naming_the_field(lossy_format):
    result = parse_file(b'{"q": "hi", "a": "hello"}\n{"q": "hi", "a": "hello", "hint": "be nice"}\n', "l.jsonl")
    assert result.trajectories == []
    assert [(e.line, e.field) for e in result.errors] == [(2, "hint")]
    assert "'be nice'" in result.errors[0].message and "no place in the imported trajectory" in result.errors[0].message


def test_the_check_is_cheap_on_records_that_keep_everything():
    # (a budget, not a benchmark: a few tens of microseconds per ordinary record)
    import time

    record = turn_with_result("18 C")
    t = to_trajectory(record)
    start = time.perf_counter()
    for _ in range(2000):
        conservation.check(record, t)
    assert (time.perf_counter() - start) / 2000 < 0.001


# --- the property over every format -----------------------------------------------------------------

def dict_paths(value, path=()):
    """The paths of every object inside ``value`` (where a key can be added)."""
    if isinstance(value, dict):
        yield path
        for k, v in value.items():
            yield from dict_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from dict_paths(v, path + (i,))


def string_paths(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in conservation.STRUCTURAL_KEYS:
                yield from string_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from string_paths(v, path + (i,))
    elif isinstance(value, str) and value.strip():
        yield path


def at(value, path):
    for p in path:
        value = value[p]
    return value


def leaves(value):
    """Strings and numbers of a JSON value (strings that hold JSON text are read too)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str):
            if v.strip():
                yield v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield v


def kept(value, export_text: str) -> bool:
    if isinstance(value, str):
        return value in export_text
    return repr(value) in export_text or (isinstance(value, float) and value.is_integer()
                                          and repr(int(value)) in export_text)


words = st.text("abcdefghijklmnopqrstuvwxyzéü✓ 0123456789", min_size=3, max_size=12).filter(lambda s: s.strip())
values = st.recursive(
    words | st.integers(1000, 10**9) | st.floats(0.001, 1e6, allow_nan=False).filter(lambda f: not f.is_integer()),
    lambda inner: st.lists(inner, min_size=1, max_size=3) | st.dictionaries(words.map(lambda w: "x_" + w), inner,
                                                                            min_size=1, max_size=3),
    max_leaves=5)
# Odd spellings of the raw format's own ideas, applied to the raw example.
RAW_SPELLINGS = [
    {"turns": [{"user": "Weather?", "steps": [{"type": "think", "content": "One call."},
                                              {"type": "tool_call", "name": "w", "arguments": '{"c": "Paris"}'},
                                              {"type": "tool_result", "content": {"temp": 18}},
                                              {"type": "answer", "content": "18 C."}]}]},
    {"turns": [{"user": "Weather?", "assistant_tool": '[{"name": "w", "args": {"c": "Paris"}}]',
                "tool_result": [{"forecast": "rain"}], "assistant_answer": {"content": "Rain."}}]},
    {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant_tool", "content": '[{"name": "w"}]'},
                  {"role": "observation", "output": {"forecast": "rain"}}, {"role": "assistant_answer", "content": "Rain."}]},
]


@st.composite
def varied(draw, example: dict) -> tuple[dict, list, bool]:
    """``example`` with extra keys added at random places and maybe a string replaced by a JSON value;
    returns the record, the values that were put in, and whether a string was replaced."""
    record = copy.deepcopy(example)
    added = []
    places = list(dict_paths(record))
    strings = list(string_paths(record))  # (the example's own strings, not the values put in)
    for n, path in enumerate(draw(st.lists(st.sampled_from(places), max_size=4))):
        value = draw(values)
        at(record, path)[f"x{n}_" + draw(words)] = value
        added.append(value)
    if strings and draw(st.booleans()):
        path = draw(st.sampled_from(strings))
        value = draw(st.dictionaries(words.map(lambda w: "x_" + w), words, min_size=1, max_size=2) | st.lists(words, min_size=1, max_size=2))
        at(record, path[:-1])[path[-1]] = value
        added.append(value)
        return record, added, True
    return record, added, False


EXAMPLES = [pytest.param(f.example, id=name) for name, f in formats.FORMATS.items() if f.example] + [
    pytest.param(r, id=f"raw-spelling-{i}") for i, r in enumerate(RAW_SPELLINGS)]


def test_every_format_has_an_example_that_imports():
    for name, f in formats.FORMATS.items():
        assert f.example, f"{name} has no example for the README's format table"
        result = parse_file(json.dumps(f.example).encode(), f"{name}.jsonl")
        assert result.errors == [] and result.format == name


@pytest.mark.parametrize("example", EXAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_value_put_in_comes_back_in_the_raw_export_or_the_import_names_the_field(example, data):
    record, added, replaced = data.draw(varied(example))
    result = parse_file(json.dumps(record).encode(), "v.jsonl")
    if result.errors:
        # A string where the format wants one may be refused (naming it); added keys are kept, never refused.
        assert replaced, result.errors
        assert all(e.line == 1 and e.field for e in result.errors), result.errors
        return
    t = result.trajectories[0][1]
    text = raw_export_text(t)
    for value in added:
        for leaf in leaves(value):
            assert kept(leaf, text), (leaf, record)
    assert to_trajectory(from_trajectory(t)) == t


# --- the README -------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_format_table_lists_every_registered_format():
    text = README.read_text(encoding="utf-8")
    for f in formats.FORMATS.values():
        assert f"| `{f.name}" in text, f"{f.name} is missing from the README's format table"
        assert f.rule and f.rule in text


def test_the_readme_format_table_is_the_one_the_registry_prints():
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- format table: generated by `python -m annotate.formats`, do not edit by hand -->\n", 1)[1]
    assert table.split("\n<!-- end of format table -->", 1)[0] == formats.markdown_table(), \
        "run python -m annotate.formats and paste its table into README.md between the markers"


def test_the_readme_examples_of_the_raw_shapes_import_as_documented():
    section = README.read_text(encoding="utf-8").split("### The raw format's shapes", 1)[1].split("\n## ", 1)[0]
    spans = re.findall(r"`([^`]+)`", " ".join(section.split("\n")))
    records = [json.loads(span) for span in spans if span.startswith(('{"turns"', '{"messages"'))]
    assert len(records) == 3
    for record in records:
        t = imported(record)
        assert [s.kind for s in t.turns[0].steps][-1] == "answer"

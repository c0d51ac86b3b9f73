"""The raw annotation format: turns, steps and role-tagged messages shapes, and its export."""

from __future__ import annotations

import json

import pytest

from annotate.formats.raw import from_trajectory, to_trajectory
from annotate.trajectory import SchemaError
from tests.annotate.trajectory_shapes import shape

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}

# (case, record, expected steps, expected case types)
RECORDS = [
    ("one call, result and answer",
     {"tools": [WEATHER], "turns": [{"user": "Weather in Paris?", "assistant_think": "Use the tool.",
                                     "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}},
                                     "tool_result": {"content": "18 C"}, "assistant_answer": "It is 18 C."}]},
     [("user", "Weather in Paris?"), ("think", "Use the tool."), ("call", "get_weather", {"city": "Paris"}, "call_0_0"),
      ("result", "call_0_0", "18 C", True), ("answer", "It is 18 C.")],
     ["tool_required"]),
    ("parallel calls with bare-string results, linked in order",
     {"turns": [{"user": "Paris and Rome?",
                 "assistant_tool": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                    {"name": "get_weather", "arguments": {"city": "Rome"}}],
                 "tool_result": ["18 C", "24 C"], "assistant_answer": "18 and 24."}]},
     [("user", "Paris and Rome?"), ("call", "get_weather", {"city": "Paris"}, "call_0_0"),
      ("call", "get_weather", {"city": "Rome"}, "call_0_1"), ("result", "call_0_0", "18 C", True),
      ("result", "call_0_1", "24 C", True), ("answer", "18 and 24.")],
     ["tool_required"]),
    ("results matched by their ids, whatever their order",
     {"turns": [{"user": "Two lookups",
                 "assistant_tool": [{"name": "a", "arguments": {}, "call_id": "x"},
                                    {"name": "b", "arguments": {}, "id": "y"}],
                 "tool_result": [{"call_id": "y", "content": "B"}, {"tool_call_id": "x", "result": "A"}]}]},
     [("user", "Two lookups"), ("call", "a", {}, "x"), ("call", "b", {}, "y"), ("result", "y", "B", True),
      ("result", "x", "A", True)],
     ["tool_required"]),
    ("no tool at all",
     {"system": "Be kind.", "turns": [{"user": "Hi", "assistant_answer": "Hello!"}]},
     [("user", "Hi"), ("answer", "Hello!")],
     ["no_tool"]),
    ("arguments given as a JSON string, result given as a JSON object",
     {"turns": [{"user": "Paris?", "assistant_tool": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                 "tool_result": {"content": {"temp": 18}}}]},
     [("user", "Paris?"), ("call", "get_weather", {"city": "Paris"}, "call_0_0"),
      ("result", "call_0_0", '{"temp": 18}', True)],
     ["tool_required"]),
    ("steps form: two think -> call -> result rounds, then the answer",
     {"turns": [{"user": "Book the cheapest flight", "steps": [
         {"assistant_think": "Search first.", "assistant_tool": {"name": "search", "arguments": {"q": "flights"}},
          "tool_result": "F1 $90, F2 $120"},
         {"assistant_think": "F1 is cheapest.", "assistant_tool": {"name": "book", "args": {"id": "F1"}},
          "tool_result": {"output": "booked"}},
         {"assistant_answer": "Booked F1 for $90."}]}]},
     [("user", "Book the cheapest flight"), ("think", "Search first."), ("call", "search", {"q": "flights"}, "call_0_0"),
      ("result", "call_0_0", "F1 $90, F2 $120", True), ("think", "F1 is cheapest."),
      ("call", "book", {"id": "F1"}, "call_0_1"), ("result", "call_0_1", "booked", True),
      ("answer", "Booked F1 for $90.")],
     ["tool_required"]),
    ("canonical steps inside the steps form",
     {"turns": [{"user": "Hi", "steps": [{"kind": "think", "text": "greet"}, {"kind": "answer", "text": "Hello"}]}]},
     [("user", "Hi"), ("think", "greet"), ("answer", "Hello")],
     ["no_tool"]),
    ("a failed result, told by its text",
     {"turns": [{"user": "Pay", "assistant_tool": {"name": "pay", "arguments": {}},
                 "tool_result": "Error: card declined", "assistant_answer": "The card was declined."}]},
     [("user", "Pay"), ("call", "pay", {}, "call_0_0"), ("result", "call_0_0", "Error: card declined", False),
      ("answer", "The card was declined.")],
     ["tool_failure", "tool_required"]),
    ("a failed result, told by its flag",
     {"turns": [{"user": "Pay", "assistant_tool": {"name": "pay", "arguments": {}},
                 "tool_result": {"content": "timeout", "ok": False}}]},
     [("user", "Pay"), ("call", "pay", {}, "call_0_0"), ("result", "call_0_0", "timeout", False)],
     ["tool_failure", "tool_required"]),
    ("a second user turn after tool results",
     {"turns": [{"user": "Paris?", "assistant_tool": {"name": "get_weather", "arguments": {"city": "Paris"}},
                 "tool_result": "18 C", "assistant_answer": "18 C."},
                {"user": "And in F?", "assistant_answer": "64 F."}]},
     [("user", "Paris?"), ("call", "get_weather", {"city": "Paris"}, "call_0_0"), ("result", "call_0_0", "18 C", True),
      ("answer", "18 C."), ("user", "And in F?"), ("answer", "64 F.")],
     ["multi_turn", "tool_required"]),
]

# The same conversation as role-tagged messages, with each spelling of the result role.
FLAT = [
    (role, {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant_think", "content": "Use the tool."},
        {"role": "assistant_tool", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"role": role, "content": "18 C"},
        {"role": "assistant_answer", "content": "It is 18 C."}]})
    for role in ("tool", "tool_result", "observation")
]


@pytest.mark.parametrize("case, record, steps, case_types", RECORDS, ids=[r[0] for r in RECORDS])
def test_it_reads_each_turn_shape(case, record, steps, case_types):
    t = to_trajectory(record)
    assert shape(t) == steps
    assert t.meta.case_types == case_types


@pytest.mark.parametrize("role, record", FLAT, ids=[f[0] for f in FLAT])
def test_it_reads_role_tagged_messages_with_any_result_role(role, record):
    t = to_trajectory(record)
    assert t.system == "Be brief."
    assert shape(t) == [("user", "Weather in Paris?"), ("think", "Use the tool."),
                        ("call", "get_weather", {"city": "Paris"}, "call_0_0"),
                        ("result", "call_0_0", "18 C", True), ("answer", "It is 18 C.")]


PARALLEL = [{"name": "w", "arguments": {"city": "Paris"}, "id": "p"}, {"name": "w", "arguments": {"city": "Rome"}, "id": "r"}]


@pytest.mark.parametrize("content", [PARALLEL, json.dumps(PARALLEL)], ids=["a list", "its JSON text"])
def test_role_tagged_parallel_calls_come_as_a_list_in_content(content):
    t = to_trajectory({"messages": [
        {"role": "user", "content": "Paris and Rome?"},
        {"role": "assistant_tool", "content": content},
        {"role": "tool", "tool_call_id": "r", "content": "24 C"},
        {"role": "tool", "tool_call_id": "p", "content": "18 C"}]})
    assert shape(t)[1:] == [("call", "w", {"city": "Paris"}, "p"), ("call", "w", {"city": "Rome"}, "r"),
                            ("result", "r", "24 C", True), ("result", "p", "18 C", True)]


def test_it_keeps_labels_notes_and_train_flags():
    t = to_trajectory({"turns": [{"user": "Hi",
                                  "assistant_think": {"text": "hmm", "labels": ["format_error"], "train": False},
                                  "assistant_answer": {"text": "Hello", "note": "too short"}}]})
    think, answer = t.turns[0].steps
    assert (think.labels, think.train, answer.note) == (["format_error"], False, "too short")


def test_the_records_own_meta_wins_over_what_is_inferred():
    t = to_trajectory({"id": "r-7", "meta": {"case_types": ["clarification"], "split": "eval", "tags": ["x"]},
                       "turns": [{"user": "Book it", "assistant_answer": "Which date?"}]}, source="raw:a.jsonl")
    assert (t.meta.case_types, t.meta.split, t.meta.tags) == (["clarification"], "eval", ["x"])
    assert (t.meta.external_id, t.meta.source) == ("r-7", "raw:a.jsonl")


def _nest(depth: int):
    v: object = 1
    for _ in range(depth):
        v = [v]
    return v


BAD = [
    ("turns is not a list", {"turns": 3}, "turns"),
    ("a turn is not an object", {"turns": ["hi"]}, "turns[0]"),
    ("user is not text", {"turns": [{"user": 5}]}, "turns[0].user"),
    ("result for an unknown call id", {"turns": [{"user": "u", "assistant_tool": {"name": "a", "call_id": "c1"},
                                                  "tool_result": {"call_id": "c9", "content": "x"}}]},
     "turns[0].tool_result.call_id"),
    ("result with no call before it", {"turns": [{"user": "u", "tool_result": "orphan"}]}, "turns[0].tool_result"),
    ("arguments that are not JSON", {"turns": [{"user": "u", "assistant_tool": {"name": "a", "arguments": "{city:"}}]},
     "turns[0].assistant_tool.arguments"),
    ("a call with no name", {"turns": [{"user": "u", "assistant_tool": [{"arguments": {}}]}]},
     "turns[0].assistant_tool[0].name"),
    ("a misspelled key that would drop data", {"turns": [{"user": "u", "assistant_tools": {"name": "a"}}]},
     "turns[0].assistant_tools"),
    ("steps and assistant keys together", {"turns": [{"user": "u", "steps": [], "assistant_answer": "x"}]},
     "turns[0].assistant_answer"),
    ("labels that are not a list of strings", {"turns": [{"user": "u", "assistant_answer": {"text": "x", "labels": "bad"}}]},
     "turns[0].assistant_answer.labels"),
    ("an unknown role", {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
     "messages[1].role"),
    ("a system message in the middle", {"messages": [{"role": "user", "content": "u"},
                                                     {"role": "system", "content": "s"}]}, "messages[1].role"),
    ("absurdly nested arguments", {"turns": [{"user": "u", "assistant_tool": {"name": "a", "arguments": {"x": _nest(200)}}}]},
     "turns[0].assistant_tool.arguments"),
    ("neither turns nor messages", {"conversation": []}, "turns"),
]


@pytest.mark.parametrize("case, record, field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_record_is_a_schema_error_naming_the_field(case, record, field):
    with pytest.raises(SchemaError) as err:
        to_trajectory(record)
    assert err.value.field == field


@pytest.mark.parametrize("case, record, steps, case_types", RECORDS, ids=[r[0] for r in RECORDS])
def test_export_then_import_gives_the_same_trajectory(case, record, steps, case_types):
    t = to_trajectory(record)
    assert to_trajectory(from_trajectory(t)) == t


def test_export_writes_one_round_flat_and_several_rounds_as_steps():
    one, several = to_trajectory(RECORDS[0][1]), to_trajectory(RECORDS[5][1])
    flat = from_trajectory(one)["turns"][0]
    assert set(flat) == {"user", "assistant_think", "assistant_tool", "tool_result", "assistant_answer"}
    assert flat["assistant_tool"] == {"call_id": "call_0_0", "name": "get_weather", "arguments": {"city": "Paris"}}
    rounds = from_trajectory(several)["turns"][0]["steps"]
    # A round runs think -> calls -> results -> answer, so the answer closes the second round.
    assert [sorted(r) for r in rounds] == [["assistant_think", "assistant_tool", "tool_result"],
                                          ["assistant_answer", "assistant_think", "assistant_tool", "tool_result"]]


@pytest.mark.parametrize("messages", [None, [{"role": "user", "content": "older copy"}]])
def test_a_turns_record_that_also_has_messages_reads_its_turns_and_keeps_the_messages(messages):
    # (hypothesis found {'turns': [], 'messages': None} raising UnboundLocalError instead of reading)
    t = to_trajectory({"turns": [{"user": "Hi", "assistant_answer": "Hello"}], "messages": messages})
    assert [s.text for s in t.turns[0].steps] == ["Hello"]
    assert t.meta.extra == {"messages": messages}
    assert to_trajectory(from_trajectory(t)) == t


@pytest.mark.parametrize("kind", [["think"], {"kind": "think"}])
def test_a_step_kind_that_is_a_list_or_object_is_refused_naming_the_field(kind):
    from annotate.ingest.reader import parse_file

    r = parse_file(json.dumps({"turns": [{"user": "hi", "steps": [{"kind": kind, "text": "x"}]}]}).encode(), "f.jsonl")
    assert [(e.line, e.field) for e in r.errors] == [(1, "turns[0].steps[0].kind")]
    assert "please report" not in r.errors[0].message and "kind must be one of" in r.errors[0].message

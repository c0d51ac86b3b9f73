"""Glaive function-calling v2 rows: specs out of the system text, the chat text into turns, calls with
single-quoted arguments read as JSON (never evaluated), and every word of the row kept."""

from __future__ import annotations

import json

import pytest

from annotate.formats import conservation
from annotate.formats.glaive import MARKUP, to_trajectory
from annotate.ingest.reader import parse_file
from annotate.trajectory import SchemaError
from tests.annotate.format_checks import (
    FIXTURES, missing_words, raw_export, raw_round_trip, records,
)

SAMPLE = FIXTURES / "glaive" / "glaive-function-calling-v2_sample.json"
LEAD_IN = "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -"
MARKERS = {"SYSTEM", "USER", "ASSISTANT", "FUNCTION", "RESPONSE", "endoftext", "functioncall", "name", "arguments"}


def shape(t):
    return [(turn.user, [(s.kind, s.name, s.arguments) if s.kind == "tool_call" else (s.kind, s.text)
                         for s in turn.steps]) for turn in t.turns]


def imported():
    result = parse_file(SAMPLE.read_bytes(), SAMPLE.name)
    assert result.errors == [] and result.format == "glaive"
    return [t for _, t in result.trajectories]


def test_the_real_rows_become_turns_calls_results_and_answers():
    rows, trajs = records(SAMPLE), imported()
    assert len(trajs) == len(rows) == 3
    refusal, detect, plain = trajs
    assert refusal.system == LEAD_IN.removeprefix("SYSTEM: ")
    assert [t["name"] for t in refusal.tools] == ["get_exchange_rate"]
    assert refusal.tools[0]["parameters"]["required"] == ["base_currency", "target_currency"]
    assert shape(refusal) == [("Can you book a flight for me from New York to London?", [(
        "answer", "I'm sorry, but I don't have the capability to book flights. My current function allows me to get "
                  "the exchange rate between two currencies. If you need help with that, feel free to ask!")])]
    assert shape(detect) == [
        ("I have a text here and I am not sure what language it is. Can you help me identify it?",
         [("answer", "Of course, I can help with that. Please provide me with the text.")]),
        ('Here it is - "Je suis un étudiant"',
         [("tool_call", "detect_language", {"text": "Je suis un étudiant"}),
          ("tool_result", '{"language": "French"}'), ("answer", "The text you provided is in French.")])]
    assert detect.meta.case_types == ["tool_required"]
    assert plain.system == "You are a helpful assistant, with no access to external functions." and plain.tools == []
    assert shape(plain) == [("Assign this occupation to the appropriate category\nNurse", [("answer", "Healthcare")]),
                            ("What about an electrician?", [("answer", "Skilled Trades")])]


def test_every_word_of_a_row_is_in_the_raw_export_which_round_trips():
    for row, t in zip(records(SAMPLE), imported()):
        assert missing_words(row, raw_export(t), MARKERS) == set()
        assert raw_round_trip(t) == t


def row(chat, system=LEAD_IN + '\n{\n    "name": "f",\n    "parameters": {}\n}\n'):
    return {"system": system, "chat": chat}


def call(arguments):
    return f'ASSISTANT: <functioncall> {{"name": "f", "arguments": {arguments}}} <|endoftext|>'


@pytest.mark.parametrize("arguments, expected", [
    # rows 71039 and 19583: an apostrophe escaped inside the single-quoted JSON
    ("""'{"text": "life\\'s full"}'""", {"text": "life's full"}),
    ("""'{"path": "C:\\\\tmp", "q": "it\\'s"}'""", {"path": "C:\\tmp", "q": "it's"}),
    ("""'{"message": "Hey, let's meet"}'""", {"message": "Hey, let's meet"}),
    # rows 111754 and 128: arguments written as an object
    ('{\n  "weight": 70,\n  "height": 1.75\n}', {"weight": 70, "height": 1.75}),
    ('{}', {}),
])
def test_call_arguments_in_each_spelling_the_data_set_uses(arguments, expected):
    t = to_trajectory(row(f"USER: go\n\n\n{call(arguments)}\n\n\n"))
    assert shape(t) == [("go", [("tool_call", "f", expected)])]


def test_two_specs_in_the_system_text_are_two_tools_and_the_rest_is_the_prompt():
    # row 2144's system field, and a sentence after the specs
    system = (LEAD_IN + '\n{\n    "name": "get_random_joke",\n    "description": "Get a random joke",\n    "parameters": {}\n}'
              '\n\n{\n    "name": "get_random_fact",\n    "description": "Get a random fact",\n    "parameters": {}\n}\n\n'
              "Be brief.\n")
    t = to_trajectory(row("USER: A joke?\n\nASSISTANT: Sure. <|endoftext|>", system))
    assert [x["name"] for x in t.tools] == ["get_random_joke", "get_random_fact"]
    assert t.system == LEAD_IN.removeprefix("SYSTEM: ") + "\n\nBe brief."


def test_words_before_a_call_are_an_answer_and_words_after_it_are_kept():
    # row 21816: words before the call
    t = to_trajectory(row("USER: A laptop?\n\n\nASSISTANT: Let's start the search.\n<functioncall> "
                          """{"name": "f", "arguments": '{"q": "laptop"}'} then more <|endoftext|>\n\n\n"""
                          'FUNCTION RESPONSE: {"products": []}\n\n\nASSISTANT: None found. <|endoftext|>'))
    steps = t.turns[0].steps
    assert [(s.kind, s.text) for s in steps][:1] == [("answer", "Let's start the search.")]
    assert (steps[1].kind, steps[1].arguments, steps[1].extra) == ("tool_call", {"q": "laptop"}, {"trailing_text": "then more"})
    assert steps[2].kind == "tool_result" and steps[2].call_id == steps[1].call_id


def test_an_assistant_segment_without_its_end_marker_is_marked():
    t = to_trajectory(row("USER: hi\n\n\nASSISTANT: hello"))
    assert (t.turns[0].steps[0].text, t.turns[0].steps[0].extra) == ("hello", {"endoftext": False})


def test_a_duplicate_spec_is_kept_aside():
    spec = '{\n    "name": "f",\n    "description": "%s",\n    "parameters": {}\n}\n'
    t = to_trajectory(row("USER: hi\n\nASSISTANT: hello <|endoftext|>", LEAD_IN + "\n" + spec % "one" + "\n" + spec % "two"))
    assert [x["description"] for x in t.tools] == ["one"]
    assert t.meta.extra["duplicate_functions"] == [{"name": "f", "description": "two", "parameters": {}}]


def test_step_extra_round_trips_through_the_raw_export():
    t = to_trajectory(row("USER: hi\n\n\nASSISTANT: hello"))
    assert raw_round_trip(t) == t


@pytest.mark.parametrize("chat, message", [
    # row 26684: Infinity is not JSON
    ("USER: tax?\n\n\n" + call("""'{"range": [70001, Infinity]}'"""), "segment 2: the arguments of 'f' are not valid JSON"),
    # row 17357: another call syntax, so the response follows no call
    ('USER: lyrics?\n\n\nASSISTANT: AI to= f: {"a": 1} <|endoftext|>\n\n\nFUNCTION RESPONSE: {"lyrics": ""}',
     "segment 3: a FUNCTION RESPONSE that follows no <functioncall>"),
    # row 81082: parameters, not arguments
    ('USER: quote?\n\n\nASSISTANT: <functioncall> {"name": "f", "parameters": {}} <|endoftext|>',
     "segment 2: the <functioncall> has 'parameters', expected only name and arguments"),
    # row 34221: the call stops inside its arguments
    ('USER: song?\n\n\nASSISTANT: <functioncall> {"name": "f", "arguments": \'{"artist": "Ed',
     "segment 2: cannot read the <functioncall>"),
])
def test_a_row_that_cannot_be_read_is_refused_naming_the_field_and_segment(chat, message):
    r = parse_file(json.dumps([records(SAMPLE)[0], row(chat)]).encode(), "g.json")
    assert r.trajectories == []
    assert [(e.file, e.line, e.field) for e in r.errors] == [("g.json", 1, "chat")]
    assert r.errors[0].message.startswith(message)


def test_a_chat_that_is_not_text_is_refused_naming_chat():
    r = parse_file(json.dumps([row(["USER: hi"])]).encode(), "g.json")
    assert [(e.line, e.field, e.message) for e in r.errors] == [(1, "chat", "must be a string, got a list")]


def test_the_headings_are_not_looked_for_but_a_lost_word_still_is():
    record = records(SAMPLE)[0]
    t = to_trajectory(record)
    conservation.check(record, t, MARKUP)  # USER: / ASSISTANT: / <functioncall> ... are the layout
    answer = t.turns[-1].steps[-1]
    answer.text = answer.text.rsplit(" ", 1)[0]  # a reader that dropped the answer's last word
    with pytest.raises(SchemaError) as err:
        conservation.check(record, t, MARKUP)
    assert err.value.field == "chat"

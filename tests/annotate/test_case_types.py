"""Case types read off the steps, and failed tool results told by their text."""

from __future__ import annotations

import pytest

from annotate.case_types import infer_case_types, looks_like_failure
from annotate.trajectory import Step, Trajectory, Turn

CALL = Step("tool_call", name="w", arguments={}, call_id="c")
OK = Step("tool_result", "18 C", name="w", call_id="c")
FAILED = Step("tool_result", "timeout", name="w", call_id="c", ok=False)
ANSWER = Step("answer", "done")


@pytest.mark.parametrize("turns, case_types", [
    ([Turn("hi", [ANSWER])], ["no_tool"]),
    ([], ["no_tool"]),
    ([Turn("w?", [CALL, OK, ANSWER])], ["tool_required"]),
    ([Turn("w?", [CALL])], ["tool_required"]),
    ([Turn("w?", [CALL, FAILED, ANSWER])], ["tool_failure", "tool_required"]),
    ([Turn("w?", [CALL, OK, ANSWER]), Turn("thanks", [ANSWER])], ["multi_turn", "tool_required"]),
    # a second turn without earlier tool results is not the multi-turn case
    ([Turn("hi", [ANSWER]), Turn("w?", [CALL, OK])], ["tool_required"]),
], ids=["an answer only", "nothing", "a call", "a call without result", "a failed result",
        "a turn after tool results", "tool results only in the last turn"])
def test_it_infers_what_the_steps_prove(turns, case_types):
    assert infer_case_types(Trajectory(turns=turns)) == case_types


@pytest.mark.parametrize("text, failed", [
    ("Error: flight HAT030 not available", True),
    ("error: not found", True),
    ("Exception: boom", True),
    ("Traceback (most recent call last):\n  File ...", True),
    ('{"error": "rate limited"}', True),
    ('{"error": {"code": 500}}', True),
    ('{"error": null, "temp": 20}', False),
    ('{"error": false}', False),
    ('{"error": ""}', False),
    ("No errors found", False),
    ('{"temp": 20, "error": "later keys are data"}', False),
    ('{"exception": "boom"}', True),
    ('{ "error": "spaced"}', True),
    ('{"errors": 1}', False),
    ('{"Error": "capitalised keys are data"}', False),
    ('{"', False),
    ("", False),
])
def test_it_tells_a_failed_result_by_its_text(text, failed):
    assert looks_like_failure(text) is failed

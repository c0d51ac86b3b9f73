"""tau-bench historical trajectories: messages, plus the task's reward and expected actions."""

from __future__ import annotations

import pytest

from annotate.formats.tau_bench import to_trajectory
from annotate.trajectory import SchemaError
from tests.annotate.trajectory_shapes import shape

TOOLS = [{"type": "function", "function": {"name": "get_reservation_details", "parameters": {"type": "object"}}}]


def record(reward, tool_reply):
    return {"task_id": 7, "trial": 2, "reward": reward,
            "info": {"task": {"user_id": "mia_1", "instruction": "Cancel ABC.",
                              "actions": [{"name": "cancel_reservation", "kwargs": {"reservation_id": "ABC"}}],
                              "outputs": []}},
            "traj": [{"role": "system", "content": "Airline policy."}, {"role": "user", "content": "Cancel ABC"},
                     {"role": "assistant", "content": None, "tool_calls": [{"id": "call_x", "type": "function",
                      "function": {"name": "get_reservation_details", "arguments": '{"reservation_id": "ABC"}'}}]},
                     {"role": "tool", "tool_call_id": "call_x", "name": "get_reservation_details", "content": tool_reply},
                     {"role": "assistant", "content": "Done."}]}


@pytest.mark.parametrize("reward, reply, ok, case_types, tag", [
    (1.0, '{"reservation_id": "ABC"}', True, ["tool_required"], "reward:1"),
    (0.0, "Error: reservation not found", False, ["tool_failure", "tool_required"], "reward:0"),
], ids=["a success", "a failure with a tool error"])
def test_it_keeps_the_reward_and_the_expected_actions(reward, reply, ok, case_types, tag):
    t = to_trajectory(record(reward, reply), tools=TOOLS)
    assert shape(t) == [("user", "Cancel ABC"), ("call", "get_reservation_details", {"reservation_id": "ABC"}, "call_x"),
                        ("result", "call_x", reply, ok), ("answer", "Done.")]
    assert t.system == "Airline policy."
    assert t.meta.reference == {"reward": reward, "outputs": [],
                                "actions": [{"name": "cancel_reservation", "kwargs": {"reservation_id": "ABC"}}]}
    assert (t.meta.case_types, t.meta.tags, t.meta.external_id) == (case_types, [tag], "7/trial2")
    assert t.meta.extra["instruction"] == "Cancel ABC."
    assert [x["name"] for x in t.tools] == ["get_reservation_details"]


@pytest.mark.parametrize("case, rec, field", [
    ("no traj", {"task_id": 1}, "traj"),
    ("a reward that is not a number", {**record(1.0, "x"), "reward": "yes"}, "reward"),
    ("info that is not an object", {**record(1.0, "x"), "info": []}, "info"),
    ("a message with a bad role", {"traj": [{"role": "robot"}]}, "traj[0].role"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_bad_record_is_a_schema_error_naming_the_field(case, rec, field):
    with pytest.raises(SchemaError) as err:
        to_trajectory(rec)
    assert err.value.field == field

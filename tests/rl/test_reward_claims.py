"""The reward functions' docstring claim, checked: where a reward function's docstring says it
"Ranks a right call above an unneeded one", a rollout that makes the needed call with the right
arguments scores strictly higher than one that also, or instead, calls a tool it did not need."""

from __future__ import annotations

import pytest

from annotate.demo import TOOLS
from rl.runner import REWARD_FUNCTIONS

CLAIM = "Ranks a right call above an unneeded one"
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
UNNEEDED = {"name": "convert_currency", "arguments": {"amount": 10, "from_currency": "EUR", "to_currency": "USD"}}


def completion(*calls, answer: str = "") -> list[dict]:
    message = {"role": "assistant", "content": answer}
    if calls:
        message["tool_calls"] = [{"type": "function", "function": c} for c in calls]
    return [message]


def reference(calls: list[dict]) -> dict:
    return {"tools": TOOLS, "calls": calls, "decision": "call" if calls else "answer"}


# (gold calls, the right rollout, the rollout with a tool it did not need)
CASES = {
    "an extra unneeded call": ([WEATHER], completion(WEATHER), completion(WEATHER, UNNEEDED)),
    "an unneeded call instead": ([WEATHER], completion(WEATHER), completion(UNNEEDED)),
    "a call where none was needed": ([], completion(answer="Happy to help."), completion(UNNEEDED)),
}
CLAIMED = sorted(name for name, fn in REWARD_FUNCTIONS.items() if CLAIM in (fn.__doc__ or ""))


def test_the_claim_is_made_by_the_terms_that_price_unneeded_calls():
    assert CLAIMED == ["tool_call_count_reward", "tool_name_reward", "toolrl_correctness_reward"]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", CLAIMED)
def test_a_right_call_outscores_an_unneeded_one(name, case):
    gold, right, unneeded = CASES[case]
    fn = REWARD_FUNCTIONS[name]
    ref = reference(gold)
    good, bad = fn(prompts=[[], []], completions=[right, unneeded], reference=[ref, ref])
    assert good > bad, f"{name} on {case}: {good} <= {bad}"


@pytest.mark.parametrize("name", sorted(set(REWARD_FUNCTIONS) - set(CLAIMED)))
def test_the_terms_without_the_claim_really_do_not_rank_an_extra_call_lower(name):
    """Their docstrings are right not to claim it: an extra unneeded call leaves them as they were."""
    gold, right, unneeded = CASES["an extra unneeded call"]
    ref = reference(gold)
    good, bad = REWARD_FUNCTIONS[name](prompts=[[], []], completions=[right, unneeded], reference=[ref, ref])
    assert good == bad

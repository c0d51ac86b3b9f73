"""Reward functions, called as TRL's GRPOTrainer calls them, give the ToolRL / OTC values."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from evaluation import rewards
from evaluation.scoring import reference_output
from tests.evaluation.test_eval_scoring import REFS

CALL_REF = REFS["tool_required#t0s1"]  # get_weather(city="Paris")
ANSWER_REF = REFS["no_tool#t0s0"]  # "The capital of France is Paris."

TC = '<tool_call>\n{{"name": "{name}", "arguments": {args}}}\n</tool_call>'
PARIS = TC.format(name="get_weather", args='{"city": "Paris"}')


def as_messages(name, arguments):
    """A completion as GRPOTrainer builds it when the tokenizer has a response template."""
    return [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}]}]


COMPONENTS = ("format_reward", "schema_reward", "tool_name_reward", "argument_key_reward", "argument_value_reward",
              "toolrl_correctness_reward", "tool_call_count_reward")

# (what, reference, completion, expected: format, schema, name, keys, values, ToolRL correctness, OTC count)
TABLE = [
    ("the gold call as text", CALL_REF, PARIS, (1, 1, 1, 1, 1, 3, 1)),
    ("the gold call as parsed messages", CALL_REF, as_messages("get_weather", {"city": "Paris"}), (1, 1, 1, 1, 1, 3, 1)),
    ("an optional argument at its default", CALL_REF, TC.format(name="get_weather", args='{"city": "Paris", "unit": "celsius"}'), (1, 1, 1, 1, 1, 3, 1)),
    # names 1 + keys 1 + values 0 over 1 + 1 call + 1 key: 6 * 2/3 - 3 = 1
    ("a wrong value", CALL_REF, TC.format(name="get_weather", args='{"city": "London"}'), (1, 1, 1, 1, 0, 1, 0)),
    # 6 * 1/3 - 3 = -1
    ("a missing argument", CALL_REF, as_messages("get_weather", {}), (1, 0, 1, 0, 0, -1, 0)),
    ("the wrong tool", CALL_REF, TC.format(name="get_forecast", args='{"city": "Paris", "days": 1}'), (1, 1, 0, 0, 0, -3, 0)),
    # names: multiset Jaccard 1/2; 6 * 2.5/3 - 3 = 2; OTC: m=2, n=1 -> sin(2pi/3)
    ("the gold call twice", CALL_REF, PARIS + PARIS, (1, 1, 0.5, 1, 1, 2, math.sin(2 * math.pi / 3))),
    ("a malformed call", CALL_REF, '<tool_call>{"name": "get_weather", </tool_call>', (0, 0, 0, 0, 0, -3, 0)),
    ("an answer where a call was needed", CALL_REF, "It is sunny.", (1, 0, 0, 0, 0, -3, 0)),
    ("the right answer without a call", ANSWER_REF, "Paris is the capital of France.", (1, 1, 1, 1, 1, 3, 1)),
    # OTC's n = 0 branch would give cos(pi/3), but the goal (answer directly) was missed.
    ("a call where none was needed", ANSWER_REF, PARIS, (1, 1, 0, 0, 0, -3, 0)),
]


def call_as_grpo_trainer(fn, completions, references, **extra):
    """Keyword arguments exactly as GRPOTrainer._calculate_rewards passes them (trl 1.16)."""
    n = len(completions)
    return fn(
        prompts=[[{"role": "user", "content": "q"}]] * n,
        completions=completions,
        completion_ids=[[1, 2, 3]] * n,
        reference=[json.dumps(r.to_dict()) for r in references],
        trainer_state=SimpleNamespace(global_step=0),
        log_extra=lambda *a, **k: None,
        log_metric=lambda *a, **k: None,
        **extra,
    )


@pytest.mark.parametrize("what, ref, completion, expected", TABLE, ids=[t[0] for t in TABLE])
def test_each_reward_component_gives_the_toolrl_and_otc_value(what, ref, completion, expected):
    got = [call_as_grpo_trainer(getattr(rewards, name), [completion], [ref])[0] for name in COMPONENTS]
    assert got == pytest.approx([float(e) for e in expected], abs=1e-5), dict(zip(COMPONENTS, got))


def test_rewards_come_one_per_completion_in_order():
    completions = [t[2] for t in TABLE]
    refs = [t[1] for t in TABLE]
    for i, name in enumerate(COMPONENTS):
        got = call_as_grpo_trainer(getattr(rewards, name), completions, refs)
        assert got == pytest.approx([float(t[3][i]) for t in TABLE], abs=1e-5), name


def test_a_completion_where_the_trainer_ran_the_tool_counts_every_call():
    completion = as_messages("get_weather", {"city": "Paris"}) + [
        {"role": "tool", "name": "get_weather", "content": '{"temperature": 18}'},
        {"role": "assistant", "content": "It is 18 degrees in Paris."},
    ]
    again = completion[:2] + as_messages("get_weather", {"city": "Paris"}) + completion[1:]
    got = call_as_grpo_trainer(rewards.tool_call_count_reward, [completion, again], [CALL_REF, CALL_REF])
    assert got == pytest.approx([1.0, math.sin(2 * math.pi / 3)])
    assert call_as_grpo_trainer(rewards.format_reward, [completion], [CALL_REF]) == [1.0]


def test_the_tools_column_fills_in_a_reference_without_tools():
    bare = json.loads(json.dumps(CALL_REF.to_dict()))
    bare["tools"] = []
    fn = rewards.schema_reward
    assert fn(prompts=["q"], completions=[PARIS], reference=[bare]) == [0.0]  # unknown tool
    assert fn(prompts=["q"], completions=[PARIS], reference=[bare], tools=[CALL_REF.tools]) == [1.0]
    # as datasets.Json() stores them: one JSON text per tool
    as_texts = [json.dumps(t) for t in CALL_REF.tools]
    assert fn(prompts=["q"], completions=[PARIS], reference=[bare], tools=[as_texts]) == [1.0]


def test_a_dataset_without_references_is_a_clear_error():
    with pytest.raises(ValueError, match="'reference' column"):
        rewards.format_reward(prompts=["q"], completions=["hi"])


def test_the_otc_term_peaks_at_the_gold_number_of_calls():
    for n in (1, 2, 3):
        values = [rewards.otc_tool_reward(m, n) for m in range(0, 3 * n + 1)]
        assert max(values) == pytest.approx(1.0) and values.index(max(values)) == n
        assert values[0] == 0.0  # no call where calls were needed
    assert rewards.otc_tool_reward(0, 0) == 1.0 and rewards.otc_tool_reward(1, 0) < 1.0


def test_grpo_trainer_calls_the_reward_functions_and_gets_the_expected_rewards():
    """Run trl's own GRPOTrainer._calculate_rewards on a stand-in trainer, so a change in how trl
    calls reward functions (arguments, completion shapes) fails here."""
    grpo = pytest.importorskip("trl.trainer.grpo_trainer")
    funcs = [getattr(rewards, name) for name in COMPONENTS]
    trainer = SimpleNamespace(
        args=SimpleNamespace(report_to=[]),
        accelerator=SimpleNamespace(device="cpu", is_main_process=True),
        state=SimpleNamespace(global_step=0),
        reward_funcs=funcs,
        reward_processing_classes=[None] * len(funcs),
        reward_func_names=[f.__name__ for f in funcs],
        environments=None,
        _log_completion_extra=lambda *a, **k: None,
        _log_metric=lambda *a, **k: None,
    )
    prompts = [[{"role": "user", "content": "What's the weather in Paris right now?"}]] * len(TABLE)
    inputs = [
        {"prompt": p, "reference": json.dumps(ref.to_dict()), "tools": ref.tools}
        for p, (_, ref, _, _) in zip(prompts, TABLE)
    ]
    completions = [c if isinstance(c, list) else [{"role": "assistant", "content": c}] for _, _, c, _ in TABLE]
    got = grpo.GRPOTrainer._calculate_rewards(trainer, inputs, prompts, completions, [[1]] * len(TABLE))
    assert tuple(got.shape) == (len(TABLE), len(COMPONENTS))
    for row, (what, _, _, expected) in zip(got.tolist(), TABLE):
        assert row == pytest.approx([float(v) for v in expected], abs=1e-5), what


def test_the_oracle_gets_the_top_reward_on_every_reference():
    refs = list(REFS.values())
    completions = [reference_output(r) for r in refs]
    for name in COMPONENTS:
        top = 3.0 if name == "toolrl_correctness_reward" else 1.0
        assert call_as_grpo_trainer(getattr(rewards, name), completions, refs) == pytest.approx([top] * len(refs)), name

"""Split strategies: per-turn samples are exactly what the model sees at inference; auto picks per template."""

from __future__ import annotations

import pytest

from annotate.trajectory import Trajectory
from tests.training.canonical_fixtures import load
from training.chat_templates import get_template
from training.render import Renderer, RenderSettings, to_conversation
from training.split import choose_strategy, cut_samples, render_sample, template_behaviour

TWO_TURNS_WITH_REASONING = {
    "system": "You help with the weather.",
    "tools": [{"name": "get_weather", "description": "Weather for a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
    "turns": [
        {"user": "Weather in Paris?", "steps": [
            {"kind": "think", "text": "First turn reasoning: look up Paris."},
            {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
            {"kind": "tool_result", "name": "get_weather", "call_id": "c1", "text": "18C cloudy"},
            {"kind": "think", "text": "First turn reasoning: answer it."},
            {"kind": "answer", "text": "18C and cloudy."}]},
        {"user": "And in Rome?", "steps": [
            {"kind": "think", "text": "Second turn reasoning: look up Rome."},
            {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Rome"}, "call_id": "c2"},
            {"kind": "tool_result", "name": "get_weather", "call_id": "c2", "text": "25C sunny"},
            {"kind": "answer", "text": "25C and sunny."}]},
    ],
}


@pytest.mark.parametrize("template_name, strategy", [
    ("qwen3", "turn"),                 # drops earlier turns' reasoning at inference
    ("qwen3_training", "conversation"),
    ("qwen2_5_training", "conversation"),
    ("llama3_1_training", "conversation"),
    ("llama3_2_training", "conversation"),
    ("gptoss_training", "turn"),       # drops reasoning once a final answer follows; ends turns differently
    ("gptoss", "turn"),
])
def test_auto_picks_per_turn_only_where_the_template_needs_it(template_name, strategy, tiny_tokenizer):
    renderer = Renderer.for_tokenizer(get_template(template_name), tiny_tokenizer)
    chosen, reason = choose_strategy("auto", template_behaviour(renderer))
    assert chosen == strategy, reason


def test_a_requested_strategy_is_kept():
    renderer = Renderer(get_template("qwen3"))
    assert choose_strategy("conversation", template_behaviour(renderer))[0] == "conversation"


@pytest.mark.parametrize("trajectory", ["two_turns_with_reasoning", "tau_bench"])
def test_per_turn_samples_on_the_original_qwen3_template_are_the_inference_strings(trajectory, tiny_tokenizer):
    traj = (Trajectory.from_dict(TWO_TURNS_WITH_REASONING) if trajectory == "two_turns_with_reasoning"
            else load("tau_bench", 1)[0])
    template = get_template("qwen3")
    result = render_sample(traj, template, tiny_tokenizer, RenderSettings(strategy="auto"))
    assert result["strategy"]["chosen"] == "turn"
    samples = result["samples"]
    assert len(samples) == sum(1 for t in traj.turns if t.steps)
    for sample in samples:
        prompt, completion = sample["prompt"], sample["completion"]
        inference = tiny_tokenizer.apply_chat_template(prompt, tools=sample["tools"], add_generation_prompt=True,
                                                       tokenize=False, chat_template=template.text)
        assert sample["text"].startswith(inference)
        full = tiny_tokenizer.apply_chat_template(prompt + completion, tools=sample["tools"], tokenize=False,
                                                  chat_template=template.text)
        assert sample["text"] == full
        # Each later assistant message of the turn follows the inference string at that point too.
        for j, m in enumerate(completion):
            if m["role"] == "assistant" and j > 0:
                at = tiny_tokenizer.apply_chat_template(prompt + completion[:j], tools=sample["tools"],
                                                        add_generation_prompt=True, tokenize=False,
                                                        chat_template=template.text)
                assert sample["text"].startswith(at)
        # Only the newest turn is supervised.
        assert all(s >= len(inference) for s, _ in sample["supervised_spans"])
        assert sample["audit"]["errors"] == 0


def test_per_turn_history_drops_earlier_reasoning_as_at_inference(tiny_tokenizer):
    result = render_sample(Trajectory.from_dict(TWO_TURNS_WITH_REASONING), get_template("qwen3"), tiny_tokenizer,
                           RenderSettings())
    first, second = result["samples"]
    assert "First turn reasoning: look up Paris." in first["text"]
    assert "First turn reasoning" not in second["text"]
    assert "Second turn reasoning: look up Rome." in second["text"]


def test_the_conversation_strategy_on_a_template_that_drops_reasoning_is_reported(tiny_tokenizer):
    # Forced onto the original Qwen3 template, one sample cannot be placed by prefix-diffing:
    # the first turn renders differently once a second turn follows.
    result = render_sample(Trajectory.from_dict(TWO_TURNS_WITH_REASONING), get_template("qwen3"), tiny_tokenizer,
                           RenderSettings(strategy="conversation"))
    codes = [f["code"] for f in result["samples"][0]["audit"]["findings"]]
    assert "not_prefix_stable" in codes
    assert result["samples"][0]["audit"]["errors"] > 0


@pytest.mark.parametrize("template_name", ["qwen3", "qwen3_training"])
def test_it_reports_the_token_cost_of_each_strategy(template_name, tiny_tokenizer):
    result = render_sample(Trajectory.from_dict(TWO_TURNS_WITH_REASONING), get_template(template_name),
                           tiny_tokenizer, RenderSettings())
    tokens = result["strategy"]["tokens"]
    assert set(tokens) == {"conversation", "turn"}
    # Per-turn repeats the history: it costs more than one conversation sample.
    assert tokens["turn"] > tokens["conversation"] > 0
    chosen = result["strategy"]["chosen"]
    assert tokens[chosen] == sum(s["num_tokens"] for s in result["samples"])


@pytest.mark.parametrize("strategy, expected", [
    ("conversation", [(9, [2, 4, 6, 8], None)]),
    ("turn", [(5, [2, 4], 2), (9, [6, 8], 6)]),
])
def test_it_cuts_samples_per_strategy(strategy, expected):
    conv = to_conversation(Trajectory.from_dict(TWO_TURNS_WITH_REASONING), get_template("qwen3"))
    roles = [m["role"] for m in conv.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool", "assistant"]
    assert [(c.end, c.supervised, c.prompt_end) for c in cut_samples(conv, strategy)] == expected

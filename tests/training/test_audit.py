"""The audit catches what must not be trained on, and says what was lost."""

from __future__ import annotations

import json

import pytest

from annotate.trajectory import Trajectory
from tests.training.canonical_fixtures import load, trl_prepare
from training.audit import aggregate, find_leaks, protected_regions
from training.chat_templates import custom_template, get_template
from training.render import RenderSettings
from training.split import render_sample

WEATHER_TOOL = {"name": "get_weather", "description": "Current weather for a city, in Celsius.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def weather(call_args=None, result=True, **step_changes) -> Trajectory:
    steps = [
        {"kind": "think", "text": "Look it up."},
        {"kind": "tool_call", "name": "get_weather", "arguments": call_args or {"city": "Paris"}, "call_id": "c1"},
        {"kind": "tool_result", "name": "get_weather", "call_id": "c1", "text": "18C and cloudy in Paris"},
        {"kind": "answer", "text": "It is 18C and cloudy."},
    ]
    if not result:
        steps = steps[:2]
    for key, change in step_changes.items():
        steps[int(key[1:])].update(change)
    return Trajectory.from_dict({"system": "You are a weather bot.", "tools": [WEATHER_TOOL],
                                 "turns": [{"user": "What's the weather like in Paris today?", "steps": steps}],
                                 "meta": {"case_types": ["tool_required"]}})


def codes(result: dict) -> list[str]:
    return [f["code"] for s in result["samples"] for f in s["audit"]["findings"]]


def findings(result: dict, code: str) -> list[dict]:
    return [f for s in result["samples"] for f in s["audit"]["findings"] if f["code"] == code]


# --- planted leaks ------------------------------------------------------------------------------

USER_LINE = "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
TOOL_OPEN = "        {{- '\\n<tool_response>\\n' }}\n"
TOOL_CLOSE = "        {{- '\\n</tool_response>' }}\n"


def qwen25_patched(*replacements: tuple[str, str]):
    """Qwen2.5's training template with planted mistakes, uploaded as a lead's custom template."""
    text = get_template("qwen2_5_training").text
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return custom_template(text, name="planted")


@pytest.mark.parametrize("planted, role, leaked_text", [
    # A user message wrongly marked as assistant: the template's markers wrap user messages too.
    ([(USER_LINE, "        {%- generation %}\n" + USER_LINE + "        {%- endgeneration %}\n")],
     "user", "What's the weather like in Paris today?"),
    # A tool result inside a supervised span: the markers wrap tool results too.
    ([(TOOL_OPEN, "        {%- generation %}\n" + TOOL_OPEN), (TOOL_CLOSE, TOOL_CLOSE + "        {%- endgeneration %}\n")],
     "tool", "18C and cloudy in Paris"),
])
def test_the_audit_catches_a_planted_leak(planted, role, leaked_text, tiny_tokenizer):
    template = qwen25_patched(*planted)
    assert template.source == "custom"
    result = render_sample(weather(), template, tiny_tokenizer, RenderSettings(strategy="conversation"))
    leaks = findings(result, "leak")
    assert [f["role"] for f in leaks] == [role]
    assert leaks[0]["severity"] == "error"
    assert "mask_disagreement" in codes(result)  # prefix-diffing never called it the assistant's
    sample = result["samples"][0]
    assert sample["audit"]["errors"] >= 2
    assert aggregate([result])["blocking"] is True
    # What is trained on is what both methods agree on: the leaked text is not in it.
    supervised = "".join(sample["text"][s:e] for s, e in sample["supervised_spans"])
    assert leaked_text not in supervised


@pytest.mark.parametrize("role, needle", [
    ("system", "You are a weather bot."),
    ("user", "What's the weather like in Paris today?"),
    ("tool", "18C and cloudy in Paris"),
    ("schema", WEATHER_TOOL["description"]),
])
def test_supervised_spans_over_protected_text_are_leaks(role, needle, tiny_tokenizer):
    sample = render_sample(weather(), get_template("qwen3_training"), tiny_tokenizer, RenderSettings())["samples"][0]
    text = sample["text"]
    protected = protected_regions(text, sample["messages"], sample["tools"])
    assert find_leaks(text, [tuple(s) for s in sample["supervised_spans"]], protected) == []
    start = text.index(needle)
    planted = [tuple(s) for s in sample["supervised_spans"]] + [(start, start + len(needle))]
    leaks = find_leaks(text, planted, protected)
    assert [f["role"] for f in leaks] == [role]


def test_a_short_user_message_echoed_by_the_assistant_is_not_a_leak(tiny_tokenizer):
    traj = Trajectory.from_dict({"turns": [
        {"user": "yes", "steps": [{"kind": "answer", "text": "You said yes, so I booked it."}]}]})
    sample = render_sample(traj, get_template("qwen3_training"), tiny_tokenizer, RenderSettings())["samples"][0]
    assert "leak" not in [f["code"] for f in sample["audit"]["findings"]]


# --- truncation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("max_length", [4096, 8192])
def test_rows_trl_would_silently_drop_are_audit_errors(max_length, tiny_tokenizer):
    # With the tiny tokenizer the airline policy and tool schemas alone take ~7,300 tokens: at 4096
    # every row loses all its supervised tokens (TRL drops the rows without a word); at 8192 they are
    # cut short. The audit's verdict matches TRL's, row by row.
    template = get_template("qwen3_training")
    results = [render_sample(t, template, tiny_tokenizer, RenderSettings(max_length=max_length, tokenized=True),
                             trajectory_id=i) for i, t in enumerate(load("tau_bench", 3))]
    samples = [s for r in results for s in r["samples"]]
    kept_by_trl = {r["row"]: r for r in trl_prepare(samples, tiny_tokenizer, template.text, max_length=max_length)}
    for i, s in enumerate(samples):
        all_cut = "all_supervised_truncated" in [f["code"] for f in s["audit"]["findings"]]
        assert all_cut == (i not in kept_by_trl)
        assert s["audit"]["truncated"]["supervised_cut"] > 0
        if i in kept_by_trl:
            assert s["labels"] == kept_by_trl[i]["labels"]
    report = aggregate(results)
    assert report["totals"]["truncated_samples"] == len(samples)
    if max_length == 4096:
        assert not kept_by_trl
        assert report["findings"]["all_supervised_truncated"] == len(samples)
        assert report["blocking"] is True
        assert all(set(s["labels"]) == {-100} and len(s["input_ids"]) == 4096 for s in samples)


def test_a_partly_truncated_sample_reports_the_supervised_tokens_it_loses(tiny_tokenizer):
    full = render_sample(weather(), get_template("qwen3_training"), tiny_tokenizer, RenderSettings())["samples"][0]
    cut_at = full["num_tokens"] - 3
    r = render_sample(weather(), get_template("qwen3_training"), tiny_tokenizer, RenderSettings(max_length=cut_at))
    f, = findings(r, "truncated")
    assert f["severity"] == "warning"
    summary = r["samples"][0]["audit"]["truncated"]
    assert summary["tokens_cut"] == 3 and 0 < summary["supervised_cut"] <= 3


# --- tool calls ---------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, code, severity", [
    ({"call_args": {"town": "Paris"}}, "invalid_tool_call", "error"),              # schema violation
    ({"s1": {"name": "get_wether"}}, "invalid_tool_call", "error"),                  # unknown tool
    ({"call_args": {"town": "Paris"}, "s1": {"labels": ["arg_value_error"]}},        # masked: context only
     "masked_invalid_tool_call", "info"),
    ({"result": False}, "call_without_result", "warning"),
])
def test_tool_call_findings(changes, code, severity, tiny_tokenizer):
    step_changes = {k: v for k, v in changes.items() if k.startswith("s")}
    traj = weather(call_args=changes.get("call_args"), result=changes.get("result", True), **step_changes)
    r = render_sample(traj, get_template("qwen3_training"), tiny_tokenizer, RenderSettings(error_policy="mask"))
    f = findings(r, code)
    assert f and f[0]["severity"] == severity


def test_reasoning_a_template_cannot_show_is_reported(tiny_tokenizer):
    r = render_sample(weather(), get_template("llama3_2_training"), tiny_tokenizer, RenderSettings())
    f, = findings(r, "step_not_rendered")
    assert f["severity"] == "warning" and f["step"] == 0


# --- counts and the aggregate -------------------------------------------------------------------

def test_supervised_tokens_are_counted_by_role_and_step_kind(tiny_tokenizer):
    r = render_sample(weather(), get_template("qwen3_training"), tiny_tokenizer, RenderSettings())
    audit = r["samples"][0]["audit"]
    assert set(audit["by_kind"]) == {"think", "tool_call", "answer"}
    assert sum(audit["by_kind"].values()) == audit["by_role"]["assistant"] == audit["supervised_tokens"]
    no_reasoning = render_sample(weather(), get_template("qwen3_training"), tiny_tokenizer,
                                 RenderSettings(reasoning_loss=False))["samples"][0]["audit"]
    assert "think" not in no_reasoning["by_kind"]
    assert no_reasoning["supervised_tokens"] < audit["supervised_tokens"]


def test_the_aggregate_report_counts_coverage_and_blocks_on_errors(tiny_tokenizer):
    ok = render_sample(weather(), get_template("qwen3_training"), tiny_tokenizer, RenderSettings(), trajectory_id=1)
    bad = render_sample(weather(call_args={"town": "x"}), get_template("qwen3_training"), tiny_tokenizer,
                        RenderSettings(), trajectory_id=2)
    report = aggregate([ok])
    assert report["blocking"] is False
    assert report["case_type_coverage"]["tool_required"] == 1
    assert report["findings"]["case_type_missing"] == 6
    assert report["supervised_by_role"]["assistant"] == ok["samples"][0]["num_supervised_tokens"]
    report = aggregate([ok, bad])
    assert report["blocking"] is True and report["findings"]["invalid_tool_call"] == 1
    json.dumps(report)  # stored with the snapshot

"""Canonical steps become the messages each family reads, rendered exactly as transformers renders them."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from annotate.trajectory import Trajectory
from tests.training.canonical_fixtures import TOOL_CALL_FIXTURES, load
from training.chat_templates import get_template
from training.render import Renderer, RenderSettings, settings_key, to_conversation
from training.split import render_sample

ROOT = Path(__file__).resolve().parents[2]
PURE_MODULES = ["training/chat_templates.py", "training/render.py", "training/masks.py", "training/split.py",
                "training/audit.py"]

CALL = {"kind": "tool_call", "name": "mul", "arguments": {"a": 2, "b": 3}, "call_id": "c1"}
CALL2 = {"kind": "tool_call", "name": "mul", "arguments": {"a": 4, "b": 5}, "call_id": "c2"}
RESULT = {"kind": "tool_result", "name": "mul", "call_id": "c1", "text": "6"}
RESULT2 = {"kind": "tool_result", "name": "mul", "call_id": "c2", "text": "20"}
THINK = {"kind": "think", "text": "Multiply."}
THINK2 = {"kind": "think", "text": "Done."}
ANSWER = {"kind": "answer", "text": "It is 6."}
PREAMBLE = {"kind": "answer", "text": "Let me compute."}


def shape(messages: list[dict]) -> list[str]:
    """A message sequence in short: role plus the fields that carry something."""
    out = []
    for m in messages:
        fields = [k for k in ("reasoning_content", "thinking", "content", "tool_calls") if m.get(k)]
        calls = len(m.get("tool_calls") or [])
        out.append(m["role"] + ("(" + ",".join(f if f != "tool_calls" else f"calls={calls}" for f in fields) + ")"
                                if m["role"] == "assistant" else ""))
    return out


@pytest.mark.parametrize("template_name, steps, expected", [
    # think, call, result, think, answer -> assistant(reasoning, calls), tool, assistant(reasoning, content)
    ("qwen3_training", [THINK, CALL, RESULT, THINK2, ANSWER],
     ["user", "assistant(reasoning_content,calls=1)", "tool", "assistant(reasoning_content,content)"]),
    ("gptoss_training", [THINK, CALL, RESULT, THINK2, ANSWER],
     ["user", "assistant(thinking,calls=1)", "tool", "assistant(thinking,content)"]),
    # parallel calls stay in one message where the family takes several
    ("qwen2_5_training", [CALL, CALL2, RESULT, RESULT2, ANSWER],
     ["user", "assistant(calls=2)", "tool", "tool", "assistant(content)"]),
    # ... and become consecutive messages where it takes one (Llama 3.1 / 3.2, gpt-oss)
    ("llama3_1_training", [CALL, CALL2, RESULT, RESULT2, ANSWER],
     ["user", "assistant(calls=1)", "assistant(calls=1)", "tool", "tool", "assistant(content)"]),
    # text before a call shares the message where the family renders both, else precedes it
    ("qwen3_training", [PREAMBLE, CALL, RESULT, ANSWER],
     ["user", "assistant(content,calls=1)", "tool", "assistant(content)"]),
    ("llama3_2_training", [PREAMBLE, CALL, RESULT, ANSWER],
     ["user", "assistant(content)", "assistant(calls=1)", "tool", "assistant(content)"]),
    # reasoning a template has no place for is left out (and reported by the audit)
    ("llama3_2_training", [THINK, ANSWER], ["user", "assistant(content)"]),
    # reasoning a template reads inline goes into the content as <think>
    ("deepseek_r1_distill_training", [THINK, ANSWER], ["user", "assistant(content)"]),
])
def test_steps_become_the_message_sequence_the_family_expects(template_name, steps, expected):
    traj = Trajectory.from_dict({"turns": [{"user": "2*3?", "steps": steps}]})
    conv = to_conversation(traj, get_template(template_name))
    assert shape(conv.messages) == expected
    assert [o["role"] for o in conv.origins] == [m["role"] for m in conv.messages]


def test_tool_calls_carry_dict_arguments_and_results_name_their_call():
    traj = Trajectory.from_dict({"tools": [{"name": "mul", "parameters": {"type": "object"}}],
                                 "turns": [{"user": "2*3?", "steps": [CALL, RESULT, ANSWER]}]})
    conv = to_conversation(traj, get_template("qwen3_training"))
    call = conv.messages[1]["tool_calls"][0]
    assert call == {"id": "c1", "type": "function", "function": {"name": "mul", "arguments": {"a": 2, "b": 3}}}
    assert conv.messages[2] == {"role": "tool", "tool_call_id": "c1", "name": "mul", "content": "6"}
    assert conv.tools == [{"type": "function", "function": {"name": "mul", "description": "",
                                                            "parameters": {"type": "object"}}}]


def test_inline_reasoning_is_wrapped_in_think_tags():
    traj = Trajectory.from_dict({"turns": [{"user": "2*3?", "steps": [THINK, ANSWER]}]})
    msg = to_conversation(traj, get_template("deepseek_r1_distill_training")).messages[1]
    assert msg["content"] == "<think>\nMultiply.\n</think>\n\nIt is 6."


RENDERED_TEMPLATES = ["qwen3", "qwen3_training", "qwen2_5", "qwen2_5_training", "llama3_1", "llama3_1_training",
                      "llama3_2_training", "gptoss", "gptoss_training"]


@pytest.mark.parametrize("template_name", RENDERED_TEMPLATES)
def test_the_fast_renderer_renders_exactly_like_apply_chat_template(template_name, tiny_tokenizer):
    from transformers.utils.chat_template_utils import render_jinja_template

    template = get_template(template_name)
    fast = Renderer.for_tokenizer(template, tiny_tokenizer, {"date_string": "26 Jul 2024"})
    assert fast.fast
    for name in TOOL_CALL_FIXTURES:
        for traj in load(name, 1):
            conv = to_conversation(traj, template)
            for n in (len(conv.messages), 2):
                for gen in (False, True):
                    text, spans = fast.render(conv.messages[:n], conv.tools, gen)
                    expected = tiny_tokenizer.apply_chat_template(
                        conv.messages[:n], tools=conv.tools, add_generation_prompt=gen, tokenize=False,
                        chat_template=template.text, date_string="26 Jul 2024")
                    assert text == expected, (name, n, gen)
                    if template.markers_text:
                        ref, ref_spans = render_jinja_template(
                            conversations=[conv.messages[:n]], tools=conv.tools, chat_template=template.markers_text,
                            return_assistant_tokens_mask=True, add_generation_prompt=gen,
                            date_string="26 Jul 2024", **tiny_tokenizer.special_tokens_map)
                        assert ref[0] == expected
                        assert spans == [tuple(s) for s in ref_spans[0]], (name, n, gen)


def test_a_custom_template_renders_through_transformers_sandbox(tiny_tokenizer):
    from training.chat_templates import custom_template

    template = custom_template("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}")
    renderer = Renderer.for_tokenizer(template, tiny_tokenizer)
    assert not renderer.fast
    text, _ = renderer.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    assert text == "[user] hi\n[assistant] hello\n"


def test_render_sample_is_deterministic_and_json_serialisable(tiny_tokenizer):
    traj = load("tau_bench", 1)[0]
    settings = RenderSettings(tokenized=True)
    a = json.dumps(render_sample(traj, get_template("qwen3_training"), tiny_tokenizer, settings, trajectory_id=7),
                   sort_keys=True)
    # A fresh copy through JSON (key order kept: templates serialise schemas and arguments in the order given).
    copy = Trajectory.from_dict(json.loads(json.dumps(traj.to_dict())))
    b = json.dumps(render_sample(copy, get_template("qwen3_training"),
                                 tiny_tokenizer, settings, trajectory_id=7), sort_keys=True)
    assert a == b


def test_the_settings_key_changes_with_what_changes_the_output(tiny_tokenizer):
    base = settings_key(get_template("qwen3_training"), tiny_tokenizer, RenderSettings())
    assert base == settings_key(get_template("qwen3_training"), tiny_tokenizer, RenderSettings())
    others = {settings_key(get_template("qwen2_5_training"), tiny_tokenizer, RenderSettings()),
              settings_key(get_template("qwen3_training"), tiny_tokenizer, RenderSettings(reasoning_loss=False)),
              settings_key(get_template("qwen3_training"), tiny_tokenizer, RenderSettings(max_length=10)),
              settings_key(get_template("qwen3_training"), None, RenderSettings())}
    assert base not in others and len(others) == 4


@pytest.mark.parametrize("kwargs", [{"strategy": "sometimes"}, {"error_policy": "ignore"}, {"max_length": 0}])
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RenderSettings(**kwargs)


@pytest.mark.parametrize("path", PURE_MODULES)
def test_the_render_core_imports_no_django(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m == "django" or m.startswith(("django.", "rest_framework", "studio")) for m in imported)

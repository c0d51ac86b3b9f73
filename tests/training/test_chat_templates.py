"""The chat-template registry: TRL's templates by family, model folders, custom text, derived variants."""

from __future__ import annotations

import json

import pytest

from tests.training.canonical_fixtures import TOOL_CALL_FIXTURES, load, tokenizer_path
from training.chat_templates import (TemplateError, custom_template, families, from_model_folder, get_template,
                                     list_templates, reasoning_field, training_variant, trl_templates_dir)
from training.render import Renderer, to_conversation


@pytest.mark.parametrize("family, names", [
    ("qwen3", {"qwen3", "qwen3_training"}),
    ("qwen2_5", {"qwen2_5", "qwen2_5_training"}),
    ("llama3", {"llama3", "llama3_training", "llama3_1", "llama3_1_training", "llama3_2", "llama3_2_training"}),
    ("gptoss", {"gptoss", "gptoss_training"}),
    ("gemma4", {"gemma4", "gemma4_v2", "gemma4_v3", "gemma4_v4", "gemma4_v5"}),
])
def test_trl_templates_are_recognised_by_family(family, names):
    assert set(families()[family]) == names


def test_every_shipped_template_is_in_the_registry():
    shipped = {p.stem for p in trl_templates_dir().glob("*.jinja")}
    assert shipped <= {t.name for t in list_templates()}


@pytest.mark.parametrize("name, field, markers, tools", [
    ("qwen3", "reasoning_content", False, True),
    ("qwen3_training", "reasoning_content", True, True),
    ("qwen2_5_training", None, True, True),
    ("gptoss_training", "thinking", True, True),
    ("deepseek_r1_distill", "inline_think", False, True),
    ("llama3", None, False, False),         # the original Llama 3 template ignores tool calls
    ("llama3_1", None, False, True),
    ("llama3_1_training", None, True, True),
])
def test_it_says_where_a_template_reads_reasoning_and_whether_it_has_markers(name, field, markers, tools):
    t = get_template(name)
    assert (t.reasoning_field, t.has_generation_markers, t.renders_tool_calls) == (field, markers, tools)


@pytest.mark.parametrize("text, field", [
    ("{% if message.thinking %}{{ message.thinking }}{% endif %}", "thinking"),
    ("{#- reasoning_content is ignored -#}{{ message.content }}", None),  # comments are not code
])
def test_reasoning_field_reads_the_code_not_the_comments(text, field):
    assert reasoning_field(text) == field


@pytest.mark.parametrize("name, variant", [("qwen3", "qwen3_training"), ("llama3_2", "llama3_2_training"),
                                           ("qwen3_training", "qwen3_training")])
def test_an_original_knows_its_training_variant(name, variant):
    assert training_variant(get_template(name)).name == variant


@pytest.mark.parametrize("derived, original", [("llama3_1_training", "llama3_1"), ("llama3_2_training", "llama3_2")])
def test_derived_training_templates_render_exactly_like_their_originals(derived, original, tiny_tokenizer):
    d, o = get_template(derived), get_template(original)
    assert d.source == "derived" and o.source == "trl"
    rd, ro = Renderer.for_tokenizer(d, tiny_tokenizer), Renderer.for_tokenizer(o, tiny_tokenizer)
    for name in TOOL_CALL_FIXTURES:
        for traj in load(name, 1):
            conv = to_conversation(traj, d)
            for gen in (False, True):
                text, spans = rd.render(conv.messages, conv.tools, gen)
                assert text == ro.render(conv.messages, conv.tools, gen)[0]
                assistants = sum(m["role"] == "assistant" for m in conv.messages)
                assert len(spans) == assistants


def test_the_original_qwen3_template_has_a_marked_twin_that_renders_the_same(tiny_tokenizer):
    t = get_template("qwen3")
    assert not t.has_generation_markers and t.markers_text
    marked = Renderer.for_tokenizer(t, tiny_tokenizer)
    for traj in load("tau_bench", 1) + load("toolrl", 1):
        conv = to_conversation(traj, t)
        text, spans = marked.render(conv.messages, conv.tools)
        assert text == tiny_tokenizer.apply_chat_template(conv.messages, tools=conv.tools, tokenize=False,
                                                          chat_template=t.text)
        assert len(spans) == sum(m["role"] == "assistant" for m in conv.messages)


@pytest.mark.parametrize("folder, name", [("qwen3", "qwen3"), ("qwen2.5-instruct", "qwen2_5")])
def test_a_model_folders_own_template_is_recognised(folder, name):
    assert get_template(str(tokenizer_path(folder))).name == name


def test_an_unknown_model_template_is_kept_as_the_models_own(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages[0].content }}"}))
    t = from_model_folder(tmp_path)
    assert (t.source, t.family, t.text) == ("model", "custom", "{{ messages[0].content }}")


def test_a_named_variant_list_uses_the_default(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": [
        {"name": "tool_use", "template": "{{ 'tools' }}"}, {"name": "default", "template": "{{ 'chat' }}"}]}))
    assert from_model_folder(tmp_path).text == "{{ 'chat' }}"


def test_custom_text_equal_to_a_shipped_template_takes_its_name():
    assert custom_template(get_template("qwen3_training").text).name == "qwen3_training"
    other = custom_template("{{ messages }}", name="mine")
    assert (other.name, other.source, other.trusted) == ("custom:mine", "custom", False)


@pytest.mark.parametrize("spec", ["no_such_template", "", "/no/such/folder"])
def test_an_unknown_template_is_an_error(spec):
    with pytest.raises(TemplateError):
        get_template(spec) if spec else custom_template(spec)

"""The preview's pure parts: the web process's tokenizer equals transformers', tokens carry the right
role, kind and supervision. (That the export and preview modules import no Django is
the pure contract's: .importlinter, tests/test_layers.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate.trajectory import Trajectory
from tests.training.snapshot_helpers import demo_docs
from training.chat_templates import get_template
from training.preview import LightTokenizer, piece_text, token_view
from training.render import Renderer, RenderSettings
from training.split import render_sample


@pytest.fixture(scope="module")
def light(tiny_model_dir):
    return LightTokenizer(tiny_model_dir)


@pytest.mark.parametrize("template", ["qwen3", "qwen3_training", "qwen2_5_training", "llama3_1_training",
                                      "gptoss_training"])
def test_the_light_tokenizer_renders_masks_and_tokenizes_like_transformers(template, light, tiny_tokenizer):
    t = get_template(template)
    settings = RenderSettings(tokenized=True)
    for doc in demo_docs()[:8]:
        ours = render_sample(Trajectory.from_dict(doc), t, light, settings)["samples"]
        theirs = render_sample(Trajectory.from_dict(doc), t, tiny_tokenizer, settings)["samples"]
        assert [(s["text"], s["supervised_spans"], s["input_ids"], s["labels"]) for s in ours] == \
               [(s["text"], s["supervised_spans"], s["input_ids"], s["labels"]) for s in theirs]
    assert light.special_tokens_map == tiny_tokenizer.special_tokens_map


def _view(light, doc: dict, **settings):
    t = get_template("qwen3_training")
    sample = render_sample(Trajectory.from_dict(doc), t, light, RenderSettings(**settings))["samples"][0]
    return token_view(sample, light, Renderer.for_tokenizer(t, light))


def test_tokens_are_coloured_by_the_message_that_produced_them(light):
    doc = demo_docs()[0]  # system, user, assistant call, tool result, assistant answer
    view = _view(light, doc)
    by_role: dict[str, str] = {}
    for tok in view.tokens:
        by_role[tok["role"]] = by_role.get(tok["role"], "") + tok["text"]
    assert "What's the weather in Paris right now?" in by_role["user"]
    assert '"temperature": 18' in by_role["tool"]
    assert "travel assistant" in by_role["system"]
    assert "It is 18" in by_role["assistant"]
    assert all(tok["role"] == "assistant" for tok in view.tokens if tok["supervised"])
    assert view.supervised == sum(view.supervised_by_kind.values())
    assert set(view.supervised_by_kind) >= {"think", "tool_call", "answer"}


def test_a_character_split_over_several_byte_tokens_is_drawn_once(light):
    view = _view(light, demo_docs()[0])
    drawn = "".join(t["text"] for t in view.tokens if not t["partial"])
    assert "18 °C" in drawn and "°°" not in drawn
    assert any(t["partial"] for t in view.tokens)  # the tiny vocabulary has no token for "°"


def test_long_samples_are_cut_for_drawing_but_counted_in_full(light):
    t = get_template("qwen3_training")
    sample = render_sample(Trajectory.from_dict(demo_docs()[0]), t, light, RenderSettings())["samples"][0]
    view = token_view(sample, light, Renderer.for_tokenizer(t, light), max_tokens=50)
    assert len(view.tokens) == 50 and view.total == 50 + view.cut > 50


def test_newlines_and_tabs_are_visible():
    assert piece_text("a\nb\tc") == "a↵\nb→c"


def test_a_tokenizer_without_tokenizer_json_is_converted_once_outside_the_process(tmp_path):
    from tests.conftest import shared_path
    from training.export import load_tokenizer
    from training.preview import converted_tokenizer, load_preview_tokenizer

    folder = shared_path("tokenizers", "qwen3")
    assert not (folder / "tokenizer.json").exists()
    light = load_preview_tokenizer(str(folder), str(tmp_path))
    assert isinstance(light, LightTokenizer)
    assert converted_tokenizer(folder, tmp_path) == Path(light.name_or_path)  # cached: no second conversion
    real = load_tokenizer(str(folder))
    t = get_template("qwen3_training")
    for doc in demo_docs()[:4]:
        ours = render_sample(Trajectory.from_dict(doc), t, light, RenderSettings(tokenized=True))["samples"]
        theirs = render_sample(Trajectory.from_dict(doc), t, real, RenderSettings(tokenized=True))["samples"]
        assert [(s["text"], s["input_ids"], s["labels"]) for s in ours] == \
               [(s["text"], s["input_ids"], s["labels"]) for s in theirs]

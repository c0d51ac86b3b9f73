"""Loss masks: two methods agree, token labels equal TRL's, policies mask what they say."""

from __future__ import annotations

import pytest

from annotate.trajectory import Trajectory
from tests.training.canonical_fixtures import TOOL_CALL_FIXTURES, load, tokenizer_path, trl_prepare
from training.chat_templates import get_template
from training.masks import SegmentTokenizer, char_spans_to_token_mask, common_prefix_len, subtract_spans
from training.render import RenderSettings
from training.split import render_sample

# The training templates of the families the issue names (Llama 3.1 / 3.2: the ones with tool calls).
TRAINING_TEMPLATES = ("qwen3_training", "qwen2_5_training", "llama3_1_training", "llama3_2_training",
                      "gptoss_training")


@pytest.fixture(scope="module")
def tokenizers(tiny_tokenizer):
    from transformers import AutoTokenizer

    return {
        "tiny": tiny_tokenizer,
        "qwen3": AutoTokenizer.from_pretrained(tokenizer_path("qwen3")),
        "qwen2.5": AutoTokenizer.from_pretrained(tokenizer_path("qwen2.5-instruct")),
    }


@pytest.fixture(scope="module")
def fixture_trajectories():
    return [(name, t) for name in TOOL_CALL_FIXTURES for t in load(name, 2)]


@pytest.mark.parametrize("template_name", TRAINING_TEMPLATES)
def test_markers_and_prefix_diffing_agree_and_labels_equal_trls(template_name, tokenizers, fixture_trajectories):
    template = get_template(template_name)
    settings = RenderSettings(tokenized=True)
    for tok_name, tok in tokenizers.items():
        samples, where = [], []
        for fixture, traj in fixture_trajectories:
            result = render_sample(traj, template, tok, settings, trajectory_id=fixture)
            for s in result["samples"]:
                samples.append(s)
                where.append(f"{tok_name}/{fixture}/{s['id']}")
        assert samples
        for s, w in zip(samples, where):
            codes = {f["code"] for f in s["audit"]["findings"]}
            assert s["audit"]["mask_method"] == "both", w
            assert not codes & {"mask_disagreement", "not_prefix_stable", "mask_single_method",
                                "markers_unattributed", "leak"}, (w, codes)
        for shape in ("messages", "prompt"):
            group = [(s, w) for s, w in zip(samples, where) if shape in s]
            if not group:
                continue
            theirs = trl_prepare([s for s, _ in group], tok, template.text)
            for (s, w), t in zip(group, theirs):
                assert s["input_ids"] == t["input_ids"], w
                assert s["labels"] == t["labels"], w


@pytest.mark.parametrize("tok_name", ["tiny", "qwen3"])
@pytest.mark.parametrize("template_name", ["qwen3_training", "llama3_2_training", "gptoss_training"])
def test_segment_cache_tokenizes_exactly_like_the_whole_text(template_name, tok_name, tokenizers,
                                                            fixture_trajectories):
    tok = tokenizers[tok_name]
    seg = SegmentTokenizer(tok)
    for fixture, traj in fixture_trajectories:
        for s in render_sample(traj, get_template(template_name), tok, RenderSettings())["samples"]:
            ids, offsets = seg.encode(s["text"])
            whole = tok(s["text"], add_special_tokens=False, return_offsets_mapping=True)
            assert ids.tolist() == whole["input_ids"], fixture
            assert [tuple(o) for o in offsets.tolist()] == [tuple(o) for o in whole["offset_mapping"]], fixture


@pytest.mark.parametrize("offsets, spans, mask, straddling", [
    ([(0, 3), (3, 5), (5, 9)], [(3, 5)], [0, 1, 0], []),                # exact token boundaries
    ([(0, 3), (3, 5), (5, 9)], [(4, 7)], [0, 1, 1], [1, 2]),            # both edges inside tokens
    ([(0, 3), (3, 5), (5, 9)], [(0, 1), (8, 9)], [1, 0, 1], [0, 2]),   # two spans
    ([(0, 3), (3, 5), (5, 9)], [], [0, 0, 0], []),                      # nothing supervised
    ([(0, 3), (3, 3), (3, 5)], [(3, 5)], [0, 0, 1], []),                # an empty-offset token is never supervised
])
def test_it_labels_tokens_that_overlap_a_span_and_reports_a_straddling_token(offsets, spans, mask, straddling):
    assert char_spans_to_token_mask(offsets, spans) == (mask, straddling)


def test_it_reports_a_straddling_token_in_a_rendered_sample(tokenizers):
    # Qwen's vocabulary has no Llama special tokens: "<|eot_id|><|start_header_id|>" is BPE text
    # there, and the real merges join the ">" ending the assistant's span with the "<" after it.
    traj = load("tau_bench", 1)[0]
    sample = render_sample(traj, get_template("llama3_2_training"), tokenizers["qwen3"],
                           RenderSettings(tokenized=True))["samples"][0]
    straddling = sample["audit"]["straddling"]
    assert straddling and {s["text"] for s in straddling} == {"><"}
    assert all(sample["labels"][s["token"]] != -100 for s in straddling)  # supervised, as TRL does
    assert "straddling_tokens" in [f["code"] for f in sample["audit"]["findings"]]


@pytest.mark.parametrize("a, b, n", [("abc", "abd", 2), ("abc", "abc", 3), ("", "x", 0), ("xyz", "x", 1)])
def test_common_prefix_length(a, b, n):
    assert common_prefix_len(a, b) == n


@pytest.mark.parametrize("spans, holes, out", [
    ([(0, 10)], [(2, 4)], [(0, 2), (4, 10)]),
    ([(0, 10)], [(0, 10)], []),
    ([(0, 5), (7, 9)], [(4, 8)], [(0, 4), (8, 9)]),
])
def test_subtracting_spans(spans, holes, out):
    assert subtract_spans(spans, holes) == out


# --- policies -----------------------------------------------------------------------------------

THINK_CALL_ANSWER = {
    "tools": [{"name": "get_weather", "description": "Weather for a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
    "turns": [{"user": "Weather in Paris?", "steps": [
        {"kind": "think", "text": "I should look up Paris."},
        {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
        {"kind": "tool_result", "name": "get_weather", "call_id": "c1", "text": "18C cloudy"},
        {"kind": "think", "text": "Now I can answer."},
        {"kind": "answer", "text": "It is 18C and cloudy in Paris."}]}],
}


def _supervised_text(sample: dict) -> str:
    return "".join(sample["text"][s:e] for s, e in sample["supervised_spans"])


def _traj(**changes) -> Trajectory:
    d = {**THINK_CALL_ANSWER, "turns": [{**THINK_CALL_ANSWER["turns"][0],
                                         "steps": [dict(s) for s in THINK_CALL_ANSWER["turns"][0]["steps"]]}]}
    for index, patch in changes.items():
        d["turns"][0]["steps"][int(index[1:])].update(patch)
    return Trajectory.from_dict(d)


@pytest.mark.parametrize("render_settings, changes, supervised, not_supervised", [
    (RenderSettings(), {}, ["I should look up Paris.", '"city": "Paris"', "It is 18C"], ["Weather in Paris?", "18C cloudy"]),
    (RenderSettings(reasoning_loss=False), {}, ['"city": "Paris"', "It is 18C"], ["I should look up Paris.", "Now I can"]),
    (RenderSettings(), {"s1": {"train": False}}, ["I should look up Paris.", "It is 18C"], ['"city": "Paris"']),
    (RenderSettings(error_policy="mask"), {"s4": {"labels": ["ungrounded_answer"]}}, ['"city": "Paris"'], ["It is 18C"]),
    (RenderSettings(error_policy="mask"), {"s2": {"labels": ["tool_execution_error"]}}, ["It is 18C"], ["18C cloudy"]),
])
def test_policies_mask_exactly_the_steps_they_name(render_settings, changes, supervised, not_supervised,
                                                  tiny_tokenizer):
    result = render_sample(_traj(**changes), get_template("qwen3_training"), tiny_tokenizer, render_settings)
    sample, = result["samples"]
    text = _supervised_text(sample)
    for piece in supervised:
        assert piece in text
    for piece in not_supervised:
        assert piece not in text
    assert sample["audit"]["errors"] == 0


def test_the_end_of_turn_token_stays_supervised_when_the_answer_is_masked(tiny_tokenizer):
    # The answer is the last step: masking it masks its region, end-of-turn token included.
    result = render_sample(_traj(s4={"train": False}), get_template("qwen3_training"), tiny_tokenizer,
                           RenderSettings())
    sample, = result["samples"]
    assert not _supervised_text(sample).endswith("<|im_end|>\n")
    kinds = {r["kind"]: r["supervised"] for r in sample["regions"]}
    assert kinds == {"think": True, "tool_call": True, "answer": False}


@pytest.mark.parametrize("policy, samples, dropped", [("drop", 0, True), ("truncate", 1, False), ("mask", 1, False)])
def test_error_policies_drop_truncate_or_keep_the_trajectory(policy, samples, dropped, tiny_tokenizer):
    traj = _traj(s3={"labels": ["ungrounded_answer"]})
    result = render_sample(traj, get_template("qwen3_training"), tiny_tokenizer,
                           RenderSettings(error_policy=policy))
    assert len(result["samples"]) == samples
    assert bool(result["dropped"]) is dropped
    if policy == "truncate":
        assert "Now I can answer" not in result["samples"][0]["text"]
        assert "18C cloudy" in result["samples"][0]["text"]
    if policy == "mask":
        assert "Now I can answer" not in _supervised_text(result["samples"][0])


def test_tokenized_output_has_the_shape_trl_reads(tiny_tokenizer):
    sample, = render_sample(_traj(), get_template("qwen3_training"), tiny_tokenizer,
                            RenderSettings(tokenized=True))["samples"]
    n = len(sample["input_ids"])
    assert len(sample["labels"]) == len(sample["assistant_masks"]) == n
    assert all((lab == -100) == (m == 0) for lab, m in zip(sample["labels"], sample["assistant_masks"]))
    assert all(lab in (-100, i) for lab, i in zip(sample["labels"], sample["input_ids"]))
    assert sample["num_supervised_tokens"] == sum(sample["assistant_masks"]) > 0


def test_trl_takes_the_tokenized_output_as_it_is(tiny_tokenizer):
    import tempfile

    from datasets import Dataset
    from trl import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    samples = [s for t in load("tau_bench", 2)
               for s in render_sample(t, get_template("qwen3_training"), tiny_tokenizer,
                                      RenderSettings(tokenized=True))["samples"]]
    ds = Dataset.from_list([{k: s[k] for k in ("input_ids", "labels", "assistant_masks")} for s in samples])
    trainer = SFTTrainer.__new__(SFTTrainer)
    trainer._tokenizer, trainer.chat_template, trainer.completion_only_loss = tiny_tokenizer, None, False
    args = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=None, report_to=[], use_cpu=True, bf16=False,
                     disable_tqdm=True)
    out = trainer._prepare_dataset(ds, tiny_tokenizer, args, packing=False, formatting_func=None,
                                   dataset_name="train")
    assert [r["labels"] for r in out] == [s["labels"] for s in samples]
    assert [r["input_ids"] for r in out] == [s["input_ids"] for s in samples]

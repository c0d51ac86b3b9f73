"""The export's files: byte-identical for the same inputs, loadable unchanged, exactly what was rendered.

Pure: no database. Items are the demo trajectories (every case type) keyed like pinned revisions.
"""

from __future__ import annotations

import copy
import json

import pytest

from tests.training.snapshot_helpers import demo_docs, edited
from training.export import (ExportItem, ExportSettings, MemoryCache, directory_digest, run_export,
                             split_pair_messages)


@pytest.fixture(scope="module")
def docs():
    return {f"r{i}": d for i, d in enumerate(demo_docs())}


def _items(docs):
    return [ExportItem(key=k, ident=f"t{k[1:]}", split=(d.get("meta") or {}).get("split", "train")) for k, d in docs.items()]


def _export(docs, out, tokenizer_dir, cache=None, **settings):
    s = ExportSettings(template=settings.pop("template", "qwen3_training"), tokenizer=str(tokenizer_dir), **settings)
    return run_export(_items(docs), s, out, load_documents=lambda keys: {k: docs[k] for k in keys},
                      cache=cache if cache is not None else MemoryCache())


@pytest.fixture(scope="module")
def sft_export(docs, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    return _export(docs, out, tiny_model_dir, tokenized=True)


def test_the_export_writes_every_file_of_the_contract(sft_export):
    files = set(directory_digest(sft_export.out_dir))
    assert {"train.jsonl", "eval.jsonl", "parquet/train.parquet", "parquet/eval.parquet", "hf/dataset_dict.json",
            "snapshot.json", "audit.json", "README.md", "chat_template.jinja"} <= files
    meta = json.loads((sft_export.out_dir / "snapshot.json").read_text())
    assert meta["settings"]["template"] == "qwen3_training" and meta["settings"]["max_length"] == 8192
    assert meta["splits"] == {"train": sft_export.splits["train"], "eval": sft_export.splits["eval"]}


def test_the_same_inputs_give_byte_identical_files(docs, tiny_model_dir, tmp_path, sft_export):
    again = _export(docs, tmp_path / "again", tiny_model_dir, tokenized=True)
    assert directory_digest(again.out_dir) == directory_digest(sft_export.out_dir)


def test_jsonl_parquet_and_the_saved_dataset_hold_the_same_rows(sft_export):
    import datasets
    import pyarrow.parquet as pq

    hf = datasets.load_from_disk(str(sft_export.out_dir / "hf"))
    for split in ("train", "eval"):
        jsonl = [json.loads(line) for line in (sft_export.out_dir / f"{split}.jsonl").read_text().splitlines()]
        assert hf[split].to_list() == jsonl
        table = pq.read_table(sft_export.out_dir / "parquet" / f"{split}.parquet")
        assert table.column("id").to_pylist() == [r["id"] for r in jsonl]
        assert [[json.loads(m) for m in ms] for ms in table.column("messages").to_pylist()] == \
            [r["messages"] for r in jsonl]


def test_labels_are_minus_100_outside_the_supervised_tokens(sft_export):
    for line in (sft_export.out_dir / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert len(row["input_ids"]) == len(row["labels"]) == len(row["assistant_masks"])
        for token, label, mask in zip(row["input_ids"], row["labels"], row["assistant_masks"]):
            assert label == (token if mask else -100)
        assert any(row["assistant_masks"])


def _messages_with_tools_of_different_shapes():
    """Two records whose tool calls and schemas have different keys (Arrow structs would merge them)."""
    a = {"system": "", "tools": [{"name": "get_weather", "description": "Weather.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
         "turns": [{"user": "Oslo?", "steps": [
             {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Oslo"}, "call_id": "c1"},
             {"kind": "tool_result", "name": "get_weather", "call_id": "c1", "text": "3C"},
             {"kind": "answer", "text": "3 degrees."}]}], "meta": {}}
    b = {"system": "s", "tools": [{"name": "convert", "description": "Money.", "parameters": {
        "type": "object", "properties": {"amount": {"type": "number", "minimum": 0},
                                         "to": {"type": "string", "enum": ["EUR", "USD"]}}}}],
         "turns": [{"user": "100 USD in EUR?", "steps": [
             {"kind": "think", "text": "convert it"},
             {"kind": "tool_call", "name": "convert", "arguments": {"amount": 100, "to": "EUR", "extra": [1, 2]},
              "call_id": "c9"},
             {"kind": "tool_result", "name": "convert", "call_id": "c9", "text": "92"},
             {"kind": "answer", "text": "92 EUR."}]}], "meta": {}}
    return {"r1": a, "r2": b}


def test_tools_of_different_shapes_round_trip_to_the_same_rendered_text(tiny_model_dir, tiny_tokenizer, tmp_path):
    import datasets

    from training.chat_templates import get_template

    docs = _messages_with_tools_of_different_shapes()
    result = _export(docs, tmp_path / "x", tiny_model_dir)
    template = get_template("qwen3_training").text
    before = [json.loads(line) for line in (tmp_path / "x" / "train.jsonl").read_text().splitlines()]
    after = datasets.load_from_disk(str(tmp_path / "x" / "hf"))["train"].to_list()
    assert after == before  # no null keys, nothing reordered
    render = lambda r: tiny_tokenizer.apply_chat_template(r["messages"], tools=r["tools"], tokenize=False,  # noqa: E731
                                                          chat_template=template)
    assert [render(r) for r in after] == [render(r) for r in before]
    assert result.audit["errors"] == 0
    # The control: the same rows stored as Arrow structs gain null keys and render differently.
    structs = datasets.Dataset.from_list(before).to_list()
    assert any(m.get("reasoning_content", "absent") is None for r in structs for m in r["messages"])


def test_a_float_that_datasets_would_round_is_reported(tiny_model_dir, tmp_path):
    docs = _messages_with_tools_of_different_shapes()
    docs["r2"]["turns"][0]["steps"][1]["arguments"]["amount"] = 0.000123
    result = _export(docs, tmp_path / "f", tiny_model_dir)
    assert result.audit["findings"].get("json_float_rounding") == 1
    assert any(e["code"] == "json_float_rounding" and "0.000123" in e["message"] and e["item"].startswith("t2")
               for e in result.audit["examples"])


def test_re_exporting_after_an_edit_renders_only_the_edited_item(docs, tiny_model_dir, tmp_path):
    cache = MemoryCache()
    first = _export(docs, tmp_path / "a", tiny_model_dir, cache=cache)
    changed = dict(docs)
    changed["r0-v2"] = edited(changed.pop("r0"), "Paris: 18 degrees and cloudy.").to_dict()
    second = _export(changed, tmp_path / "b", tiny_model_dir, cache=cache)
    cold = _export(changed, tmp_path / "c", tiny_model_dir)
    assert (first.rendered, second.rendered, cold.rendered) == (len(docs), 1, len(docs))
    assert directory_digest(second.out_dir) == directory_digest(cold.out_dir)
    assert "Paris: 18 degrees and cloudy." in (tmp_path / "b" / "train.jsonl").read_text()


def test_the_audit_reports_samples_whose_supervised_tokens_are_all_cut(docs, tiny_model_dir, tmp_path):
    result = _export(docs, tmp_path / "short", tiny_model_dir, max_length=16, tokenized=True)
    assert result.audit["findings"]["all_supervised_truncated"] == result.samples
    assert result.audit["errors"] >= result.samples
    rows = [json.loads(x) for x in (tmp_path / "short" / "train.jsonl").read_text().splitlines()]
    assert all(len(r["input_ids"]) == 16 and not any(r["assistant_masks"]) for r in rows)


def test_a_trajectory_the_template_cannot_render_is_an_error_not_a_crash(tiny_model_dir, tmp_path):
    docs = {"r1": demo_docs(1)[0]}
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ raise_exception('this template refuses everything') }}")
    result = _export(docs, tmp_path / "out", tiny_model_dir, template=str(bad))
    assert result.samples == 0
    assert result.audit["findings"]["render_failed"] == 1
    assert "refuses everything" in result.audit["examples"][0]["message"]


# --- prompt (evaluation / GRPO) --------------------------------------------------------------------

def test_prompt_rows_end_where_the_model_must_act_and_carry_the_gold(docs, tiny_model_dir, tmp_path):
    from evaluation.scoring import Reference

    result = _export(docs, tmp_path / "p", tiny_model_dir, kind="prompt")
    rows = [json.loads(x) for s in ("train", "eval") for x in (tmp_path / "p" / f"{s}.jsonl").read_text().splitlines()]
    assert len(rows) == result.samples > len(docs)  # tool results open further decision points
    for row in rows:
        assert row["prompt"][-1]["role"] in ("user", "tool")
        ref = Reference.from_dict(row["reference"])
        assert ref.item_id == row["id"] and ref.decision in ("call", "answer", "ask", "decline")
    multi = [r for r in rows if r["id"].startswith("t7#t1")]
    assert multi and any(m["role"] == "tool" for m in multi[0]["prompt"])  # earlier turns' results kept


def test_a_prompt_export_without_evaluations_reference_builder_is_refused_naming_the_kind(docs, tiny_model_dir,
                                                                                             tmp_path, monkeypatch):
    # Training imports nothing of evaluation: evaluation registers how references are made when its app loads.
    from training.export import SettingsError, renderers

    monkeypatch.setattr(renderers, "_reference_builders", [])
    with pytest.raises(SettingsError) as refused:
        _export(docs, tmp_path / "p", tiny_model_dir, kind="prompt")
    assert refused.value.field == "kind" and "evaluation" in refused.value.message
    assert not (tmp_path / "p").exists()


# --- dpo -----------------------------------------------------------------------------------------

def _pairs():
    from annotate.pairs import fork, starter_steps
    from annotate.trajectory import Trajectory

    multi = Trajectory.from_dict(demo_docs()[7])  # two turns; the second calls a tool
    pair = fork(multi, 1, 1, category="tool_needed")
    pair.rejected = starter_steps("tool_needed", pair.chosen, pair.context)
    same = fork(multi, 1, 1, category="other")
    same.rejected = copy.deepcopy(same.chosen)
    return {"p1": pair.to_document(), "p2": same.to_document()}


def test_dpo_rows_keep_earlier_tool_calls_and_results_and_flag_identical_sides(tiny_model_dir, tmp_path):
    docs = _pairs()
    result = _export(docs, tmp_path / "d", tiny_model_dir, kind="dpo")
    rows = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["t1", "t2"]
    first = rows[0]
    prompt = [m for m in first["prompt"] if m["role"] != "system"]
    assert [m["role"] for m in prompt][:4] == ["user", "assistant", "tool", "assistant"]
    assert prompt[1]["tool_calls"][0]["function"]["name"] == "search_flights"
    assert first["prompt"][-1]["role"] == "user"
    assert first["chosen"] != first["rejected"]
    assert first["chosen"][0]["role"] == first["rejected"][0]["role"] == "assistant"
    assert result.audit["findings"].get("identical_sides") == 1
    assert [e["item"] for e in result.audit["examples"] if e["code"] == "identical_sides"] == ["t2"]


@pytest.mark.parametrize("context, chosen, rejected, expected", [
    (["u"], ["u", "a1"], ["u", "a2"], 1),
    (["u", "a0", "t"], ["u", "a0", "t", "a1"], ["u", "a0", "t", "a2"], 3),
    (["u", "a1"], ["u", "a1", "t"], ["u", "a1", "t2"], 1),  # cut inside an assistant message
])
def test_the_prompt_is_what_both_sides_share_up_to_an_assistant_message(context, chosen, rejected, expected):
    msg = lambda name: {"role": {"u": "user", "a": "assistant", "t": "tool"}[name[0]], "content": name}  # noqa: E731
    assert split_pair_messages([msg(x) for x in context], [msg(x) for x in chosen],
                               [msg(x) for x in rejected]) == expected


def test_one_sample_per_turn_exports_prompt_completion_and_flags_trained_tool_results(docs, tiny_model_dir, tmp_path):
    plain = _export(docs, tmp_path / "turn", tiny_model_dir, template="qwen3")  # drops history reasoning: auto → turn
    meta = json.loads((tmp_path / "turn" / "snapshot.json").read_text())
    assert meta["columns"] == ["id", "prompt", "completion", "tools"]
    rows = [json.loads(x) for x in (tmp_path / "turn" / "train.jsonl").read_text().splitlines()]
    with_tools = {r["id"] for r in rows if any(m["role"] == "tool" for m in r["completion"])}
    assert with_tools
    flagged = {e["sample"] for e in plain.audit["examples"] if e["code"] == "completion_holds_tool_results"}
    assert plain.audit["findings"]["completion_holds_tool_results"] >= len(with_tools) and with_tools <= flagged
    tokenized = _export(docs, tmp_path / "turn-tok", tiny_model_dir, template="qwen3", tokenized=True)
    assert "completion_holds_tool_results" not in tokenized.audit["findings"]


def test_tau_bench_samples_cut_by_max_length_are_reported_one_by_one(tiny_model_dir, tmp_path):
    """tau-bench's long policy prompt and histories run past max_length=8192 with the tiny tokenizer:
    TRL silently drops a sample whose supervised tokens are all cut; the export keeps the row and
    reports it, and counts what partial cuts lose."""
    from annotate.formats.tau_bench import to_trajectory
    from tests.conftest import shared_path

    folder = shared_path("fixtures", "tau_bench")
    records = json.loads((folder / "gpt-4o-airline_trial0.json").read_text())[:1]
    tools = json.loads((folder / "airline_tools.json").read_text())
    docs = {f"r{i}": to_trajectory(r, tools=tools).to_dict() for i, r in enumerate(records)}
    result = _export(docs, tmp_path / "tau", tiny_model_dir, template="qwen3", max_length=8192, tokenized=True)
    rows = [json.loads(x) for x in (tmp_path / "tau" / "train.jsonl").read_text().splitlines()]
    nothing_left = [r["id"] for r in rows if all(label == -100 for label in r["labels"])]
    assert len(rows) == result.samples and nothing_left  # kept in the files, not dropped
    assert result.audit["findings"]["all_supervised_truncated"] == len(nothing_left)
    assert result.audit["blocking"]
    assert result.audit["totals"]["truncated_samples"] == sum(1 for r in rows if len(r["input_ids"]) == 8192)
    assert result.audit["totals"]["supervised_tokens_cut"] > 0

"""A snapshot trains: TRL's SFTTrainer and DPOTrainer run 2 steps on the tiny model from the exported
files, loaded with ``datasets.load_from_disk`` and handed over with no conversion code.

CPU settings as in DEVELOPERS.md: ``use_cpu=True, bf16=False, gradient_checkpointing=False``.
"""

from __future__ import annotations

import json

import pytest

from tests.training.snapshot_helpers import demo_docs
from training.export import ExportItem, ExportSettings, MemoryCache, run_export

pytestmark = pytest.mark.slow

CPU = dict(use_cpu=True, bf16=False, gradient_checkpointing=False, report_to=[], save_strategy="no",
           logging_steps=1, max_steps=2, per_device_train_batch_size=2, dataset_num_proc=None)


def _export(docs: dict, out, tokenizer_dir, **settings):
    items = [ExportItem(key=k, ident=k, split="train") for k in docs]
    s = ExportSettings(template="qwen3_training", tokenizer=str(tokenizer_dir), **settings)
    return run_export(items, s, out, load_documents=lambda keys: {k: docs[k] for k in keys}, cache=MemoryCache())


def test_sft_trains_two_steps_from_the_export_and_builds_our_labels(tiny_model_dir, tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    docs = {f"d{i}": d for i, d in enumerate(demo_docs())}
    conversational = _export(docs, tmp_path / "sft", tiny_model_dir, strategy="conversation")
    _export(docs, tmp_path / "tok", tiny_model_dir, strategy="conversation", tokenized=True)
    # One demo trajectory has a step with error labels, masked by policy: a messages row cannot carry
    # that, so the audit says so and TRL's labels differ there (only there).
    masked = {e["item"] for e in conversational.audit["examples"] if e["code"] == "masks_need_tokenized"}
    assert conversational.audit["findings"]["masks_need_tokenized"] == len(masked) == 1
    train = datasets.load_from_disk(str(tmp_path / "sft" / "hf"))["train"]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
        args=SFTConfig(output_dir=str(tmp_path / "run"), assistant_only_loss=True, max_length=None, **CPU),
        train_dataset=train)
    ours = [json.loads(x) for x in (tmp_path / "tok" / "train.jsonl").read_text().splitlines()]
    prepared = trainer.train_dataset
    assert prepared["input_ids"] == [r["input_ids"] for r in ours]
    same = [(t, r["labels"]) for t, r in zip(prepared["labels"], ours) if not r["id"].startswith(tuple(masked))]
    assert len(same) == len(ours) - 1 and all(theirs == mine for theirs, mine in same)
    out = trainer.train()
    assert trainer.state.global_step == 2 and out.training_loss > 0


def test_sft_trains_from_the_tokenized_export_as_is(tiny_model_dir, tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    docs = {f"d{i}": d for i, d in enumerate(demo_docs(2))}
    _export(docs, tmp_path / "tok", tiny_model_dir, tokenized=True, max_length=2048)
    train = datasets.load_from_disk(str(tmp_path / "tok" / "hf"))["train"]
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                         processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
                         args=SFTConfig(output_dir=str(tmp_path / "run"), max_length=2048, **CPU), train_dataset=train)
    assert trainer.train_dataset["labels"] == train["labels"]
    trainer.train()
    assert trainer.state.global_step == 2


def _pair_docs() -> dict:
    from annotate.pairs import fork, starter_steps
    from annotate.trajectory import Trajectory

    out = {}
    weather, multi = (Trajectory.from_dict(demo_docs()[i]) for i in (0, 7))
    for name, traj, turn, step, category in (("p1", weather, 0, 0, "tool_needed"),
                                             ("p2", multi, 1, 1, "tool_needed"),
                                             ("p3", multi, 1, 1, "cost")):
        pair = fork(traj, turn, step, category=category)
        pair.rejected = starter_steps(category, pair.chosen, pair.context)
        out[name] = pair.to_document()
    return out


def test_dpo_trains_two_steps_from_the_export(tiny_model_dir, tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    result = _export(_pair_docs(), tmp_path / "dpo", tiny_model_dir, kind="dpo")
    assert result.audit["errors"] == 0
    train = datasets.load_from_disk(str(tmp_path / "dpo" / "hf"))["train"]
    assert any(m["role"] == "tool" for m in train[1]["prompt"])  # the earlier turn's result is in the prompt
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                         processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
                         args=DPOConfig(output_dir=str(tmp_path / "run"), max_length=1024, **CPU), train_dataset=train)
    trainer.train()
    assert trainer.state.global_step == 2

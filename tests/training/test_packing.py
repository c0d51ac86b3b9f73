"""Packed SFT: TRL's padding-free packing trains exactly the tokens our labels name, row by row.

The label test renders the shared tau-bench fixture with the real Qwen3 tokenizer into a tokenized
snapshot (our masks in its ``labels`` column), builds the trainer through the runner's own code,
once packed and once not, and reads every batch the trainer would train on back as rows. The
slow tests check, on the tiny model, that a packed batch gives each row the same logits and loss
as the row alone (attention stays in its row), and run 20 packed steps through the runner.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.training.canonical_fixtures import load, tokenizer_path
from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from training import packing, runner
from training.runner import EventLog, RunConfig, TrainSettings

IGNORE = -100


# --- the setting --------------------------------------------------------------------------------

def _cfg(dataset_dir="/nowhere", kind="sft", **settings) -> RunConfig:
    return RunConfig(kind=kind, model="/models/tiny", dataset_dir=str(dataset_dir), output_dir="/runs/1",
                     settings=TrainSettings(**{**TrainSettings.defaults_for(kind).to_dict(), **settings}))


def test_packing_is_off_unless_asked_for_and_then_uses_trls_padding_free_best_fit_packing():
    off = runner.trl_kwargs(_cfg(), "cpu", has_eval=False, columns=["messages", "input_ids", "labels"])
    assert "packing" not in off and "padding_free" not in off
    on = runner.trl_kwargs(_cfg(packing=True), "cpu", has_eval=False, columns=["messages", "input_ids", "labels"])
    assert (on["packing"], on["packing_strategy"], on["padding_free"]) == (True, "bfd", True)
    assert on["include_num_input_tokens_seen"] == "all"  # no padding left: every token is a real one
    assert "packing=True," in runner.trl_call_text(_cfg(packing=True), "cpu", has_eval=False, columns=["messages"])


def test_packing_is_refused_for_dpo_naming_the_field():
    dpo = TrainSettings(**{**TrainSettings.defaults_for("dpo").to_dict(), "packing": True})
    assert "SFT runs only" in runner.settings_errors("dpo", dpo)["packing"]
    assert "packing" not in runner.relevant_settings("dpo", TrainSettings.defaults_for("dpo"))
    assert runner.relevant_settings("sft", TrainSettings(packing=True))["packing"] is True


@pytest.mark.parametrize("value", ["yes", "false", 1, 0])
def test_packing_from_json_takes_true_or_false_only(value):
    with pytest.raises(ValueError, match="packing: expected true or false"):
        TrainSettings.from_dict({"packing": value})
    assert TrainSettings.from_dict({"packing": True}).packing is True


# --- the launch form ----------------------------------------------------------------------------

@pytest.fixture
def launch(settings, tmp_path, monkeypatch, project, lead, client):
    fast_users(settings)
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path]
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)  # no broker here
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    snap = make_snapshot(project, "sft", bare_snapshot_dir(tmp_path / "sft"), name="weather v1")
    assert client.login(username=lead.username, password=PASSWORD)
    data = {"kind": "sft", "snapshot": snap.pk, "base_model": str(tmp_path / "model"), "method": "full",
            "learning_rate": "2e-5", "num_train_epochs": "1", "max_steps": "4", "batch_size": "2",
            "gradient_accumulation_steps": "1", "max_length": "", "warmup": "0", "lr_scheduler_type": "linear",
            "seed": "42", "eval_fraction": "0", "eval_steps": "50", "logging_steps": "1", "save_steps": "2",
            "precision": "auto", "device": "cpu", "action": "launch"}
    return client, reverse("training:launch-job", args=[project.slug]), data


def test_a_lead_ticks_packing_on_the_launch_form_and_the_run_and_its_preview_pack(launch):
    from training.models import TrainingJob

    client, url, data = launch
    html = client.get(url).content.decode()
    assert 'name="packing"' in html and "Pack sequences" in html
    assert 'name="packing"' not in client.get(url + "?kind=dpo").content.decode()
    preview = client.post(url, {**data, "packing": "on", "action": "preview"}).content.decode()
    assert "packing=True," in preview and "padding_free=True," in preview
    client.post(url, {**data, "packing": "on"})
    client.post(url, data)  # unticked: an unpacked run
    packed, plain = TrainingJob.objects.order_by("pk")
    assert packed.config["packing"] is True and plain.config["packing"] is False


def test_scripts_ask_for_packing_through_the_api_and_a_wrong_value_names_the_setting(launch, lead):
    from rest_framework.test import APIClient

    from training.models import TrainingJob

    client = APIClient()
    client.force_authenticate(lead)
    snap = launch[2]["snapshot"]
    url = "/api/projects/weather/training-jobs/"
    body = {"snapshot": snap, "kind": "sft", "base_model": "Qwen/Qwen3-0.6B", "settings": {"max_steps": 5}}
    r = client.post(url, {**body, "settings": {"packing": "yes"}}, format="json")
    assert r.status_code == 400 and "packing: expected true or false" in str(r.data["settings"])
    r = client.post(url, {**body, "settings": {"packing": True}}, format="json")
    assert r.status_code == 201, r.data
    assert TrainingJob.objects.get(pk=r.data["id"]).config["packing"] is True


# --- the packed batches supervise exactly our labels (tau-bench, real Qwen3 tokenizer) ----------

MAX_LENGTH = 16384  # the tau-bench rows are 4k to 8k tokens: two or three to a packed sequence


@pytest.fixture(scope="module")
def tau_snapshot(tmp_path_factory):
    """The tau-bench fixture exported tokenized with the real Qwen3 tokenizer, and a micro model of
    that vocabulary (random weights: these tests read batches, they do not train)."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from training.export import ExportItem, ExportSettings, MemoryCache, run_export

    qwen3 = tokenizer_path("qwen3")
    trajectories = load("tau_bench", 6)
    docs = {f"tau{i}": t.to_dict() for i, t in enumerate(trajectories)}
    root = tmp_path_factory.mktemp("tau")
    result = run_export([ExportItem(key=k, ident=k, split="train") for k in docs],
                        ExportSettings(template="qwen3_training", tokenizer=str(qwen3), tokenized=True),
                        root / "snapshot", load_documents=lambda keys: {k: docs[k] for k in keys},
                        cache=MemoryCache())
    assert result.audit["errors"] == 0
    tok = AutoTokenizer.from_pretrained(qwen3)
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         head_dim=8, max_position_embeddings=MAX_LENGTH))
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    ours = [json.loads(line) for line in (root / "snapshot" / "train.jsonl").read_text().splitlines()]
    return root, ours


def _trainer(root: Path, packed: bool, **settings):
    cfg = RunConfig(kind="sft", model=str(root / "model"), dataset_dir=str(root / "snapshot" / "hf"),
                    output_dir=str(root / ("packed" if packed else "unpacked")),
                    chat_template_file=str(root / "snapshot" / "chat_template.jinja"),
                    settings=TrainSettings(**{"packing": packed, "max_length": MAX_LENGTH, "batch_size": 2,
                                              "max_steps": 1, "device": "cpu", **settings}))
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    return runner.build_trainer(cfg, "cpu", EventLog(cfg.run_dir / runner.METRICS_FILE))


def _key(row: dict) -> tuple:
    return tuple(row["input_ids"]), tuple(row["labels"])


def test_packed_batches_supervise_exactly_the_tokens_of_the_unpacked_rows(tau_snapshot):
    root, ours = tau_snapshot
    assert len(ours) >= 5 and all(len(r["input_ids"]) <= MAX_LENGTH for r in ours)
    # Our rows never supervise their first token (the system turn's <|im_start|>), so the packed
    # rows, whose first label the collator masks, must match them label for label.
    assert all(r["labels"][0] == IGNORE for r in ours)
    expected = sorted(_key(r) for r in ours)

    unpacked_rows = []
    for batch in _trainer(root, packed=False).get_train_dataloader():
        for ids, labels, keep in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            unpacked_rows.append({"input_ids": ids[keep == 1].tolist(), "labels": labels[keep == 1].tolist()})
    assert sorted(_key(r) for r in unpacked_rows) == expected

    packed_rows, shapes = [], []
    for batch in _trainer(root, packed=True).get_train_dataloader():
        # Padding-free: one flat sequence, no attention mask (with one, the attention would ignore
        # the position ids and cross the rows), position ids that restart at every row.
        assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
        ids, labels, positions = (batch[k][0].tolist() for k in ("input_ids", "labels", "position_ids"))
        rows = packing.unpack_batch(ids, labels, positions)
        assert positions == [p for r in rows for p in range(len(r["input_ids"]))]
        packed_rows += rows
        shapes.append(len(rows))
    assert max(shapes) >= 2, f"no batch packed two rows together: {shapes}"
    assert len(packed_rows) == len(ours)
    assert sorted(_key(r) for r in packed_rows) == expected  # token by token: ids and labels
    supervised = sum(label != IGNORE for r in packed_rows for label in r["labels"])
    assert supervised == sum(label != IGNORE for r in ours for label in r["labels"]) > 0


def test_a_row_longer_than_max_length_is_cut_at_the_end_as_without_packing(tau_snapshot):
    root, ours = tau_snapshot
    cut = 6000
    expected = sorted((tuple(r["input_ids"][:cut]), tuple(r["labels"][:cut])) for r in ours
                      if any(label != IGNORE for label in r["labels"][:cut]))
    unpacked = _trainer(root, packed=False, max_length=cut).train_dataset
    assert sorted(zip(map(tuple, unpacked["input_ids"]), map(tuple, unpacked["labels"]))) == expected
    packed = _trainer(root, packed=True, max_length=cut).train_dataset
    rows = [r for ids, labels, lengths in zip(packed["input_ids"], packed["labels"], packed["seq_lengths"])
            for r in _split(ids, labels, lengths)]
    assert sorted(_key(r) for r in rows if any(x != IGNORE for x in r["labels"])) == expected


def _split(ids, labels, lengths):
    out, start = [], 0
    for n in lengths:
        out.append({"input_ids": ids[start:start + n], "labels": labels[start:start + n]})
        start += n
    return out


# --- on the tiny model: attention stays in its row; 20 packed steps -----------------------------

@pytest.fixture(scope="module")
def demo_snapshot(tiny_model_dir, tmp_path_factory):
    """The demo trajectories (every case type) exported tokenized: our labels in the rows."""
    from tests.training.snapshot_helpers import demo_docs
    from training.export import ExportItem, ExportSettings, MemoryCache, run_export

    docs = {f"d{i}": d for i, d in enumerate(demo_docs())}
    out = tmp_path_factory.mktemp("demo") / "snapshot"
    run_export([ExportItem(key=k, ident=k, split="train") for k in docs],
               ExportSettings(template="qwen3_training", tokenizer=str(tiny_model_dir), tokenized=True), out,
               load_documents=lambda keys: {k: docs[k] for k in keys}, cache=MemoryCache())
    return out


def _tiny_cfg(tiny_model_dir, snapshot: Path, out: Path, **settings) -> RunConfig:
    out.mkdir(parents=True, exist_ok=True)
    return RunConfig(kind="sft", model=str(tiny_model_dir), dataset_dir=str(snapshot / "hf"), output_dir=str(out),
                     chat_template_file=str(snapshot / "chat_template.jinja"),
                     settings=TrainSettings(**{"packing": True, "max_length": 2048, "batch_size": 2, "device": "cpu",
                                               **settings}))


@pytest.mark.slow
def test_in_a_packed_batch_each_row_gets_the_logits_and_loss_it_gets_alone(tiny_model_dir, demo_snapshot, tmp_path):
    import torch

    cfg = _tiny_cfg(tiny_model_dir, demo_snapshot, tmp_path / "run", max_steps=1)
    trainer = runner.build_trainer(cfg, "cpu", EventLog(tmp_path / "run" / runner.METRICS_FILE))
    model = trainer.model.eval()
    # A batch as the trainer collates it, with the rows' bounds taken from the packing itself
    # (seq_lengths), not from the position ids the collator derives from them: those are checked.
    fullest = sorted(range(len(trainer.train_dataset)), key=lambda i: -len(trainer.train_dataset[i]["seq_lengths"]))
    examples = [trainer.train_dataset[i] for i in fullest[:2]]
    batch = trainer.data_collator(examples)
    lengths = [n for e in examples for n in e["seq_lengths"]]
    assert max(len(e["seq_lengths"]) for e in examples) >= 2, "no packed sequence holds two rows"
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    with torch.no_grad():
        together = model(**batch)  # what the trainer computes, with every key the collator gives
        start, loss_sum, targets = 0, 0.0, 0
        for n in lengths:
            row_ids, row_labels = ids[start:start + n], labels[start:start + n]
            alone = model(input_ids=torch.tensor([row_ids]), labels=torch.tensor([row_labels]))
            torch.testing.assert_close(together.logits[0, start:start + n], alone.logits[0], atol=1e-4, rtol=1e-4)
            count = sum(label != IGNORE for label in row_labels[1:])
            loss_sum, targets, start = loss_sum + alone.loss.item() * count, targets + count, start + n
    assert start == len(ids)
    assert together.loss.item() == pytest.approx(loss_sum / targets, rel=1e-4)


@pytest.mark.slow
def test_a_packed_sft_run_trains_twenty_steps_through_the_runner(tiny_model_dir, demo_snapshot, tmp_path):
    cfg = _tiny_cfg(tiny_model_dir, demo_snapshot, tmp_path / "run", max_steps=20, batch_size=1, learning_rate=1e-3,
                    logging_steps=5, save_steps=1000)
    results = runner.start_training(cfg, EventLog(tmp_path / "run" / runner.METRICS_FILE))
    assert results["global_step"] == 20
    events = [json.loads(x) for x in (tmp_path / "run" / runner.METRICS_FILE).read_text().splitlines()]
    packed = [e["message"] for e in events if e["event"] == "status" and e["message"].startswith("Packed ")]
    assert packed and "sequences of up to 2048 tokens" in packed[0]
    losses = [e["values"]["loss"] for e in events if e["event"] == "log" and "loss" in e["values"]]
    assert len(losses) >= 4 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert results["tokens_per_second"] > 0
    card = (tmp_path / "run" / runner.FINAL_DIR / runner.CARD_FILE).read_text()
    assert "packing=True," in card and '"packing": true' in card

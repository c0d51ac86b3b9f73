"""The runner's pure parts: settings checks, the exact TRL arguments, the model card, checkpoints,
and the metrics callback's events. No database, no training."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from training import runner
from training.runner import RunConfig, TrainSettings


@pytest.mark.parametrize("kind, overrides, field, says", [
    ("sft", {"learning_rate": 0}, "learning_rate", "above 0"),
    ("sft", {"learning_rate": 3.0}, "learning_rate", "diverges"),
    ("sft", {"batch_size": 0}, "batch_size", "between 1"),
    ("sft", {"max_steps": 0, "num_train_epochs": 0}, "num_train_epochs", "epochs above 0"),
    ("sft", {"max_length": 8}, "max_length", "between 16"),
    ("sft", {"precision": "bf16", "device": "cpu"}, "precision", "needs a CUDA device"),
    ("sft", {"method": "lora", "lora_r": 0}, "lora_r", "rank"),
    ("sft", {"method": "lora", "lora_target_modules": " , "}, "lora_target_modules", "Name the modules"),
    ("sft", {"eval_fraction": 0.7}, "eval_fraction", "less than half"),
    ("sft", {"lr_scheduler_type": "zigzag"}, "lr_scheduler_type", "Choose one of"),
    ("dpo", {"beta": 0}, "beta", "Beta"),
    ("dpo", {"loss_type": "kto"}, "loss_type", "Choose one of"),
])
def test_it_names_the_field_of_each_bad_setting(kind, overrides, field, says):
    errors = runner.settings_errors(kind, TrainSettings(**{**TrainSettings.defaults_for(kind).to_dict(), **overrides}))
    assert field in errors and says in errors[field]


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_the_defaults_of_each_kind_can_run(kind):
    assert runner.settings_errors(kind, TrainSettings.defaults_for(kind)) == {}


def test_lora_settings_are_not_checked_for_full_fine_tuning():
    assert runner.settings_errors("sft", TrainSettings(method="full", lora_r=0)) == {}


@pytest.mark.parametrize("data, says", [
    ({"max_step": 4}, "unknown setting(s): max_step"),
    ({"batch_size": "two"}, "batch_size: expected an int"),
    ({"max_steps": 2.5}, "max_steps: expected an int"),
    ({"learning_rate": True}, "learning_rate: expected a float"),
])
def test_settings_from_json_name_the_bad_key(data, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        TrainSettings.from_dict(data)


def test_settings_from_json_take_the_kinds_defaults_for_missing_keys():
    s = TrainSettings.from_dict({"max_steps": "7"}, "dpo")
    assert s.max_steps == 7 and s.learning_rate == TrainSettings.defaults_for("dpo").learning_rate


def _cfg(kind="sft", dataset_dir="/nowhere", **settings):
    return RunConfig(kind=kind, model="/models/tiny", dataset_dir=dataset_dir, output_dir="/runs/7",
                     settings=TrainSettings(**{**TrainSettings.defaults_for(kind).to_dict(), **settings}), job_id=7,
                     snapshot={"id": 3, "name": "weather v1", "kind": kind, "content_hash": "c0ffee" * 10,
                               "render_settings": {"template": "qwen3_training", "max_length": 2048}},
                     app_commit="abc123")


def test_on_cpu_it_trains_in_fp32_without_gradient_checkpointing():
    kw = runner.trl_kwargs(_cfg(), "cpu", has_eval=False, columns=["messages"])
    assert (kw["use_cpu"], kw["bf16"], kw["gradient_checkpointing"]) == (True, False, False)


@pytest.mark.parametrize("precision, bf16", [("auto", True), ("bf16", True), ("fp32", False)])
def test_on_cuda_it_trains_in_bf16_unless_fp32_was_asked_for(precision, bf16):
    kw = runner.trl_kwargs(_cfg(precision=precision), "cuda", has_eval=False, columns=["messages"])
    assert kw["use_cpu"] is False and kw["bf16"] is bf16 and "gradient_checkpointing" not in kw


@pytest.mark.parametrize("device, choice, expected", [
    ("cuda", "auto", None), ("cuda", "on", True), ("cuda", "off", False),  # None: TRL's default (on)
    ("cpu", "auto", False), ("cpu", "on", True), ("cpu", "off", False)])
def test_gradient_checkpointing_follows_the_choice_and_the_device(device, choice, expected):
    kw = runner.trl_kwargs(_cfg(gradient_checkpointing=choice), device, has_eval=False, columns=["messages"])
    assert kw.get("gradient_checkpointing") is expected
    from trl import SFTConfig

    args = SFTConfig(**{**kw, "use_cpu": True, "bf16": False})  # TRL takes them (CPU here)
    assert args.gradient_checkpointing is (True if expected is None else expected)


def test_an_unknown_gradient_checkpointing_choice_is_a_field_error():
    assert "gradient_checkpointing" in runner.settings_errors("sft", TrainSettings(gradient_checkpointing="maybe"))


def test_the_trl_arguments_carry_the_form_values():
    cfg = _cfg(learning_rate=1e-4, max_steps=12, batch_size=4, gradient_accumulation_steps=2, max_length=512,
               warmup=0.1, lr_scheduler_type="cosine", seed=9, save_steps=5, logging_steps=3)
    kw = runner.trl_kwargs(cfg, "cpu", has_eval=True, columns=["messages"])
    assert kw["learning_rate"] == 1e-4 and kw["max_steps"] == 12 and kw["per_device_train_batch_size"] == 4
    assert kw["gradient_accumulation_steps"] == 2 and kw["max_length"] == 512 and kw["warmup_steps"] == 0.1
    assert kw["lr_scheduler_type"] == "cosine" and kw["seed"] == 9 and kw["save_steps"] == 5
    assert kw["eval_strategy"] == "steps" and kw["logging_steps"] == 3
    assert kw["output_dir"] == "/runs/7/checkpoints"


def test_epochs_apply_when_no_step_count_is_given_and_no_eval_set_means_no_evaluation():
    kw = runner.trl_kwargs(_cfg(max_steps=0, num_train_epochs=2), "cpu", has_eval=False, columns=["messages"])
    assert kw["max_steps"] == -1 and kw["num_train_epochs"] == 2 and kw["eval_strategy"] == "no"


@pytest.mark.parametrize("columns, assistant_only", [
    (["id", "messages", "tools"], True),  # masks from the template's generation markers
    (["id", "messages", "tools", "input_ids", "labels", "assistant_masks"], True),  # the snapshot's own masks
    (["id", "prompt", "completion", "tools"], False),  # one sample per turn: TRL masks to the completion
])
def test_sft_loss_is_on_assistant_tokens_by_the_snapshots_columns(columns, assistant_only):
    assert runner.trl_kwargs(_cfg(), "cpu", has_eval=False, columns=columns)["assistant_only_loss"] is assistant_only


def test_dpo_arguments_carry_beta_and_the_loss_type():
    kw = runner.trl_kwargs(_cfg("dpo", beta=0.3, loss_type="ipo"), "cpu", has_eval=False)
    assert kw["beta"] == 0.3 and kw["loss_type"] == ["ipo"] and "assistant_only_loss" not in kw


def test_lora_runs_get_a_peft_config_and_full_runs_none():
    assert runner.peft_kwargs(TrainSettings(method="full")) is None
    lora = runner.peft_kwargs(TrainSettings(method="lora", lora_r=8, lora_alpha=16, lora_target_modules="q_proj, v_proj"))
    assert lora["r"] == 8 and lora["lora_alpha"] == 16 and lora["target_modules"] == ["q_proj", "v_proj"]


def test_the_model_card_records_what_the_model_was_trained_on():
    cfg = _cfg(max_steps=3)
    card = runner.model_card(cfg, device="cpu", versions={"trl": "1.2.3", "torch": "9.9"},
                             results={"train_loss": 1.25}, template_sha256="feed" * 16)
    assert "c0ffee" * 10 in card and "weather v1" in card and "qwen3_training" in card
    assert '"max_length": 2048' in card  # render settings
    assert '"max_steps": 3' in card and "SFTConfig(" in card  # full config
    assert "trl 1.2.3" in card and "torch 9.9" in card and "`abc123`" in card
    assert "feed" * 16 in card and "train_loss: 1.25" in card
    assert '"beta"' not in card and '"lora_r"' not in card  # only the settings that mattered


def test_a_dpo_lora_card_says_so():
    card = runner.model_card(_cfg("dpo", method="lora"), device="cuda", versions={}, results={})
    assert "DPO LoRA adapter" in card and '"beta"' in card and "library_name: peft" in card


def test_the_latest_checkpoint_is_the_newest_complete_one(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        if complete:
            (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert runner.latest_checkpoint(tmp_path).name == "checkpoint-4"
    assert runner.latest_checkpoint(tmp_path / "nothing") is None


@pytest.mark.parametrize("model, ok", [
    ("Qwen/Qwen3-0.6B", True),
    ("not a model", False),
    ("/definitely/not/here", False),
])
def test_a_base_model_is_a_hub_id_or_a_model_folder(model, ok):
    assert (runner.model_reference_error(model) is None) is ok


def test_a_folder_without_config_json_is_not_a_model(tmp_path, tiny_model_dir):
    assert "no config.json" in runner.model_reference_error(str(tmp_path))
    assert runner.model_reference_error(str(tiny_model_dir)) is None


def test_the_job_file_round_trips(tmp_path):
    cfg = _cfg("dpo", beta=0.2)
    assert RunConfig.load(cfg.write(tmp_path / "job.json")) == cfg


def test_the_callback_logs_tokens_per_second_and_checkpoints(tmp_path, monkeypatch):
    from training.callbacks import MetricsCallback

    clock = iter([100.0, 102.0, 104.0])
    monkeypatch.setattr("training.callbacks.time", SimpleNamespace(time=lambda: next(clock)))
    events = runner.EventLog(tmp_path / "metrics.jsonl")
    cb = MetricsCallback(events)
    state = SimpleNamespace(global_step=0, max_steps=4, num_train_epochs=1, epoch=0.0, num_input_tokens_seen=0,
                            is_world_process_zero=True)
    cb.on_train_begin(None, state, None)  # t=100
    state.global_step, state.num_input_tokens_seen, state.epoch = 2, 1000, 0.5
    cb.on_log(None, state, None, logs={"loss": 2.5, "learning_rate": 1e-5, "train_runtime": 9.0})  # t=102
    cb.on_log(None, state, None, logs={"eval_loss": 2.4, "epoch": 0.5})  # t=104: eval, no tokens/s
    cb.on_save(SimpleNamespace(output_dir="/runs/1/checkpoints"), state, None)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in lines] == ["begin", "log", "log", "checkpoint"]
    assert lines[1]["values"] == {"loss": 2.5, "learning_rate": 1e-5, "tokens_per_second": 500.0}
    assert "tokens_per_second" not in lines[2]["values"] and lines[2]["values"]["eval_loss"] == 2.4
    assert lines[3]["path"] == "/runs/1/checkpoints/checkpoint-2" and lines[3]["step"] == 2


@pytest.mark.parametrize("module", ["training.runner", "jobs.runner_io", "training.callbacks"])
def test_the_training_subprocess_is_checked_to_reach_no_django(module):
    # The runner runs without Django (under torchrun, the benchmark, a plain shell): the pure
    # contract (.importlinter, kept by tests/test_layers.py) must list what it runs.
    from tests.test_layers import in_pure_contract

    assert in_pure_contract(module)

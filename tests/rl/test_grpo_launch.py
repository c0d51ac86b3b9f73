"""The GRPO launch form and ``manage.py train --kind grpo``'s checks, through Django's test client
(no worker): every problem at once, the exact GRPOConfig preview, a queued ``grpo`` row, roles."""

from __future__ import annotations

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from rl import runner
from rl.forms import weight_field
from tests.conftest import PASSWORD
from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from training.models import JobStatus, TrainingJob


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)  # no broker in these tests


@pytest.fixture
def prompts(project, tmp_path):
    return make_snapshot(project, "prompt", bare_snapshot_dir(tmp_path / "prompt"), name="weather prompts")


def _form(snap, model_dir, **over) -> dict:
    data = {"snapshot": snap.pk, "base_model": str(model_dir), "environment_kind": "python",
            "environment_class": runner.BUILTIN_ENVIRONMENTS[0], "num_generations": "4", "prompts_per_step": "2",
            "max_tool_calling_iterations": "3", "max_completion_length": "128", "temperature": "1.0",
            "beta": "0.04", "learning_rate": "1e-6", "max_steps": "20", "rollout_every": "5", "save_steps": "10",
            "logging_steps": "1", "seed": "42", "device": "auto", "action": "launch",
            weight_field("format_reward"): "1", weight_field("tool_name_reward"): "1",
            weight_field("environment"): "0.5"}
    data.update(over)
    return data


def _field_errors(html: str, name: str) -> str:
    m = re.search(rf'id="field-{name}".*?(?=<div class="field|</fieldset>)', html, re.S)
    return m.group(0) if m else ""


def _login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_form_shows_every_problem_at_once(client, lead, project, prompts, tiny_model_dir, tmp_path):
    sft = make_snapshot(project, "sft", bare_snapshot_dir(tmp_path / "sft"), name="weather sft")
    url = reverse("rl:launch-grpo", args=[project.slug])
    bad = _form(prompts, tiny_model_dir, snapshot=sft.pk, num_generations="1", temperature="0", beta="-1",
                learning_rate="0", max_steps="0", rollout_every="0", max_completion_length="4",
                base_model="/nowhere/model", **{weight_field("format_reward"): "0", weight_field("tool_name_reward"): "",
                                               weight_field("environment"): ""})
    # an SFT snapshot is not among the choices: the form refuses it as a choice
    html = _login(client, lead).post(url, bad).content.decode()
    assert TrainingJob.objects.count() == 0
    for name in ("snapshot", "base_model", "num_generations", "temperature", "beta", "learning_rate", "max_steps",
                 "rollout_every", "max_completion_length", weight_field("format_reward")):
        assert 'class="field-errors"' in _field_errors(html, name), name
    assert "Give at least one reward function a weight other than 0." in html


def test_the_preview_shows_the_exact_grpo_config_and_launching_queues_a_grpo_row(
        client, lead, project, prompts, tiny_model_dir):
    url = reverse("rl:launch-grpo", args=[project.slug])
    html = _login(client, lead).post(url, _form(prompts, tiny_model_dir, action="preview")).content.decode()
    assert 'id="preview-config"' in html and "GRPOConfig(" in html
    assert "num_generations=4," in html and "per_device_train_batch_size=8," in html
    assert "max_tool_calling_iterations=3," in html and "reward_weights=[1.0, 1.0, 0.5]," in html
    assert "use_cpu=True," in html and "bf16=True" in html  # the CPU config, and what CUDA changes
    assert "python -m rl.runner" in html and TrainingJob.objects.count() == 0

    response = client.post(url, _form(prompts, tiny_model_dir))
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("training:job-detail", args=[job.pk])
    assert job.kind == "grpo" and job.status == JobStatus.QUEUED and job.total_steps == 20
    assert job.config["rewards"] == {"format_reward": 1.0, "tool_name_reward": 1.0, "environment": 0.5}
    assert job.config["environment"] == {"kind": "python", "class": runner.BUILTIN_ENVIRONMENTS[0]}
    # the next launch starts from these values
    again = client.get(url).content.decode()
    assert f'name="{weight_field("environment")}" value="0.5"' in again


def test_annotators_cannot_launch(client, annotator, project, prompts, tiny_model_dir):
    url = reverse("rl:launch-grpo", args=[project.slug])
    assert _login(client, annotator).post(url, _form(prompts, tiny_model_dir)).status_code == 403
    assert TrainingJob.objects.count() == 0


def test_manage_py_train_grpo_names_each_bad_setting(project, prompts, tiny_model_dir, tmp_path):
    config = tmp_path / "grpo.json"
    config.write_text('{"num_generations": 1, "environment": {"kind": "python", "class": "os.system"}}')
    with pytest.raises(CommandError) as err:
        call_command("train", "--snapshot", str(prompts.pk), "--kind", "grpo", "--model", str(tiny_model_dir),
                     "--config", str(config))
    text = str(err.value)
    assert "num_generations:" in text and "environment: 'os.system' is not a registered environment class" in text
    assert TrainingJob.objects.count() == 0


def test_the_api_launches_and_previews_a_grpo_job_and_names_bad_fields(client, lead, project, prompts, tiny_model_dir):
    _login(client, lead)
    url = reverse("api-grpo-jobs", args=[project.slug])
    bad = client.post(url, {"snapshot": prompts.pk, "base_model": str(tiny_model_dir),
                            "settings": {"num_generations": 1, "rewards": {"nope": 1}}}, content_type="application/json")
    assert bad.status_code == 400 and set(bad.json()) >= {"num_generations", "rewards"}
    body = {"snapshot": prompts.pk, "base_model": str(tiny_model_dir), "settings": {"max_steps": 12}}
    shown = client.post(reverse("api-grpo-preview", args=[project.slug]), body, content_type="application/json").json()
    assert shown["grpo_config"]["cpu"]["max_steps"] == 12 and shown["grpo_config"]["cuda"]["bf16"] is True
    made = client.post(url, body, content_type="application/json")
    assert made.status_code == 201 and made.json()["kind"] == "grpo"
    listed = client.get(reverse("api-training-jobs", args=[project.slug]) + "?kind=grpo").json()
    assert [j["id"] for j in listed["results"]] == [made.json()["id"]]


def test_a_replay_environment_needs_recorded_results_in_the_snapshot(project, tiny_model_dir):
    from rl.launch import grpo_errors
    from tests.evaluation.runs_harness import make_prompt_snapshot, prompt_snapshot_dir

    snapshot = make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir))
    errors = grpo_errors(project, snapshot, str(tiny_model_dir), runner.GRPOSettings(environment={"kind": "replay"}))
    assert "no recorded tool results" in errors["environment"]
    assert grpo_errors(project, snapshot, str(tiny_model_dir), runner.GRPOSettings()) == {}

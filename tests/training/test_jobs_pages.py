"""The launch form, the job page, the runs page and downloads, through Django's test client (no worker)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD
from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from jobs import rows
from training import jobs, runner
from training.models import JobStatus, MetricPoint, TrainingJob


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch):
    fast_users(settings)
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)  # no broker in these tests


@pytest.fixture
def sft_snapshot(project, tmp_path):
    return make_snapshot(project, "sft", bare_snapshot_dir(tmp_path / "sft"), name="weather v1")


@pytest.fixture
def dpo_snapshot(project, tmp_path):
    return make_snapshot(project, "dpo", bare_snapshot_dir(tmp_path / "dpo"), name="weather pairs")


def _client(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _form(snap, model_dir, **over) -> dict:
    data = {"kind": snap.kind, "snapshot": snap.pk, "base_model": str(model_dir), "method": "full",
            "learning_rate": "2e-5", "num_train_epochs": "1", "max_steps": "4", "batch_size": "2",
            "gradient_accumulation_steps": "1", "max_length": "", "warmup": "0", "lr_scheduler_type": "linear",
            "seed": "42", "eval_fraction": "0", "eval_steps": "50", "logging_steps": "1", "save_steps": "2",
            "precision": "auto", "device": "auto", "lora_r": "16", "lora_alpha": "32", "lora_dropout": "0.05",
            "lora_target_modules": "all-linear", "action": "launch"}
    if snap.kind == "dpo":
        data.update(beta="0.1", loss_type="sigmoid")
    data.update(over)
    return data


def _field_errors(html: str, name: str) -> str:
    m = re.search(rf'id="field-{name}".*?(?=<div class="field|</fieldset>)', html, re.S)
    return m.group(0) if m else ""


@pytest.fixture
def model_dir(tmp_path, settings):
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path]  # the admin lists it as a model root
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


@pytest.mark.parametrize("over, field, says", [
    ({"learning_rate": "-1"}, "learning_rate", "Must be above 0"),
    ({"learning_rate": "fast"}, "learning_rate", "Enter a number"),
    ({"batch_size": "0"}, "batch_size", "Batch size must be between 1"),
    ({"max_steps": "2.5"}, "max_steps", "Enter a whole number"),
    ({"max_length": "8"}, "max_length", "between 16"),
    ({"precision": "bf16", "device": "cpu"}, "precision", "bf16 training needs a CUDA device"),
    ({"method": "lora", "lora_r": "0"}, "lora_r", "LoRA rank must be between 1"),
    ({"base_model": "/no/such/model"}, "base_model", "Not an allowed path"),
    ({"base_model": "just words"}, "base_model", "neither an existing folder nor a hub id"),
    ({"eval_fraction": "0.9"}, "eval_fraction", "less than half"),
    ({"snapshot": ""}, "snapshot", "This field is required"),
    ({"gradient_checkpointing": "maybe"}, "gradient_checkpointing", "Select a valid choice"),
])
def test_bad_values_get_field_errors_and_launch_nothing(client, lead, sft_snapshot, model_dir, over, field, says):
    page = _client(client, lead).post(reverse("training:launch-job", args=[sft_snapshot.project.slug]),
                                      _form(sft_snapshot, model_dir, **over))
    assert page.status_code == 200
    html = page.content.decode()
    assert says in _field_errors(html, field), html[:3000]
    assert "Please fix the 1 problem below" in html
    assert not TrainingJob.objects.exists()


def test_every_problem_is_reported_at_once(client, lead, sft_snapshot, model_dir):
    page = _client(client, lead).post(reverse("training:launch-job", args=["weather"]),
                                      _form(sft_snapshot, model_dir, snapshot="", learning_rate="-1", batch_size="0"))
    html = page.content.decode()
    assert "This field is required" in _field_errors(html, "snapshot")
    assert "Must be above 0" in _field_errors(html, "learning_rate") and "between 1" in _field_errors(html, "batch_size")
    assert "Please fix the 3 problems below" in html


def test_the_newest_finished_snapshot_is_offered_first(client, lead, sft_snapshot, project, tmp_path):
    newer = make_snapshot(project, "sft", bare_snapshot_dir(tmp_path / "newer"), name="weather v2")
    html = _client(client, lead).get(reverse("training:launch-job", args=["weather"])).content.decode()
    assert f'<option value="{newer.pk}" selected>' in html


def test_a_snapshot_with_unreviewed_audit_errors_cannot_be_trained_on(client, lead, sft_snapshot, model_dir):
    sft_snapshot.audit_errors = 3
    sft_snapshot.save()
    page = _client(client, lead).post(reverse("training:launch-job", args=["weather"]), _form(sft_snapshot, model_dir))
    assert "3 audit error(s); a lead must review" in _field_errors(page.content.decode(), "snapshot")
    assert not TrainingJob.objects.exists()


def test_dpo_lists_only_dpo_snapshots(client, lead, sft_snapshot, dpo_snapshot, model_dir):
    url = reverse("training:launch-job", args=["weather"])
    page = _client(client, lead).get(url + "?kind=dpo")
    html = page.content.decode()
    assert "weather pairs" in html and "weather v1" not in html and 'name="beta"' in html
    posted = client.post(url, _form(dpo_snapshot, model_dir, snapshot=sft_snapshot.pk))
    assert "Select a valid choice" in _field_errors(posted.content.decode(), "snapshot")


def test_a_lead_launches_a_run_and_the_next_form_remembers_the_values(client, lead, sft_snapshot, model_dir):
    c = _client(client, lead)
    url = reverse("training:launch-job", args=["weather"])
    page = c.post(url, _form(sft_snapshot, model_dir, learning_rate="3e-4", max_steps="12", name="first try"))
    job = TrainingJob.objects.get()
    assert page.status_code == 302 and page["Location"] == reverse("training:job-detail", args=[job.pk])
    assert job.status == JobStatus.QUEUED and job.name == "first try" and job.created_by == lead
    assert job.config["learning_rate"] == 3e-4 and job.config["max_steps"] == 12 and job.base_model == str(model_dir)
    again = c.get(url).content.decode()
    assert 'name="learning_rate" value="0.0003"' in again and 'name="max_steps" value="12"' in again
    assert f'<option value="{sft_snapshot.pk}" selected>' in again


def test_the_preview_shows_the_exact_trl_config_and_command_and_queues_nothing(client, lead, sft_snapshot, model_dir):
    page = _client(client, lead).post(reverse("training:launch-job", args=["weather"]),
                                      _form(sft_snapshot, model_dir, action="preview", learning_rate="5e-5",
                                            device="cpu"))
    html = page.content.decode()
    assert "SFTConfig(" in html and "learning_rate=5e-05," in html and "use_cpu=True," in html
    assert "max_length=8192," in html  # blank max length: the snapshot's
    assert "python -m training.runner" in html and "job.json" in html
    assert not TrainingJob.objects.exists()


def test_with_device_auto_the_preview_says_what_a_cuda_worker_changes(client, lead, sft_snapshot, model_dir):
    page = _client(client, lead).post(reverse("training:launch-job", args=["weather"]),
                                      _form(sft_snapshot, model_dir, action="preview", device="auto"))
    cuda = page.content.decode().split('id="preview-cuda"')[1].split("</p>")[0]
    assert "bf16=True" in cuda and "use_cpu=False" in cuda


@pytest.mark.parametrize("choice, on_cuda", [("auto", "gradient_checkpointing at TRL"),
                                              ("off", None), ("on", None)])
def test_gradient_checkpointing_can_be_chosen_for_a_gpu_run(client, lead, sft_snapshot, model_dir, choice, on_cuda):
    page = _client(client, lead).post(reverse("training:launch-job", args=["weather"]),
                                      _form(sft_snapshot, model_dir, action="preview", device="auto",
                                            gradient_checkpointing=choice))
    html = page.content.decode()
    assert 'name="gradient_checkpointing"' in html
    assert f"gradient_checkpointing={choice == 'on'}," in html  # the CPU config
    cuda = html.split('id="preview-cuda"')[1].split("</p>")[0]
    # A CUDA worker keeps an explicit choice; only "auto" leaves it to TRL (on).
    assert (on_cuda in cuda) if on_cuda else ("gradient_checkpointing" not in cuda)


@pytest.mark.parametrize("method, url_name", [("get", "training:launch-job"), ("post", "training:launch-job")])
def test_an_annotator_cannot_launch(client, annotator, sft_snapshot, model_dir, method, url_name):
    c = _client(client, annotator)
    url = reverse(url_name, args=["weather"])
    page = c.get(url) if method == "get" else c.post(url, _form(sft_snapshot, model_dir))
    assert page.status_code == 403 and not TrainingJob.objects.exists()


def test_an_annotator_sees_runs_but_no_launch_or_cancel(client, annotator, sft_snapshot, model_dir):
    job = jobs.launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                               base_model=str(model_dir), train_settings=runner.TrainSettings(max_steps=4))
    c = _client(client, annotator)
    runs = c.get(reverse("training:run-list", args=["weather"])).content.decode()
    assert f"#{job.pk}" in runs and "New SFT run" not in runs
    detail = c.get(reverse("training:job-detail", args=[job.pk])).content.decode()
    assert "Cancel run" not in detail
    assert c.post(reverse("training:cancel-job", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_an_outsider_gets_not_found(client, outsider, sft_snapshot, model_dir):
    job = jobs.launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                               base_model=str(model_dir), train_settings=runner.TrainSettings(max_steps=4))
    c = _client(client, outsider)
    assert c.get(reverse("training:run-list", args=["weather"])).status_code == 404
    assert c.get(reverse("training:job-detail", args=[job.pk])).status_code == 404
    assert c.get(reverse("training:download-artifact", args=[job.pk, "log"])).status_code == 404


@pytest.fixture
def running_job(sft_snapshot, model_dir):
    job = jobs.launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                               base_model=str(model_dir), train_settings=runner.TrainSettings(max_steps=4))
    rows.claim(TrainingJob, job.pk)
    MetricPoint.objects.bulk_create([
        MetricPoint(job=job, step=s, values={"loss": 2.0 - s / 10, "learning_rate": 1e-5, "grad_norm": 1.5,
                                             "tokens_per_second": 800.0 + s}) for s in (1, 2, 3)])
    started = timezone.now() - timezone.timedelta(seconds=30)  # 3 steps in 30 s: one more takes about 10 s
    TrainingJob.objects.filter(pk=job.pk).update(current_step=3, total_steps=4, progress=0.75,
                                                 log_tail="step 3/4 loss=1.7", heartbeat_at=timezone.now(),
                                                 summary={"first_step": [0, started.timestamp()]})
    job.refresh_from_db()
    return job


def test_the_job_page_charts_the_logged_steps_and_polls_while_it_runs(client, lead, running_job):
    c = _client(client, lead)
    html = c.get(reverse("training:job-detail", args=[running_job.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in html and "Step 3 of 4 (75 %)" in html and "step 3/4 loss=1.7" in html
    assert re.search(r"about (9|10|11) s left", html)
    assert html.count("<svg") == 4 and 'data-chart="loss" data-points="3"' in html
    assert "1.7000" in html and "803" in html  # latest loss and tokens/s
    partial = c.get(reverse("training:job-detail", args=[running_job.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="live"') and "<html" not in partial
    poll = re.search(r'hx-get="([^"]+)"', partial).group(1).replace("&amp;", "&")
    assert c.get(poll, HTTP_HX_REQUEST="true").status_code == 204  # nothing new: the page stays as it is
    MetricPoint.objects.create(job=running_job, step=4, values={"loss": 1.5})
    assert c.get(poll, HTTP_HX_REQUEST="true").status_code == 200  # a new point: the region is redrawn
    running_job.status = JobStatus.SUCCEEDED
    running_job.save()
    done = c.get(reverse("training:job-detail", args=[running_job.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done  # polling stops once it has finished


def test_a_lead_cancels_a_queued_run_from_its_page(client, lead, sft_snapshot, model_dir):
    job = jobs.launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                               base_model=str(model_dir), train_settings=runner.TrainSettings(max_steps=4))
    page = _client(client, lead).post(reverse("training:cancel-job", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and "Cancelled" in page.content.decode()


def test_the_runs_page_filters_and_overlays_selected_loss_curves(client, lead, running_job, sft_snapshot, model_dir):
    other = jobs.launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft", name="second",
                                 base_model=str(model_dir), train_settings=runner.TrainSettings(max_steps=4))
    MetricPoint.objects.create(job=other, step=1, values={"loss": 2.5})
    c = _client(client, lead)
    url = reverse("training:run-list", args=["weather"])
    queued = c.get(url, {"status": "queued"}).content.decode()
    assert "second" in queued and f'data-job="{running_job.pk}"' not in queued
    both = c.get(url + f"?compare={running_job.pk}&compare={other.pk}").content.decode()
    overlay = both.split('id="overlay"')[1].split("</section>")[0]
    assert "Loss of 2 runs" in overlay and f"#{running_job.pk}" in overlay and "second" in overlay
    one = c.get(url, {"compare": other.pk}).content.decode().split('id="overlay"')[1].split("</section>")[0]
    assert "Loss of 1 run" in one and "second" in one  # a lone run is still named


def test_a_finished_run_offers_its_model_as_a_zip_and_its_card_as_text(client, lead, running_job):
    final = Path(running_job.output_dir) / "final"
    (final / "sub").mkdir(parents=True)
    (final / "config.json").write_text('{"model_type": "qwen3"}')
    (final / "sub" / "weights.bin").write_bytes(b"\0" * 3_000_000)
    (final / "README.md").write_text("# SFT model\nsnapshot hash abc")
    c = _client(client, lead)
    html = c.get(reverse("training:job-detail", args=[running_job.pk])).content.decode()
    assert "Final model (zip)" in html and "Model card (README.md)" in html
    card = c.get(reverse("training:download-artifact", args=[running_job.pk, "card"]))
    assert b"".join(card.streaming_content).decode().startswith("# SFT model")
    model = c.get(reverse("training:download-artifact", args=[running_job.pk, "model"]))
    assert model["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(model.streaming_content))) as zf:
        root = f"run-{running_job.pk}-model"
        assert sorted(zf.namelist()) == [f"{root}/README.md", f"{root}/config.json", f"{root}/sub/weights.bin"]
        assert len(zf.read(f"{root}/sub/weights.bin")) == 3_000_000
    for name in ("job.json", "checkpoint-1", "..%2F..%2Fsecret_key"):  # only the listed files, never a path
        assert c.get(f"/training/runs/{running_job.pk}/files/{name}").status_code == 404


@pytest.mark.parametrize("lo, hi, labels", [
    (0.6928, 0.6931, ["0.6927", "0.6928", "0.6929", "0.6930", "0.6931"]),  # DPO loss barely moving
    (5e-6, 2e-5, ["5.0e-06", "1.0e-05", "1.5e-05", "2.0e-05"]),  # a decaying learning rate
    (187, 799, ["0", "200", "400", "600", "800"]),  # tokens/s
])
def test_chart_axes_get_few_round_distinct_labels(lo, hi, labels):
    from studio.charts import nice_ticks, tick_formatter

    ticks, step = nice_ticks(lo, hi)
    assert [tick_formatter(step, max(abs(lo), abs(hi)))(t) for t in ticks] == labels


def test_a_run_nobody_picks_up_asks_whether_a_worker_is_running(client, lead, sft_snapshot, model_dir):
    job = jobs.launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                               base_model=str(model_dir), train_settings=runner.TrainSettings(max_steps=4))
    c = _client(client, lead)
    fresh = c.get(reverse("training:job-detail", args=[job.pk])).content.decode()
    assert "Waiting for a worker on the train queue" in fresh and "Is a worker running" not in fresh
    TrainingJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=2))
    stale = c.get(reverse("training:job-detail", args=[job.pk])).content.decode()
    assert "none has taken it for 2" in stale and "Is a worker running" in stale


def test_long_runs_are_thinned_for_the_charts_but_keep_their_last_point():
    from training.views import thin

    points = [(s, float(s)) for s in range(1, 2001)]
    shown = thin(points)
    assert len(shown) <= 401 and shown[0] == (1, 1.0) and shown[-1] == (2000, 2000.0)
    assert thin(points[:50]) == points[:50]

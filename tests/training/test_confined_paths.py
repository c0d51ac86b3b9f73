"""Paths a lead gives (templates, tokenizers, models) stay inside the allowed roots, with no oracle for
what exists outside; overlong paths are field errors; remote code runs only where an admin granted it."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from rest_framework.test import APIClient

from evaluation import eval_sets
from evaluation import jobs as eval_jobs
from evaluation.models import EvalRun, EvalSet
from tests.conftest import PASSWORD, ROOT
from tests.evaluation.runs_harness import make_prompt_snapshot, prompt_snapshot_dir
from tests.training.jobs_harness import bare_snapshot_dir, fast_users, make_snapshot
from tests.training.snapshot_helpers import approve_all
from training.jobs import launch_training, run_config_for
from training.models import JobStatus, Snapshot, TrainingJob, TrustedModel
from training.paths import REFUSED
from training.models import trust_remote_code_for
from training.runner import TrainSettings
from training.snapshots.tasks import export_snapshot

pytestmark = pytest.mark.django_db
REAL_DATA_DIR = Path(django_settings.DATA_DIR)  # the data dir the app itself uses (holds secret_key)
LONG = "/" + "x" * 300


@pytest.fixture(autouse=True)
def _setup(settings, tmp_path, monkeypatch, tiny_model_dir):
    fast_users(settings)
    settings.DATA_DIR = tmp_path / "data"
    (settings.DATA_DIR / "models").mkdir(parents=True)
    (settings.DATA_DIR / "secret_key").write_text("the-data-dirs-secret")
    settings.DEMO_MODEL_DIR = tiny_model_dir
    settings.TRAINING_RUNS_DIR = tmp_path / "data" / "runs"
    settings.SNAPSHOT_DIR = tmp_path / "data" / "snapshots"
    settings.EVAL_RUNS_DIR = tmp_path / "data" / "eval-runs"
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)
    monkeypatch.setattr("evaluation.tasks.eval_run.delay", lambda pk: None)
    monkeypatch.setattr(export_snapshot, "delay", lambda pk: None)


@pytest.fixture
def data_model(settings):
    """A model folder under the data dir's models/ (allowed without any admin setting)."""
    d = Path(settings.DATA_DIR) / "models" / "mine"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def api(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def refused_templates(settings) -> list[str]:
    """What the attack tried, a missing path next to them, and a symlink inside the data dir."""
    models = Path(settings.DATA_DIR) / "models"
    (models / "escape.jinja").symlink_to("/etc/passwd")
    (models / "etc").symlink_to("/etc")
    return ["/etc/passwd", str(REAL_DATA_DIR / "secret_key"), str(Path(settings.DATA_DIR) / "secret_key"),
            "/proc/self/environ", str(models / "escape.jinja"), str(models / "etc" / "passwd"),
            str(models / ".." / "secret_key"), "/etc/no-such-template.jinja"]


# --- templates --------------------------------------------------------------------------------------

def test_template_paths_outside_the_roots_are_refused_alike_and_nothing_is_copied(
        settings, lead, project, demo_trajectories):
    answers = []
    for spec in refused_templates(settings):
        r = api(lead).post(f"/api/projects/{project.slug}/snapshots/",
                           {"kind": "sft", "filters": {"status": "any"}, "render_settings": {"template": spec}},
                           format="json")
        assert r.status_code == 400, (spec, r.content)
        answers.append(r.json())
    assert answers[0] == {"field": "template", "error": REFUSED}
    assert all(a == answers[0] for a in answers), answers  # one answer: nothing said about what exists
    assert not Snapshot.objects.exists()
    assert not list(Path(settings.DATA_DIR).rglob("chat_template.jinja"))


def test_the_snapshot_form_refuses_the_secret_key_as_a_template(settings, client, lead, project, demo_trajectories,
                                                               tiny_model_dir):
    approve_all(project)
    client.login(username=lead.username, password=PASSWORD)
    page = client.post(reverse("training:new-snapshot", args=[project.slug]), {
        "kind": "sft", "status": "approved", "template": str(Path(settings.DATA_DIR) / "secret_key"),
        "tokenizer": str(tiny_model_dir), "strategy": "auto", "reasoning_loss": "on", "error_policy": "mask",
        "max_length": "8192"})
    assert page.status_code == 200 and html.escape(REFUSED).encode() in page.content
    assert b"the-data-dirs-secret" not in page.content and not Snapshot.objects.exists()


def test_an_old_snapshot_row_with_an_outside_template_fails_in_the_worker_without_copying(
        settings, project, demo_trajectories, tiny_model_dir):
    out = Path(settings.DATA_DIR) / "snapshots" / "old"
    snap = Snapshot.objects.create(project=project, kind="sft", out_dir=str(out), content_hash="x" * 64,
                                   render_settings={"template": "/etc/passwd", "tokenizer": str(tiny_model_dir)})
    export_snapshot(snap.pk)
    snap.refresh_from_db()
    assert snap.status == JobStatus.FAILED and REFUSED in snap.error
    assert not (out / "chat_template.jinja").exists()


def test_a_family_name_and_a_template_in_a_model_folder_under_the_data_dir_still_work(
        lead, project, demo_trajectories, tiny_model_dir, data_model):
    (data_model / "chat_template.jinja").write_text((tiny_model_dir / "chat_template.jinja").read_text()
                                                     if (tiny_model_dir / "chat_template.jinja").exists()
                                                     else "{{ messages }}")
    for template in ("qwen3_training", str(data_model)):
        r = api(lead).post(f"/api/projects/{project.slug}/snapshots/",
                           {"kind": "sft", "filters": {"status": "any"}, "render_settings": {"template": template}},
                           format="json")
        assert r.status_code == 201, r.content
    assert Snapshot.objects.count() == 2


# --- tokenizers and models --------------------------------------------------------------------------

def test_a_tokenizer_outside_the_roots_is_refused_the_same_whether_it_exists_or_not(lead, project, demo_trajectories):
    answers = []
    for spec in ("/etc", "/no/such/tokenizer", "/proc/self"):
        r = api(lead).post(f"/api/projects/{project.slug}/snapshots/",
                           {"kind": "sft", "filters": {"status": "any"}, "render_settings": {"tokenizer": spec}},
                           format="json")
        assert r.status_code == 400
        answers.append(r.json())
    assert answers[0]["field"] == "tokenizer" and REFUSED in str(answers[0])
    assert answers[0] == answers[1] == answers[2]


@pytest.fixture
def sft_snapshot(project, tmp_path, settings):
    return make_snapshot(project, "sft", bare_snapshot_dir(Path(settings.DATA_DIR) / "snapshots" / "sft"))


def test_a_base_model_outside_the_roots_is_refused_the_same_whether_it_exists_or_not(lead, sft_snapshot, data_model):
    said = {}
    for spec in ("/etc", "/no/such/model", "/usr/lib"):
        r = api(lead).post("/api/projects/weather/training-jobs/",
                           {"snapshot": sft_snapshot.pk, "kind": "sft", "base_model": spec}, format="json")
        assert r.status_code == 400
        said[spec] = r.json()["base_model"]
    assert len(set(map(str, said.values()))) == 1 and REFUSED[1:] in str(said["/etc"])
    ok = api(lead).post("/api/projects/weather/training-jobs/",
                        {"snapshot": sft_snapshot.pk, "kind": "sft", "base_model": str(data_model)}, format="json")
    assert ok.status_code == 201 and TrainingJob.objects.get().base_model == str(data_model)


@pytest.fixture
def eval_set(project, tiny_model_dir):
    snap = make_prompt_snapshot(project, prompt_snapshot_dir(tiny_model_dir))
    return eval_sets.create_eval_set(project, EvalSet.SNAPSHOT, snapshot=snap, split="eval")


def test_an_eval_model_outside_the_roots_is_refused_the_same_whether_it_exists_or_not(lead, eval_set, data_model):
    url = reverse("evaluation:api-eval-runs", args=["weather"])
    said = [api(lead).post(url, {"eval_set": eval_set.pk, "model_source": "folder", "model_path": spec},
                           format="json") for spec in ("/etc", "/no/such/model")]
    assert [r.status_code for r in said] == [400, 400] and said[0].json() == said[1].json()
    assert REFUSED[1:] in str(said[0].json()["model_path"])
    ok = api(lead).post(url, {"eval_set": eval_set.pk, "model_source": "folder", "model_path": str(data_model)},
                        format="json")
    assert ok.status_code == 201 and EvalRun.objects.get().model_path == str(data_model)


# --- overlong paths: field errors, not 500s --------------------------------------------------------

def _train_form(snap, base_model, action):
    from tests.training.test_jobs_pages import _form

    return {**_form(snap, base_model), "action": action}


@pytest.mark.parametrize("action", ["launch", "preview"])
def test_an_overlong_base_model_is_a_field_error_on_the_launch_page(client, lead, sft_snapshot, action):
    client.login(username=lead.username, password=PASSWORD)
    page = client.post(reverse("training:launch-job", args=["weather"]), _train_form(sft_snapshot, LONG, action))
    assert page.status_code == 200 and b"too long" in page.content
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize("path", ["/api/projects/weather/training-jobs/", "/api/projects/weather/training-jobs/preview/"])
def test_an_overlong_base_model_is_a_400_naming_the_field_in_the_api(lead, sft_snapshot, path):
    r = api(lead).post(path, {"snapshot": sft_snapshot.pk, "kind": "sft", "base_model": LONG}, format="json")
    assert r.status_code == 400 and "too long" in str(r.json()["base_model"])


def test_an_overlong_eval_model_path_is_a_field_error_on_the_page_and_a_400_in_the_api(client, lead, eval_set):
    from tests.evaluation.test_runs_pages import _form

    client.login(username=lead.username, password=PASSWORD)
    page = client.post(reverse("evaluation:launch-run", args=["weather"]), _form(eval_set, LONG))
    assert page.status_code == 200 and b"too long" in page.content
    r = api(lead).post(reverse("evaluation:api-eval-runs", args=["weather"]),
                       {"eval_set": eval_set.pk, "model_source": "folder", "model_path": LONG}, format="json")
    assert r.status_code == 400 and "too long" in str(r.json()["model_path"])
    assert not EvalRun.objects.exists()


# --- remote code: per model folder, granted by an admin ---------------------------------------------

def test_remote_code_is_trusted_only_for_folders_an_admin_granted(settings, data_model, admin_user_):
    settings.TRUST_REMOTE_CODE = True  # the old global switch: no longer consulted
    other = data_model.parent / "other"
    other.mkdir()
    assert trust_remote_code_for(str(data_model)) is False
    TrustedModel.objects.create(path=str(data_model), granted_by=admin_user_, note="custom arch, reviewed")
    assert trust_remote_code_for(str(data_model)) is True
    assert trust_remote_code_for(str(data_model / "checkpoint-2")) is True  # a folder below the grant
    assert trust_remote_code_for(str(other)) is False
    assert trust_remote_code_for("Qwen/Qwen3-0.6B") is False
    (other / "alias").symlink_to(data_model)  # a link to the granted folder is the granted folder
    assert trust_remote_code_for(str(other / "alias")) is True


def test_a_job_carries_the_grant_and_a_lead_cannot_ask_for_remote_code(settings, lead, sft_snapshot, data_model,
                                                                        admin_user_):
    settings.TRUST_REMOTE_CODE = True  # the old global switch made every lead's job trust remote code
    body = {"snapshot": sft_snapshot.pk, "kind": "sft", "base_model": str(data_model)}
    asked = api(lead).post("/api/projects/weather/training-jobs/preview/", {**body, "trust_remote_code": True},
                           format="json")
    assert asked.status_code == 400 or asked.json()["job"]["trust_remote_code"] is False
    in_settings = api(lead).post("/api/projects/weather/training-jobs/",
                                 {**body, "settings": {"trust_remote_code": True}}, format="json")
    assert in_settings.status_code == 400 and "trust_remote_code" in str(in_settings.json())
    job = launch_training(project=sft_snapshot.project, snapshot=sft_snapshot, kind="sft",
                          base_model=str(data_model), train_settings=TrainSettings(), enqueue=False)
    assert run_config_for(job).trust_remote_code is False
    TrustedModel.objects.create(path=str(data_model), granted_by=admin_user_)
    assert run_config_for(job).trust_remote_code is True


def test_an_eval_of_a_granted_folder_trusts_its_code_and_others_do_not(data_model, eval_set, admin_user_):
    from evaluation.generate import GenerationSettings

    run = eval_jobs.launch_eval(project=eval_set.project, eval_set=eval_set, model_source=EvalRun.FOLDER,
                                model_path=str(data_model), gen=GenerationSettings(), enqueue=False)
    assert eval_jobs.config_for(run).trust_remote_code is False
    TrustedModel.objects.create(path=str(data_model), granted_by=admin_user_)
    assert eval_jobs.config_for(run).trust_remote_code is True


def test_only_an_admin_grants_remote_code_and_the_grant_records_who(client, lead, admin_user_, data_model):
    client.login(username=lead.username, password=PASSWORD)
    add = reverse("admin:training_trustedmodel_add")
    client.post(add, {"path": str(data_model), "note": "mine"})
    assert not TrustedModel.objects.exists()
    client.login(username=admin_user_.username, password=PASSWORD)
    page = client.post(add, {"path": "/etc", "note": "no"})
    assert page.status_code == 200 and html.escape(REFUSED).encode() in page.content  # outside the roots: no grant
    client.post(add, {"path": str(data_model), "note": "reviewed the modelling code"})
    grant = TrustedModel.objects.get()
    assert grant.granted_by == admin_user_ and grant.path == str(data_model)


def test_the_global_trust_remote_code_switch_is_refused_at_start_up(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "STUDIO_DATA_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "studio.settings", "TRUST_REMOTE_CODE": "true"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "grant remote code per model folder" in out.stderr
    env["TRUST_REMOTE_CODE"] = "false"
    assert subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=ROOT,
                          capture_output=True, timeout=60).returncode == 0


# --- downloads and the project's admin-set targets -------------------------------------------------

def test_downloads_do_not_follow_a_symlink_out_of_the_snapshot_or_run_folder(settings, client, lead, project):
    import io
    import zipfile

    folder = Path(settings.DATA_DIR) / "snapshots" / "planted"
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "data.arrow").write_text("rows")
    (folder / "hf" / "key").symlink_to(Path(settings.DATA_DIR) / "secret_key")
    (folder / "chat_template.jinja").symlink_to("/etc/passwd")
    snap = make_snapshot(project, "sft", folder)
    client.login(username=lead.username, password=PASSWORD)
    assert client.get(reverse("training:snapshot-file", args=[snap.pk, "chat_template.jinja"])).status_code == 404
    zipped = client.get(reverse("training:snapshot-file", args=[snap.pk, "hf.zip"]))
    names = zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content))).namelist()
    assert names == [f"snapshot-{snap.pk}-hf/data.arrow"]


def test_the_admin_cannot_set_a_project_target_outside_the_roots_either(client, admin_user_, project, data_model):
    client.login(username=admin_user_.username, password=PASSWORD)
    url = reverse("admin:annotate_project_change", args=[project.pk])
    form = {"name": project.name, "slug": project.slug, "error_labels": json.dumps(project.error_labels),
            "required_case_types": json.dumps(project.required_case_types),
            "created_at_0": "2026-01-01", "created_at_1": "00:00:00"}
    page = client.post(url, {**form, "target_template": "/etc/passwd", "target_tokenizer": "/etc"})
    assert page.status_code == 200 and page.content.count(html.escape(REFUSED).encode()) == 2
    saved = client.post(url, {**form, "target_template": "qwen3_training", "target_tokenizer": str(data_model)})
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    project.refresh_from_db()
    assert (project.target_template, project.target_tokenizer) == ("qwen3_training", str(data_model))

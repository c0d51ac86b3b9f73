"""The snapshot pages and the preview: roles, the form, progress and audit, override, downloads."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.training.snapshot_helpers import approve_all, fast_passwords, render_settings
from training.models import JobStatus, Snapshot
from training.snapshots.tasks import export_snapshot
from training.snapshots import create_snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]
_ = fast_passwords


@pytest.fixture
def as_user(client):
    def login(user):
        client.login(username=user.username, password=PASSWORD)
        return client
    return login


@pytest.fixture
def form_data(tiny_model_dir):
    return {"kind": "sft", "status": "approved", "template": "qwen3_training", "tokenizer": str(tiny_model_dir),
            "strategy": "auto", "reasoning_loss": "on", "error_policy": "mask", "max_length": "8192",
            "tokenized": "on"}


@pytest.fixture
def no_worker(monkeypatch):
    sent = []
    monkeypatch.setattr(export_snapshot, "delay", lambda pk: sent.append(pk))
    return sent


def test_annotators_see_snapshots_but_cannot_create_them(project, demo_trajectories, annotator, as_user, form_data):
    c = as_user(annotator)
    page = c.get(reverse("training:snapshot-list", args=[project.slug]))
    assert page.status_code == 200 and b'id="new-snapshot"' not in page.content
    assert c.get(reverse("training:new-snapshot", args=[project.slug])).status_code == 403
    assert c.post(reverse("training:new-snapshot", args=[project.slug]), form_data).status_code == 403
    assert Snapshot.objects.count() == 0


def test_outsiders_get_not_found(project, demo_trajectories, outsider, lead, as_user, tiny_model_dir):
    approve_all(project)
    snap = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead, enqueue=False)
    c = as_user(outsider)
    trajectory = project.trajectories.first()
    for url in (reverse("training:snapshot-list", args=[project.slug]), reverse("training:snapshot-detail", args=[snap.pk]),
                reverse("training:snapshot-file", args=[snap.pk, "audit.json"]),
                reverse("training:preview", args=[trajectory.pk])):
        assert c.get(url).status_code == 404, url


def test_a_lead_creates_a_snapshot_and_the_export_is_queued(project, demo_trajectories, lead, as_user, form_data,
                                                            no_worker, django_capture_on_commit_callbacks):
    approve_all(project)
    with django_capture_on_commit_callbacks(execute=True):
        response = as_user(lead).post(reverse("training:new-snapshot", args=[project.slug]), form_data)
    snap = Snapshot.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:snapshot-detail", args=[snap.pk])
    assert no_worker == [snap.pk] and snap.status == JobStatus.QUEUED and snap.item_count == 10
    assert snap.render_settings["tokenized"] is True and snap.created_by == lead
    page = as_user(lead).get(response.url)
    assert b"Waiting for a worker" in page.content and b'hx-trigger="every 1s"' in page.content


@pytest.mark.parametrize("change, field", [({"template": "no_such_template"}, "template"),
                                            ({"tokenizer": "/nowhere"}, "tokenizer"),
                                            ({"max_length": "3"}, "max_length")])
def test_bad_settings_come_back_as_field_errors(project, demo_trajectories, lead, as_user, form_data, no_worker,
                                                change, field):
    approve_all(project)
    response = as_user(lead).post(reverse("training:new-snapshot", args=[project.slug]), {**form_data, **change})
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert Snapshot.objects.count() == 0


def test_an_empty_selection_says_so(project, demo_trajectories, lead, as_user, form_data, no_worker):
    response = as_user(lead).post(reverse("training:new-snapshot", args=[project.slug]), form_data)
    assert b"the selection matches nothing" in response.content


def test_an_uploaded_template_is_stored_and_used(project, demo_trajectories, lead, as_user, form_data, no_worker):
    from training.chat_templates import get_template

    approve_all(project)
    text = get_template("qwen3_training").text + "{#- our tweak -#}"
    upload = SimpleUploadedFile("mine.jinja", text.encode())
    as_user(lead).post(reverse("training:new-snapshot", args=[project.slug]),
                       {**form_data, "template": "ignored", "template_file": upload})
    snap = Snapshot.objects.get()
    assert snap.render_settings["template"] == text  # the content itself, never a path to read back


@pytest.fixture
def exported(project, demo_trajectories, lead, tiny_model_dir, tmp_path):
    approve_all(project)
    snap = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead, enqueue=False,
                           out_dir=tmp_path / "snap")
    export_snapshot(snap.pk)
    snap.refresh_from_db()
    return snap


def test_the_detail_page_shows_the_audit_and_the_block(exported, lead, annotator, as_user):
    c = as_user(annotator)
    page = c.get(reverse("training:snapshot-detail", args=[exported.pk])).content.decode()
    assert "Blocked: the audit found 1 error" in page
    assert 'data-code="masks_need_tokenized"' in page
    assert 'id="override-form"' not in page  # annotators cannot accept errors
    assert f">{exported.audit['totals']['supervised_tokens']:,}<" in page
    live = c.get(reverse("training:snapshot-detail", args=[exported.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert live.lstrip().startswith('<section id="live"') and "<html" not in live


def test_a_lead_overrides_with_a_reason_and_it_is_recorded(exported, lead, annotator, as_user):
    url = reverse("training:override-snapshot", args=[exported.pk])
    assert as_user(annotator).post(url, {"reason": "fine"}).status_code == 403
    exported.refresh_from_db()
    assert exported.blocked and exported.override_reason == "" and exported.override_at is None
    c = as_user(lead)
    c.post(url, {"reason": ""})
    exported.refresh_from_db()
    assert exported.blocked
    c.post(url, {"reason": "the labelled step is a deliberate negative"})
    exported.refresh_from_db()
    assert not exported.blocked and exported.override_by == lead
    page = c.get(reverse("training:snapshot-detail", args=[exported.pk])).content.decode()
    assert "accepted</b> by lena" in page and "deliberate negative" in page


def test_files_download_and_unknown_names_do_not(exported, lead, as_user):
    c = as_user(lead)
    audit = c.get(reverse("training:snapshot-file", args=[exported.pk, "audit.json"]))
    assert json.loads(b"".join(audit.streaming_content)) == exported.audit
    zipped = c.get(reverse("training:snapshot-file", args=[exported.pk, "hf.zip"]))
    assert zipped["Content-Type"] == "application/zip" and b"".join(zipped.streaming_content)[:2] == b"PK"
    assert c.get(reverse("training:snapshot-file", args=[exported.pk, "..%2Fsecret_key"])).status_code == 404
    assert c.get(reverse("training:snapshot-file", args=[exported.pk, "manage.py"])).status_code == 404


def test_a_lead_cancels_a_queued_export(project, demo_trajectories, lead, as_user, tiny_model_dir):
    approve_all(project)
    snap = create_snapshot(project, "sft", {}, render_settings(tiny_model_dir), lead, enqueue=False)
    as_user(lead).post(reverse("training:cancel-snapshot", args=[snap.pk]))
    snap.refresh_from_db()
    assert snap.status == JobStatus.CANCELLED


# --- preview ----------------------------------------------------------------------------------------

def _preview(client, trajectory, **params):
    return client.get(reverse("training:preview", args=[trajectory.pk]), params)


@pytest.fixture
def preview_project(project, demo_trajectories, tiny_model_dir):
    project.target_template = "qwen3_training"
    project.target_tokenizer = str(tiny_model_dir)
    project.save()
    return project


def test_the_preview_draws_every_token_and_highlights_the_supervised_ones(preview_project, annotator, as_user):
    t = preview_project.trajectories.get(external_id="demo-weather")
    page = _preview(as_user(annotator), t)
    result = page.context["result"]
    view = result["samples"][0]["view"]
    assert len(view.tokens) == view.total > view.supervised > 0
    drawn = page.content.decode().split('<div class="tokens">', 1)[1].split("</div>", 1)[0]
    assert drawn.count('class="tok r-') == view.total
    assert drawn.count(" sup k-") == view.supervised
    supervised_text = "".join(tok["text"] for tok in view.tokens if tok["supervised"] and not tok["partial"])
    assert "It is 18 °C and cloudy in Paris right now." in supervised_text
    assert "What's the weather in Paris" not in supervised_text
    assert {tok["role"] for tok in view.tokens} == {"system", "user", "assistant", "tool"}


def test_switches_answer_with_the_fragment_only(preview_project, lead, as_user):
    t = preview_project.trajectories.get(external_id="demo-multi-turn")
    c = as_user(lead)
    fragment = c.get(reverse("training:preview", args=[t.pk]), {"strategy": "turn"}, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert html.lstrip().startswith('<section id="preview"') and "<html" not in html
    assert html.count('class="sample" data-sample=') == 2  # one per user turn
    whole = _preview(c, t, strategy="conversation")
    assert len(whole.context["result"]["samples"]) == 1


def test_reasoning_out_of_the_loss_is_shown_unsupervised(preview_project, lead, as_user):
    t = preview_project.trajectories.get(external_id="demo-weather")
    c = as_user(lead)
    with_reasoning = _preview(c, t).context["result"]["samples"][0]["view"]
    without = _preview(c, t, reasoning_loss="0").context["result"]["samples"][0]["view"]
    assert with_reasoning.supervised_by_kind.get("think", 0) > 0
    assert "think" not in without.supervised_by_kind and without.supervised < with_reasoning.supervised
    assert without.total == with_reasoning.total


def test_an_uploaded_template_is_offered_in_the_preview_by_its_snapshot(preview_project, lead, as_user):
    from training.chat_templates import get_template

    text = get_template("qwen3_training").text + "{#- our tweak -#}"
    snap = Snapshot.objects.create(project=preview_project, kind="sft", content_hash="u" * 64,
                                   render_settings={"template": text})
    page = _preview(as_user(lead), preview_project.trajectories.first(), template=f"snapshot:{snap.pk}")
    assert page.status_code == 200 and page.context["result"]["template"].text == text
    assert f"uploaded template of snapshot #{snap.pk}".encode() in page.content
    assert b"our tweak" not in page.content  # offered by name, not as a 500-line option value


def test_a_template_that_cannot_render_is_explained_on_the_page(preview_project, lead, as_user, tmp_path, settings):
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path]  # the admin lists it as a model root
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ raise_exception('no tools here') }}")
    preview_project.target_template = str(bad)
    preview_project.save()
    page = _preview(as_user(lead), preview_project.trajectories.first())
    assert page.status_code == 200 and b"no tools here" in page.content

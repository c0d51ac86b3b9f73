"""In Chromium: the token-by-token preview updates in place as a lead switches template and strategy;
a lead creates a snapshot from the form, watches it export, and sees its audit."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tiny_project(project, demo_trajectories, tiny_model_dir, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    project.target_template = "qwen3_training"
    project.target_tokenizer = str(tiny_model_dir)
    project.save()
    project.trajectories.update(status="approved")
    return project


def test_switching_template_and_strategy_updates_the_preview_in_place(page, tiny_project, lead):
    trajectory = tiny_project.trajectories.get(external_id="demo-multi-turn")
    login(page, lead.username, PASSWORD)
    page.goto(f"/training/t/{trajectory.pk}/preview/")
    preview = page.locator("#preview")
    expect(preview.locator(".sample")).to_have_count(1)
    supervised = preview.locator(".tok.sup")
    expect(supervised).not_to_have_count(0)
    assert "Two flights" in "".join(supervised.all_inner_texts())
    assert "How much is the cheaper one" not in "".join(supervised.all_inner_texts())
    screenshot(page, "preview-conversation")
    page.evaluate("window.__stillHere = true")  # gone if the page reloads instead of swapping

    page.select_option("select[name=strategy]", "turn")
    page.wait_for_function("document.querySelectorAll('#preview .sample').length === 2")
    expect(page).to_have_url(re.compile(r"strategy=turn"))
    expect(page.locator("#chosen-strategy")).to_have_text("turn")

    page.select_option("select[name=template]", "qwen2_5_training")
    page.wait_for_function("document.querySelector('#preview').dataset.template === 'qwen2_5_training'")
    expect(page.locator("#preview-summary")).to_contain_text("qwen2_5_training")
    expect(page.locator("#preview .tok.sup")).not_to_have_count(0)
    assert page.evaluate("window.__stillHere") is True
    screenshot(page, "preview-turn-qwen2_5")


@pytest.fixture
def queued(monkeypatch):
    """Exports the page queues, for the test to run as the worker would (no worker in this test)."""
    from training.snapshots.tasks import export_snapshot

    sent: list[int] = []
    monkeypatch.setattr(export_snapshot, "delay", sent.append)
    return sent


def test_a_lead_creates_a_snapshot_watches_it_export_and_sees_its_audit(page, tiny_project, lead, queued):
    from training.snapshots.tasks import export_snapshot

    login(page, lead.username, PASSWORD)
    page.goto(f"/training/p/{tiny_project.slug}/snapshots/")
    page.click("#new-snapshot")
    page.fill("input[name=name]", "demo sft")
    page.check("input[name=tokenized]")
    screenshot(page, "snapshot-form")
    page.click("#create-snapshot")
    page.wait_for_selector("#live[data-status=queued]")
    expect(page.locator("#snapshot-progress")).to_contain_text("Waiting for a worker")
    assert len(queued) == 1
    export_snapshot(queued[0])  # the worker's part; the page polls and picks up the result
    page.wait_for_selector("#live[data-status=succeeded]", timeout=30000)
    expect(page.locator("#audit-verdict")).to_have_text(re.compile(r"^\s*The audit found no errors"))
    expect(page.locator("#supervised-tokens")).to_have_text(re.compile(r"^\s*[1-9][\d,]*\s*$"))  # more than 0
    expect(page.locator("#snapshot-files [data-file='hf.zip']")).to_have_count(1)
    screenshot(page, "snapshot-detail")

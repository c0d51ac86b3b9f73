"""In Chromium, the first hour on the run pages: a snapshot made with the form's defaults is one
training accepts, and its audit speaks plainly; the forms say when they bring back old values and
never pre-select a choice that fails; the run page before its first logged step; confirmations
before cancelling. Screenshots at 1366 and 768 px: var/screenshots/first-hour-*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def both_widths(page, name: str) -> None:
    """Screenshots at 1366 and 768 px, and nothing wider than the window at 768 px."""
    screenshot(page, f"first-hour-{name}-1366")
    page.set_viewport_size({"width": 768, "height": 900})
    screenshot(page, f"first-hour-{name}-768")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.set_viewport_size({"width": 1366, "height": 800})
    assert overflow <= 0, f"{name} is {overflow} px wider than a 768 px window"


@pytest.fixture
def demo_project(project, demo_trajectories, tiny_model_dir, settings):
    """The demo as `make run` seeds it: no target template or tokenizer chosen, so the form's own."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.DEMO_MODEL_DIR = tiny_model_dir
    project.trajectories.update(status="approved")
    return project


@pytest.fixture
def queued(monkeypatch):
    """Exports the page queues, for the test to run as the worker would (no worker in this test)."""
    from training.snapshots.tasks import export_snapshot

    sent: list[int] = []
    monkeypatch.setattr(export_snapshot, "delay", sent.append)
    return sent


def _snapshot_with_defaults(page, project, queued, name: str, *, untick_tokenized: bool = False):
    from training.snapshots.tasks import export_snapshot

    page.goto(f"/training/p/{project.slug}/snapshots/new/")
    if untick_tokenized:
        page.uncheck("input[name=tokenized]")
    page.click("#create-snapshot")
    page.wait_for_selector("#live[data-status=queued]")
    export_snapshot(queued[-1])  # the worker's part; the page polls and picks up the result
    page.wait_for_selector("#live[data-status=succeeded]", timeout=60000)
    return page


def test_a_snapshot_made_with_the_defaults_is_one_training_accepts(page, demo_project, lead, queued):
    login(page, lead.username, PASSWORD)
    _snapshot_with_defaults(page, demo_project, queued, "defaults")
    expect(page.locator("#audit-verdict")).to_have_text(re.compile(r"^\s*The audit found no errors"))
    both_widths(page, "snapshot-defaults")


def test_audit_findings_say_in_plain_words_what_they_mean_and_what_to_do(page, demo_project, lead, queued):
    login(page, lead.username, PASSWORD)
    _snapshot_with_defaults(page, demo_project, queued, "untokenized", untick_tokenized=True)
    expect(page.locator("#audit-verdict")).to_contain_text("Blocked")
    row = page.locator("#audit-findings tr[data-code=masks_need_tokenized]")
    expect(row.locator(".finding-title")).to_have_text(re.compile(r"cannot say so"))
    expect(row).to_contain_text("TRL would train on steps you excluded")
    expect(row.locator(".finding-todo")).to_contain_text("Add input_ids, labels and assistant_masks")
    code = row.locator("code.finding-code")
    expect(code).to_have_text("masks_need_tokenized")  # still there for those who know it, but smaller
    title_size = row.locator(".finding-title").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert code.evaluate("e => parseFloat(getComputedStyle(e).fontSize)") < title_size
    for tr in page.locator("#audit-findings tr[data-code]").all():  # every finding has a title, not just a code
        assert tr.locator(".finding-title").inner_text().strip() != tr.get_attribute("data-code")
    both_widths(page, "snapshot-blocked")

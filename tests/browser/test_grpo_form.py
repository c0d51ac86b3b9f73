"""In Chromium: a lead opens the GRPO launch form, sees every problem at once, previews the exact
GRPOConfig and launches (the run itself on a worker is tests/rl/test_grpo_worker.py).
Screenshots: var/screenshots/grpo-form-*.png at 1366 and 768 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD
from tests.training.jobs_harness import bare_snapshot_dir, make_snapshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1366, 768])
def test_a_lead_fixes_the_grpo_form_previews_its_config_and_launches(new_page, project, lead, tmp_path, settings,
                                                                    monkeypatch, tiny_model_dir, width):
    from training.models import TrainingJob

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    monkeypatch.setattr("training.tasks.train_job.delay", lambda pk: None)  # no worker here
    make_snapshot(project, "prompt", bare_snapshot_dir(tmp_path / "prompt"), name="weather prompts")
    page = new_page((width, 900))
    login(page, lead.username, PASSWORD)
    page.goto(f"/rl/p/{project.slug}/grpo/new/")
    expect(page.locator("h1")).to_have_text("New GRPO run")

    page.fill("input[name=base_model]", str(tiny_model_dir))
    page.fill("input[name=num_generations]", "1")
    page.fill("input[name=temperature]", "0")
    page.fill("input[name=max_steps]", "0")
    page.click("button[value=launch]")
    expect(page.locator("p.error[role=alert]")).to_contain_text("3 problems")
    for name in ("num_generations", "temperature", "max_steps"):
        expect(page.locator(f"#field-{name} .field-errors")).to_be_visible()
    screenshot(page, f"grpo-form-errors-{width}")

    page.fill("input[name=num_generations]", "4")
    page.fill("input[name=temperature]", "0.9")
    page.fill("input[name=max_steps]", "12")
    page.click("button[value=preview]")
    config = page.locator("#preview-config")
    expect(config).to_contain_text("GRPOConfig(")
    expect(config).to_contain_text("max_steps=12,")
    expect(config).to_contain_text("temperature=0.9,")
    screenshot(page, f"grpo-form-preview-{width}")

    page.click("button[value=launch]")
    expect(page.locator("h1")).to_contain_text("GRPO")
    job = TrainingJob.objects.get()
    assert job.kind == "grpo" and job.config["max_steps"] == 12

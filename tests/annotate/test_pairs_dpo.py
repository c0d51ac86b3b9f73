"""Pairs built in the app → a DPO snapshot (``create_snapshot --kind dpo``) → TRL's DPOTrainer, unchanged.

The pairs come from every source the app has: forked by hand with starters (multi-turn, tool-calling),
accepted from a correction, and imported candidates. The export keeps earlier turns' tool calls and
results in the prompt; the test renders that prompt with the tokenizer's own template to show it.
CPU settings: ``use_cpu=True, bf16=False, gradient_checkpointing=False``.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from annotate.pairs import services
from annotate import pairs as core
from annotate.models import Pair
from annotate.workbench.documents import replace_document
from tests.annotate.test_pairs_pages import CANDIDATES

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CPU = dict(use_cpu=True, bf16=False, gradient_checkpointing=False, report_to=[], save_strategy="no",
           logging_steps=1, max_steps=2, per_device_train_batch_size=2, dataset_num_proc=None)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def by_external_id(trajectories, external_id):
    return next(t for t in trajectories if t.external_id == external_id)


def forked(project, trajectory, turn, step, category, lead):
    pair, revision = services.fork_trajectory(trajectory, turn, step, category=category)
    pair.rejected = core.starter_steps(category, pair.chosen, pair.context)
    row = services.save_pair(project, pair, user=lead, trajectory=trajectory, revision=revision)
    return services.review_pair(row, "approved", user=lead)


@pytest.fixture
def approved_pairs(project, lead, annotator, demo_trajectories):
    multi = by_external_id(demo_trajectories, "demo-multi-turn")
    weather = by_external_id(demo_trajectories, "demo-weather")
    rows = [forked(project, multi, 1, 1, "tool_needed", lead),     # turn 2 of a tool-calling conversation
            forked(project, multi, 1, 1, "cost", lead),
            forked(project, weather, 0, 1, "format", lead)]         # a call whose JSON does not parse
    tokyo = by_external_id(demo_trajectories, "demo-needs-fixing")
    doc = tokyo.to_canonical()
    doc.turns[0].steps[0].arguments = {"city": "Tokyo", "unit": "fahrenheit"}
    replace_document(tokyo, doc, user=annotator, base_version=tokyo.version)
    services.refresh_suggestions(project)
    rows += services.decide_suggestions(project, project.pair_suggestions.values_list("id", flat=True), "accept",
                                        user=lead).accepted
    services.import_candidates(project, (json.dumps(CANDIDATES) + "\n").encode(), "prefs.jsonl", user=lead)
    imported = list(project.pairs.filter(source="imported"))
    rows.append(services.review_pair(imported[0], "approved", user=lead))
    return rows  # imported[1] stays a draft: not exported


def test_an_exported_dpo_snapshot_of_the_apps_pairs_trains_two_steps(approved_pairs, tiny_model_dir, tmp_path):
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = tmp_path / "dpo"
    call_command("create_snapshot", str(out), "--project", "weather", "--kind", "dpo", "--template", "qwen3",
                 "--tokenizer", str(tiny_model_dir), "--max-length", "2048")
    audit = json.loads((out / "audit.json").read_text())
    assert audit["errors"] == 0, audit
    assert audit["pair_sources"] == {"correction": 1, "imported": 1, "manual": 3}
    dd = datasets.load_from_disk(str(out / "hf"))
    ids = [r["id"] for split in dd.values() for r in split]
    assert len(ids) == len(approved_pairs) == Pair.objects.filter(status="approved").count()

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    train = dd["train"]
    row = next(r for r in train if r["prompt"][-1]["content"] == "How much is the cheaper one in euros?")
    tools = json.loads(row["tools"]) if isinstance(row["tools"], str) else row["tools"]
    prompt = tokenizer.apply_chat_template(row["prompt"], tools=tools, tokenize=False, add_generation_prompt=True)
    # The earlier turn's call and its result are in the prompt the model is trained on.
    assert '<tool_call>\n{"name": "search_flights", "arguments": {"origin": "JFK"' in prompt
    assert '<tool_response>\n[{"flight": "HAT083", "price": 212}' in prompt
    # The chosen side keeps its own call and result; the rejected one answers directly.
    assert [m["role"] for m in row["chosen"]] == ["assistant", "tool", "assistant"]
    assert [m["role"] for m in row["rejected"]] == ["assistant"]

    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), processing_class=tokenizer,
                         args=DPOConfig(output_dir=str(tmp_path / "run"), max_length=2048, **CPU),
                         train_dataset=train)
    out_ = trainer.train()
    assert trainer.state.global_step == 2 and out_.training_loss > 0


def test_a_new_approval_appears_in_the_next_dpo_snapshot(approved_pairs, project, lead, tiny_model_dir, tmp_path):
    first = services.export_pairs(project, user=lead, render_settings={"tokenizer": str(tiny_model_dir)},
                                  enqueue=False)
    assert first.item_count == len(approved_pairs)
    draft = project.pairs.get(status="draft")
    services.review_pair(draft, "approved", user=lead)
    second = services.export_pairs(project, user=lead, render_settings={"tokenizer": str(tiny_model_dir)},
                                   enqueue=False)
    assert second.pk != first.pk and second.item_count == first.item_count + 1
    assert draft.pk in set(second.pairs.values_list("source_id", flat=True))
    again = services.export_pairs(project, user=lead, render_settings={"tokenizer": str(tiny_model_dir)},
                                  enqueue=False)
    assert again.pk == second.pk and again.reused  # same pairs, same settings: the same snapshot


def test_the_cli_export_waits_for_the_dpo_snapshot_of_the_approved_pairs(approved_pairs, tiny_model_dir, tmp_path):
    out, dest = io.StringIO(), tmp_path / "dpo"
    call_command("pairs", "export", "--project", "weather", "--tokenizer", str(tiny_model_dir), "--out", str(dest),
                 "--wait", stdout=out)
    assert f"{len(approved_pairs)} pairs written to {dest} (audit errors: 0)" in out.getvalue()
    assert json.loads((dest / "audit.json").read_text())["errors"] == 0
    call_command("pairs", "export", "--project", "weather", "--tokenizer", str(tiny_model_dir), "--out", str(dest),
                 "--wait", stdout=out)
    assert "already holds these pairs (succeeded)" in out.getvalue()

"""An oracle endpoint that returns the gold scores 100 % "correct" on every shared BFCL category.

The shared BFCL fixtures are imported as the BFCL importer imports them, made into eval items, sent
to a real local OpenAI-compatible server that answers each prompt with its gold (structured
``tool_calls`` as vLLM returns them, or ``<tool_call>`` text), and scored as a run scores them.
"""

from __future__ import annotations

import pytest

from annotate.formats.bfcl import to_trajectory
from evaluation.generate import EndpointGenerator, GenerationSettings, generate_items
from evaluation.items import items_from_prompt_rows, rows_from_trajectory
from evaluation.runner import score_item
from evaluation.scoring import ItemScore, aggregate
from tests.evaluation.bfcl_reference import BFCL_FIXTURES
from tests.evaluation.runs_harness import ChatServer, oracle
from tests.evaluation.test_bfcl_agreement import load_category

CATEGORIES = ("simple_python", "multiple", "irrelevance")


def bfcl_items(category: str):
    if not (BFCL_FIXTURES / f"BFCL_v4_{category}.json").exists():
        pytest.skip(f"needs the shared BFCL fixtures at {BFCL_FIXTURES.resolve()}")
    rows = []
    for q, a in load_category(category, BFCL_FIXTURES):
        rows += rows_from_trajectory(to_trajectory(q, answer=a), q["id"])
    return items_from_prompt_rows(rows)


@pytest.mark.parametrize("structured", [True, False], ids=["tool_calls", "text"])
@pytest.mark.parametrize("category", CATEGORIES)
def test_an_oracle_endpoint_scores_every_bfcl_item_correct(category, structured):
    items = bfcl_items(category)
    assert items and all(it.reference.get("source") == "bfcl" for it in items)
    settings = GenerationSettings(max_steps=1, concurrency=8)
    with ChatServer(oracle(items, structured=structured)) as server:
        outputs = generate_items(items, EndpointGenerator(server.url, "oracle", settings, policy=server.policy), settings)
    scores = [ItemScore.from_dict(score_item(it, out)["score"]) for it, out in zip(items, outputs)]
    wrong = [(s.item_id, s.labels, s.reasons[:2]) for s in scores if not s.correct]
    assert not wrong, f"{len(wrong)} of {len(scores)} gold answers not correct: {wrong[:5]}"
    assert aggregate(scores)["metrics"]["correct"]["rate"] == 1.0
    assert len(server.requests) == len(items)

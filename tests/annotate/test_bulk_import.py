"""The fast SQLite import path writes exactly what the canonical documents hold."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from annotate import bulk
from annotate.demo import demo_trajectories
from annotate.models import Revision, StepLabel, Trajectory

pytestmark = pytest.mark.django_db


def insert(project, docs):
    with transaction.atomic():
        return bulk.insert_trajectories(project, docs, author_id=None, status="draft", now=timezone.now())


def test_bulk_inserted_trajectories_read_back_identical(project):
    docs = demo_trajectories()
    ids = insert(project, docs)
    assert len(ids) == len(docs)
    for pk, doc in zip(ids, docs):
        t = Trajectory.objects.get(pk=pk)
        back = t.to_canonical()
        assert back.turns == doc.turns
        assert back.tools == doc.tools and back.system == doc.system
        assert t.case_types == sorted(set(doc.meta.case_types)) and t.version == 1
        assert Revision.objects.get(trajectory=t, version=1).document == doc.to_dict()


def test_labels_and_findings_are_queryable_after_a_bulk_insert(project):
    ids = insert(project, demo_trajectories())
    labelled = Trajectory.objects.get(pk__in=ids, external_id="demo-needs-fixing")
    assert set(StepLabel.objects.filter(trajectory=labelled).values_list("label", flat=True)) == {
        "unexpected_arg", "missing_required_arg"}
    assert labelled.finding_count > 0
    assert Trajectory.objects.filter(pk__in=ids).with_case_type("clarification").count() == 1


def test_ids_are_never_reused_after_deletes(project):
    first = insert(project, demo_trajectories()[:3])
    Trajectory.objects.filter(pk__in=first).delete()
    second = insert(project, demo_trajectories()[:3])
    assert min(second) > max(first)
    # And the ORM keeps allocating above them.
    t = Trajectory.objects.create(project=project)
    assert t.pk > max(second)


@pytest.mark.parametrize("value", [
    {"b": 1, "a": [1, 2.5, None, True], "é": "ü\u2028", "n": {"x": ""}},  # key order, non-ASCII, null
    {"big": 2 ** 70, "neg": -2 ** 64},  # beyond 64 bits: orjson refuses, the standard encoder writes them
    {"x": float("nan"), "y": [float("inf"), None]},  # orjson would write null
    {1: "one", None: "none"},  # non-string keys (json.dumps turns them into strings)
    "\ud800",  # a lone surrogate
    [],
])
def test_dumps_writes_the_value_json_dumps_writes(value):
    import json

    expected = json.dumps(value, ensure_ascii=False)
    got = bulk.dumps(value)
    assert isinstance(got, str)
    if "NaN" in expected or "Infinity" in expected:
        assert got == expected
    else:
        assert json.loads(got) == json.loads(expected)
        assert list(json.loads(got)) == list(json.loads(expected))  # key order


def test_dumps_refuses_what_json_refuses():
    import datetime

    with pytest.raises(TypeError):
        bulk.dumps({"when": datetime.date(2024, 1, 1)})

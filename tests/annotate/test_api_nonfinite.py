"""Hostile input through the API: a body that writes a number JSON has no value for (NaN,
Infinity, or 1e999, which Python reads as infinity) is a 400 naming where it is, and nothing
changes; it used to reach the database, whose JSON columns refuse it (a 500)."""

from __future__ import annotations

import json

import pytest

from annotate.models import Trajectory

pytestmark = pytest.mark.django_db


@pytest.fixture
def weather(demo_trajectories):
    return next(t for t in demo_trajectories if t.external_id == "demo-weather")


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
@pytest.mark.parametrize("how", ["patch_step", "edit", "put_document"])
def test_a_non_finite_number_in_a_body_is_400_and_changes_nothing(client, lead, weather, number, how):
    client.force_login(lead)
    before = weather.steps.get(turn_index=0, position=1).arguments
    url = f"/api/trajectories/{weather.pk}/"
    if how == "patch_step":
        r = client.patch(url + "turns/0/steps/1/", data='{"base_version": 1, "arguments": {"city": %s}}' % number,
                         content_type="application/json")
    elif how == "edit":
        r = client.post(url + "edits/", content_type="application/json",
                        data='{"base_version": 1, "op": "update_step", "turn": 0, "step": 1, '
                             '"fields": {"arguments": {"city": "Paris", "days": %s}}}' % number)
    else:
        document = json.loads(client.get(url).content)["document"]
        document["turns"][0]["steps"][1]["arguments"] = {"city": "__N__"}
        body = json.dumps({"base_version": 1, "document": document}).replace('"__N__"', number)
        r = client.put(url, data=body, content_type="application/json")
    assert r.status_code == 400, (r.status_code, r.content[:300])
    weather.refresh_from_db()
    assert weather.version == 1
    assert Trajectory.objects.get(pk=weather.pk).steps.get(turn_index=0, position=1).arguments == before


def test_the_editors_raw_arguments_refuse_a_non_finite_number():
    from annotate.workbench.argument_form import parse_raw_arguments

    for number in ("1e999", "NaN", "-Infinity"):
        value, error = parse_raw_arguments('{"days": %s}' % number)
        assert value is None and f"{number} is not a number JSON allows" in error


@pytest.mark.parametrize("number", ["1e999", "NaN"])
def test_files_and_settings_text_refuse_a_non_finite_number(number):
    """The project settings' tool list, a pairs / candidates file and an eval-set upload read JSON
    strictly: the number is named where it is read, never stored."""
    from annotate.pairs.records import parse_candidates
    from annotate.projects.rules import parse_tools
    from core.errors import InputError
    from evaluation.eval_sets import EvalSetError, read_records

    with pytest.raises(InputError, match="not a number JSON allows"):
        parse_tools('[{"name": "f", "parameters": {"type": "object", "maximum": %s}}]' % number)
    with pytest.raises(EvalSetError, match="not valid JSON"):
        read_records(b'{"prompt": "hi", "score": %s}\n' % number.encode(), "set.jsonl")
    found = parse_candidates(b'{"question": "q", "score": %s}\n' % number.encode(), "pairs.jsonl")
    assert [e["line"] for e in found.errors] == [1] and "not valid JSON" in found.errors[0]["message"]


HUGE = "9" * 5000  # (Python reads integers of up to 4,300 digits; beyond, its reader raised a plain ValueError)


def test_an_integer_of_5000_digits_is_refused_where_it_is_read(client, lead, weather):
    """The pairs and eval-set readers caught only JSON errors: this crashed them (AttributeError in
    the eval-set reader, a ValueError out of the candidates reader); the API answers 400."""
    from annotate.pairs.records import parse_candidates
    from annotate.projects.rules import parse_tools
    from annotate.workbench.argument_form import parse_raw_arguments
    from core.errors import InputError
    from evaluation.eval_sets import EvalSetError, read_records

    with pytest.raises(InputError, match="over 4,300 digits"):
        parse_tools('[{"name": "f", "parameters": {"type": "object", "maximum": %s}}]' % HUGE)
    with pytest.raises(EvalSetError, match="over 4,300 digits"):
        read_records(b'{"prompt": "hi", "score": %s}\n' % HUGE.encode(), "set.jsonl")
    found = parse_candidates(b'{"question": "q", "score": %s}\n' % HUGE.encode(), "pairs.jsonl")
    assert [e["line"] for e in found.errors] == [1] and "over 4,300 digits" in found.errors[0]["message"]
    value, error = parse_raw_arguments('{"days": %s}' % HUGE)
    assert value is None and "over 4,300 digits" in error
    client.force_login(lead)
    r = client.patch(f"/api/trajectories/{weather.pk}/turns/0/steps/1/", content_type="application/json",
                     data='{"base_version": 1, "arguments": {"city": %s}}' % HUGE)
    assert r.status_code == 400 and b"4,300 digits" in r.content
    weather.refresh_from_db()
    assert weather.version == 1

"""Bad API input is a 4xx with a reason: ids past the database's integers, unknown fields in any
body (and in the objects whose keys the API defines), an eval set's ``filters.ids``; and the
OpenAPI schema says what the views answer (pagination, nullability, no generator warnings)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db

HUGE = 2**63 + 5  # past SQLite's and PostgreSQL's 64-bit integers


@pytest.fixture
def api(client, lead):
    client.force_login(lead)
    client.raise_request_exception = False  # a crash is a 500 here, as the client would see it

    def call(method: str, url: str, body=None):
        kwargs = {} if body is None else {"data": json.dumps(body), "content_type": "application/json"}
        return getattr(client, method)(url, **kwargs)

    return call


@pytest.fixture
def weather(demo_trajectories):
    return next(t for t in demo_trajectories if t.external_id == "demo-weather")


def reason(response) -> str:
    return json.dumps(response.json())


@pytest.mark.parametrize("method, url, body, field", [
    ("get", f"/api/projects/weather/trajectories/?assignee={HUGE}", None, "assignee"),
    ("post", "/api/projects/weather/assign/", {"ids": [HUGE], "assignee": None}, "ids"),
    ("post", "/api/projects/weather/assign/", {"ids": [1], "assignee": HUGE}, "assignee"),
    ("post", "/api/projects/weather/pair-suggestions/decide/", {"ids": [HUGE], "action": "dismiss"}, "ids"),
    ("post", "/api/projects/weather/snapshots/", {"filters": {"status": "any", "ids": [HUGE]}}, "ids"),
    ("post", "/api/projects/weather/eval-sets/", {"source": "trajectories", "filters": {"ids": [HUGE]}}, "ids"),
    ("post", "/api/projects/weather/eval-sets/", {"source": "snapshot", "snapshot": HUGE}, "snapshot"),
    ("post", "/api/projects/weather/pairs/", {"trajectory": HUGE, "turn": 0, "step": 0}, "trajectory"),
    ("post", "/api/projects/weather/training-jobs/", {"snapshot": HUGE, "kind": "sft", "base_model": "x"},
     "snapshot"),
    ("post", "/api/projects/weather/eval-runs/", {"eval_set": HUGE, "model_source": "folder"}, "eval_set"),
])
def test_an_id_past_the_databases_integers_is_a_400_naming_the_field(api, lead, demo_trajectories, method, url,
                                                                     body, field):
    r = api(method, url, body)
    assert r.status_code == 400, r.content[:500]
    assert field in reason(r)


@pytest.mark.parametrize("url", [f"/api/trajectories/{HUGE}/", f"/api/trajectories/{HUGE}/revisions/",
                                 f"/api/pairs/{HUGE}/", f"/api/snapshots/{HUGE}/", f"/api/training-jobs/{HUGE}/",
                                 f"/api/eval-runs/{HUGE}/", "/api/projects/weather/trajectories/?page=" + str(HUGE)])
def test_a_huge_id_in_the_url_is_a_json_404(api, demo_trajectories, url):
    r = api("get", url)
    assert r.status_code == 404 and r["Content-Type"] == "application/json" and r.json()["detail"]


def test_a_huge_after_is_ignored_like_any_other_non_id(api, project, demo_trajectories):
    r = api("post", f"/api/projects/weather/next/?after={HUGE}")
    assert r.status_code in (200, 204)


# --- unknown fields -------------------------------------------------------------------------------

def test_a_snapshot_post_with_template_at_the_top_level_is_a_400_naming_it(api, demo_trajectories):
    r = api("post", "/api/projects/weather/snapshots/", {"kind": "sft", "template": "llama3_1_training"})
    assert r.status_code == 400
    assert "template" in r.json() and "unknown field" in r.json()["template"][0]
    assert "render_settings" in r.json()["template"][0]  # the message lists what the API takes


@pytest.mark.parametrize("method, url, body, field", [
    ("post", "/api/projects/weather/snapshots/", {"render_settings": {"templat": "qwen3"}}, "render_settings"),
    ("post", "/api/projects/weather/snapshots/", {"filters": {"split": "train"}}, "filters"),
    ("post", "/api/projects/weather/eval-sets/", {"source": "trajectories", "filters": {"tags": "x"}}, "filters"),
    ("post", "/api/projects/weather/eval-sets/", {"source": "trajectories", "sorce": "x"}, "sorce"),
    ("post", "/api/projects/weather/assign/", {"ids": [1], "assignee": None, "user": 3}, "user"),
    ("post", "/api/projects/weather/training-jobs/", {"snapshot": 1, "kind": "sft", "base_model": "x",
                                                      "learning_rate": 1e-4}, "learning_rate"),
    ("post", "/api/projects/weather/eval-runs/", {"eval_set": 1, "model_source": "folder", "max_tokens": 9},
     "max_tokens"),
    ("post", "/api/projects/weather/pairs/", {"context": {}, "chosen_steps": []}, "chosen_steps"),
    ("post", "/api/projects/weather/pairs/export/", {"tokeniser": "x"}, "tokeniser"),
])
def test_an_unknown_field_in_a_body_is_a_400_naming_it(api, demo_trajectories, method, url, body, field):
    r = api(method, url, body)
    assert r.status_code == 400, r.content[:500]
    assert field in reason(r) and "unknown" in reason(r)


def test_an_unknown_field_in_an_edit_is_a_400_naming_it_and_nothing_changes(api, weather):
    r = api("post", f"/api/trajectories/{weather.pk}/edits/",
            {"base_version": 1, "op": "update_step", "turn": 0, "step": 3, "fields": {"note": "x"}, "notes": "y"})
    assert r.status_code == 400 and "notes" in r.json()
    r = api("patch", f"/api/trajectories/{weather.pk}/turns/0/steps/3/", {"base_version": 1, "txt": "typo"})
    assert r.status_code == 400 and "txt" in r.json()
    weather.refresh_from_db()
    assert weather.version == 1


def test_pair_api_400s_keep_their_documented_shape(api, demo_trajectories):
    r = api("post", "/api/projects/weather/pairs/", {"trajectory": "one", "turn": 0, "step": 0})
    assert r.status_code == 400
    assert r.json() == {"errors": [{"field": "trajectory", "message": "A valid integer is required."}]}


# --- eval set filters.ids ----------------------------------------------------------------------------

def test_an_eval_set_from_trajectories_takes_only_the_ids_given(api, demo_trajectories, weather):
    r = api("post", "/api/projects/weather/eval-sets/",
            {"source": "trajectories", "filters": {"ids": [weather.pk]}, "name": "one"})
    assert r.status_code == 201, r.content
    from evaluation.models import EvalSet

    es = EvalSet.objects.get(pk=r.json()["id"])
    assert set(es.items.values_list("trajectory_id", flat=True)) == {weather.pk}
    everything = api("post", "/api/projects/weather/eval-sets/", {"source": "trajectories", "name": "all"})
    assert everything.json()["item_count"] > es.item_count


def test_eval_set_ids_must_be_a_list_of_ids(api, demo_trajectories):
    r = api("post", "/api/projects/weather/eval-sets/", {"source": "trajectories", "filters": {"ids": "3"}})
    assert r.status_code == 400 and "ids" in reason(r)


# --- the schema ------------------------------------------------------------------------------------

@pytest.fixture
def schema(api):
    r = api("get", "/api/schema/?format=json")
    assert r.status_code == 200
    return r.json()


def ok_schema(schema, path: str, method: str = "get") -> dict:
    content = schema["paths"][path][method]["responses"]
    body = (content.get("200") or content["201"])["content"]["application/json"]["schema"]
    return resolve(schema, body)


def resolve(schema, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


@pytest.mark.parametrize("path", ["/api/projects/{slug}/trajectories/", "/api/trajectories/{id}/revisions/",
                                  "/api/projects/{slug}/training-jobs/", "/api/projects/{slug}/eval-runs/",
                                  "/api/eval-runs/{id}/items/", "/api/projects/{slug}/pairs/"])
def test_paginated_lists_are_documented_as_pages(schema, path):
    page = ok_schema(schema, path)
    assert page["type"] == "object" and {"count", "next", "previous", "results"} <= set(page["properties"])
    assert page["properties"]["results"]["type"] == "array"
    assert any(p["name"] == "page" for p in schema["paths"][path]["get"]["parameters"])


def test_a_pairs_reviewer_is_nullable_in_the_schema(schema):
    reviewer = schema["components"]["schemas"]["Pair"]["properties"]["reviewer"]
    assert reviewer.get("nullable") is True


def test_error_answers_are_documented(schema):
    edit = schema["paths"]["/api/trajectories/{id}/edits/"]["post"]["responses"]
    assert {"400", "403", "404", "409"} <= set(edit)
    pair_400 = resolve(schema, schema["paths"]["/api/projects/{slug}/pairs/"]["post"]["responses"]["400"]
                       ["content"]["application/json"]["schema"])
    assert set(pair_400["properties"]) == {"errors"}


def test_the_schema_generator_prints_no_warnings(capsys):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err


def test_a_pair_body_that_is_not_json_is_a_400_in_the_pair_apis_shape(client, lead, demo_trajectories):
    client.force_login(lead)
    r = client.post("/api/projects/weather/pairs/", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.json()["errors"][0]["message"].startswith("JSON parse error")


def test_strict_bodies_and_keyed_objects_say_so_in_the_schema(schema):
    snapshot = schema["components"]["schemas"]["SnapshotCreate"]
    assert snapshot["additionalProperties"] is False
    filters = snapshot["properties"]["filters"]
    assert filters["additionalProperties"] is False and "ids" in filters["properties"]

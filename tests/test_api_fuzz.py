"""A schema-driven fuzzer over every API operation, as a lead: no 5xx, and every answer matches
the OpenAPI schema at /api/schema/ (status codes, content types, bodies).

Schemathesis reads the schema through the WSGI app (token auth), generates valid and invalid
requests for each operation with a fixed seed (``derandomize``) and a bounded number of examples,
and checks each response. Jobs only stay queued: the test's transaction is never committed, so
the on-commit enqueues never fire, and sending a task is patched out besides; nothing trains.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,  # noqa: E402
                                               response_schema_conformance, status_code_conformance)

# Invalid requests (negative mode: wrong types, out-of-range ids, fields a body does not define) must
# be refused with a 4xx; every answer must be documented, in its documented content type and shape.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
EXAMPLES = 12  # per operation and mode: enough to find the crashes, small enough for ~1 minute


@pytest.fixture(autouse=True)
def no_background_work(monkeypatch):
    """Launches stay queued: no task is sent (should an enqueue ever run before commit)."""
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda self, *args, **kwargs: None)


@pytest.fixture
def api_schema(lead, demo_trajectories):
    from django.core.wsgi import get_wsgi_application
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=lead)
    headers = {"Authorization": f"Token {token.key}"}
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), headers=headers), \
        headers


@pytest.fixture
def real_ids(client, lead, demo_trajectories, settings, tiny_model_dir) -> dict[str, int]:
    """Rows the fuzzer's requests can reach past the 404: a trajectory, a pair, a snapshot."""
    settings.DEMO_MODEL_DIR = tiny_model_dir  # the project's default tokenizer
    client.force_login(lead)
    weather = next(t for t in demo_trajectories if t.external_id == "demo-weather")
    pair = client.post("/api/projects/weather/pairs/", {"trajectory": weather.pk, "turn": 0, "step": 0,
                                                        "starter": "tool_needed", "category": "tool_needed"},
                       content_type="application/json")
    snapshot = client.post("/api/projects/weather/snapshots/", {"filters": {"status": "any"}},
                           content_type="application/json")
    assert pair.status_code == 201 and snapshot.status_code == 201, (pair.content, snapshot.content)
    return {"/api/trajectories/": weather.pk, "/api/pairs/": pair.json()["id"],
            "/api/snapshots/": snapshot.json()["id"]}


def run_operation(operation, mode, headers, found: list[str], **fixed) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except BaseException as exc:  # every failure, not only the first: one report names them all
            for failure in getattr(exc, "exceptions", [exc]):
                message = " ".join(getattr(failure, "message", str(failure)).split())[:400]
                found.append(f"{operation.label} [{mode.value}]: {getattr(failure, 'title', type(failure).__name__)}: "
                             f"{message}\n    {case.as_curl_command(headers={'Authorization': '…'})[:400]}")

    try:
        fuzz()
    except Unsatisfiable:  # nothing in this operation can be made invalid (negative mode)
        pass


@pytest.mark.django_db
def test_every_operation_answers_without_5xx_and_as_its_schema_says(api_schema, project, real_ids):
    schema, headers = api_schema
    found: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run_operation(operation, mode, headers, found)
        # And once with the project's real slug or a real row's id, so operations reach past the 404.
        if "{slug}" in operation.path:
            run_operation(operation, GenerationMode.POSITIVE, headers, found, path_parameters={"slug": project.slug})
        for prefix, pk in real_ids.items():
            if operation.path.startswith(prefix + "{id}"):
                run_operation(operation, GenerationMode.POSITIVE, headers, found, path_parameters={"id": pk})
    # One line per distinct failure of an operation (the same failure with other data once).
    distinct = {}
    for f in found:
        distinct.setdefault(f.split("\n")[0][:160], f)
    assert not distinct, f"{len(distinct)} distinct failures:\n\n" + "\n\n".join(distinct.values())

"""Every workbench page and API endpoint, for each role: admin, lead, the assigned annotator,
another annotator of the project, a lead of another project (outsider) and an anonymous visitor.

Reads: any member. Edits: leads, admins and the annotator who holds the trajectory (404 for
outsiders so ids reveal nothing, 403 for members without the right). Lead-only actions: 403
for annotators. Anonymous: the login page (pages) or 401/403 (API). A refused request leaves the
trajectory as it was: its row, its document and its revisions.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annotate.models import Revision, Trajectory
from annotate.workbench.documents import current_document, replace_document

pytestmark = pytest.mark.django_db
ROLES = ("anonymous", "outsider", "other_annotator", "annotator", "lead", "admin")
LOGIN = "login"  # a redirect to the login page
API_ANON = (401, 403)


def expect(read=200, edit=None, lead_only=None, anonymous=LOGIN) -> dict:
    """Expected status per role: members read; ``edit`` for the assigned annotator and above."""
    out = {"anonymous": anonymous, "outsider": 404}
    if lead_only is not None:
        out.update({"other_annotator": 403, "annotator": 403, "lead": lead_only, "admin": lead_only})
    elif edit is not None:
        out.update({"other_annotator": 403, "annotator": edit, "lead": edit, "admin": edit})
    else:
        out.update({r: read for r in ("other_annotator", "annotator", "lead", "admin")})
    return out


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(project, admin_user_, lead, annotator, outsider, make_user, demo_trajectories):
    other = make_user("bea", "annotator", project)
    t = next(t for t in demo_trajectories if t.external_id == "demo-weather")
    Trajectory.objects.filter(pk=t.pk).update(assignee=annotator)
    clients = {"anonymous": Client()}
    for role, user in (("outsider", outsider), ("other_annotator", other), ("annotator", annotator), ("lead", lead),
                       ("admin", admin_user_)):
        clients[role] = Client()
        clients[role].force_login(user)
    return {"project": project, "t": t, "clients": clients, "annotator": annotator}


def version(t) -> int:
    return Trajectory.objects.values_list("version", flat=True).get(pk=t.pk)


def state(t) -> tuple:
    """What a refused request must leave as it was: the row's workflow fields, the document, the revisions."""
    row = Trajectory.objects.values("status", "assignee_id", "version", "updated_at", "reviewer_comment").get(pk=t.pk)
    document = current_document(Trajectory.objects.get(pk=t.pk)).to_dict()
    return row, document, list(Revision.objects.filter(trajectory_id=t.pk).values_list("version", flat=True))


def refused(expected) -> bool:
    return expected in (LOGIN, 401, 403, 404, API_ANON)


def reset(t):
    Trajectory.objects.filter(pk=t.pk).update(status="draft")


def step0(t) -> dict:
    return {"base_version": version(t), "text": "Look up Paris.", "train": "on"}


def revert_to_1(t) -> dict:
    """A revert to version 1 with something to revert: a note is added first (a revert to a version
    whose document is the current one is refused as changing nothing)."""
    t.refresh_from_db()
    doc = current_document(t)
    doc.turns[0].steps[0].note = f"changed at version {t.version}"
    replace_document(t, doc, user=None, base_version=t.version, summary="a change to revert")
    return {"version": 1, "base_version": version(t)}


def approval(t) -> dict:
    Trajectory.objects.filter(pk=t.pk).update(status="submitted")
    return {"action": "approve"}


def call1(t) -> dict:
    return {"base_version": version(t), "name": "get_weather", "call_id": "c1", "args_mode": "form",
            "args_tool": "get_weather", "arg:city": "Paris", "train": "on"}


PAGES = [
    ("project list", "get", lambda w: "/", None, {r: 200 for r in ROLES} | {"anonymous": LOGIN}),
    ("dashboard", "get", lambda w: f"/p/{w['project'].slug}/", None, expect()),
    ("queue", "get", lambda w: f"/p/{w['project'].slug}/trajectories/?q=paris", None, expect()),
    ("next in my queue", "post", lambda w: f"/p/{w['project'].slug}/next/", lambda t: {}, expect(read=302)),
    ("bulk assign", "post", lambda w: f"/p/{w['project'].slug}/assign/",
     lambda t: {"ids": [t.pk], "assignee": ""}, expect(lead_only=302)),
    ("editor", "get", lambda w: f"/t/{w['t'].pk}/", None, expect()),
    ("history", "get", lambda w: f"/t/{w['t'].pk}/history/", None, expect()),
    ("step save", "post", lambda w: f"/t/{w['t'].pk}/steps/0/0/", step0, expect(edit=200)),
    ("argument fields", "post", lambda w: f"/t/{w['t'].pk}/steps/0/1/arguments/?mode=raw", call1, expect(edit=200)),
    ("live argument check", "post", lambda w: f"/t/{w['t'].pk}/steps/0/1/check/", call1, expect(edit=200)),
    ("user message", "post", lambda w: f"/t/{w['t'].pk}/turns/0/",
     lambda t: {"base_version": version(t), "user": "Weather in Paris?"}, expect(edit=200)),
    ("metadata", "post", lambda w: f"/t/{w['t'].pk}/meta/",
     lambda t: {"base_version": version(t), "case_types": ["tool_required"], "split": "train"}, expect(edit=200)),
    ("structure", "post", lambda w: f"/t/{w['t'].pk}/structure/?op=duplicate_step&turn=0&step=0",
     lambda t: {"base_version": version(t)}, expect(edit=200)),
    ("revert", "post", lambda w: f"/t/{w['t'].pk}/revert/",
     revert_to_1, expect(edit=302)),
    ("submit", "post", lambda w: f"/t/{w['t'].pk}/status/", lambda t: {"action": "submit"}, expect(edit=302)),
    ("approve", "post", lambda w: f"/t/{w['t'].pk}/status/", approval, expect(lead_only=302)),
]


def status_of(response) -> int | str:
    if response.status_code == 302 and response.url.startswith("/login/"):
        return LOGIN
    return response.status_code


@pytest.mark.parametrize("name, method, url, data, expected", PAGES, ids=[p[0] for p in PAGES])
def test_each_role_on_each_page(world, name, method, url, data, expected):
    t = world["t"]
    for role in ROLES:
        reset(t)
        c = world["clients"][role]
        body = None if method == "get" else data(t)
        before = state(t)
        if method == "get":
            r = c.get(url(world))
        else:
            r = c.post(url(world), body, HTTP_HX_REQUEST="true")
        assert status_of(r) == expected[role], f"{name} as {role}: {r.status_code}"
        if refused(expected[role]):
            assert state(t) == before, f"{name} as {role} was refused but changed the trajectory"


def api_doc(t) -> dict:
    return {"base_version": version(t), "document": current_document(Trajectory.objects.get(pk=t.pk)).to_dict()}


API = [
    ("projects", "get", lambda w: "/api/projects/", None, {r: 200 for r in ROLES} | {"anonymous": API_ANON}),
    ("project", "get", lambda w: f"/api/projects/{w['project'].slug}/", None, expect(anonymous=API_ANON)),
    ("dashboard", "get", lambda w: f"/api/projects/{w['project'].slug}/dashboard/", None, expect(anonymous=API_ANON)),
    ("tools", "get", lambda w: f"/api/projects/{w['project'].slug}/tools/", None, expect(anonymous=API_ANON)),
    ("queue", "get", lambda w: f"/api/projects/{w['project'].slug}/trajectories/?q=paris&status=draft", None,
     expect(anonymous=API_ANON)),
    ("next", "post", lambda w: f"/api/projects/{w['project'].slug}/next/", lambda t: {},
     expect(anonymous=API_ANON)),
    ("assign", "post", lambda w: f"/api/projects/{w['project'].slug}/assign/",
     lambda t: {"ids": [t.pk], "assignee": None}, expect(lead_only=200, anonymous=API_ANON)),
    ("document", "get", lambda w: f"/api/trajectories/{w['t'].pk}/", None, expect(anonymous=API_ANON)),
    ("replace document", "put", lambda w: f"/api/trajectories/{w['t'].pk}/", api_doc,
     expect(edit=200, anonymous=API_ANON)),
    ("edit", "post", lambda w: f"/api/trajectories/{w['t'].pk}/edits/",
     lambda t: {"base_version": version(t), "op": "duplicate_step", "turn": 0, "step": 0},
     expect(edit=200, anonymous=API_ANON)),
    ("step", "patch", lambda w: f"/api/trajectories/{w['t'].pk}/turns/0/steps/0/",
     lambda t: {"base_version": version(t), "note": "checked"}, expect(edit=200, anonymous=API_ANON)),
    ("submit", "post", lambda w: f"/api/trajectories/{w['t'].pk}/status/", lambda t: {"action": "submit"},
     expect(edit=200, anonymous=API_ANON)),
    ("approve", "post", lambda w: f"/api/trajectories/{w['t'].pk}/status/", approval,
     expect(lead_only=200, anonymous=API_ANON)),
    ("revisions", "get", lambda w: f"/api/trajectories/{w['t'].pk}/revisions/", None, expect(anonymous=API_ANON)),
    ("revision", "get", lambda w: f"/api/trajectories/{w['t'].pk}/revisions/1/", None, expect(anonymous=API_ANON)),
    ("revert", "post", lambda w: f"/api/trajectories/{w['t'].pk}/revert/",
     revert_to_1, expect(edit=200, anonymous=API_ANON)),
    ("check arguments", "post", lambda w: f"/api/trajectories/{w['t'].pk}/check-arguments/",
     lambda t: {"tool": "get_weather", "arguments": {"city": "Paris"}}, expect(anonymous=API_ANON)),
]


@pytest.mark.parametrize("name, method, url, data, expected", API, ids=[a[0] for a in API])
def test_each_role_on_each_api_endpoint(world, name, method, url, data, expected):
    t = world["t"]
    for role in ROLES:
        reset(t)
        c = world["clients"][role]
        kwargs = {} if data is None else {"data": json.dumps(data(t)), "content_type": "application/json"}
        before = state(t)
        r = getattr(c, method)(url(world), **kwargs)
        want = expected[role]
        assert (r.status_code in want) if isinstance(want, tuple) else r.status_code == want, \
            f"{name} as {role}: {r.status_code} {r.content[:200]!r}"
        if refused(want):
            assert state(t) == before, f"{name} as {role} was refused but changed the trajectory"


def test_an_annotator_may_not_edit_a_trajectory_in_review_even_their_own(world):
    t, c = world["t"], world["clients"]["annotator"]
    Trajectory.objects.filter(pk=t.pk).update(status="submitted")
    before = state(t)
    assert c.post(f"/t/{t.pk}/steps/0/0/", step0(t) | {"text": "changed"}, HTTP_HX_REQUEST="true").status_code == 403
    r = c.patch(f"/api/trajectories/{t.pk}/turns/0/steps/0/", json.dumps({"base_version": version(t), "note": "x"}),
                content_type="application/json")
    assert r.status_code == 403
    assert state(t) == before
    assert c.get(f"/t/{t.pk}/").status_code == 200  # still readable


def test_the_read_only_editor_draws_no_save_buttons(world):
    t = world["t"]
    html = world["clients"]["other_annotator"].get(f"/t/{t.pk}/").content.decode()
    assert "Save step" not in html and "read only" in html and " readonly" in html
    assert "Save step" in world["clients"]["annotator"].get(f"/t/{t.pk}/").content.decode()

"""studio.errors without a browser: the 500 page renders even when the request context fails."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory
from django.urls import Resolver404

from studio import errors


class BrokenUser:
    """A request whose user cannot be read (the session or database is what failed)."""

    @property
    def user(self):
        raise RuntimeError("database is down")


def test_the_500_page_renders_when_the_request_context_fails(db):
    request = RequestFactory().get("/somewhere/")
    request.__class__ = type("BrokenRequest", (BrokenUser, type(request)), {})
    response = errors.server_error(request)
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body
    assert "database is down" not in body


def test_the_reason_is_the_message_raised_or_a_plain_default():
    assert errors.reason_of(PermissionDenied("This needs the lead role in X."), "d") == "This needs the lead role in X."
    assert errors.reason_of(PermissionDenied(), "default") == "default"
    assert errors.reason_of(Resolver404({"path": "x", "tried": []}), "default") == "default"
    assert errors.reason_of(Http404("No such project"), "default") == "No such project"
    assert errors.reason_of(Http404("No EvalRun matches the given query."), "d") == (
        "There is no eval run at this address: it may have been deleted, or the link is wrong.")


def test_api_errors_stay_json(db):
    request = RequestFactory().get("/api/projects/x/")
    response = errors.permission_denied(request, PermissionDenied("This needs the lead role in X."))
    assert response.status_code == 403 and response["Content-Type"] == "application/json"

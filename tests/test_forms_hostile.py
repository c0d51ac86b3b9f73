"""Users who probe what a form accepts: every POST form a lead, an annotator or an admin can reach, sent with hostile values
in every field it has, answers with the page and its errors (or a redirect), never a server error.

The test crawls the site as each of them (a lead and an annotator of the demo project) (every link inside the site, from the
dashboard on; not the admin, the API or file downloads), collects each form, and submits it once
per kind of hostile value: numbers past any integer column, 1e999 and NaN, negative numbers, a
100,000-character text, a path out of the data folder, markup, and empty values. Each value goes
into every text, number, hidden (but the CSRF token) and textarea field at once; selects keep a
valid choice. Found this way: nothing at the time of writing; the API has its own fuzzing
(tests/test_api_fuzz.py).
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)  # (a request that fails must not break the next one's transaction)

HOSTILE = {
    "huge": "1" + "0" * 30,
    "past-int64": str(2**63 + 5),
    "1e999": "1e999",
    "nan": "NaN",
    "negative": "-5",
    "long": "x" * 100_000,
    "path": "../../../../etc/passwd",
    "markup": "<script>alert(1)</script>{{ 7*7 }}",
    "empty": "",
}
SKIP_PREFIXES = ("/admin/", "/api/", "/static/", "/media/", "/accounts/logout", "/logout")
MAX_PAGES = 150


class _Page(HTMLParser):
    """Links and forms of a page (forms as (action, method, fields))."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href") and "download" not in a:
            self.links.append(a["href"])
        elif tag == "form":
            self._form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                          "fields": [], "selects": {}}
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form["fields"].append((a["name"], kind, a.get("value") or ""))
        elif self._form is not None and tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self._form["fields"].append((a["name"], "textarea", ""))
        elif self._form is not None and tag == "select" and a.get("name"):
            self._select = a["name"]
        elif self._form is not None and tag == "option" and self._select:
            self._form["selects"].setdefault(self._select, a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def _inside(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and parts.path.startswith("/") and not parts.path.startswith(
        SKIP_PREFIXES)


def _crawl(client) -> tuple[dict[str, int], list[tuple[str, dict]]]:
    """Status of each page reached, and every POST form seen (its page, the form)."""
    seen: dict[str, int] = {}
    forms: list[tuple[str, dict]] = []
    todo = ["/"]
    while todo and len(seen) < MAX_PAGES:
        url = todo.pop(0)
        if url in seen:
            continue
        r = client.get(url)
        seen[url] = r.status_code
        if r.status_code != 200 or "text/html" not in r.get("Content-Type", ""):
            continue
        page = _Page()
        page.feed(r.content.decode("utf-8", "replace"))
        forms.extend((url, f) for f in page.forms if f["method"] == "post")
        for href in page.links:
            target = urljoin(url, href).split("#")[0]
            if _inside(target) and target not in seen:
                todo.append(target)
    return seen, forms


@pytest.mark.parametrize("role", ["lead", "annotator", "superuser"])
def test_every_form_takes_hostile_values_without_a_server_error(client, role, lead, annotator, admin_user_, project,
                                                               demo_trajectories):
    from tests.conftest import PASSWORD

    user = {"lead": lead, "annotator": annotator, "superuser": admin_user_}[role]
    client.raise_request_exception = False  # a crash is a 500 here, as a browser would see it
    assert client.login(username=user.username, password=PASSWORD)
    pages, forms = _crawl(client)
    assert len(pages) >= 20 and len(forms) >= 10, (len(pages), len(forms))  # (the crawl reached the app)
    assert not [u for u, s in pages.items() if s >= 500], pages
    unique = {}
    for page, form in forms:  # one of each (action, field names)
        key = (urljoin(page, form["action"] or page), tuple(sorted(n for n, _, _ in form["fields"])))
        unique.setdefault(key, (page, form))
    failures = []
    for (action, _), (page, form) in sorted(unique.items()):
        if not _inside(action):
            continue
        for label, value in HOSTILE.items():
            data: dict[str, object] = dict(form["selects"])
            for name, kind, default in form["fields"]:
                if name == "csrfmiddlewaretoken" or kind in ("checkbox", "radio", "submit", "file"):
                    data.setdefault(name, default)
                else:
                    data[name] = value
            r = client.post(action, data)
            if r.status_code >= 500:
                failures.append(f"{label} -> POST {action} (form on {page}): {r.status_code}")
            if r.status_code in (302, 200) and not client.session.get("_auth_user_id"):
                assert client.login(username=user.username, password=PASSWORD)  # (a form logged us out)
    assert not failures, "\n".join(failures)

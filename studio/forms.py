"""Form helpers shared by the apps."""

from __future__ import annotations

from django import forms
from django.utils.http import url_has_allowed_host_and_scheme

# SQLite's and PostgreSQL's bigint: the largest id a row can have.
MAX_ID = 2**63 - 1


def add_problems(form: forms.Form, problems: dict[str, str]) -> None:
    """Put ``{field: message}`` problems on ``form``: on the field when the form has it and its own
    parsing has not already said something there (one message per field), else on the form."""
    for name, message in problems.items():
        if name in form.fields and name not in form.errors:
            form.add_error(name, message)
        elif name not in form.fields:
            form.add_error(None, message)


def id_or_none(value) -> int | None:
    """An id typed into a form or a query string: the int, or None when it is not a string of ASCII
    digits or is past the database's integers (``int("²")`` fails and ``2**64`` overflows SQLite: a
    500 otherwise).

    >>> id_or_none("42"), id_or_none("99999999999999999999"), id_or_none("²"), id_or_none("-1"), id_or_none(None)
    (42, None, None, None, None)
    """
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
        if number <= MAX_ID:
            return number
    return None


def ids_of(values) -> list[int]:
    """The ids among ``values`` (ticked checkboxes): each as :func:`id_or_none` reads it, the rest left out.

    >>> ids_of(["3", "x", "1" + "0" * 30, "5"])
    [3, 5]
    """
    return [n for n in map(id_or_none, values) if n is not None]


def next_path(request) -> str:
    """The ``next`` page to go back to (POST, else GET), only as a path on this site; "" otherwise.

    A value that is not a path (``1e999``, ``home``) is refused too: ``redirect()`` would take it
    for a view name and fail (a 500), and ``//host`` or ``\\host`` would leave the site.
    """
    nxt = (request.POST.get("next") or request.GET.get("next") or "").strip()
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return ""
    return nxt if url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}) else ""

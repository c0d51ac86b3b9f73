"""Form helpers shared by the apps."""

from __future__ import annotations

from django import forms


def add_problems(form: forms.Form, problems: dict[str, str]) -> None:
    """Put ``{field: message}`` problems on ``form``: on the field when the form has it and its own
    parsing has not already said something there (one message per field), else on the form."""
    for name, message in problems.items():
        if name in form.fields and name not in form.errors:
            form.add_error(name, message)
        elif name not in form.fields:
            form.add_error(None, message)

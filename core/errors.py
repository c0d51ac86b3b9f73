"""One base class for every refusal of user input.

A refusal carries the message a user reads and the ``field`` it is about: a dotted path into an
imported record, a form field, an API field or a setting. Views put it under that field; imports
prefix it with the file and line.

>>> e = InputError("must be a number", "turns.0.steps.1.arguments.days")
>>> str(e), e.message, e.field
('turns.0.steps.1.arguments.days: must be a number', 'must be a number', 'turns.0.steps.1.arguments.days')
>>> str(InputError("no such project"))
'no such project'
"""

from __future__ import annotations


class InputError(ValueError):
    """User input that is refused. ``str()`` is ``"field: message"`` (just the message without a field)."""

    default_field = ""

    def __init__(self, message: str, field: str | None = None):
        self.message = message
        self.field = self.default_field if field is None else field
        super().__init__(f"{self.field}: {message}" if self.field else message)

    def to_dict(self) -> dict:
        """The API's error item: ``{"field": ..., "message": ...}``."""
        return {"field": self.field, "message": self.message}

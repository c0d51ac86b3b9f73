"""The API's JSON parser: a body with NaN, Infinity or a number too large for a float (``1e999``,
which Python reads as infinity) is a 400 saying so. DRF's own parser refuses NaN but took
``1e999``, which then failed at the database's JSON columns (a 500).

Its own module: DRF imports the default parser classes while its views module is still loading,
so this one imports nothing of DRF but the parsers.
"""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core import strict_json


class StrictJSONParser(JSONParser):
    """DRF's JSON parser reading with :func:`core.strict_json.loads` (every API view's default)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            return strict_json.loads(stream.read().decode(encoding))
        except ValueError as exc:  # (JSONDecodeError, UnicodeDecodeError)
            raise ParseError(f"JSON parse error - {exc}") from None

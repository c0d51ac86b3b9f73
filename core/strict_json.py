"""JSON read as the database stores it: NaN, Infinity and numbers too large for a float are refused (pure).

Python's JSON reader takes ``NaN`` and ``Infinity`` and reads ``1e999`` as infinity; JSON has no
such values, and the database's JSON columns refuse them, so a value read leniently fails later,
at the insert, as a server error. Every JSON text a user gives (a file, a string inside a record,
an API body, the editor's raw arguments) is read with :func:`loads`, which refuses them where they
are read, as :class:`json.JSONDecodeError` (so ``except json.JSONDecodeError`` handles it). So is
an integer of over 4,300 digits, on which Python's reader raises a plain ValueError no caller expected.

>>> loads('{"days": 3, "t": 1.5}')
{'days': 3, 't': 1.5}
>>> loads('{"days": 1e999}')
Traceback (most recent call last):
...
json.decoder.JSONDecodeError: 1e999 is not a number JSON allows (write null or a string): line 1 column 1 (char 0)
"""

from __future__ import annotations

import json
import math
import sys


def _not_a_number(literal: str):
    raise json.JSONDecodeError(f"{literal} is not a number JSON allows (write null or a string)", literal, 0)


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999
        _not_a_number(literal)
    return value


def _integer(literal: str) -> int:
    try:
        return int(literal)
    except ValueError:  # (over sys.get_int_max_str_digits() digits: Python's ValueError, which no caller expects)
        raise json.JSONDecodeError(f"a number has over {sys.get_int_max_str_digits():,} digits (write it as a "
                                   "string)", literal, 0) from None


STRICT_JSON = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite, parse_int=_integer)
loads = STRICT_JSON.decode

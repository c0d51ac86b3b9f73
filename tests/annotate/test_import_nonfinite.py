"""Hostile input: NaN, Infinity and 1e999 written inside the JSON text a record holds in a string
(a tool list in a system prompt, arguments given as JSON text, tools as a JSON string).

The file itself is read strictly (the reader refuses NaN at the top level), but each format also
parses JSON out of strings. A non-finite number read there reached the database, whose JSON columns
refuse it: the import failed with an IntegrityError (a server error on the upload page) instead of
a problem naming the line and field. Each such number is now refused where it is read, or the text
is kept as text, and whatever is imported is valid JSON in every JSON column.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from django.db import connection

from annotate.ingest.writer import get_or_create_project, import_file
from tests.annotate.test_format_new_properties import SAMPLES as NEW_SAMPLES
from tests.annotate.test_format_public_properties import SAMPLES as PUBLIC_SAMPLES

pytestmark = pytest.mark.django_db

SAMPLES = {**PUBLIC_SAMPLES, **NEW_SAMPLES}
# The start of a JSON object inside a string of the record (a key follows).
_OBJECT_START = re.compile(r'\{(?=\s*")')
JSON_COLUMNS = {"annotate_trajectory": ("tools", "case_types", "tags", "reference", "extra"),
                "annotate_turn": ("extra",), "annotate_step": ("arguments", "extra")}


def poisoned(record, bad: str):
    """Copies of ``record``, one for each string in it that holds JSON objects, with a key whose
    value is ``bad`` added to its first object; each comes with the path of the string."""
    out = []
    stack = [((), record)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((path + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((path + (i,), x) for i, x in enumerate(v))
        elif isinstance(v, str) and _OBJECT_START.search(v):
            copied = copy.deepcopy(record)
            holder = copied
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = _OBJECT_START.sub('{"x_bad": ' + bad + ", ", v, count=1)
            out.append((path, copied))
    return out


CASES = [(fmt, bad, path, rec) for fmt, sample in SAMPLES.items() for bad in ("NaN", "-Infinity", "1e999")
         for path, rec in poisoned(sample, bad)]


def test_the_samples_hold_json_numbers_inside_strings():
    formats_with_cases = {fmt for fmt, *_ in CASES}
    assert {"xlam", "glaive", "toolace", "toolbench", "when2call"} <= formats_with_cases, formats_with_cases


@pytest.mark.parametrize("fmt,bad,path,record", CASES,
                         ids=[f"{fmt}-{bad}-{'.'.join(map(str, path))[:40]}" for fmt, bad, path, _ in CASES])
def test_a_non_finite_number_inside_a_string_is_refused_or_kept_as_text(fmt, bad, path, record):
    project, _ = get_or_create_project(f"nonfinite-{fmt}")
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    outcome = import_file(project, data, "hostile.jsonl")  # must not raise (it raised IntegrityError)
    if outcome.errors:
        assert outcome.imported == 0
        assert all(e["line"] == 1 and e["file"] == "hostile.jsonl" for e in outcome.errors), outcome.errors
        assert project.trajectories.count() == 0
        return
    assert outcome.imported == 1
    with connection.cursor() as c:
        for table, columns in JSON_COLUMNS.items():
            for column in columns:
                c.execute(f'SELECT COUNT(*) FROM {table} WHERE "{column}" IS NOT NULL AND NOT json_valid("{column}")')
                assert c.fetchone()[0] == 0, f"{table}.{column} holds text that is not JSON"

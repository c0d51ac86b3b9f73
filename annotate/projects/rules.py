"""(pure) Project settings rules: reading the settings text and the membership rules, no Django.

>>> parse_labels("wrong_tool: picked the wrong tool\\nformat_error")
[{'name': 'wrong_tool', 'description': 'picked the wrong tool'}, {'name': 'format_error', 'description': ''}]
>>> labels_text([{"name": "wrong_tool", "description": "picked the wrong tool"}])
'wrong_tool: picked the wrong tool'
>>> check_roles_after({"lena": "lead", "ann": "annotator"}, "lena", None)
Traceback (most recent call last):
...
core.errors.InputError: member: lena is the project's last lead; make someone else a lead first
"""

from __future__ import annotations

import json
import re

from annotate.trajectory import CASE_TYPES, SchemaError, normalize_tool
from core import strict_json
from core.errors import InputError

ROLES = ("lead", "annotator")
LABEL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# Project slugs that name pages rather than projects.
RESERVED_SLUGS = frozenset({"new"})


def parse_labels(text: str, field: str = "error_labels") -> list[dict]:
    """One label a line: ``name: description`` (the description is optional). Names are unique."""
    labels, seen = [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, _, description = line.partition(":")
        name = name.strip()
        if not LABEL_NAME.match(name):
            raise InputError(f"line {n}: a label name is 1-100 letters, digits, '_', '-' or '.', "
                             f"not {name!r}", field)
        if name in seen:
            raise InputError(f"line {n}: the label {name!r} is listed twice", field)
        seen.add(name)
        labels.append({"name": name, "description": description.strip()})
    return labels


def labels_text(labels: list[dict]) -> str:
    return "\n".join(f"{lab['name']}: {lab['description']}" if lab.get("description") else lab["name"]
                     for lab in labels)


def parse_tools(text: str, field: str = "tools") -> list[dict]:
    """A JSON list of function specs (flat, or OpenAI's ``{"type": "function", ...}``); names unique."""
    if not text.strip():
        return []
    try:
        data = strict_json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})", field) from None
    if not isinstance(data, list):
        raise InputError("must be a JSON list of tool specs: [{\"name\": ..., \"parameters\": {...}}]", field)
    tools, seen = [], set()
    for i, spec in enumerate(data):
        try:
            tool = normalize_tool(spec, f"{field}.{i}")
        except SchemaError as e:
            raise InputError(e.message, e.field) from None
        if tool["name"] in seen:
            raise InputError(f"the tool {tool['name']!r} is listed twice", f"{field}.{i}.name")
        seen.add(tool["name"])
        tools.append(tool)
    return tools


def tools_text(tools: list[dict]) -> str:
    return json.dumps(tools, ensure_ascii=False, indent=2) if tools else ""


def check_case_types(chosen: list[str], field: str = "required_case_types") -> list[str]:
    unknown = [c for c in chosen if c not in CASE_TYPES]
    if unknown:
        raise InputError(f"unknown case type {unknown[0]!r}; known: {', '.join(CASE_TYPES)}", field)
    return [c for c in CASE_TYPES if c in chosen]  # in the usual order


def check_role(role: str, field: str = "role") -> str:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; use {' or '.join(ROLES)}", field)
    return role


def check_roles_after(roles: dict[str, str], member: str, new_role: str | None, field: str = "member") -> None:
    """Refuse a change (``new_role`` None: removal) that would leave the project without a lead."""
    after = dict(roles)
    if new_role is None:
        after.pop(member, None)
    else:
        after[member] = new_role
    if roles.get(member) == "lead" and "lead" not in after.values():
        raise InputError(f"{member} is the project's last lead; make someone else a lead first", field)


def check_slug(slug: str, field: str = "slug") -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,99}", slug):
        raise InputError("use 1-100 lower-case letters, digits and '-', starting with a letter or digit", field)
    if slug in RESERVED_SLUGS:
        raise InputError(f"{slug!r} names a page; choose another", field)
    return slug

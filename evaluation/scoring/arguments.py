"""Argument matching, following BFCL's AST checker, and schema checks of calls (pure; no Django).

Each argument has a list of acceptable values (``""`` among them: may be omitted); strings compare
after BFCL's normalisation (case, spaces and ``,./-_*^`` ignored, ``'`` read as ``"``); an int is
accepted for a float; a value of the acceptable value's own type is accepted where the schema says
otherwise (BFCL's "variable" rule); parallel calls match in any order (:func:`match_calls`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from annotate.findings import BFCL_TYPES, argument_errors
from evaluation.parse import ToolCall
from evaluation.scoring.decisions import Outcome

if TYPE_CHECKING:
    from evaluation.scoring.references import Reference

_BFCL_STRIP_RE = re.compile(r"[ ,./\-_*^]")


def standardize_string(s: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lowercase, ``'`` -> ``"``."""
    return _BFCL_STRIP_RE.sub("", s).lower().replace("'", '"')


def _norm(v: Any, strings=standardize_string) -> Any:
    """A comparable form: strings standardised, numbers as floats (int/float leniency), bools kept
    apart from numbers, containers recursively."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return strings(v)
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x, strings) for x in v)
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), _norm(x, strings)) for k, x in v.items())))
    return v


def _same(s: str) -> str:
    return s


def call_key(call: ToolCall | dict) -> tuple:
    """Identity of a call for spotting repeats: its name and arguments, strings as written
    (``genotype="AA"`` and ``"aa"`` are two calls; ``1`` and ``1.0`` one).

    >>> call_key({"name": "f", "arguments": {"g": "AA"}}) == call_key({"name": "f", "arguments": {"g": "aa"}})
    False
    """
    name = call.name if isinstance(call, ToolCall) else call.get("name", "")
    args = call.arguments if isinstance(call, ToolCall) else call.get("arguments") or {}
    return (name, _norm(args if isinstance(args, dict) else {}, _same))


_PY_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def _schema_types(prop: dict) -> list[str] | None:
    t = prop.get("type") if isinstance(prop, dict) else None
    types = t if isinstance(t, list) else [t] if t is not None else []
    out = []
    for x in types:
        x = BFCL_TYPES.get(x, x) if isinstance(x, str) else x
        if x is None:  # BFCL's "any"
            return None
        out.append(x)
    if isinstance(prop, dict) and prop.get("nullable"):
        out.append("null")
    return out or None


def _type_ok(value: Any, types: list[str] | None) -> bool:
    if types is None:
        return True
    for t in types:
        py = _PY_TYPES.get(t)
        if py is None:
            return True  # a type we do not know: no constraint
        if isinstance(value, bool) and bool not in py:
            continue
        if isinstance(value, py):
            return True
    return False


def value_matches(value: Any, candidates: list, nested: bool) -> bool:
    nv = _norm(value)
    for cand in candidates:
        if isinstance(cand, str) and cand == "":
            continue
        if _norm(cand) == nv:
            return True
        if nested and isinstance(cand, dict) and isinstance(value, dict) and _dict_matches(value, cand):
            return True
        if (
            nested
            and isinstance(cand, list)
            and isinstance(value, list)
            and cand
            and all(isinstance(c, dict) for c in cand)
            and len(cand) == len(value)
            and all(isinstance(v, dict) and _dict_matches(v, c) for v, c in zip(value, cand))
        ):
            return True
    return False


def _dict_matches(value: dict, cand: dict) -> bool:
    """BFCL's dict rule: each key given is known and has an acceptable value; keys not given may
    be omitted (``""`` among their values)."""
    if not all(isinstance(v, list) for v in cand.values()):
        return False
    for k, v in value.items():
        if k not in cand or not value_matches(v, cand[k], True):
            return False
    return all(k in value or "" in vs for k, vs in cand.items())


def check_arguments(call: ToolCall, acceptable: dict, tool: dict | None, nested: bool) -> list[tuple[str, str]]:
    """``[(label, reason)]`` for one call's arguments against one gold call's acceptable values."""
    params = (tool or {}).get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or []
    args = call.arguments
    errors = []
    for p in required:
        if p not in args:
            errors.append(("missing_required_arg", f"{call.name}: required argument {p!r} is missing"))
    for p, values in acceptable.items():
        if p not in args and p not in required and "" not in values:
            errors.append(("missing_required_arg", f"{call.name}: argument {p!r} is needed here but missing"))
    for p, v in args.items():
        if p not in acceptable or (props and p not in props and params.get("additionalProperties") is not True):
            errors.append(("unexpected_arg", f"{call.name}: unexpected argument {p!r}"))
            continue
        candidates = acceptable[p]
        bfcl_type = _bfcl_type(props.get(p, {})) if nested else None
        if bfcl_type is not None:
            error = _bfcl_value_error(v, candidates, props[p], bfcl_type)
            if error:
                label, why = error
                errors.append((label, f"{call.name}: {p!r} = {v!r}: {why}"))
            continue
        types = _schema_types(props.get(p, {}))
        if not _type_ok(v, types):
            typed = [c for c in candidates if not (isinstance(c, str) and c == "")]
            variable = typed and type(v) is type(typed[0])  # BFCL: a value of the gold's own type
            if not variable:
                errors.append(("arg_type_error", f"{call.name}: {p!r} should be {'/'.join(types or [])}, got {type(v).__name__}"))
                continue
        if not value_matches(v, candidates, nested):
            shown = [c for c in candidates if c != ""][:3]
            errors.append(("arg_value_error", f"{call.name}: {p!r} = {v!r}, expected one of {shown!r}"))
    return errors


# BFCL's Python type names (``ast_checker.PYTHON_TYPE_MAPPING``), and the JSON Schema names for the same.
_BFCL_PY = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list,
            "dict": dict, "any": str, "object": dict, "number": float}
_MISSING = object()


def _bfcl_type(spec: Any) -> str | None:
    t = spec.get("type") if isinstance(spec, dict) else None
    return t if isinstance(t, str) and t in _BFCL_PY else None


def _gold_type(candidates: list) -> type | None:
    """The type of the first acceptable value that is not ``""`` (BFCL reads a value of this type as a variable)."""
    first = next((c for c in candidates if c != ""), _MISSING)
    return None if first is _MISSING else type(first)


def _bfcl_value_error(value: Any, candidates: list, spec: dict, type_name: str) -> tuple[str, str] | None:
    """One argument as BFCL's ``simple_function_checker`` judges it (Python): the exact type the
    schema names (an int accepted for a float), or the gold's own type ("a variable"); the items of an
    array, one level deep; then strings standardised, lists with their strings standardised, dicts key
    by key, anything else by equality. ``(label, reason)``, or ``None`` when it is acceptable."""
    expected = _BFCL_PY[type_name]
    items = _bfcl_type(spec.get("items")) if type_name in ("array", "tuple") else None
    item_type = _BFCL_PY[items] if items else None
    if type_name in ("float", "number") and type(value) is int:
        value = float(value)
    gold = _gold_type(candidates)
    variable = gold is not None and gold is not expected
    if type(value) is expected:
        if item_type is not None and not _bfcl_items_ok(value, candidates, item_type):
            return "arg_type_error", f"its items should be {items}"
    elif gold is not None and type(value) is gold:
        variable = True
    else:
        return "arg_type_error", f"should be {type_name}, got {type(value).__name__}"
    if variable:
        ok = value in candidates
    elif expected is dict:
        ok = any(isinstance(c, dict) and _bfcl_dict_ok(value, c) for c in candidates if c != "")
    elif expected is list and item_type is dict:
        ok = any((c == "" and not value) or isinstance(c, list) and len(c) == len(value) and all(
            isinstance(c_item, dict) and isinstance(v_item, dict) and _bfcl_dict_ok(v_item, c_item)
            for v_item, c_item in zip(value, c)) for c in candidates)
    elif expected is str:
        ok = standardize_string(value) in [standardize_string(c) for c in candidates if isinstance(c, str)]
    elif expected is list:
        ok = _std_list(value) in [_std_list(c) for c in candidates if isinstance(c, list)]
    else:
        ok = value in candidates
    return None if ok else ("arg_value_error", f"expected one of {[c for c in candidates if c != ''][:3]!r}")


def _bfcl_items_ok(value: list, candidates: list, item_type: type) -> bool:
    """BFCL's nested type check: for some acceptable list, every item is of the items' type or of
    that list's own item type (an acceptable value that is not a list, ``""`` included, passes)."""
    for cand in candidates:
        if not isinstance(cand, list):
            return True
        gold = _gold_type(cand)
        if all(type(v) is item_type or (gold is not None and type(v) is gold) for v in value):
            return True
    return False


def _std_list(values: list) -> list:
    return [standardize_string(v) if isinstance(v, str) else v for v in values]


def _bfcl_dict_ok(value: dict, cand: dict) -> bool:
    """BFCL's ``dict_checker`` for one acceptable dict (``{key: [values]}``): string values
    standardised, the rest compared as they are; keys not given must allow ``""``."""
    for k, v in value.items():
        if k not in cand or not isinstance(cand[k], list):
            return False
        wanted = [standardize_string(c) if isinstance(c, str) else c for c in cand[k]]
        if (standardize_string(v) if isinstance(v, str) else v) not in wanted:
            return False
    return all(k in value or "" in vs for k, vs in cand.items() if isinstance(vs, list))


def schema_errors(call: ToolCall, tool: dict | None) -> list[tuple[str, str]]:
    """``[(label, reason)]`` for a call against its tool's JSON schema (unknown tool included)."""
    if tool is None:
        return [("hallucinated_tool", f"{call.name!r} is not one of the tools")]
    params = tool.get("parameters") or {}
    out = []
    for path, message in argument_errors(params, call.arguments):
        out.append((_label_for_schema_message(message), f"{call.name}: {path or 'arguments'}: {message}"))
    props = params.get("properties")
    if isinstance(props, dict) and params.get("additionalProperties") is None:
        for p in call.arguments:
            if p not in props:
                out.append(("unexpected_arg", f"{call.name}: unexpected argument {p!r}"))
    return out


def _label_for_schema_message(message: str) -> str:
    if "is a required property" in message:
        return "missing_required_arg"
    if "Additional properties are not allowed" in message or "Unevaluated properties" in message:
        return "unexpected_arg"
    if "is not of type" in message or "is not valid under any of the given schemas" in message:
        return "arg_type_error"
    return "arg_value_error"



def match_calls(unique: list[ToolCall], ref: Reference) -> Outcome:
    """Match the distinct calls to the gold calls in any order, as BFCL does for parallel calls:
    ``tool_selection_ok``, ``call_count_ok``, ``args_ok``, ``calls_ok`` and the labels for what differs."""
    nested = ref.acceptable is not None
    gold = acceptable_calls(ref)
    gold_names = [name for name, _ in gold]
    labels: list[tuple[str, str]] = []

    free = list(range(len(unique)))
    unmatched_gold = []
    for name, acceptable in gold:
        hit = next(
            (i for i in free if unique[i].name == name and not check_arguments(unique[i], acceptable, ref.tool(name), nested)),
            None,
        )
        if hit is None:
            unmatched_gold.append((name, acceptable))
        else:
            free.remove(hit)

    # Say why the rest did not match: pair each unmatched gold call with a call of the same tool.
    paired_errors = False
    lonely_gold = []
    for name, acceptable in unmatched_gold:
        partner = next((i for i in free if unique[i].name == name), None)
        if partner is None:
            lonely_gold.append(name)
            continue
        free.remove(partner)
        errors = check_arguments(unique[partner], acceptable, ref.tool(name), nested)
        labels.extend(errors)
        paired_errors = True
    wrong = False
    for i in free:
        c = unique[i]
        if ref.tool(c.name) is None:
            wrong = True  # hallucinated_tool is labelled by the schema check
        elif c.name not in gold_names:
            wrong = True
            labels.append(("wrong_tool", f"called {c.name!r} instead of {', '.join(sorted(set(gold_names)))}"))
        else:
            labels.append(("wrong_call_count", f"an extra call to {c.name!r}"))
    if lonely_gold and not wrong and unique:
        labels.append(("wrong_call_count", f"no call to {', '.join(lonely_gold)}"))

    name_pairs = len(gold) - len(lonely_gold)
    metrics = {
        "tool_selection_ok": {c.name for c in unique} == set(gold_names),  # which tools; how many is call_count_ok
        "args_ok": (not paired_errors) if name_pairs else None,
        "call_count_ok": len(unique) == len(gold),
        "calls_ok": not unmatched_gold and not free and len(unique) == len(gold),
    }
    return Outcome(metrics, tuple(labels))


def acceptable_calls(ref: Reference) -> list[tuple[str, dict]]:
    if ref.acceptable is not None:
        return [(name, args) for gt in ref.acceptable for name, args in gt.items()]
    out = []
    for c in ref.calls:
        tool = ref.tool(c["name"]) or {}
        props = (tool.get("parameters") or {}).get("properties") or {}
        acceptable: dict[str, list] = {k: [v] for k, v in (c.get("arguments") or {}).items()}
        for p, spec in props.items():
            if p not in acceptable:
                # Not in the gold: may be left out, or given as its default.
                acceptable[p] = ["", spec["default"]] if isinstance(spec, dict) and "default" in spec else [""]
        out.append((c["name"], acceptable))
    return out


"""The audit of a whole snapshot (pure; no Django): the core's aggregate (``training.audit``) for
``sft``, the same shape for ``dpo`` / ``prompt`` rows, and this package's own per-item findings:
masks a ``messages`` row cannot express, and JSON numbers ``datasets.Json()`` storage would change.
"""

from __future__ import annotations

import json
from collections import Counter

from annotate.trajectory import CASE_TYPES, CASE_TYPE_NAMES
from training import audit as audit_mod
from training.export.settings import ExportSettings


def item_finding(code: str, message: str, severity: str, item: str, **where) -> dict:
    """A finding about one item (and, in ``where``, the sample it concerns)."""
    return {"code": code, "severity": severity, "message": message, "item": item, **where}


def aggregate_audit(results: list[dict], settings: ExportSettings) -> dict:
    """The snapshot's audit: the core's aggregate for ``sft`` (supervised tokens by role and step
    kind, leaks, mask cross-checks, invalid calls, truncation, case-type coverage), the same shape
    for ``dpo`` / ``prompt``, plus this package's per-item findings."""
    if settings.kind == "sft":
        report = audit_mod.aggregate([r["render"] for r in results if r.get("render") is not None])
    else:
        report = _aggregate_rows(results)
    extra = [f for r in results for f in r.get("findings", [])]
    if settings.kind == "sft" and not settings.tokenized:
        extra += masks_lost_in_messages(results)
    report["totals"]["items"] = len(results)
    report["totals"]["items_without_rows"] = sum(1 for r in results if not r["n_rows"])
    report["totals"]["rows"] = sum(r["n_rows"] for r in results)
    add_findings(report, extra)
    if settings.kind == "dpo":
        report["pair_categories"] = dict(sorted(Counter(r["pair"]["category"] for r in results if r.get("pair")).items()))
        report["pair_sources"] = dict(sorted(Counter(r["pair"]["source"] for r in results if r.get("pair")).items()))
    report["kind"] = settings.kind
    return report


def masks_lost_in_messages(results: list[dict]) -> list[dict]:
    """Errors for conversational samples whose policies mask part of an assistant message.

    TRL's SFTTrainer trains every assistant message of a ``messages`` row; a step kept out of the
    loss (train flag off, error labels under ``mask``, reasoning with reasoning loss off) would be
    trained anyway. Exporting with ``tokenized`` puts our labels in the rows, and TRL uses them.
    """
    out = []
    for r in results:
        for s in (r.get("render") or {}).get("samples", []):
            masked = s.get("masked_steps") or []
            if masked:
                why = sorted({m["why"] for m in masked})
                out.append(item_finding("masks_need_tokenized", (
                    f"{len(masked)} step(s) are out of the loss ({'; '.join(why)}) but a messages row cannot say so: "
                    "TRL would train them. Export tokenized (labels column) to honour the mask"),
                    "error", r["item"], sample=s["id"]))
    return out


def _aggregate_rows(results: list[dict]) -> dict:
    """``training.audit.aggregate``'s shape for kinds the core does not render (``dpo``, ``prompt``)."""
    coverage = Counter(c for r in results for c in r.get("case_types", []))
    tokens = [n for r in results for n in r.get("tokens", [])]
    report = {"totals": {"samples": sum(r["n_rows"] for r in results), "tokens": sum(tokens),
                         "max_tokens": max(tokens, default=0)},
              "case_type_coverage": {c: coverage.get(c, 0) for c in CASE_TYPES},
              "findings": {}, "errors": 0, "warnings": 0, "blocking": False, "examples": []}
    missing = [audit_mod.finding("case_type_missing", f"no item of case type {CASE_TYPE_NAMES[c]!r}", case_type=c)
               for c in CASE_TYPES if not coverage.get(c)]
    add_findings(report, missing)
    return report


def add_findings(report: dict, findings: list[dict]) -> None:
    """Count ``findings`` into an aggregate report (codes, errors, warnings, examples, blocking)."""
    codes = Counter(report.get("findings", {}))
    for f in findings:
        codes[f["code"]] += 1
        if f["severity"] == "error":
            report["errors"] += 1
        elif f["severity"] == "warning":
            report["warnings"] += 1
        if len(report["examples"]) < audit_mod.MAX_EXAMPLES or f["severity"] == "error" and _replace_lesser(report["examples"], f):
            report["examples"].append(f)
    report["findings"] = dict(sorted(codes.items()))
    report["blocking"] = report["errors"] > 0
    rank = {"error": 0, "warning": 1}
    report["examples"].sort(key=lambda f: rank.get(f.get("severity"), 2))  # stable: errors first


def _replace_lesser(examples: list[dict], f: dict) -> bool:
    """Make room for an error among examples full of lesser findings (errors are what a lead must see)."""
    for i, e in enumerate(examples):
        if e.get("severity") != "error":
            del examples[i]
            return True
    return False


def storage_findings(rows: list[dict], json_cols: list[str]) -> list[dict]:
    """Errors for rows whose JSON values ``datasets.load_from_disk`` would not hand back unchanged.

    ``datasets.Json()`` decodes with pandas' ujson, which rounds some floats (``0.000123`` comes
    back as ``0.00012299999999999998``): the model would train on text that differs from the
    rendered one. Such rows are reported (an error: the lead decides), with the value concerned.
    """
    from datasets.utils.json import ujson_loads  # here, not at the top: datasets is heavy (workers only)

    findings = []
    for row in rows:
        for col in json_cols:
            for value in _as_list(row.get(col)):
                if not _has_float(value):
                    continue
                text = json.dumps(value, ensure_ascii=False)
                try:
                    back = ujson_loads(text)
                except ValueError:  # e.g. an integer beyond 64 bits
                    back = None
                if back != value or json.dumps(back, ensure_ascii=False) != text:
                    findings.append(item_finding(
                        "json_float_rounding", f"a number in {col} does not survive datasets.Json() storage "
                        f"({_first_float_change(value, back)}); TRL would train on the rounded text",
                        "error", row["id"].split(":")[0].split("#")[0], sample=row["id"]))
                    break
    return findings


def _has_float(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _first_float_change(a, b) -> str:
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            stack.extend((x[k], y.get(k)) for k in x)
        elif isinstance(x, list) and isinstance(y, list):
            stack.extend(zip(x, y))
        elif x != y or type(x) is not type(y):
            return f"{x!r} loads as {y!r}"
    return "key order or formatting changes"


def _as_list(v) -> list:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]

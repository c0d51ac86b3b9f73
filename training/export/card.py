"""The dataset card (``README.md``) of an exported snapshot (pure; no Django): what the snapshot
holds, how it was rendered, and its audit in numbers."""

from __future__ import annotations

from annotate.trajectory import CASE_TYPE_NAMES


def dataset_card(meta: dict, audit: dict) -> str:
    """The dataset card: what the snapshot holds, how it was rendered, and its audit in numbers."""
    st = meta["settings"]
    totals = audit.get("totals", {})
    lines = [
        "---",
        "tags: [trajectory-studio, tool-calling, trl]",
        "---",
        "",
        f"# Trajectory Studio snapshot ({meta['kind']})",
        "",
        f"Content hash: `{meta.get('content_hash', '')}`",
        "",
        "## Rendering",
        "",
        f"- chat template: `{meta['template']['name']}` (family {meta['template']['family']}, "
        f"sha {meta['template']['sha']}, saved as `chat_template.jinja`)",
        f"- tokenizer: `{st['tokenizer']}`",
        f"- strategy: {st['strategy']}"
        + (f" (chosen: {', '.join(f'{k} for {v} items' for k, v in audit['strategies'].items())})"
           if audit.get("strategies") else "")
        + f"; reasoning in the loss: {'yes' if st['reasoning_loss'] else 'no'}; steps with error labels: "
        f"{st['error_policy']}; max length: {st['max_length']}; tokenized: {'yes' if st['tokenized'] else 'no'}",
        "",
        "## Contents",
        "",
        "| split | rows |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in meta["splits"].items()],
        "",
        f"Items: {totals.get('items', 0)}; rows: {totals.get('rows', 0)}; "
        f"items without rows: {totals.get('items_without_rows', 0)}.",
        "",
        "Load with `datasets.load_from_disk(\"hf\")`: columns " + ", ".join(f"`{c}`" for c in meta["columns"]) +
        ". Messages and tool schemas are JSON values (`datasets.Json()`), which TRL's trainers read unchanged.",
        "",
        "## Case types",
        "",
        "| case type | items |",
        "|---|---|",
        *[f"| {CASE_TYPE_NAMES[c]} | {n} |" for c, n in audit.get("case_type_coverage", {}).items()],
        "",
        "## Audit",
        "",
    ]
    for label, key in (("tokens", "totals"), ("supervised tokens by role", "supervised_by_role"),
                       ("supervised tokens by step kind", "supervised_by_kind"),
                       ("tokens under each strategy", "strategy_tokens"), ("findings", "findings")):
        if audit.get(key):
            lines.append(f"- {label}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in audit[key].items()))
    lines.append(f"- errors: {audit.get('errors', 0)}; warnings: {audit.get('warnings', 0)}")
    return "\n".join(lines) + "\n"

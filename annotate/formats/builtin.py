"""The formats the importer has read from the start, registered with their detection rules.

Each wraps its ``annotate.convert_*`` module; the rules are the ones ``importing.detect_format``
applied, in the same order.
"""

from __future__ import annotations

from annotate import convert_bfcl, convert_messages, convert_raw, convert_sharegpt, convert_tau, convert_toolrl
from annotate.formats import Format, register


def _plain(convert):
    def read(record, *, source="", tools=None, answer=None):
        return convert(record, source=source, tools=tools)
    return read


def _messages_kind(record: dict) -> str | None:
    for key in ("messages", "conversations"):
        msgs = record.get(key)
        if isinstance(msgs, list):
            first = next((m for m in msgs if type(m) is dict), None)
            if first is not None and "from" in first:
                return "sharegpt"
            if key == "messages" and convert_raw.is_raw_messages(record):
                return "raw"
            return "messages"
    return None


register(Format(
    "raw", title="Raw annotation (turns / steps / role-tagged messages)",
    detect=lambda r: "turns" in r or _messages_kind(r) == "raw",
    read=_plain(convert_raw.to_trajectory), write=convert_raw.from_trajectory,
    rule="a 'turns' list, or 'messages' with raw role tags (assistant_think …)"))
register(Format(
    "tau_bench", title="tau-bench trajectories", aliases=("tau",),
    detect=lambda r: "traj" in r, read=_plain(convert_tau.to_trajectory),
    rule="a 'traj' list of OpenAI messages"))
register(Format(
    "bfcl", title="BFCL question file", takes_answers=True,
    detect=lambda r: "question" in r and "function" in r,
    read=lambda r, *, source="", tools=None, answer=None: convert_bfcl.to_trajectory(
        r, answer=answer, source=source, tools=tools),
    rule="'question' and 'function'"))
register(Format(
    "toolrl", title="ToolRL rows", aliases=("hermes",),
    detect=lambda r: "output" in r and ("instruction" in r or "input" in r) or "example" in r,
    read=_plain(convert_toolrl.to_trajectory), rule="'output' with 'instruction' or 'input'"))
register(Format(
    "sharegpt", title="ShareGPT (LLaMA-Factory)",
    detect=lambda r: _messages_kind(r) == "sharegpt", read=_plain(convert_sharegpt.to_trajectory),
    rule="'conversations' (or 'messages') whose entries have 'from'"))
register(Format(
    "messages", title="OpenAI / TRL messages", aliases=("openai", "trl"),
    detect=lambda r: _messages_kind(r) == "messages", read=_plain(convert_messages.to_trajectory),
    write=convert_messages.from_trajectory, rule="'messages' with OpenAI roles"))

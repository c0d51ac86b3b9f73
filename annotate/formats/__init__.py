"""The import formats: one module each, and the registry that detects and reads them (pure; no Django).

A :class:`Format` names a format, says how to recognise one of its records (``detect``), reads a
record into a canonical trajectory (``read``) and, where a lossless export exists, writes one
back (``write``). Detection tries the formats in registration order and takes the first that
claims the record, so a format with a more specific rule registers before a looser one.

>>> detect({"turns": []})
'raw'
>>> detect({"conversations": [{"from": "human", "value": "hi"}]})
'sharegpt'
>>> sorted(FORMATS)[:3]
['bfcl', 'bfcl_multi_turn', 'glaive']
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from annotate.trajectory import Trajectory


@dataclass(frozen=True)
class Format:
    name: str
    # Whether a record (a dict) is written in this format.
    detect: Callable[[dict], bool]
    # ``read(record, *, source, tools, answer)``: the trajectory; ``tools`` is the default tool
    # list for records that carry none, ``answer`` the record's entry of an answers file (or None).
    read: Callable[..., Trajectory]
    # ``write(trajectory) -> record`` where a lossless export exists.
    write: Callable[[Trajectory], dict] | None = None
    # What the import page calls it.
    title: str = ""
    # The detection rule and a one-record example, in words, for the README's format table.
    rule: str = ""
    example: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # Whether records are matched to an answers file (BFCL's possible answers) by their id.
    takes_answers: bool = False
    # Fixed scaffolding text the reader removes from prose fields (section headings of a prompt
    # layout): the conservation check (:mod:`annotate.formats.conservation`) does not look for it.
    markup: tuple[str, ...] = ()
    # ``pairs(record, categories, override="") -> [annotate.pairs.Pair]`` for a format that holds
    # preference data (``pairs import`` reads it; ``override`` is a lead's reason to keep chosen sides
    # that fail validation); raises ``annotate.pairs.PairError`` naming the field.
    pairs: Callable[..., list] | None = None


FORMATS: dict[str, Format] = {}
ALIASES: dict[str, str] = {}


def plain_reader(convert: Callable[..., Trajectory]) -> Callable[..., Trajectory]:
    """A ``read`` for a converter ``convert(record, *, source, tools)`` that takes no answers file."""
    def read(record, *, source="", tools=None, answer=None):
        return convert(record, source=source, tools=tools)
    return read


def register(fmt: Format) -> Format:
    """Add a format; detection tries formats in the order they were registered."""
    FORMATS[fmt.name] = fmt
    for a in fmt.aliases:
        ALIASES[a] = fmt.name
    return fmt


def detect(record: Any) -> str | None:
    """The name of the first registered format that claims ``record``, or None."""
    if type(record) is not dict:
        return None
    for fmt in FORMATS.values():
        if fmt.detect(record):
            return fmt.name
    return None


def detection_rules() -> str:
    """Every registered format with its detection rule, in detection order (what the importer says
    when no format claims a record).

    >>> detection_rules().split(" | ")[0]
    "raw: a 'turns' list, or 'messages' with raw role tags (assistant_think …)"
    """
    return " | ".join(f"{f.name}: {f.rule}" for f in FORMATS.values())


def markdown_table() -> str:
    """The README's format table: every registered format with its detection rule and an example
    (``python -m annotate.formats`` prints it)."""
    rows = ["| format | detected by | example record |", "|---|---|---|"]
    for f in FORMATS.values():
        name = f.name + (f" (also: {', '.join(f.aliases)})" if f.aliases else "")
        example = json.dumps(f.example, ensure_ascii=False).replace("|", "\\|")
        rows.append(f"| `{name}` | {f.rule} | `{example}` |")
    return "\n".join(rows)


# The format modules (each registers itself) in detection order: the most specific rules first.
# A new format module goes into this list, before the looser rules it would otherwise lose to.
DETECTION_ORDER = ("raw", "tau_bench", "toolbench", "when2call", "when2call_pref", "bfcl_multi_turn", "bfcl",
                   "toolrl", "toolace", "sharegpt", "when2call_sft", "messages", "xlam", "glaive")
# The modules that register them (one may register several formats).
MODULES = ("raw", "tau_bench", "toolbench", "when2call", "bfcl_multi_turn", "bfcl", "toolrl", "toolace",
           "sharegpt", "messages", "xlam", "glaive")


def _load() -> None:
    # (The modules import this one to register, so they are loaded here, not imported at the top.)
    for name in MODULES:
        importlib.import_module(f"annotate.formats.{name}")
    # Modules import one another (sharegpt reads toolrl's tags), so registration order is not
    # detection order: put the registry in DETECTION_ORDER (formats not listed go last).
    rank = {name: i for i, name in enumerate(DETECTION_ORDER)}
    ordered = sorted(FORMATS.items(), key=lambda kv: rank.get(kv[0], len(rank)))
    FORMATS.clear()
    FORMATS.update(ordered)


_load()


# Export ---------------------------------------------------------------------------------------------

# The formats with a lossless export, in registry order.
EXPORT_FORMATS = tuple(name for name, f in FORMATS.items() if f.write is not None)


def export_records(trajs: Iterable[Trajectory], fmt: str) -> Iterator[dict]:
    """Records in an export format (``raw`` or ``messages``), lossless: importing them gives ``trajs`` back."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot export to {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    exporter = FORMATS[fmt].write
    return (exporter(t) for t in trajs)


def dump_jsonl(records: Iterable[dict], out: IO[str] | None = None) -> str | None:
    """Write records as JSON Lines to ``out``, or return them as a string."""
    if out is None:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    for r in records:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
    return None

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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


FORMATS: dict[str, Format] = {}
ALIASES: dict[str, str] = {}


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


# Detection order: the most specific rules first (BFCL multi-turn before BFCL, ToolACE before
# ShareGPT); the formats no other rule can claim (xLAM, Glaive) last, so that the common formats
# are found without trying them.
DETECTION_ORDER = ("raw", "tau_bench", "bfcl_multi_turn", "bfcl", "toolrl", "toolace", "sharegpt", "messages",
                   "xlam", "glaive")


def _load() -> None:
    from annotate.formats import bfcl_multi_turn, builtin, glaive, toolace, xlam  # noqa: F401
    rank = {name: i for i, name in enumerate(DETECTION_ORDER)}
    ordered = sorted(FORMATS.items(), key=lambda item: rank.get(item[0], len(rank)))
    FORMATS.clear()
    FORMATS.update(ordered)


_load()

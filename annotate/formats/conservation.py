"""The conservation check of an import: nothing a record holds is silently dropped (pure; no Django).

After a record is converted, every string and number in it (walking JSON text inside strings too,
such as arguments given as a JSON string) must appear in the trajectory: as a value (a step's
text, a call's arguments, ``extra``, ``meta``...), or inside a text that holds it (a rendered JSON
text, a system prompt that kept the prose around a tool block). What is not found fails the record
with the field path of the missing value, so an importer that forgets a key is caught on the first
record that has it rather than in a model trained on the rest.

The trajectory's values are exactly those of its raw export (the raw export is lossless), so they
are read from the trajectory itself, which is cheaper than writing the export first.

>>> from annotate.trajectory import Step, Trajectory, Turn
>>> t = Trajectory(turns=[Turn("weather?", [Step("tool_result", '{"forecast": "rain"}', "w", None, "c1")])])
>>> missing({"turns": [{"user": "weather?", "tool_result": {"forecast": "rain"}}]}, t)
>>> missing({"turns": [{"user": "weather?", "mood": "grumpy"}]}, t)
('turns[0].mood', 'grumpy')

Format words (the values of ``role``, ``from``, ``type`` and ``kind`` keys) are mapped to the
canonical structure rather than kept, and are not looked for.
"""

from __future__ import annotations

import json
import re
from typing import Any

from annotate.trajectory import SchemaError, Trajectory

# Keys whose values name a structure (a role, a step kind, a JSON-schema type) that the converter
# maps to the canonical shape: these words are not expected to reappear as values.
STRUCTURAL_KEYS = frozenset(("role", "from", "type", "kind"))
# Markup between the pieces of a composite text (ToolRL / Hermes tags, role prefixes).
_TAG = re.compile(r"<[^<>\n]{1,60}>|\n")
_WORD = re.compile(r"\w+")
_PATH = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
# Words of a format's vocabulary that composite texts use around values (keys of a call written as
# JSON inside a text, role names): mapped to the canonical structure, not kept as words.
FORMAT_WORDS = frozenset(("name", "arguments", "parameters", "args", "content", "role", "type", "function",
                          "id", "call_id", "tool_call_id", "user", "assistant", "system", "tool"))


class InexactNumber(Exception):
    """A record read with ``exact_numbers=False`` must be read again exactly (see :func:`check`)."""


# orjson reads an integer literal beyond 64 bits as a float of at least this size (either sign);
# a number this large (a float, or an integer up to 2**64) sends a record back to be read exactly.
INEXACT_FROM = float(2 ** 63)


def check(record: Any, traj: Trajectory, markup: tuple[str, ...] = (), *, exact_numbers: bool = True) -> None:
    """Raise :class:`SchemaError` naming the field of the first value of ``record`` that ``traj`` lost.

    ``markup``: the format's fixed scaffolding texts (:attr:`annotate.formats.Format.markup`).
    ``exact_numbers=False``: the record was read by a JSON reader that reads integers beyond 64
    bits as floats (orjson). A number that may be one (``abs(x) >= 2**63``) raises
    :class:`InexactNumber`, and so does a lost value (the walk stops there, before the numbers
    after it): the caller reads the record again exactly, and checks that. The numbers are
    looked at on the walk that sees every one of them anyway.
    """
    kept = _Kept(traj, markup)
    big = INEXACT_FROM if not exact_numbers else _NO_LIMIT
    if _all_kept(_without_known_tools(record, traj, big), kept, big):
        return
    if not exact_numbers:  # (the walk stopped early: floats after that point were not seen)
        raise InexactNumber("a value was not found; read the record again to report it")
    lost = _missing(record, kept)
    if lost is not None:
        path, value = lost
        whole = value
        if type(value) is str:
            found = _at(record, path)
            whole = found if type(found) is str and value in found else value
        shown = repr(whole) if len(repr(whole)) <= 60 else repr(whole)[:57] + "..."
        part = f" (its part {value!r})" if whole != value else ""
        raise SchemaError(f"the value {shown}{part} has no place in the imported trajectory and would be "
                          "lost (please report this record)", path)


def _at(record: Any, path: str) -> Any:
    """The value at a field path written by :func:`_missing` (``a.b[2].c``), or None."""
    v = record
    for index, name in _PATH.findall(path):
        try:
            v = v[int(index)] if index else v[name]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return v


def missing(record: Any, traj: Trajectory, markup: tuple[str, ...] = ()) -> tuple[str, Any] | None:
    """``(field path, value)`` of the first string or number of ``record`` not found in ``traj``; None when all are."""
    return _missing(record, _Kept(traj, markup))


# The records of a file usually repeat one tool list: the last tool list found kept, with the
# trajectory tools it was found in, is not walked again for a record that repeats both (equal
# input and equal output: the same answer).
TOOL_KEYS = ("tools", "function")
# One for records read exactly, one for the others (see check's exact_numbers): Python finds an
# int and a float of the same value equal, so a tool list read by orjson, with a float that was an
# integer beyond 64 bits, could equal one read exactly; the others' holds no number of 2**63 or more.
_LAST_TOOLS: dict[bool, list] = {True: [None, None], False: [None, None]}


def _without_known_tools(record: Any, traj: Trajectory, big: float) -> Any:
    if type(record) is not dict:
        return record
    for key in TOOL_KEYS:
        given = record.get(key)
        if given is None or type(given) is str:
            continue
        last = _LAST_TOOLS[big != big]  # (exact: big is NaN)
        last_in, last_out = last
        if not (last_in is not None and given == last_in and traj.tools == last_out):
            # Remember this pair once it is found kept (the record's own check below still walks it).
            kept = _Kept(Trajectory(tools=traj.tools))
            if not _all_kept(given, kept, big):
                continue
            last[:] = [given, traj.tools]
        rest = dict(record)  # (the record without that key: a C copy, then one deletion)
        del rest[key]
        return rest
    return record


def _all_kept(record: Any, kept: "_Kept", big: float) -> bool:
    """Whether every value of ``record`` is kept: :func:`_missing` without the field paths (the
    import's hot path; the paths are only worked out for a record that fails). A float of at least
    ``big`` (either sign) raises :class:`InexactNumber`."""
    values, structural_keys = kept.values, STRUCTURAL_KEYS
    # The containers to walk, each under a _STRUCTURAL mark when it is inside a structural key's
    # value (rather than as a (container, flag) pair: -0.6 us a record, measured).
    stack: list = [record]
    pop, push = stack.pop, stack.append
    while stack:
        v = pop()
        structural = v is _STRUCTURAL
        if structural:
            v = pop()
        if type(v) is dict:
            for k, x in v.items():
                t = type(x)
                if t is str:
                    if x in values or structural or k in structural_keys or kept.lost_text(x) is None:
                        continue
                    return False
                if t is dict or t is list:
                    push(x)
                    if structural or k in structural_keys:
                        push(_STRUCTURAL)
                elif t is int or t is float:
                    if x >= big or x <= -big:
                        raise InexactNumber(x)
                    if x not in values and not kept.holds_number(x):
                        return False
        else:
            for x in v:
                t = type(x)
                if t is str:
                    if x in values or structural or kept.lost_text(x) is None:
                        continue
                    return False
                if t is dict or t is list:
                    push(x)
                    if structural:
                        push(_STRUCTURAL)
                elif t is int or t is float:
                    if x >= big or x <= -big:
                        raise InexactNumber(x)
                    if x not in values and not kept.holds_number(x):
                        return False
    return True


_STRUCTURAL = object()
_NO_LIMIT = float("nan")  # (no float compares >= or <= to it: none is inexact)


def _missing(record: Any, kept: "_Kept", base: str = "") -> tuple[str, Any] | None:
    stack: list[tuple[Any, str, bool]] = [(record, base, False)]
    while stack:
        v, path, structural = stack.pop()
        t = type(v)
        if t is str:
            if structural or v in kept.values or not v.strip():
                continue
            lost = kept.lost_text(v)
            if lost is not None:
                return path, v if lost == v else lost
        if t is dict:
            for k, x in v.items():
                stack.append((x, f"{path}.{k}" if path else str(k), k in STRUCTURAL_KEYS))
        elif t is list:
            stack.extend((x, f"{path}[{i}]", structural) for i, x in enumerate(v))
        elif (t is int or t is float) and v not in kept.values and not kept.holds_number(v):
            return path, v
    return None


class _Kept:
    """The strings and numbers of a trajectory, with slower lookups made once, on the first miss."""

    __slots__ = ("values", "markup", "traj", "_blob", "_words", "_complete")

    def __init__(self, traj: Trajectory, markup: tuple[str, ...] = ()) -> None:
        self.markup = markup
        self.traj = traj
        # The tools' values are added on the first miss (:meth:`complete`): a record's tool list is
        # usually the file's, already found kept (_without_known_tools), and other fields rarely
        # hold a value that only the tools have.
        self._complete = not traj.tools
        values: set = {traj.system}
        add, update = values.add, values.update
        for turn in traj.turns:
            add(turn.user)
            if turn.extra:
                _leaves(turn.extra, add)
            for s in turn.steps:
                add(s.text)
                add(s.name)
                add(s.call_id)
                args = s.arguments
                if type(args) is dict:
                    for v in args.values():
                        if type(v) is str or type(v) is int or type(v) is float:
                            add(v)
                        else:
                            _leaves(v, add)
                elif args is not None:
                    _leaves(args, add)
                if s.labels:
                    update(s.labels)
                if s.note:
                    add(s.note)
                if s.extra:
                    _leaves(s.extra, add)
        m = traj.meta
        update((m.source, m.external_id, m.split, *m.case_types, *m.tags))
        if m.reference is not None:
            _leaves(m.reference, add)
        if m.extra:
            _leaves(m.extra, add)
        self.values = values
        self._blob: str | None = None
        self._words: set[str] | None = None

    def complete(self) -> None:
        """Add the tools' values (once)."""
        if self._complete:
            return
        self._complete = True
        values, add = self.values, self.values.add
        for tool in self.traj.tools:
            for k, v in tool.items():
                if type(v) is str:
                    add(v)
                elif k == "parameters" and type(v) is dict:
                    values |= _schema_leaves(v)
                else:
                    _leaves(v, add)
        self._blob = self._words = None

    def blob(self) -> str:
        if self._blob is None:
            self._blob = "\0".join(v if type(v) is str else repr(v) for v in self.values)
        return self._blob

    def lost_text(self, s: str) -> str | None:
        """None when ``s`` is inside a kept text, is JSON text whose values are kept, or is a composite
        text (tags, lines) each piece of which is kept; else the piece (or word) that is not."""
        if not s.strip():
            return None
        if not self._complete:
            self.complete()
            if s in self.values:
                return None
        if s in self.blob():
            return None
        # Inside a JSON text (a result kept as JSON, arguments): control characters, quotes and
        # backslashes are escaped there, and non-ASCII letters too where it was written ASCII-only.
        for escaped in {json.dumps(s, ensure_ascii=False)[1:-1], json.dumps(s)[1:-1]}:
            if escaped != s and escaped in self.blob():
                return None
        for m in self.markup:
            if m in s:
                s = s.replace(m, "\n")
        parsed = _json_value(s)
        if parsed is not _NOT_JSON:
            lost = _missing(parsed, self)
            return None if lost is None else str(lost[1])
        pieces = [p.strip() for p in _TAG.split(s)]
        pieces = [p for p in pieces if p]
        if len(pieces) > 1 or (pieces and pieces[0] != s):
            for p in pieces:
                if p not in self.values:
                    lost = self.lost_text(p)
                    if lost is not None:
                        return lost
            return None
        # JSON written inside prose (a tool list after "functions you can invoke:"): its values are
        # looked for as values (null / true / false are JSON's syntax, not words), its keys as words.
        found, s = _embedded_json(s)
        for value in found:
            lost = _missing(value, self)
            if lost is not None:
                return str(lost[1])
        if found:
            keys: list[str] = []
            for value in found:
                _keys(value, keys.append)
            s = " ".join((s, *keys))
        # A prose piece the converter re-spaced or stripped of its markers: every word of it is kept.
        if self._words is None:  # the words of the kept values, and of the keys of kept objects
            keys: list[str] = []
            t = self.traj
            for v in (t.tools, t.meta.reference, t.meta.extra, *(x.extra for x in t.turns),
                      *(x.arguments for _, _, x in t.steps()), *(x.extra for _, _, x in t.steps())):
                _keys(v, keys.append)
            self._words = set(_WORD.findall(self.blob())) | set(_WORD.findall(" ".join(keys)))
        # (Short numbers in prose are list numbering and counts, not values: not looked for.)
        return next((w for w in _WORD.findall(s)
                     if w not in self._words and w not in FORMAT_WORDS and not (len(w) <= 2 and w.isdigit())), None)

    def holds_number(self, n: float) -> bool:
        if not self._complete:
            self.complete()
            if n in self.values:
                return True
        blob = self.blob()
        return repr(n) in blob or (type(n) is float and n.is_integer() and repr(int(n)) in blob) or \
            json.dumps(n) in blob


_NOT_JSON = object()
_DECODER = json.JSONDecoder()
_OPENER = re.compile(r"[\[{]")


def _embedded_json(s: str) -> tuple[list, str]:
    """``(values, rest)``: the JSON objects (and lists holding one) written inside a prose text, and
    the text with each of them cut out.

    >>> _embedded_json('Call these: [{"name": "f", "required": null}]. Then stop.')
    ([[{'name': 'f', 'required': None}]], 'Call these: \\n. Then stop.')
    >>> _embedded_json("See [1] and {braces}.")
    ([], 'See [1] and {braces}.')
    """
    found: list = []
    parts: list[str] = []
    pos = 0
    m = _OPENER.search(s)
    while m is not None:
        try:
            value, end = _DECODER.raw_decode(s, m.start())
        except (ValueError, RecursionError):
            m = _OPENER.search(s, m.start() + 1)
            continue
        if type(value) is dict or (type(value) is list and any(type(x) is dict for x in value)):
            found.append(value)
            parts.append(s[pos:m.start()])
            pos = end
            m = _OPENER.search(s, end)
        else:
            m = _OPENER.search(s, m.start() + 1)
    if not found:
        return found, s
    parts.append(s[pos:])
    return found, "\n".join(parts)


def _json_value(s: str) -> Any:
    """The parsed value of a string that is JSON text (arguments given as text: ``"null"``,
    ``"[1, 2]"``, an object), else ``_NOT_JSON``."""
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        return _NOT_JSON


# The records of a file share their normalised tool schemas (annotate.formats.common.tool_memo):
# their leaves are collected once per schema object. The cache holds the object itself, so its id
# cannot be reused while the entry lives.
_SCHEMAS: dict[int, tuple[dict, frozenset]] = {}


def _schema_leaves(schema: dict) -> frozenset:
    hit = _SCHEMAS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    out: set = set()
    _leaves(schema, out.add)
    if len(_SCHEMAS) > 4096:
        _SCHEMAS.clear()
    leaves = frozenset(out)
    _SCHEMAS[id(schema)] = (schema, leaves)
    return leaves


def _keys(value: Any, add) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            for k, x in v.items():
                add(str(k))
                stack.append(x)
        elif type(v) is list:
            stack.extend(v)


def _leaves(value: Any, add) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        elif v is not None and t is not bool:  # (True == 1 in a set: a number 1 is not kept by a boolean)
            add(v)

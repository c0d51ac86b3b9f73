"""The reader: the bytes of a trajectory file in, canonical trajectories out (pure; no Django).

The import's one pipeline is format modules (:mod:`annotate.formats`) → this reader →
:mod:`annotate.ingest.writer`. :func:`read_file` checks the whole file (format, size, UTF-8, the
answers and tools files) and returns a :class:`Reading` that converts its records a batch at a
time, which the writer consumes as it writes; :func:`parse_file` reads it whole (the preview
and the dry run).

:func:`parse_file` turns the bytes of an uploaded file (a JSON array or JSON Lines, in any of the
:data:`FORMATS`) into canonical trajectories, or into a list of problems that each name the file,
the line and the field. It never raises on user data. Import is all-or-nothing: when any record
is bad, no trajectory comes back, unless ``skip_invalid`` asks for the good ones (the bad ones are
then reported, one problem per skipped record).

>>> r = parse_file(b'{"turns": [{"user": "hi", "assistant_answer": "hello"}]}\\n{"turns": 3}\\n', "a.jsonl")
>>> r.ok, r.trajectories, [str(e) for e in r.errors]
(False, [], ['a.jsonl:2: turns: must be a list, got a number'])
>>> r = parse_file(b'{"turns": [{"user": "hi", "assistant_answer": "hello"}]}\\n{"turns": 3}\\n', "a.jsonl",
...                skip_invalid=True)
>>> [(line, t.turns[0].steps[0].text) for line, t in r.trajectories]
[(1, 'hello')]
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from annotate import formats
from annotate.formats import conservation, storable
from annotate.formats.common import tool_memo, tools_field
from annotate.ingest.sniff import not_text_message
from annotate.trajectory import MAX_NESTING, SchemaError, Trajectory

# The formats, in the order the command line and the upload page list them.
FORMATS = tuple(formats.FORMATS)
# Other names people use for the same formats.
FORMAT_ALIASES = formats.ALIASES
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
_WS = re.compile(r"[ \t\r\n]*")


class _NotANumber(ValueError):
    """``NaN`` / ``Infinity`` in a file: Python's JSON reader takes them, JSON (and the database's
    JSON columns) do not, so they are reported here rather than failing the insert later."""

    def __init__(self, constant: str):
        super().__init__(constant)
        self.constant = constant


def _not_a_number(constant: str):
    raise _NotANumber(constant)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if value in (math.inf, -math.inf):  # 1e999
        raise _NotANumber(literal)
    return value


_DECODER = json.JSONDecoder(parse_constant=_not_a_number, parse_float=_finite_float)
# Whether lines of JSON Lines are read by orjson first (see _records); the tests compare both ways.
FAST_JSON = True


@dataclass(frozen=True)
class ImportIssue:
    """One problem: ``line`` is 1-based (the record's first line), None for the whole file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


# Problems listed by an import, at most (the others are counted: see Problems).
MAX_LISTED = 1000


class Problems(list):
    """A reading's problems: the first :data:`MAX_LISTED` listed, in the order found, the others
    only counted (``unlisted``). A 3 MB file of a million ``{}`` lines made a million problems of
    1 KB each: 2.5 GB of memory, and a response as large; a 200 MB one, more than any machine has.

    With several readers (:class:`Reading`), each lists its first ones, and :meth:`Reading.finish`
    keeps the first :data:`MAX_LISTED` of those by line.
    """

    __slots__ = ("unlisted",)

    def __init__(self, issues=(), unlisted: int = 0):
        super().__init__(issues)
        self.unlisted = unlisted

    def append(self, issue: ImportIssue) -> None:
        if len(self) < MAX_LISTED:
            super().append(issue)
        else:
            self.unlisted += 1

    def extend(self, issues) -> None:
        for issue in issues:
            self.append(issue)

    @property
    def count(self) -> int:
        """Every problem found, listed or not."""
        return len(self) + self.unlisted

    def __reduce__(self):  # (pickled with its count: the readers send their problems back)
        return Problems, (list(self), self.unlisted)


@dataclass
class ImportResult:
    file: str
    format: str = ""  # the format read ("raw", ...; several comma-separated when auto found a mix)
    trajectories: list[tuple[int, Trajectory]] = field(default_factory=list)
    errors: Problems = field(default_factory=Problems)
    records: int = 0  # records seen, good and bad
    # The formats read so far, in order (``format`` once the reading is finished).
    formats_read: dict[str, None] = field(default_factory=dict, repr=False, compare=False)
    # The line after which reading stopped, without skip_invalid, with MAX_LISTED problems found (0: read to the end).
    stopped_after: int = 0
    # The line whose problem lists the formats' rules (the next records in no known format refer to it).
    rules_at: int = 0

    @property
    def ok(self) -> bool:
        """Every record imported (with ``skip_invalid`` the good ones still come back when False)."""
        return not self.errors

    @property
    def problem_count(self) -> int:
        """How many problems were found: those listed in ``errors`` and those only counted (not the
        note that reading stopped)."""
        return self.errors.count - 1 if self.stopped_after else self.errors.count


def stopped_note(found: int) -> str:
    """The note put first when reading stopped after ``found`` problems (without skip invalid)."""
    return (f"reading stopped after {found:,} problems; the rest of the file was not checked (fix these, or "
            "import with skip invalid to skip every bad record)")


def unlisted_note(unlisted: int, listed: int) -> str:
    """The note put first when only the first ``listed`` problems are listed."""
    return f"{unlisted:,} more problems are not listed (the first {listed:,} are)"


def detect_format(record: Any) -> str:
    """The format a record is written in, from its keys; SchemaError when none fits.

    >>> detect_format({"messages": [{"role": "user", "content": "hi"}]})
    'messages'
    >>> detect_format({"messages": [{"role": "assistant_think", "content": "hmm"}]})
    'raw'
    >>> detect_format({"conversations": [{"from": "human", "value": "hi"}]})
    'sharegpt'
    """
    if type(record) is not dict:
        raise SchemaError("a record must be a JSON object", "")
    found = formats.detect(record)
    if found is not None:
        return found
    if "ground_truth" in record:
        raise SchemaError("this is a BFCL possible-answer file: import the question file and give this one "
                          "as its answers", "ground_truth")
    if isinstance(record.get("content"), list) and any(type(c) is dict and "class_" in c for c in record["content"]):
        raise SchemaError("this is an Agent Data Protocol (ADP) standardized record, which is not supported: "
                          "import the data set's raw version (OpenAI messages / ShareGPT) instead", "content")
    raise FormatUnknown(f"{FORMAT_UNKNOWN}; the formats and what identifies them: {formats.detection_rules()}", "")


FORMAT_UNKNOWN = "cannot tell the format"


class FormatUnknown(SchemaError):
    """No format claims a record (its message lists every format's rule, about 1 KB)."""


def parse_file(data: bytes, filename: str, fmt: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES,
               skip_invalid: bool = False, answers: bytes | None = None, *, answers_filename: str = "",
               tools: bytes | None = None, tools_filename: str = "") -> ImportResult:
    """Parse and convert a file of trajectories. Never raises on user data.

    ``answers`` is a BFCL possible-answer file (its entries become the gold ``meta.reference``);
    ``tools`` a JSON list of tool specs for records that carry none (tau-bench's domain tools).
    """
    reading = read_file(data, filename, fmt, max_bytes, skip_invalid, answers,
                        answers_filename=answers_filename, tools=tools, tools_filename=tools_filename)
    trajectories = [(line, t) for batch in reading.batches() for line, _, t in batch]
    result = reading.finish()
    result.trajectories = trajectories
    return _finish(result, skip_invalid)


BATCH = 1000


def read_file(data: bytes, filename: str, fmt: str = "auto", max_bytes: int = DEFAULT_MAX_BYTES,
              skip_invalid: bool = False, answers: bytes | None = None, *, answers_filename: str = "",
              tools: bytes | None = None, tools_filename: str = "") -> Reading:
    """A file made ready to read a batch at a time (:class:`Reading`), for imports that write
    while they read; :func:`parse_file` reads it whole.

    The checks of the whole file (format, size, UTF-8, the answers and tools files) run here;
    their problems are in ``reading.result.errors`` and, when the file cannot be read at all,
    ``reading.text`` is None.
    """
    result = ImportResult(filename)
    text, answer_map, default_tools = _prepare(result, data, fmt, max_bytes, skip_invalid, answers,
                                               answers_filename, tools, tools_filename)
    return Reading(result, text, FORMAT_ALIASES.get(fmt, fmt), answer_map, default_tools, skip_invalid,
                   text is not None and storable.may_hold_unstorable(text))


@dataclass
class Reading:
    """A file's records, converted a batch at a time, possibly by several readers at once.

    ``batches(stripe, stripes)`` reads batch k of the file (records ``[b_k, b_k+1)``: the first
    batch an eighth of ``size`` records, so that a writer waiting for it starts soon, then
    ``size`` each) for every k with ``k % stripes == stripe``, and gives one list per such batch
    (empty when it holds no good record) of ``(line, record number, trajectory)``. Several
    readers (forked processes) can so share a file, each skipping the others' lines unparsed;
    that needs one record per line (:meth:`stripes_possible`). Each reader's problems and counts
    go to the ``ImportResult`` it reads into; :meth:`finish` merges them.

    Without ``skip_invalid`` no trajectory comes after the first problem (the lists are empty),
    but the rest of the file is still read, so that every problem is reported; the caller must
    then drop what it took before (all-or-nothing), as :func:`parse_file` does.
    """

    result: ImportResult  # the problems of the whole file (from read_file)
    text: str | None
    fmt: str
    answer_map: dict | None
    default_tools: list[dict] | None
    skip_invalid: bool
    # Whether the text has escapes that may decode to what the database cannot store (NUL, lone
    # surrogates): then each record is checked for them (annotate.formats.storable).
    check_storable: bool = False

    def stripes_possible(self) -> bool:
        """Whether the file is JSON Lines (its first line a whole record), so readers can share it."""
        if self.text is None:
            return False
        start = _WS.match(self.text).end()
        end = self.text.find("\n", start)
        first = self.text[start:end if end >= 0 else len(self.text)]
        if not first.startswith("{"):
            return False
        try:
            return type(_DECODER.decode(first)) is dict
        except (ValueError, RecursionError):
            return False

    def batches(self, stripe: int = 0, stripes: int = 1, size: int = BATCH,
                into: ImportResult | None = None,
                each=None) -> Iterator[list[tuple[int, int, Trajectory]]]:
        """The converted records of this reader's batches (see the class); problems go to ``into``
        (default: ``self.result``). ``each(record number, trajectory)``, when given, is called for
        each trajectory as it is added to its batch (as soon as it is converted)."""
        if self.text is None:
            return
        result = self.result if into is None else into
        errors = result.errors
        first_size = max(1, size // 8)
        if stripes > 1:
            assert self.stripes_possible(), "only JSON Lines can be read in stripes"

            def wanted(n: int) -> bool:
                return (0 if n < first_size else 1 + (n - first_size) // size) % stripes == stripe
        else:
            wanted = None
        seen_formats = result.formats_read
        memo: dict = {}
        records = _records(self.text, result.file, wanted)
        batch, start = 0, 0
        failed = False
        while True:
            mine = batch % stripes == stripe
            out: list[tuple[int, int, Trajectory]] = []
            read = 0
            with tool_memo(memo), gc_paused():
                # Each record is converted as soon as it is parsed, while it is still in the CPU's
                # caches, and what of it the trajectory does not keep is freed before the next one
                # is parsed (rather than the whole batch parsed first, then converted): measured,
                # the reader's CPU a trajectory of the import benchmark went from 119-128 to 83-90 us.
                for n, (line, rec, fast) in enumerate(itertools.islice(records, first_size if batch == 0 else size),
                                                      start):
                    read += 1
                    if not mine:
                        continue
                    if isinstance(rec, ImportIssue):  # (a line that is not JSON)
                        errors.append(rec)
                        failed = True
                        continue
                    result.records += 1
                    traj = _convert(line, rec, result.file, self.fmt, self.answer_map, self.default_tools,
                                    errors, seen_formats, self.check_storable, fast is not None)
                    if traj is _REREAD:  # (see _records: read again by the standard library, converted again)
                        rec = _decode_line(fast, result.file, line)
                        if isinstance(rec, ImportIssue):  # (too deep for the standard library: not a record read)
                            result.records -= 1
                            errors.append(rec)
                            failed = True
                            continue
                        traj = _convert(line, rec, result.file, self.fmt, self.answer_map, self.default_tools,
                                        errors, seen_formats, self.check_storable)
                    if traj is None:
                        failed = True
                        if errors and errors[-1].line == line and errors[-1].message.startswith(FORMAT_UNKNOWN):
                            _refer_to_rules(result, errors)
                    elif self.skip_invalid or not failed:
                        out.append((line, n, traj))
                        if each is not None:
                            each(n, traj)
                if not read:
                    return
            if mine:
                yield out if self.skip_invalid or not failed else []
                if failed and not self.skip_invalid and len(errors) >= MAX_LISTED:
                    # Nothing will be imported: the rest of the file is not read (a file of a
                    # million bad lines took minutes to report them).
                    result.stopped_after = line
                    return
            batch, start = batch + 1, start + read

    def finish(self, *parts: ImportResult) -> ImportResult:
        """The file's result: its own problems, then each reader's (``parts``; default: its own
        reading) in line order, the record count and the formats read."""
        result = self.result
        if parts:
            found = sorted((e for p in parts for e in p.errors), key=lambda e: e.line or 0)
            result.errors.extend(found)
            result.errors.unlisted += sum(p.errors.unlisted for p in parts)
            result.records = sum(p.records for p in parts)
            formats = {f: None for p in parts for f in p.formats_read}
        else:
            formats = result.formats_read
        result.format = ", ".join(formats) or (self.fmt if self.fmt != "auto" else "")
        stopped = [p.stopped_after for p in parts or (result,) if p.stopped_after]
        if stopped:
            found, result.stopped_after = result.errors.count, min(stopped)  # (before the note below)
            # (first, where every page shows it; beside the listed ones)
            list.insert(result.errors, 0, ImportIssue(result.file, None, "", stopped_note(found)))
        if self.text is not None and not result.errors and not result.records:
            result.errors.append(ImportIssue(result.file, None, "", "the file holds no records"))
        return result


def _prepare(result: ImportResult, data: bytes, fmt: str, max_bytes: int, skip_invalid: bool,
             answers: bytes | None, answers_filename: str, tools: bytes | None,
             tools_filename: str) -> tuple[str | None, dict | None, list[dict] | None]:
    """The file's text, answers and default tools; text None when the file cannot be read at all
    (the reasons are in ``result.errors``)."""
    filename = result.file
    fail = lambda line, fld, msg: result.errors.append(ImportIssue(filename, line, fld, msg))  # noqa: E731
    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt != "auto" and fmt not in FORMATS:
        fail(None, "format", f"unknown format {fmt!r}; expected auto, {', '.join(FORMATS)}")
        return None, None, None
    if len(data) > max_bytes:
        fail(None, "", f"the file is {len(data):,} bytes, over the limit of {max_bytes:,} bytes")
        return None, None, None
    text = _decode(data, filename, result.errors, skip_invalid)
    if text is None:
        return None, None, None
    if not text or text.isspace():
        if not result.errors:
            fail(None, "", "the file is empty")
        return None, None, None
    answer_map = None
    if answers is not None:
        answer_map = _answers(answers, answers_filename or f"{filename} (answers)", max_bytes, result.errors)
    default_tools = None
    if tools is not None:
        default_tools = _tools(tools, tools_filename or f"{filename} (tools)", result.errors)
    if result.errors and not skip_invalid:
        return None, None, None
    return text, answer_map, default_tools


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building many objects that are all kept.

    Each collection walks every object made so far, so on a large file the collector's passes
    cost about as much as the parsing itself (and, in the import, as writing the rows); the
    trajectories and rows hold no reference cycles.

    On the way out, what was made meanwhile goes straight to the oldest generation (``freeze``
    then ``unfreeze``, two list splices) instead of waiting for the next young collection, which
    would walk all of it at once (~25 us a trajectory). Nothing is lost: garbage there is found
    by the next full collection, as usual; objects that die (the usual fate of an import's
    rows) are freed by reference counting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:  # (someone else's frozen objects are left alone)
                gc.freeze()
                gc.unfreeze()
            gc.enable()


_REREAD = object()  # what _convert gives for a record read by orjson that must be read as the standard library reads it


def _convert(line: int, rec: Any, filename: str, fmt: str, answer_map: dict | None, default_tools: list[dict] | None,
             errors: list[ImportIssue], seen_formats: dict[str, None], check_storable: bool = False,
             fast: bool = False) -> Trajectory | None:
    """One record's trajectory, or None with its problem added to ``errors``.

    ``fast``: the record was read by orjson (see :func:`_records`). Then, rather than report a
    problem, or keep a record that holds a number orjson may have read differently (an integer
    beyond 64 bits, which it reads as a float), this gives ``_REREAD``: the caller reads the line
    again with the standard library and converts that. What is imported or reported is so exactly
    what the standard library's reading gives.
    """
    try:
        f = fmt if fmt != "auto" else detect_format(rec)
        if type(rec) is not dict:
            raise SchemaError(f"a record must be a JSON object, got {_kind(rec)}", "")
        source = f"{f}:{filename}"
        reader = formats.FORMATS[f]
        answer = None
        if reader.takes_answers and answer_map is not None:
            answer = answer_map.get(rec.get("id"))
            if answer is None and "irrelevance" not in str(rec.get("id", "")):
                raise SchemaError(f"no possible answer with id {rec.get('id')!r} in the answers file", "id")
        traj = reader.read(rec, source=source, tools=default_tools, answer=answer)
        # Every value mapped, kept in extra, or refused (and, after orjson, no float that may have been an integer).
        conservation.check(rec, traj, reader.markup, exact_numbers=not fast)
        if check_storable:
            storable.check(rec, traj)
    except Exception as e:
        if fast:
            return _REREAD
        if isinstance(e, SchemaError):
            errors.append(ImportIssue(filename, line, e.field, e.message))
        elif isinstance(e, RecursionError):
            errors.append(ImportIssue(filename, line, "", f"nested deeper than {MAX_NESTING} levels"))
        else:  # a converter bug must not lose the report for the other records
            errors.append(ImportIssue(filename, line, "", f"could not convert this record ({type(e).__name__}: {e}); "
                                      "please report it"))
        return None
    seen_formats[f] = None
    return traj


def _refer_to_rules(result: ImportResult, errors: list[ImportIssue]) -> None:
    """Shorten the last problem, a record in no known format, to a reference to the first such
    problem's list of the formats' rules (a file of such records repeated 1 KB a line)."""
    last = errors[-1]
    if not result.rules_at:
        result.rules_at = last.line
    elif last.line != result.rules_at:
        errors[-1] = ImportIssue(last.file, last.line, last.field, f"{FORMAT_UNKNOWN} (the formats and what "
                                 f"identifies them: see line {result.rules_at})")


def _finish(result: ImportResult, skip_invalid: bool) -> ImportResult:
    if result.errors and not skip_invalid:
        result.trajectories = []
    return result


def _kind(v: Any) -> str:
    return {list: "a list", str: "a string", dict: "an object", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number")


def _decode(data: bytes, filename: str, errors: list[ImportIssue], skip_invalid: bool) -> str | None:
    """UTF-8 text; a line with bytes that are not UTF-8 is reported (and blanked under skip_invalid).
    A binary file (an image, an archive) is one problem, whatever ``skip_invalid`` says."""
    binary = not_text_message(data)
    if binary is not None:
        errors.append(ImportIssue(filename, None, "file", binary))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines = data.split(b"\n")
        offset = 0
        for i, raw in enumerate(lines):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                errors.append(ImportIssue(filename, i + 1, "", f"not UTF-8: byte 0x{raw[e.start]:02x} at byte "
                                          f"offset {offset + e.start} (column {e.start + 1})"))
                lines[i] = b""  # keeps the line numbers of the others
            offset += len(raw) + 1
        if not skip_invalid:
            return None
        text = b"\n".join(lines).decode("utf-8")
    return text[1:] if text.startswith("\ufeff") else text


_SKIPPED = object()  # a record left unread (another reader's)


def _records(text: str, filename: str, wanted=None) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, record, fast)`` for each record of a JSON array, a single JSON object or JSON Lines;
    a record that cannot be read comes as ``(line, ImportIssue, None)``.

    ``wanted(n)`` (JSON Lines only), when given, says whether to read the n-th record (0-based);
    the others come as ``(line, _SKIPPED, None)``.

    A line of JSON Lines is read by orjson (a third faster than the standard library on the
    import benchmark's records); ``fast`` is then its text, else None. orjson refuses what the
    standard library's reading refuses or reads differently (NaN, 1e999, lone surrogates), and the
    line is then read as before, except for integers beyond 64 bits, which it reads as floats: the
    record's conversion checks for such floats (:func:`_convert`) and reads the line again
    (:func:`_decode_line`).
    """
    start = _WS.match(text).end()
    if text.startswith("[", start):
        assert wanted is None, "the records of a JSON array are read in order"
        for line, rec in _array_records(text, start, filename):
            yield line, rec, None
        return
    first = True
    n = -1
    fast_loads = orjson.loads if FAST_JSON else None
    for i, line in enumerate(split_lines(text)):
        if not line or line.isspace():
            continue
        n += 1
        if wanted is not None and not wanted(n):
            yield i + 1, _SKIPPED, None
            first = False
            continue
        if fast_loads is not None:
            try:
                rec = fast_loads(line)
            except orjson.JSONDecodeError:
                pass
            else:
                yield i + 1, rec, line
                first = False
                continue
        try:
            rec = _DECODER.decode(line)
        except (ValueError, RecursionError) as e:
            if first and type(e) is json.JSONDecodeError:
                whole = _whole_object(text)  # a pretty-printed single object
                if whole is not None:
                    at = text.count("\n", 0, start) + 1
                    yield at, (ImportIssue(filename, at, "", _not_a_number_message(whole))
                               if isinstance(whole, _NotANumber) else whole), None
                    return
            yield i + 1, _unreadable(e, filename, i + 1), None
        else:
            yield i + 1, rec, None
        first = False


def _decode_line(line: str, filename: str, at: int) -> Any:
    """A line's record as the standard library reads it, or the ImportIssue that says why it cannot be read."""
    try:
        return _DECODER.decode(line)
    except (ValueError, RecursionError) as e:
        return _unreadable(e, filename, at)


def _unreadable(e: Exception, filename: str, at: int) -> ImportIssue:
    """The problem of a line the standard library's JSON reader refused with ``e``."""
    if isinstance(e, _NotANumber):
        return ImportIssue(filename, at, "", _not_a_number_message(e))
    if isinstance(e, RecursionError):
        return ImportIssue(filename, at, "", f"nested too deeply to read (over {MAX_NESTING} levels)")
    if isinstance(e, json.JSONDecodeError):
        return ImportIssue(filename, at, "", f"not valid JSON: {e.msg} (column {e.colno})")
    if "digits" in str(e):  # (Python reads integers of up to sys.get_int_max_str_digits() digits)
        return ImportIssue(filename, at, "", f"not valid JSON: a number has over {sys.get_int_max_str_digits():,} "
                           "digits (write it as a string)")
    return ImportIssue(filename, at, "", f"not valid JSON: {e}")


def split_lines(text: str) -> Iterator[str]:
    """``text.split("\\n")``, one line at a time (the first record of a big file is read at once,
    not after the whole file is split)."""
    start, find = 0, text.find
    while True:
        end = find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _not_a_number_message(e: _NotANumber) -> str:
    return f"not valid JSON: {e.constant} is not a number JSON allows (write null or a string)"


def _whole_object(text: str) -> dict | _NotANumber | None:
    try:
        value = _DECODER.decode(text)
    except _NotANumber as e:
        return e
    except (ValueError, RecursionError):
        return None
    return value if type(value) is dict else None


def _array_records(text: str, pos: int, filename: str) -> Iterator[tuple[int, Any]]:
    line, counted = 1 + text.count("\n", 0, pos), pos
    pos = _WS.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            rec, pos = _DECODER.raw_decode(text, pos)
        except _NotANumber as e:
            yield line, ImportIssue(filename, line, "", _not_a_number_message(e) + "; the rest of the array cannot be "
                                    "read")
            return
        except json.JSONDecodeError as e:
            yield e.lineno, ImportIssue(filename, e.lineno, "", f"not valid JSON: {e.msg} (column {e.colno}); "
                                        "the rest of the array cannot be read")
            return
        except RecursionError:
            yield line, ImportIssue(filename, line, "", f"nested too deeply to read (over {MAX_NESTING} levels); "
                                    "the rest of the array cannot be read")
            return
        except ValueError as e:  # (an integer of too many digits)
            issue = _unreadable(e, filename, line)
            yield line, ImportIssue(filename, line, "", issue.message + "; the rest of the array cannot be read")
            return
        yield line, rec
        pos = _WS.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _WS.match(text, pos + 1).end()
            continue
        if text.startswith("]", pos):
            rest = _WS.match(text, pos + 1).end()
            if rest != len(text):
                at = 1 + text.count("\n", 0, rest)
                yield at, ImportIssue(filename, at, "", "unexpected text after the closing ']' of the array")
            return
        at = 1 + text.count("\n", 0, pos)
        yield at, ImportIssue(filename, at, "", "expected ',' or ']' between records; the rest of the array "
                              "cannot be read")
        return


def _answers(data: bytes, name: str, max_bytes: int, errors: list[ImportIssue]) -> dict[str, dict]:
    """BFCL possible answers by question id; problems are added to ``errors`` under the answers file's name."""
    if len(data) > max_bytes:
        errors.append(ImportIssue(name, None, "", f"the file is {len(data):,} bytes, over the limit of "
                                  f"{max_bytes:,} bytes"))
        return {}
    text = _decode(data, name, errors, skip_invalid=False)
    if text is None:
        return {}
    found: dict[str, dict] = {}
    for line, rec, _ in _records(text, name):
        if isinstance(rec, ImportIssue):
            errors.append(rec)
        elif type(rec) is not dict or not isinstance(rec.get("id"), str):
            errors.append(ImportIssue(name, line, "id", "a possible answer needs a string id"))
        elif not isinstance(rec.get("ground_truth"), list):
            errors.append(ImportIssue(name, line, "ground_truth", "a possible answer needs a ground_truth list"))
        else:
            found[rec["id"]] = rec
    return found


def _tools(data: bytes, name: str, errors: list[ImportIssue]) -> list[dict] | None:
    binary = not_text_message(data)
    if binary is not None:
        errors.append(ImportIssue(name, None, "file", binary))
        return None
    try:
        return tools_field(data.decode("utf-8"), "")
    except UnicodeDecodeError as e:
        errors.append(ImportIssue(name, data.count(b"\n", 0, e.start) + 1, "", f"not UTF-8 at byte offset {e.start}"))
    except SchemaError as e:
        errors.append(ImportIssue(name, None, e.field.lstrip("."), e.message))
    return None

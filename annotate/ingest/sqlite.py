"""The SQLite writer: fast bulk insert of canonical trajectories (imports of 100k+ trajectories).

The ORM's ``bulk_create`` builds a model instance per row and compiles SQL per batch: about 13
rows per trajectory (trajectory, turns, steps, labels) made the ORM path the bottleneck of an
import. Here rows are plain tuples (:func:`annotate.ingest.rows.build_rows`) written with
multi-row INSERTs, their JSON written by orjson (:func:`annotate.ingest.jsontext.dumps`), and on
big imports built in other processes while this one writes: a file is read there batch by batch
(:class:`Stream`), a list of trajectories turned into rows (:func:`insert_trajectories`).

Columns come from the models' ``_meta`` so a field added later still gets its default.
Trajectory ids are allocated up front (above the current maximum, while the import's
transaction holds SQLite's write lock), so child rows can point at them without reading
anything back; turn and step ids come from the database. No Revision is written: until an
imported trajectory first changes, its rows are its version 1 (``annotate.workbench.documents``).
SQLite only (the embedded default); :mod:`annotate.ingest.writer` takes the ORM's ``bulk_create``
path on other databases.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import marshal
import multiprocessing
import multiprocessing.connection
import os
import pickle
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models

from annotate.ingest.reader import ImportResult, Reading
from annotate.ingest.rows import (LABEL_COLUMNS, STEP_COLUMNS, TRAJECTORY_COLUMNS, TURN_COLUMNS, RowBuilder,
                                  build_rows)
from annotate.models import Step, StepLabel, Trajectory, Turn
from annotate.trajectory import Trajectory as CanonicalTrajectory

try:
    import fcntl
except ImportError:  # (not a Unix: no fork either, so no pipes to widen)
    fcntl = None


# The columns that hold a trajectory's id (see _Table.number_from).
NUMBERED = frozenset(("id", "trajectory_id"))


class _Table:
    """The INSERT statements for a model: the columns we set, in the order given, then the rest at their defaults.

    Rows are plain tuples in the order of ``given``; ``tail`` (the defaults of the other columns)
    is appended to each. They are written ``per_statement`` to an INSERT (one multi-row VALUES
    list): a row costs about 60 % of what it costs in a statement of its own.
    """

    def __init__(self, model: type[models.Model], given: tuple[str, ...], max_params: int = 999):
        self.model = model
        # An id we don't allocate ourselves is left to the database.
        fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.attname not in given)]
        by_attname = {f.attname: f for f in fields}
        missing = set(given) - set(by_attname)
        assert not missing, f"{model.__name__} has no columns {missing}"
        rest = [f for f in fields if f.attname not in given]
        self.given = given
        self.tail = tuple(f.get_db_prep_save(f.get_default(), connection) if f.get_default() is not None else None
                          for f in rest)
        qn = connection.ops.quote_name
        columns = [by_attname[a].column for a in given] + [f.column for f in rest]
        self.per_statement = max(1, min(100, max_params // len(columns)))
        self._head = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in columns)}) VALUES "
        self._columns = len(columns)
        self._numbered = [i for i, a in enumerate(given) if a in NUMBERED]
        self.number_from(0)

    def number_from(self, first: int) -> None:
        """Write the trajectory ids of rows (the :data:`NUMBERED` columns) as ``first`` plus their value,
        from now on: rows built before the import's first id was known (:class:`Stream`) give each
        trajectory's place in the file; SQLite adds the first id."""
        marks = ["%s"] * self._columns
        if first:
            for i in self._numbered:
                marks[i] = f"(%s + {int(first)})"
        self._values = f"({', '.join(marks)})"

    def sql_for(self, rows: int) -> str:
        return self._head + ", ".join([self._values] * rows)

    def pack(self, rows: list[tuple]) -> tuple[list[tuple], tuple, int]:
        """``rows`` as the parameters of multi-row INSERTs: full statements, then the rest (and its row count)."""
        if self.tail:
            tail = self.tail
            rows = [r + tail for r in rows]
        k = self.per_statement
        full = len(rows) - len(rows) % k
        flat = itertools.chain.from_iterable
        return [tuple(flat(rows[i:i + k])) for i in range(0, full, k)], tuple(flat(rows[full:])), len(rows) - full

    def insert(self, cursor, packed: tuple[list[tuple], tuple, int]) -> None:
        statements, rest, rest_rows = packed
        if statements:
            cursor.executemany(self.sql_for(self.per_statement), statements)
        if rest_rows:
            cursor.execute(self.sql_for(rest_rows), rest)

    def allocate(self, cursor) -> int:
        """The first free id of this table (SQLite, inside the import's write transaction).

        AUTOINCREMENT tables never reuse ids: start above both the largest id and the highest
        id ever handed out (``sqlite_sequence``), as the database itself would.
        """
        table = self.model._meta.db_table
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}")
        top = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        seq = cursor.fetchone()
        return max(top, seq[0] if seq else 0) + 1


def available() -> bool:
    return connection.vendor == "sqlite"


# The WAL checkpoint of a big import, run in a background thread (see checkpoint_later).
_checkpoints: list[threading.Thread] = []


@contextlib.contextmanager
def checkpoint_later(conn=None, meanwhile: Callable[[Callable[[], bool]], None] | None = None):
    """Fold a big write's WAL into the database file in a background thread, not at its commit.

    In WAL mode a commit that leaves the log over ``wal_autocheckpoint`` pages copies every page
    it wrote back into the database file and syncs it: for a 10,000-trajectory import, ~100 MB
    and a third of the import's time, with the writer waiting on the disk. Inside this block the
    connection (a DB-API SQLite connection; default: Django's) does not checkpoint; when the
    block ends (after the caller's commit) its setting is restored and a thread with a
    connection of its own runs a PASSIVE checkpoint, which neither blocks nor waits for other
    readers and writers. Durability is SQLite's WAL + ``synchronous=NORMAL`` as before; if the
    process ends first, the next commit on the database checkpoints instead. Files in another
    journal mode (and in-memory databases) are left alone.

    A checkpoint still running from an earlier block is waited for first: while one runs, the
    writer appends to the log instead of starting it over, so back-to-back big imports would
    grow one WAL without bound (1 GB after ten 10,000-trajectory files), and every page lookup
    in it gets slower (measured: 103 us a trajectory on the first file, 175 us on the tenth).
    ``meanwhile``: see :func:`wait_for_checkpoints` (the next file's readers read while it waits).
    """
    wait_for_checkpoints(meanwhile)
    if conn is None:
        if connection.vendor != "sqlite":
            yield
            return
        connection.ensure_connection()
        conn = connection.connection
    path = _wal_file_of(conn)
    if path is None:
        yield
        return
    (before,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(before)}")
        thread = threading.Thread(target=_checkpoint, args=(path,), name="sqlite-checkpoint", daemon=True)
        thread.start()
        _checkpoints[:] = [t for t in _checkpoints if t.is_alive()] + [thread]


def wait_for_checkpoints(meanwhile: Callable[[Callable[[], bool]], None] | None = None) -> None:
    """Wait for the background checkpoints started so far (a command about to exit; a benchmark).

    ``meanwhile(busy)``, when given, is called first with a function that says whether the
    checkpoint still runs: it may work until then (:meth:`Stream.read_while`).
    """
    while _checkpoints:
        thread = _checkpoints[0]
        if meanwhile is not None:
            meanwhile(thread.is_alive)
        thread.join()
        _checkpoints.pop(0)


def _wal_file_of(conn) -> str | None:
    """The file of a SQLite connection's main database if it is in WAL mode, else None."""
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        return None
    for _, name, path in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return path or None
    return None


def _checkpoint(path: str) -> None:
    db = sqlite3.connect(path, timeout=60)
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:  # (busy or gone: the next commit's automatic checkpoint does it)
        pass
    finally:
        db.close()


# Lists of at least this many trajectories build their rows in a second process, and files of at
# least this many bytes are read by other processes (see insert_trajectories and Stream).
PARALLEL_MIN = 4000
STREAM_MIN_BYTES = 4 << 20
# How many processes read a big JSON Lines file at once (Stream) while this one writes
# (None: settings.IMPORT_READERS, by default 2, or 1 on a single CPU). Reading a trajectory costs
# about 1.5x writing it, so the writer waits for one reader; with two, the three processes keep
# both CPUs of a 2-CPU machine busy: measured 15 % faster there than one reader.
READERS = None
BATCH = 1000


def insert_trajectories(project, trajectories: list[CanonicalTrajectory], *, status: str, now, index_search=None,
                        parallel: bool | None = None, batch: int | None = None) -> list[int]:
    """Insert trajectories with their turns, steps and labels (version 1, no revision yet); returns their ids.

    Call inside ``transaction.atomic()``. Findings are counted here (``validate``) so the queue
    can show them without re-validating. ``index_search``, when given, is called with each
    batch's ``(trajectory id, search text)`` rows (the full-text index).

    Trajectory ids are allocated once for the whole list (turn and step ids by the database);
    rows are written ``batch`` (default ``BATCH``) trajectories at a time.
    With ``parallel`` (by default: at least ``PARALLEL_MIN`` trajectories, on a machine with a
    second CPU where ``fork`` is available) the rows are built (validation, JSON, search text)
    in a forked process while this one writes the previous batch: the child inherits the
    trajectories, so only the finished rows travel (``marshal``, ~10 us a trajectory to read).
    Either way the rows are the same; an error in the child is raised here, inside the caller's
    transaction, so nothing is written.
    """
    n = len(trajectories)
    if not n:
        return []
    if parallel is None:
        parallel = n >= PARALLEL_MIN and _can_fork()
    batch = batch or BATCH
    with connection.cursor() as c:
        tables, first, args = _start(c, project, status, now, index_search)

        def produce():
            for i, j in _slices(n, batch):
                yield _built(tables, trajectories[i:j], range(first + i, first + j), args)

        with contextlib.closing(_produced(produce, parallel)) as items:
            for built in items:
                _write(c, tables, built, index_search)
    return list(range(first, first + n))


@dataclass
class Streamed:
    """What :meth:`Stream.write` wrote: trajectory ids, the tools they use, and the reading's result."""

    ids: list[int]
    tools: dict[str, dict]  # each tool name's first spec in the file, in order of first use
    result: ImportResult  # problems, record count and format (no trajectories)


class Stream:
    """A file's trajectories written while the file is read, the reading (parsing, converting,
    checking, building the rows) spread over forked processes that start when the block opens.

    ::

        with Stream(project, reading, status=..., now=...) as stream:
            with checkpoint_later(meanwhile=stream.read_while), transaction.atomic():
                written = stream.write()

    The readers start reading at once, before the write transaction (and before the wait for
    the previous import's checkpoint, which :meth:`read_while` fills by taking their batches
    as they come): a trajectory's rows name it by its record's number in the file, and
    :meth:`write` allocates the first id, which SQLite adds (:meth:`_Table.number_from`).

    ``reading`` is :func:`annotate.ingest.reader.read_file`'s; its text is inherited by the readers,
    so only finished rows travel. By default ``READERS`` processes read a JSON Lines file (each
    every READERS-th batch of lines, skipping the others' lines unparsed) and one reads other
    files; with ``readers=0`` (or where :func:`_can_fork` says no) :meth:`write` reads, in this
    process. Batches are written as they come; the rows are the same either way (ids follow the
    records' places in the file, the tools are merged in file order).

    Call :meth:`write` inside ``transaction.atomic()`` and roll back when the result has
    problems that should abort the import: rows stop coming at the first problem unless the
    reading skips invalid records, but the ones before it are written. A trajectory's id is the
    first id plus its record's number in the file (so the ids of skipped records are left unused).
    Leaving the block stops readers that are still at work.
    """

    def __init__(self, project, reading: Reading, *, status: str, now, index_search=None,
                 readers: int | None = None):
        if reading.text is None:  # (nothing to read: the file's problems are in reading.result)
            readers = 0
        elif readers is None:
            readers = (_readers() if reading.stripes_possible() else 1) if _can_fork() else 0
        self.reading, self.readers, self.index_search = reading, readers, index_search
        self.tables = _tables()
        self.args = _row_args(project, status, now, index_search)
        self._stack = contextlib.ExitStack()
        self._waiting: dict = {}  # connection -> reader, until its end is taken
        self._early: list[tuple[_Forked, object]] = []  # what read_while took (items, errors), in order

    def _produce(self, stripe: int, stripes: int):
        reading, tables, args = self.reading, self.tables, self.args
        part = ImportResult(reading.result.file)
        seen: set[str] = set()
        # Each trajectory's rows are built as soon as it is converted (RowBuilder.add), while its
        # objects are in the CPU's caches, not after its whole batch.
        rows = [RowBuilder(*args)]
        for k, batch in enumerate(reading.batches(stripe, stripes, into=part, each=lambda n, t: rows[0].add(n, t))):
            built, rows[0] = rows[0], RowBuilder(*args)
            if not batch:  # (a problem in it: nothing of it is written)
                built = RowBuilder(*args)
            assert len(built) == len(batch)
            tools = []
            for _, _, t in batch:
                for spec in t.tools:
                    if spec["name"] not in seen:
                        seen.add(spec["name"])
                        tools.append(spec)
            yield stripe + k * stripes, _packed(tables, [n for _, n, _ in batch], built.rows()), tools
        yield stripe, None, part  # (the end: this reader's problems and counts)

    def __enter__(self) -> "Stream":
        with self._stack:
            for i in range(self.readers):
                child = self._stack.enter_context(_Forked(functools.partial(self._produce, i, self.readers)))
                self._waiting[child.conn] = child
            self._stack = self._stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def read_while(self, busy: Callable[[], bool]) -> None:
        """Take (and decode) the readers' batches as they come while ``busy()``, so that the readers
        go on reading meanwhile; :meth:`write` writes them."""
        waiting = dict(self._waiting)
        while waiting and busy():
            for conn in multiprocessing.connection.wait(list(waiting), timeout=0.005):
                child = waiting[conn]
                try:
                    item = child.take()
                except Exception as e:  # (raised by write, inside the transaction, as it would be there)
                    item = e
                self._early.append((child, item))
                if item is _END or isinstance(item, Exception):
                    del waiting[conn]

    def write(self) -> Streamed:
        """Write every batch (inside the caller's transaction); the ids, tools and reading's result."""
        tables, index_search = self.tables, self.index_search
        ids, tools_by_batch, parts = [], [], []
        with connection.cursor() as c:
            first = tables[0].allocate(c)
            for table in tables:
                table.number_from(first)

            def write(item) -> None:
                k, built, extra = item
                if built is None:
                    parts.append((k, extra))
                    return
                _write(c, tables, built, index_search, first)
                ids.extend(first + n for n in built[0])
                tools_by_batch.append((k, extra))

            if not self.readers:
                for item in self._produce(0, 1):
                    write(item)
            else:
                # Batches are written as they come: a trajectory's id is fixed by its place in the
                # file, turn and step ids are the database's, and tools are merged in file order below.
                waiting = self._waiting
                early, self._early = self._early, []
                for child, item in early:
                    if isinstance(item, Exception):
                        raise item
                    if item is _END:
                        del waiting[child.conn]
                    else:
                        write(item)
                while waiting:
                    for conn in multiprocessing.connection.wait(list(waiting)):
                        item = waiting[conn].take()
                        if item is _END:
                            del waiting[conn]
                        else:
                            write(item)
        tools = {}
        for _, batch_tools in sorted(tools_by_batch, key=lambda kt: kt[0]):
            for spec in batch_tools:
                tools.setdefault(spec["name"], spec)
        result = self.reading.finish(*(part for _, part in sorted(parts, key=lambda kp: kp[0])))
        return Streamed(sorted(ids), tools, result)


def _tables() -> tuple[_Table, ...]:
    """The trajectory, turn, step and label tables' INSERTs."""
    connection.ensure_connection()
    try:
        max_params = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    except AttributeError:  # (getlimit: Python 3.11+)
        max_params = connection.features.max_query_params
    return (
        _Table(Trajectory, TRAJECTORY_COLUMNS, max_params),
        _Table(Turn, TURN_COLUMNS, max_params),
        _Table(Step, STEP_COLUMNS, max_params),
        _Table(StepLabel, LABEL_COLUMNS, max_params),
    )


def _start(c, project, status, now, index_search) -> tuple[tuple[_Table, ...], int, tuple]:
    """The tables, the first free trajectory id and the arguments of build_rows."""
    tables = _tables()
    return tables, tables[0].allocate(c), _row_args(project, status, now, index_search)


def _row_args(project, status, now, index_search) -> tuple:
    """The arguments of build_rows (and RowBuilder) after the trajectories and their ids."""
    return project.pk, status, connection.ops.adapt_datetimefield_value(now), index_search is not None


def _built(tables, trajectories, ids, args) -> tuple:
    """One batch, ready to write: trajectory ids, the packed rows of the trajectory, turn and step
    tables, the step count, the labels and the search rows."""
    return _packed(tables, ids, build_rows(trajectories, ids, *args))


def _packed(tables, ids, rows) -> tuple:
    """:func:`_built` of rows already built (:class:`RowBuilder`)."""
    return (list(ids), [table.pack(r) for table, r in zip(tables, rows[:3])], len(rows[2]), rows[3], rows[4])


def _write(c, tables, built, index_search, first: int = 0) -> None:
    """Write one batch of :func:`_built`; ``first``: what the tables add to its trajectory ids
    (see :meth:`_Table.number_from`), added here to the search rows' ids."""
    _, packed, steps, labels, search_rows = built
    for table, table_rows in zip(tables, packed):
        table.insert(c, table_rows)
        if labels and table is tables[2]:
            # The database numbered the steps, in order and one after another (this transaction
            # holds the write lock): label rows name their step by its place in the batch.
            c.execute("SELECT last_insert_rowid()")
            first_step = c.fetchone()[0] - steps + 1
            tables[3].insert(c, tables[3].pack([(first_step + k, tid, label) for k, tid, label in labels]))
    if index_search is not None:
        index_search([(first + n, text) for n, text in search_rows] if first else search_rows)


def _slices(n: int, batch: int):
    """``(start, stop)`` of each batch; the first is an eighth of the others, so that the writer,
    which waits for it in the parallel case, starts soon."""
    start, size = 0, max(1, batch // 8)
    while start < n:
        yield start, min(n, start + size)
        start, size = start + size, batch


def _readers() -> int:
    chosen = READERS if READERS is not None else getattr(settings, "IMPORT_READERS", 0)
    return chosen or min(2, len(os.sched_getaffinity(0)))


def _can_fork() -> bool:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return False
    # A daemonic process, such as a worker of Celery's prefork pool, may not start children; and
    # forking a process that runs other threads (a threaded web server) can leave the child stuck
    # on a lock one of them held, so those import in one process (the CLI and the bench fork).
    # (Our own checkpoint threads are fine: the child never calls SQLite, whose locks they hold.)
    return (cpus > 1 and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon
            and all(t is threading.main_thread() or t in _checkpoints for t in threading.enumerate()))


def _produced(produce, parallel: bool):
    """The items of ``produce()``: made here, or with ``parallel`` in a forked child while the
    caller uses the previous one (see :class:`_Forked`). Closing this generator early (the caller
    failed) stops the child.
    """
    if not parallel:
        yield from produce()
        return
    with _Forked(produce) as child:
        while (item := child.take()) is not _END:
            yield item


_END = object()
_END_MESSAGE = b"."  # (a child's last message)
# A message's first byte says what it holds, so that a batch's rows (~4 MB) are sent as marshal
# wrote them, not copied behind a marker: marshal (version 2) writes a tuple, every item, as "(";
# pickle (protocol 2+) starts with its PROTO opcode; an error is "e" and a pickle; the end ".".
_MARSHAL = b"("
_PICKLE = b"\x80"


class _Forked:
    """A forked child sending the items of ``produce()``; :meth:`take` reads the next one.

    The child only computes (it never touches the database connection it inherited) and leaves
    with ``os._exit`` (multiprocessing's way), so nothing of the parent's state is closed or
    flushed twice. An exception in the child is raised by :meth:`take`; leaving the block before
    the end stops the child.
    """

    def __init__(self, produce):
        self.produce = produce
        self.finished = False

    def __enter__(self) -> "_Forked":
        ctx = multiprocessing.get_context("fork")
        self.conn, send = ctx.Pipe(duplex=False)
        _widen(self.conn)
        self.proc = ctx.Process(target=_child, args=(send, self.produce), name="import-rows", daemon=True)
        self.proc.start()
        send.close()
        return self

    def take(self):
        """The next item (waiting for it), or ``_END`` after the last one (an error in the child is
        raised here)."""
        try:
            message = self.conn.recv_bytes()
        except EOFError:
            self.proc.join()
            raise RuntimeError(f"the import's row builder stopped (exit code {self.proc.exitcode})") from None
        kind = message[:1]
        if kind == _MARSHAL:
            return marshal.loads(message)
        if kind == _PICKLE:
            return pickle.loads(message)
        if kind == b"e":
            raise pickle.loads(memoryview(message)[1:])
        if message != _END_MESSAGE:
            raise RuntimeError(f"the import's row builder sent a message of unknown kind {kind!r}")
        self.finished = True
        return _END

    def __exit__(self, *exc) -> None:
        if not self.finished and self.proc.is_alive():
            self.proc.terminate()  # (the caller stopped early: the child would only wait to write)
        self.conn.close()
        self.proc.join()


def _widen(conn) -> None:
    """Give a pipe a buffer of ``PIPE_BYTES`` (Linux; up to ``/proc/sys/fs/pipe-max-size``, 1 MB by
    default) rather than 64 KB: a batch's rows (~4 MB) then cross in a few reads and writes instead
    of ~70, each of which woke the other process."""
    try:
        fcntl.fcntl(conn.fileno(), F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError, ValueError):  # (not Linux, or a lower limit: the default size stays)
        pass


F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # (Linux's number; Python 3.10+ names it)
PIPE_BYTES = 1 << 20


def _child(send, produce) -> None:
    gc.disable()  # a short-lived copy: nothing to collect
    try:
        for item in produce():
            try:
                message = marshal.dumps(item, 2)  # (version 2: no sharing of equal objects, 40 % faster)
            except ValueError:  # a value marshal does not know (a str subclass, a dataclass): pickle knows more
                message = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
            send.send_bytes(message)
        send.send_bytes(_END_MESSAGE)
    except Exception as e:  # raised in the parent, as building the rows there would have
        try:
            message = b"e" + pickle.dumps(e)
        except Exception:
            message = b"e" + pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"))
        try:
            send.send_bytes(message)
        except OSError:  # the parent stopped reading: it has its own error to report
            pass
    finally:
        send.close()

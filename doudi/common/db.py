"""The one place services create SQLAlchemy engines.

Services take a database URL from their settings and call :func:`create_engine_for`;
they never call :func:`sqlalchemy.create_engine` themselves, so every service gets the
same connection settings on each backend:

* SQLite (``sqlite:///path/to/file.db``) for a developer's machine and single-process
  deployments;
* PostgreSQL through psycopg 3 (``postgresql+psycopg://user@host:port/db``) for the
  platform. A bare ``postgresql://`` URL means psycopg 3 as well, the only PostgreSQL
  driver the project installs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = [
    "DATABASE_THREADS",
    "POSTGRES_MAX_OVERFLOW",
    "POSTGRES_POOL_SIZE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_CACHE_MIB",
    "bulk_insert",
    "copy_to_temporary",
    "create_engine_for",
    "is_one_of",
    "ping",
    "read_connection",
    "read_in_thread",
    "temporary_of",
    "write_in_thread",
    "write_transaction",
]

# A writer that finds the database locked by another writer waits this long for
# it before failing with "database is locked", instead of failing at once.
SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_CACHE_MIB = 64
"""The most of its database each SQLite connection keeps in memory (SQLite's default is
2 MiB): a service's working set (a region's persons, burdens, accumulators) is tens of
megabytes, and a batch that touches a thousand persons at random otherwise reads most
of its pages back from the operating system (measured: the assistance intake 10% faster
at 100,000 persons, docs/performance.md). A connection grows to it only as it reads."""

# Threads a service runs database work in (its event loop's default executor, see
# doudi.common.grpc_server), and the connections each engine keeps open for them: as
# many as the threads, so that no call opens a connection and closes it after (a new
# PostgreSQL backend costs more CPU than a settlement). The overflow serves anything
# else that runs a query in a thread of its own. Several services, each with these,
# stay well under PostgreSQL's default max_connections of 100.
DATABASE_THREADS = 6
POSTGRES_POOL_SIZE = DATABASE_THREADS
POSTGRES_MAX_OVERFLOW = 4
POSTGRES_POOL_RECYCLE_SECONDS = 1800

_WRITE_OPTION = "doudi_write_transaction"
_SQLITE_WRITERS: weakref.WeakKeyDictionary[sqlalchemy.Engine, _SqliteWriter] = (
    weakref.WeakKeyDictionary()
)
"""What a process's writers of each SQLite engine share (see :func:`write_transaction`)."""


@dataclass(frozen=True)
class _SqliteWriter:
    """The writers of one SQLite engine in a process: they take ``lock`` in turn (see
    :func:`write_transaction`) and write through ``engine``'s one pooled connection (a
    database in memory: through the engine itself).

    One connection, because SQLite empties a connection's page cache whenever another
    connection has written since its last transaction: writers taking turns on the
    pool's connections each began with a cold cache and read the pages they change
    back from the operating system (measured: the assistance intake read three times
    as many bytes, docs/performance.md). Reads still use the engine's pool."""

    lock: threading.RLock
    engine: sqlalchemy.Engine


_SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg"})


def create_engine_for(url: str) -> sqlalchemy.Engine:
    """An engine for ``url`` with the settings every service relies on.

    Raises ``ValueError`` for a backend or driver the project does not support,
    so a mistyped URL fails at start-up rather than on the first query.
    """
    parsed = make_url(url)
    if parsed.drivername in _SQLITE_DRIVERS:
        return _sqlite_engine(parsed)
    if parsed.drivername in _POSTGRES_DRIVERS:
        return _postgres_engine(parsed.set(drivername="postgresql+psycopg"))
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DATABASE"
    )


def ping(engine: sqlalchemy.Engine) -> bool:
    """Whether the database answers a trivial query (the services' readiness check)."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sqlalchemy.exc.SQLAlchemyError:
        return False
    return True


def _sqlite_engine(url: URL) -> sqlalchemy.Engine:
    """SQLite with the pragmas that make it safe for a service.

    The directory of a database file is created when missing, so a fresh
    checkout can point a service at ``var/NAME.db`` and start.
    """
    database = url.database
    in_file = bool(database) and database != ":memory:" and not _is_sqlite_uri(url)
    if in_file:
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(url)
    # A database in memory (or given as a URI) is written through the engine itself: a
    # second engine's connection could open another database.
    writes = sqlalchemy.create_engine(url, pool_size=1) if in_file else engine
    for one in {engine, writes}:
        event.listen(one, "connect", _set_sqlite_pragmas)
        event.listen(one, "begin", _begin)
    _SQLITE_WRITERS[engine] = _SqliteWriter(threading.RLock(), writes)
    if writes is not engine:
        event.listen(engine, "engine_disposed", lambda _engine: writes.dispose())
    return engine


def sqlite_writer_engine(engine: sqlalchemy.Engine) -> sqlalchemy.Engine | None:
    """The engine a SQLite database's writers write through (:class:`_SqliteWriter`), if it
    is another than ``engine`` (its pool is watched too: doudi.common.metrics)."""
    writer = _SQLITE_WRITERS.get(engine)
    return None if writer is None or writer.engine is engine else writer.engine


def _is_sqlite_uri(url: URL) -> bool:
    """Whether the database is a ``file:`` URI (``?uri=true``), which is not a plain path."""
    return str(url.query.get("uri", "")).lower() in {"true", "1"} or bool(
        url.database and url.database.startswith("file:")
    )


def _set_sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """Run on every new SQLite connection, since most pragmas last only for that connection.

    * ``journal_mode=WAL``: readers no longer block the writer nor it them, so a
      service can serve reads while a batch writes. Stored in the file; setting
      it again is cheap.
    * ``busy_timeout``: a second writer waits for the lock (see
      ``SQLITE_BUSY_TIMEOUT_MS``) instead of failing at once.
    * ``foreign_keys=ON``: SQLite ignores FOREIGN KEY constraints unless each
      connection turns them on; without it an orphan row goes in silently.
    * ``cache_size``: see ``SQLITE_CACHE_MIB``.
    * ``synchronous=NORMAL``: in WAL mode the database cannot be corrupted by a
      crash with this setting, and commits skip an fsync each; a power cut may
      lose the last few commits, which every caller can redo.
    """
    # SQLAlchemy, not the sqlite3 module, starts transactions (see _begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_MIB * 1024}")
    finally:
        cursor.close()


T = TypeVar("T")


async def read_in_thread(
    engine: sqlalchemy.Engine, handler: Callable[..., T], /, **arguments: Any
) -> T:
    """``handler(connection=..., **arguments)`` on a :func:`read_connection`, in a worker
    thread, so that the service's event loop goes on serving while the database answers."""

    def run() -> T:
        with read_connection(engine) as connection:
            return handler(connection=connection, **arguments)

    return await asyncio.to_thread(run)


async def write_in_thread(
    engine: sqlalchemy.Engine, handler: Callable[..., T], /, **arguments: Any
) -> T:
    """``handler(connection=..., **arguments)`` in a :func:`write_transaction`, in a worker
    thread."""

    def run() -> T:
        with write_transaction(engine) as connection:
            return handler(connection=connection, **arguments)

    return await asyncio.to_thread(run)


def _begin(connection: sqlalchemy.Connection) -> None:
    """Start SQLite transactions ourselves: deferred, or holding the write lock for writers.

    A transaction that reads and then writes (a settlement reads the person's
    accumulators, then updates them) must not let another writer in between;
    in a deferred transaction SQLite would fail the late write with "database
    is locked" at once instead of waiting. :func:`write_transaction` begins
    with ``BEGIN IMMEDIATE``, so writers queue for ``busy_timeout`` at the
    start; readers (WAL) are never blocked.
    """
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # each statement its own transaction (a migration's PRAGMA foreign_keys)
    immediate = options.get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def read_connection(engine: sqlalchemy.Engine) -> Iterator[sqlalchemy.Connection]:
    """A connection for a read of one statement: on PostgreSQL in autocommit, so the read
    costs one round trip instead of three (no BEGIN, no ROLLBACK)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


@contextlib.contextmanager
def write_transaction(engine: sqlalchemy.Engine) -> Iterator[sqlalchemy.Connection]:
    """A transaction that will write: committed on success, rolled back on any error.

    On SQLite it holds the write lock from its first statement; on PostgreSQL
    it is an ordinary transaction (lock the rows you will change with
    ``SELECT ... FOR UPDATE`` or an upsert).

    A process's SQLite writers first queue for a lock of the engine: the next one
    starts as soon as the last commits. Waiting in SQLite's busy handler instead, a
    writer sleeps in steps of up to 0.1 s and may sleep on well after the lock is
    free (measured: the intake's concurrent batches spent more time asleep than
    writing). Writers of other processes still wait for ``busy_timeout``. They write
    through a connection of their own, whose cache stays warm (:class:`_SqliteWriter`).
    """
    writer = _SQLITE_WRITERS.get(engine)
    with (
        writer.lock if writer else contextlib.nullcontext(),
        (writer.engine if writer else engine).connect() as connection,
    ):
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


def _postgres_engine(url: URL) -> sqlalchemy.Engine:
    """PostgreSQL through psycopg 3, with a bounded pool that survives server restarts.

    Connections are not tested at each checkout (``pool_pre_ping`` costs a round
    trip and about a quarter of a short read's CPU). When a server restart or a
    failover has closed them, the first statement fails with a disconnect error:
    SQLAlchemy then discards every pooled connection, and the service answers
    that call UNAVAILABLE (see ``doudi.common.grpc_server``), which callers
    retry; the next call opens fresh connections. ``pool_recycle`` replaces
    connections before an idle timeout on the way (a proxy, a firewall) can
    close them.

    Sessions run without JIT compilation (``jit = off``, added to any ``options`` the
    URL gives). The services' statements are short, over a key or a batch; the planner
    knows nothing of a batch's temporary table, so a statement over one can pass
    ``jit_above_cost``, and compiling it took about 20 ms of the server's CPU at every
    call of the assistance intake, a quarter of the statement (docs/performance.md).
    """
    given = url.query.get("options", ())
    options = [given] if isinstance(given, str) else list(given)
    return sqlalchemy.create_engine(
        url.difference_update_query(["options"]),
        connect_args={"options": " ".join([*options, "-c jit=off"])},
        pool_recycle=POSTGRES_POOL_RECYCLE_SECONDS,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
    )


def bulk_insert(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.TableClause,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Insert many rows (values in ``columns`` order) in the caller's transaction without
    SQLAlchemy's per-row work (a roster brings a million): PostgreSQL's COPY, SQLite's
    executemany. Values must be ints, strings, booleans, dates, aware datetimes or None;
    on SQLite dates and times are stored as SQLAlchemy stores them (ISO text, times in
    naive UTC)."""
    names = ", ".join(f'"{name}"' for name in columns)
    if connection.dialect.name == "postgresql":
        driver: Any = connection.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    kinds = [table.c[name].type for name in columns]
    times = [
        index
        for index, kind in enumerate(kinds)
        if isinstance(kind, sqlalchemy.Date | sqlalchemy.DateTime)
    ]
    if times:
        rows = (_sqlite_times(row, times) for row in rows)
    marks = ", ".join("?" for _ in columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:  # the driver's own executemany takes the rows as they come, not as a list
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)
    finally:
        cursor.close()


def copy_to_temporary(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> str:
    """PostgreSQL: ``rows`` (values in ``columns`` order, as :func:`bulk_insert` takes
    them) copied into the connection's temporary table ``<table>_in``, of ``columns`` as
    ``table`` types them, emptied first and at each commit; answers its name.

    Then one ``INSERT INTO table ... SELECT ... FROM <table>_in ... ON CONFLICT ...``
    inserts them, answering what it inserted, with no placeholder a row: psycopg converts
    a statement of thousands of placeholders anew at every call, and an array a column
    (``unnest``) cost ten times COPY's CPU to bind (docs/performance.md)."""
    name = temporary_of(table)
    names = ", ".join(f'"{column}"' for column in columns)
    connection.exec_driver_sql(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" ON COMMIT DELETE ROWS AS '
        f'SELECT {names} FROM "{table.name}" WITH NO DATA; DELETE FROM "{name}"'
    )
    bulk_insert(connection, sqlalchemy.table(name), columns, rows)
    return name


def temporary_of(table: sqlalchemy.Table) -> str:
    """The name of ``table``'s temporary copy (:func:`copy_to_temporary`)."""
    return f"{table.name}_in"


def is_one_of(
    connection: sqlalchemy.Connection, column: sqlalchemy.ColumnElement[Any], values: Iterable[Any]
) -> sqlalchemy.ColumnElement[bool]:
    """``column IN values``, for the connection's dialect. On PostgreSQL, ``= ANY`` of an
    array bound as one value: an ``IN`` of a few thousand keys is as many placeholders,
    which psycopg converts anew at every call (a seventh of the intake's time on
    PostgreSQL, docs/performance.md). SQLite reads its placeholders in C: ``IN``."""
    if connection.dialect.name == "postgresql":
        return column == sqlalchemy.any_(
            sqlalchemy.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        )
    return column.in_(list(values))


def analyze(connection: sqlalchemy.Connection, table: sqlalchemy.Table) -> None:
    """Refresh PostgreSQL's statistics of ``table`` after a bulk write, in the caller's
    transaction (its own rows count), so that the statements that follow are planned for
    the rows now there: statistics from when the table was empty make a lookup of a few
    hundred keys read the whole table. (SQLite plans without statistics: nothing to do.)"""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f'ANALYZE "{table.name}"')


def _sqlite_times(row: Sequence[Any], positions: list[int]) -> list[Any]:
    values = list(row)
    for position in positions:
        value = values[position]
        if isinstance(value, datetime):
            values[position] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        elif value is not None:
            values[position] = value.isoformat()
    return values

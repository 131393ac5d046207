"""The engines that services get from ``doudi.common.db``, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from doudi.common.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_CACHE_MIB,
    create_engine_for,
    write_transaction,
)

metadata = MetaData()
households = Table(
    "household",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False),
)
members = Table(
    "member",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("household_id", ForeignKey("household.id"), nullable=False),
    Column("name", String(50), nullable=False),
)
counters = Table(
    "counter",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", Integer, nullable=False),
)

WAIT_SECONDS = 10.0


@pytest.fixture
def engine(database_url: str) -> Iterator[sqlalchemy.Engine]:
    engine = create_engine_for(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT_SECONDS:.0f} s for {what}")
        time.sleep(0.02)


# Both backends


def test_rows_committed_in_one_connection_are_read_back_in_another(
    engine: sqlalchemy.Engine,
) -> None:
    with engine.begin() as connection:
        connection.execute(
            households.insert(), [{"id": 1, "name": "王家"}, {"id": 2, "name": "李家"}]
        )
        connection.execute(members.insert().values(id=10, household_id=2, name="李明"))

    with engine.connect() as connection:
        rows = connection.execute(
            select(households.c.name, members.c.name)
            .join(members, members.c.household_id == households.c.id)
            .order_by(members.c.id)
        ).all()
        count = connection.execute(select(sqlalchemy.func.count()).select_from(households))

        assert [tuple(row) for row in rows] == [("李家", "李明")]
        assert count.scalar_one() == 2


def test_an_orphan_row_is_refused_and_its_whole_transaction_rolled_back(
    engine: sqlalchemy.Engine,
) -> None:
    def add_household_with_a_member_of_a_missing_household() -> None:
        with engine.begin() as connection:
            connection.execute(households.insert().values(id=1, name="王家"))
            connection.execute(members.insert().values(id=10, household_id=999, name="无户"))

    with pytest.raises(IntegrityError):
        add_household_with_a_member_of_a_missing_household()

    with engine.connect() as connection:
        assert connection.execute(select(households.c.id)).all() == []
        assert connection.execute(select(members.c.id)).all() == []


def test_an_unsupported_database_url_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        create_engine_for("mysql://doudi@localhost/doudi")


# SQLite


def test_every_sqlite_connection_gets_wal_busy_timeout_foreign_keys_normal_sync_and_cache(
    sqlite_url: str,
) -> None:
    engine = create_engine_for(sqlite_url)
    try:
        # Two connections open at once: both are new, so each ran the connect hook.
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                pragma = connection.exec_driver_sql
                assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
                assert pragma("PRAGMA busy_timeout").scalar_one() == SQLITE_BUSY_TIMEOUT_MS
                assert pragma("PRAGMA foreign_keys").scalar_one() == 1
                assert pragma("PRAGMA synchronous").scalar_one() == 1  # NORMAL
                assert pragma("PRAGMA cache_size").scalar_one() == -SQLITE_CACHE_MIB * 1024
    finally:
        engine.dispose()


def test_sqlite_writer_commits_while_a_reader_keeps_its_snapshot(sqlite_url: str) -> None:
    """WAL: an open read transaction neither blocks a commit nor sees it until it ends.

    With SQLite's default rollback journal the COMMIT would wait for the
    reader's lock for the whole busy timeout, then fail "database is locked".
    """
    engine = create_engine_for(sqlite_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(households.insert().values(id=1, name="王家"))
        read_ids = select(households.c.id).order_by(households.c.id)

        with engine.connect() as reader:
            read = reader.begin()
            assert reader.execute(read_ids).scalars().all() == [1]

            started = time.monotonic()
            with write_transaction(engine) as writer:
                writer.execute(households.insert().values(id=2, name="李家"))
            assert time.monotonic() - started < 1.0

            assert reader.execute(read_ids).scalars().all() == [1]
            read.commit()
            assert reader.execute(read_ids).scalars().all() == [1, 2]
    finally:
        engine.dispose()


def test_sqlite_writers_of_every_thread_write_through_one_connection(sqlite_url: str) -> None:
    """SQLite empties a connection's page cache when another connection has written: the
    writers of a process share one connection, whichever thread they run in and while
    other connections read, and what they write is read everywhere."""
    engine = create_engine_for(sqlite_url)
    try:
        metadata.create_all(engine)
        writers: list[int] = []

        def write(household: int) -> None:
            with write_transaction(engine) as connection:
                connection.execute(households.insert().values(id=household, name="王家"))
                writers.append(id(connection.connection.driver_connection))

        with engine.connect() as one, engine.connect() as other:  # the pool keeps both
            readers = {id(each.connection.driver_connection) for each in (one, other)}
        for household in range(1, 5):
            thread = threading.Thread(target=write, args=(household,))
            thread.start()
            thread.join()
            with engine.connect() as reader:
                read = reader.execute(select(households.c.id)).scalars().all()
                assert read == list(range(1, household + 1))
        assert len(writers) == 4
        assert len(set(writers)) == 1
        assert not readers & set(writers)
    finally:
        engine.dispose()


def test_a_sqlite_database_in_memory_reads_what_its_writer_wrote() -> None:
    engine = create_engine_for("sqlite:///:memory:")
    try:
        metadata.create_all(engine)
        with write_transaction(engine) as connection:
            connection.execute(households.insert().values(id=1, name="王家"))
        with engine.connect() as connection:
            assert connection.execute(select(households.c.name)).scalars().all() == ["王家"]
    finally:
        engine.dispose()


def test_a_missing_directory_for_a_sqlite_file_is_created(tmp_path: Path) -> None:
    database = tmp_path / "var" / "settlement" / "doudi.db"
    engine = create_engine_for(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert database.is_file()
    finally:
        engine.dispose()


# PostgreSQL


@pytest.mark.postgres
def test_postgres_server_is_version_13_or_newer(postgres_url: str) -> None:
    engine = create_engine_for(postgres_url)
    try:
        with engine.connect() as connection:
            version = int(connection.exec_driver_sql("SHOW server_version_num").scalar_one())
        assert version >= 130000, f"PostgreSQL 13 or newer is needed, the server is {version}"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_sessions_run_without_jit_and_keep_the_options_of_the_url(
    postgres_url: str,
) -> None:
    url = make_url(postgres_url).update_query_dict({"options": "-c lock_timeout=7s"})
    engine = create_engine_for(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW jit").scalar_one() == "off"
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "7s"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_select_for_update_makes_a_second_increment_wait_instead_of_losing_one(
    postgres_url: str,
) -> None:
    engine = create_engine_for(postgres_url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(counters.insert().values(id=1, value=0))
    locked_row = select(counters.c.value).where(counters.c.id == 1).with_for_update()

    second_pid: list[int] = []
    second_read: list[int] = []
    errors: list[BaseException] = []

    def second_increment() -> None:
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
                second_pid.append(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
                value = connection.execute(locked_row).scalar_one()
                second_read.append(value)
                connection.execute(counters.update().values(value=value + 1))
        except BaseException as error:
            errors.append(error)

    try:
        with engine.connect() as first, engine.connect() as monitor:
            first_tx = first.begin()
            first_pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()
            first_read = first.execute(locked_row).scalar_one()
            thread = threading.Thread(target=second_increment, daemon=True)
            thread.start()

            def second_waits_for_first() -> bool:
                if errors:
                    raise errors[0]
                if not second_pid:
                    return False
                blockers = monitor.execute(
                    text("SELECT pg_blocking_pids(:pid)"), {"pid": second_pid[0]}
                ).scalar_one()
                return first_pid in blockers

            wait_until(second_waits_for_first, "the second transaction to wait for the row lock")
            assert second_read == []  # still waiting: it has not read the row

            first.execute(counters.update().values(value=first_read + 1))
            first_tx.commit()

        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
        if errors:
            raise errors[0]
        with engine.connect() as connection:
            final = connection.execute(select(counters.c.value)).scalar_one()

        assert (first_read, second_read, final) == (0, [1], 2)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_after_the_server_closes_pooled_connections_one_call_fails_and_the_next_reconnects(
    postgres_url: str,
) -> None:
    """No ping at checkout: the first statement on a dead connection fails as a disconnect
    (the gRPC services answer that call UNAVAILABLE), the pool is discarded, the next works."""
    engine = create_engine_for(postgres_url)
    # AUTOCOMMIT: a transaction would see pg_stat_activity as of its first read.
    admin = sqlalchemy.create_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            pooled_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # Back in the pool; now the server ends it, as a restart or failover would.
        with admin.connect() as connection:
            assert connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled_pid}
            ).scalar_one()

            def backend_gone() -> bool:
                still_there: int = connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pooled_pid},
                ).scalar_one()
                return still_there == 0

            wait_until(backend_gone, f"backend {pooled_pid} to exit")

        with pytest.raises(sqlalchemy.exc.DBAPIError) as failed, engine.connect() as connection:
            connection.execute(text("SELECT pg_backend_pid()"))
        assert failed.value.connection_invalidated

        with engine.connect() as connection:
            new_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

        assert new_pid != pooled_pid
    finally:
        admin.dispose()
        engine.dispose()

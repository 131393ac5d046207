"""Assistance started after persons and statuses were on record: enrollment's migration
0004 and the hub's 0007 queue every one of them for it, with the version the senders
would send, so that the retry loops fill the new copy (issue 18, items 1 and 2)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy
from alembic import command

from doudi.common.db import create_engine_for
from doudi.common.migrations import config
from services.datashare.server import SPEC as DATASHARE
from services.datashare.tables import status_assertions, status_deliveries
from services.enrollment.server import SPEC as ENROLLMENT
from services.enrollment.tables import coverage_deliveries, enrolments, persons
from tests.support import with_check_digit

ONE = with_check_digit("41132319800101001")
TWO = with_check_digit("41132319800101002")


def queued(url: str, table: sqlalchemy.Table, subscriber: str) -> dict[str, int]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return {
                row.person_id: row.version
                for row in connection.execute(
                    sqlalchemy.select(table.c.person_id, table.c.version).where(
                        table.c.subscriber == subscriber
                    )
                )
            }
    finally:
        engine.dispose()


def insert(url: str, table: sqlalchemy.Table, rows: list[dict[str, object]]) -> None:
    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.insert(table), rows)
    finally:
        engine.dispose()


def on_record(database_url: str) -> None:
    """ONE and TWO registered, ONE enrolled in 2025 and 2026 (the rows as inserted
    before the migration under test)."""
    now = datetime.now(UTC)
    insert(
        database_url,
        persons,
        [
            {
                "person_id": number,
                "name": "张三",
                "household_id": "H-1",
                "region": "411323",
                "birth_date": date(1980, 1, 1),
                "sex": "male",
                "created_at": now,
            }
            for number in (ONE, TWO)
        ],
    )
    insert(
        database_url,
        enrolments,
        [
            {
                "person_id": ONE,
                "year": year,
                "scheme": "resident",
                "premium_fen": 40000,
                "premium_payer": "person",
                "created_at": now,
            }
            for year in (2025, 2026)
        ],
    )


def test_enrollments_migration_queues_every_registered_person_for_assistance(
    database_url: str,
) -> None:
    cfg = config(database_url, ENROLLMENT.migrations)
    command.upgrade(cfg, "0003")
    on_record(database_url)
    assert queued(database_url, coverage_deliveries, "assistance") == {}

    command.upgrade(cfg, "head")

    # The version counts the person's records (1 + enrolments), as the sender's.
    assert queued(database_url, coverage_deliveries, "assistance") == {ONE: 3, TWO: 1}
    command.downgrade(cfg, "0003")
    assert queued(database_url, coverage_deliveries, "assistance") == {}


def test_the_hubs_migration_queues_every_person_with_a_status_record_for_assistance(
    database_url: str,
) -> None:
    cfg = config(database_url, DATASHARE.migrations)
    command.upgrade(cfg, "0006")
    now = datetime.now(UTC)
    insert(
        database_url,
        status_assertions,
        [
            {
                "kind": kind,
                "person_id": number,
                "status": "dibao",
                "agency": "civil_affairs",
                "valid_from": date(2026, 1, 1),
                "reference": f"r-{index}",
                "recorded_at": now,
            }
            for index, (kind, number) in enumerate(
                [("assert", ONE), ("assert", TWO), ("revoke", ONE)]
            )
        ],
    )
    assert queued(database_url, status_deliveries, "assistance") == {}

    command.upgrade(cfg, "head")

    # The version is the person's latest record, as the sender's.
    assert queued(database_url, status_deliveries, "assistance") == latest_records(database_url)
    command.downgrade(cfg, "0006")
    assert queued(database_url, status_deliveries, "assistance") == {}


def latest_records(url: str) -> dict[str, int]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            records = status_assertions.c
            query = sqlalchemy.select(
                records.person_id, sqlalchemy.func.max(records.assertion_id)
            ).group_by(records.person_id)
            return {person: int(latest) for person, latest in connection.execute(query)}
    finally:
        engine.dispose()

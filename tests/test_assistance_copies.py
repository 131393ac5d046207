"""The copies assistance keeps of persons (from enrollment) and statuses (from the hub),
and what it reads from them: a household's burden is its members' together, and the
statuses a person held in a year come with their burden (issue 18, items 1 and 2).

The assistance service runs as a real process on each backend, called as enrollment and
the hub call it, with the platform's token.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.common.db import create_engine_for, read_connection, write_transaction
from doudi.common.migrations import upgrade
from doudi.core.statuses import EffectivePeriod
from services.assistance import people
from services.assistance.server import SPEC
from tests.services import INTERNAL, bearer, running_service
from tests.support import with_check_digit
from tests.test_assistance_intake import LI, ZHANG, pharmacy, record, refusal, stay
from tests.test_datashare_service import day

WANG = with_check_digit("41132319880101003")  # Zhang's household, no visit
ZHAO = with_check_digit("41132319700202004")  # another household


@pytest.fixture
def assistance(tmp_path: Path, database_url: str) -> Iterator[AssistanceServiceStub]:
    with running_service("assistance", tmp_path, database_url=database_url) as running:
        yield AssistanceServiceStub(running.channel())
    assert ZHANG not in running.log(), "the service logged a full identity number"


def person(person_id: str, household: str, *, version: int = 1, name: str = "张三") -> Any:
    return pb.InsuredPerson(
        person_id=person_id,
        version=version,
        name=name,
        household_id=household,
        region="411323",
        years=[2025, 2026],
    )


def send_persons(stub: AssistanceServiceStub, *persons: Any) -> list[int]:
    answer = stub.RecordPersons(pb.RecordPersonsRequest(persons=persons), metadata=INTERNAL)
    return list(answer.versions)


def held(person_id: str, version: int, *periods: Any) -> Any:
    return pb.PersonStatuses(person_id=person_id, version=version, periods=periods)


def period(status: int, start: str, end: str | None = None) -> Any:
    found = pb.StatusPeriod(status=status, valid_from=day(start), agency=pb.AGENCY_POVERTY_OFFICE)
    if end is not None:
        found.valid_to.CopyFrom(day(end))
    return found


def send_statuses(stub: AssistanceServiceStub, *persons: Any) -> list[int]:
    answer = stub.RecordPersonStatuses(
        pb.RecordPersonStatusesRequest(persons=persons), metadata=INTERNAL
    )
    return list(answer.versions)


def year_of(stub: AssistanceServiceStub, person_id: str, year: int = 2026) -> Any:
    return stub.GetBurden(pb.GetBurdenRequest(person_id=person_id, year=year), metadata=INTERNAL)


def test_a_households_burden_is_its_members_together(assistance: AssistanceServiceStub) -> None:
    assert send_persons(
        assistance,
        person(ZHANG, "H-1"),
        person(WANG, "H-1", name="王五"),
        person(LI, "H-1", name="李四"),
        person(ZHAO, "H-2", name="赵六"),
    ) == [1, 1, 1, 1]
    record(assistance, stay(1, "s-1"), pharmacy(2, "s-2"), stay(3, "s-3", person=LI))
    record(assistance, stay(4, "s-4", person=ZHAO))
    found = year_of(assistance, WANG)
    # Zhang 12,300 (in scope 7,000), Li 12,000 (7,000), Wang nothing; Zhao is elsewhere.
    assert found.household_id == "H-1"
    assert found.household_burden_fen == 1_230_000 + 1_200_000
    assert found.household_eligible_burden_fen == 700_000 + 700_000
    assert [(m.person_id, m.name, m.personal_burden_fen) for m in found.members] == sorted(
        [(ZHANG, "张三", 1_230_000), (WANG, "王五", 0), (LI, "李四", 1_200_000)]
    )
    assert found.burden.personal_burden_fen == 0
    # Another year: the household, nobody's burden.
    assert year_of(assistance, ZHANG, 2025).household_burden_fen == 0


def test_a_person_enrollment_has_not_sent_is_a_household_alone(
    assistance: AssistanceServiceStub,
) -> None:
    record(assistance, stay(1, "s-1"))
    found = year_of(assistance, ZHANG)
    assert (found.household_id, found.household_burden_fen) == ("", 1_200_000)
    assert [m.person_id for m in found.members] == [ZHANG]


def test_a_move_to_another_household_counts_from_its_version(
    assistance: AssistanceServiceStub,
) -> None:
    send_persons(assistance, person(ZHANG, "H-1", version=2), person(LI, "H-1", version=1))
    record(assistance, stay(1, "s-1", person=LI))
    # An older version of Zhang (a crossed send) changes nothing; a newer one moves him.
    assert send_persons(assistance, person(ZHANG, "H-9", version=1)) == [2]
    assert year_of(assistance, ZHANG).household_burden_fen == 1_200_000
    assert send_persons(assistance, person(ZHANG, "H-9", version=3)) == [3]
    found = year_of(assistance, ZHANG)
    assert (found.household_id, found.household_burden_fen) == ("H-9", 0)


def test_the_statuses_held_in_the_year_come_with_the_burden(
    assistance: AssistanceServiceStub,
) -> None:
    assert send_statuses(
        assistance,
        held(
            ZHANG,
            5,
            period(pb.STATUS_REGISTERED_POOR, "2019-01-01", "2025-12-31"),
            period(pb.STATUS_POVERTY_EXITED, "2026-01-01"),
        ),
    ) == [5]
    assert [s.status for s in year_of(assistance, ZHANG).statuses] == [pb.STATUS_POVERTY_EXITED]
    assert len(year_of(assistance, ZHANG, 2025).statuses) == 1
    # An older version changes nothing; a newer one replaces every period.
    assert send_statuses(assistance, held(ZHANG, 4)) == [5]
    assert len(year_of(assistance, ZHANG).statuses) == 1
    assert send_statuses(assistance, held(ZHANG, 6)) == [6]
    assert list(year_of(assistance, ZHANG).statuses) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: setattr(p, "person_id", "411323"), "persons[1].person_id"),
        (lambda p: setattr(p, "version", 0), "persons[1].version"),
        (lambda p: setattr(p, "name", " "), "persons[1].name"),
        (lambda p: setattr(p, "name", "王\u200b五"), "persons[1].name"),
        (lambda p: setattr(p, "household_id", "H" * 65), "persons[1].household_id"),
        (lambda p: setattr(p, "region", ""), "persons[1].region"),
        (lambda p: p.years.append(1800), "persons[1].years[2]"),
    ],
)
def test_a_malformed_person_refuses_the_batch(
    assistance: AssistanceServiceStub, change: Any, field: str
) -> None:
    bad = person(WANG, "H-1")
    change(bad)
    error = refusal(lambda: send_persons(assistance, person(ZHANG, "H-1"), bad))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == [field]
    assert year_of(assistance, ZHANG).household_id == ""


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (period(0, "2026-01-01"), "persons[0].periods[0].status"),
        (period(pb.STATUS_DIBAO, "2026-03-01", "2026-02-01"), "persons[0].periods[0].valid_to"),
        (pb.StatusPeriod(status=pb.STATUS_DIBAO, agency=1), "persons[0].periods[0].valid_from"),
        (
            pb.StatusPeriod(status=pb.STATUS_DIBAO, valid_from=day("2026-01-01")),
            "persons[0].periods[0].agency",
        ),
    ],
)
def test_a_malformed_status_period_refuses_the_batch(
    assistance: AssistanceServiceStub, bad: Any, field: str
) -> None:
    error = refusal(lambda: send_statuses(assistance, held(ZHANG, 1, bad)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == [field]
    assert list(year_of(assistance, ZHANG).statuses) == []


def test_only_the_platform_may_send_copies(assistance: AssistanceServiceStub) -> None:
    for call in (
        lambda: assistance.RecordPersons(
            pb.RecordPersonsRequest(persons=[person(ZHANG, "H-1")]),
            metadata=bearer("demo-civil-affairs"),
        ),
        lambda: assistance.RecordPersonStatuses(
            pb.RecordPersonStatusesRequest(persons=[held(ZHANG, 1)])
        ),
    ):
        assert refusal(call).code == grpc.StatusCode.UNAUTHENTICATED
    assert year_of(assistance, ZHANG).household_id == ""


def test_a_regions_statuses_are_read_a_chunk_at_a_time(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region of 100,000 persons asked its statuses in one statement failed on
    PostgreSQL (65,535 bound values at most): they are read in chunks, every one found."""
    upgrade(database_url, SPEC.migrations)
    engine = create_engine_for(database_url)
    held = [with_check_digit(f"41132319900101{index:03d}") for index in range(5)]
    periods = (EffectivePeriod("dibao", date(2026, 1, 1), None, "civil_affairs"),)
    try:
        with write_transaction(engine) as connection:
            people.record_statuses(
                connection=connection,
                persons=[people.HeldStatuses(person, 1, periods) for person in held],
                now=datetime.now(UTC),
            )
        monkeypatch.setattr(people, "CHUNK", 2)
        with read_connection(engine) as connection:
            found = people.status_periods(connection, [*held, ZHANG])
        assert found == dict.fromkeys(held, periods)
    finally:
        engine.dispose()

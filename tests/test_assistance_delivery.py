"""Enrollment and the datashare hub send assistance its copies: persons with their
households (``RecordPersons``) and status periods (``RecordPersonStatuses``), one by one
and a roster's at a time, before they answer or, when assistance is down, once it is back
(issue 18, items 1 and 2). The whole platform runs, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from tests.platform import Platform, module_platforms, running_platform
from tests.services import INTERNAL, bearer, start_service, stop_service
from tests.support import with_check_digit
from tests.test_settlement_flow import YEAR, submit_poverty_roster, taishan_persons
from tests.test_subsidised_enrolment import compare, enrol_gap, submit


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with module_platforms(tmp_path_factory, "copies", running_platform) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


def xixia(serial: int) -> str:
    """A Xixia resident's number of this test module (and pytest worker) alone."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    return with_check_digit(f"41132319{60 + worker:02d}0101{serial:03d}")


def register(platform: Platform, number: str, household: str, name: str) -> None:
    enrollment = enrollment_pb2_grpc.EnrollmentServiceStub(
        platform.services["enrollment"].channel()
    )
    enrollment.CreatePerson(
        enrollment_pb2.CreatePersonRequest(
            person=enrollment_pb2.Person(
                person_id=number, name=name, household_id=household, region="411323"
            )
        ),
        metadata=INTERNAL,
    )
    enrollment.CreateEnrolment(
        enrollment_pb2.CreateEnrolmentRequest(
            enrolment=enrollment_pb2.Enrolment(
                person_id=number,
                year=YEAR,
                scheme=enrollment_pb2.SCHEME_RESIDENT,
                premium_fen=40000,
                premium_payer=enrollment_pb2.PREMIUM_PAYER_PERSON,
            )
        ),
        metadata=INTERNAL,
    )


def certify(
    platform: Platform, number: str, household: str, status: datashare_pb2.Status.ValueType
) -> None:
    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    hub.AssertStatus(
        datashare_pb2.AssertStatusRequest(
            person_id=number,
            household_id=household,
            status=status,
            valid_from=from_date(date(YEAR, 3, 1)),
            reference=f"copies-{number}-{status}",
        ),
        metadata=bearer("demo-civil-affairs"),
    )


def year_of(platform: Platform, number: str) -> Any:
    stub = assistance_pb2_grpc.AssistanceServiceStub(platform.services["assistance"].channel())
    return stub.GetBurden(
        assistance_pb2.GetBurdenRequest(person_id=number, year=YEAR), metadata=INTERNAL
    )


def statuses(answer: Any) -> list[tuple[int, date, int]]:
    return [
        (
            period.status,
            date(period.valid_from.year, period.valid_from.month, period.valid_from.day),
            period.agency,
        )
        for period in answer.statuses
    ]


def eventually(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_registered_households_and_certified_statuses_reach_assistance_before_the_answer(
    platform: Platform,
) -> None:
    head, spouse, other = xixia(1), xixia(2), xixia(3)
    register(platform, head, "H-copies-1", "张三")
    register(platform, spouse, "H-copies-1", "王五")
    register(platform, other, "H-copies-2", "赵六")
    certify(platform, spouse, "H-copies-1", datashare_pb2.STATUS_DIBAO)

    answer = year_of(platform, head)  # no waiting: sent before enrollment answered
    assert answer.household_id == "H-copies-1"
    assert [(m.person_id, m.name) for m in answer.members] == sorted(
        [(head, "张三"), (spouse, "王五")]
    )
    assert statuses(answer) == []
    assert statuses(year_of(platform, spouse)) == [
        (assistance_pb2.STATUS_DIBAO, date(YEAR, 3, 1), assistance_pb2.AGENCY_CIVIL_AFFAIRS)
    ]
    assert year_of(platform, other).household_id == "H-copies-2"


def test_a_rosters_statuses_reach_assistance(platform: Platform) -> None:
    persons = taishan_persons(3, born=1930)
    answer = submit_poverty_roster(platform, persons)
    assert answer.submission.state == datashare_pb2.ROSTER_STATE_CURRENT

    for person in persons:
        assert statuses(year_of(platform, person)) == [
            (
                assistance_pb2.STATUS_REGISTERED_POOR,
                date(YEAR, 1, 1),
                assistance_pb2.AGENCY_POVERTY_OFFICE,
            )
        ]


def test_persons_a_subsidised_enrolment_registers_reach_assistance_with_their_households(
    platform: Platform,
) -> None:
    persons = taishan_persons(2, born=1933)
    submit(
        platform,
        "440781",
        bearer("demo-civil-affairs"),
        [(person, "次仁", datashare_pb2.STATUS_DIBAO) for person in persons],
    )
    assert year_of(platform, persons[0]).household_id == ""  # not registered yet

    enrolled = enrol_gap(platform, compare(platform, "440781"))

    assert enrolled.registered_count == len(persons)
    for line, person in enumerate(persons, start=2):  # the roster's households
        answer = year_of(platform, person)
        assert answer.household_id == f"H-{line}"
        assert [m.name for m in answer.members] == ["次仁"]


def test_what_is_written_while_assistance_is_down_arrives_once_it_is_back(
    platform: Platform,
) -> None:
    service = platform.services["assistance"]
    assert stop_service(service) == 0
    person = xixia(10)
    register(platform, person, "H-copies-10", "钱七")  # both answer all the same
    certify(platform, person, "H-copies-10", datashare_pb2.STATUS_LOW_INCOME)
    roster = taishan_persons(2, born=1931)
    submit_poverty_roster(platform, roster)

    platform.services["assistance"] = start_service(
        "assistance",
        platform.directory,
        database_url=service.env.get("DOUDI_DATABASE_URL"),
        env={"DOUDI_PORT": str(service.port)},  # where enrollment and the hub send
    )
    # The retry loops send what they could not (every 2 s by default).
    eventually(
        lambda: (
            year_of(platform, person).household_id == "H-copies-10"
            and len(year_of(platform, person).statuses) == 1
            and all(len(year_of(platform, p).statuses) == 1 for p in roster)
        ),
        "the queued persons and statuses never reached assistance",
    )
    answer = year_of(platform, person)
    assert [m.name for m in answer.members] == ["钱七"]
    assert statuses(answer) == [
        (assistance_pb2.STATUS_LOW_INCOME, date(YEAR, 3, 1), assistance_pb2.AGENCY_CIVIL_AFFAIRS)
    ]
    assert "not yet sent to the assistance service" in platform.services["enrollment"].log()
    assert "not yet sent to the assistance service" in platform.services["datashare"].log()

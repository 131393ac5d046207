"""The enrollment service as its callers see it: a real ``python -m services.enrollment``.

One service per backend serves the whole module (starting one takes about two
seconds), so each test registers identity numbers of its own. Region 540400
(Linzhi) belongs to the paging test alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy
from google.type import date_pb2
from sqlalchemy.pool import NullPool

from doudi.common.errors import DecodedStatus, decode_status
from doudi.enrollment.v1 import enrollment_pb2 as pb
from doudi.enrollment.v1.enrollment_pb2_grpc import EnrollmentServiceStub
from tests.conftest import new_database
from tests.services import INTERNAL, no_peers, running_service
from tests.support import with_check_digit

XIXIA = "411323"
TIANJIN = "120000"
TAISHAN = "440781"
LINZHI = "540400"  # the paging test's own


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], EnrollmentServiceStub]]:
    """The service on a backend, started when a test first asks for it and kept for the module.

    Not a parametrized module fixture: pytest-xdist hands a worker tests of
    both backends in turn, and would restart the service at every switch.
    """
    stubs: dict[str, EnrollmentServiceStub] = {}
    with contextlib.ExitStack() as stack:

        def on(backend: str) -> EnrollmentServiceStub:
            if backend not in stubs:
                directory = tmp_path_factory.mktemp(f"enrollment-{backend}")
                url = stack.enter_context(new_database(backend, directory, "enrollment"))
                service = stack.enter_context(
                    running_service("enrollment", directory, database_url=url, env=no_peers())
                )
                stubs[backend] = EnrollmentServiceStub(service.channel())
            return stubs[backend]

        yield on


@pytest.fixture
def stub(backend: str, services: Callable[[str], EnrollmentServiceStub]) -> EnrollmentServiceStub:
    return services(backend)


# Persons


def test_a_person_gets_birth_date_and_sex_from_the_identity_number(
    stub: EnrollmentServiceStub,
) -> None:
    number = with_check_digit("41132319500315001")  # 1950-03-15, 17th digit 1: odd, male
    given = pb.Person(
        person_id=number,
        name="王建国",
        household_id="xixia-h-0001",
        region=XIXIA,
        birth_date=date_pb2.Date(year=2001, month=1, day=1),  # ignored
        sex="female",  # ignored
    )

    created = stub.CreatePerson(pb.CreatePersonRequest(person=given), metadata=INTERNAL).person
    read = stub.GetPerson(pb.GetPersonRequest(person_id=number), metadata=INTERNAL).person

    assert created == read
    assert read == pb.Person(
        person_id=number,
        name="王建国",
        household_id="xixia-h-0001",
        region=XIXIA,
        birth_date=date_pb2.Date(year=1950, month=3, day=15),
        sex="male",
    )


def test_a_lower_case_x_check_character_is_stored_upper_case(stub: EnrollmentServiceStub) -> None:
    number = with_check_digit("12010419880722078")
    assert number == "12010419880722078X"

    created = create_person(stub, "12010419880722078x", region=TIANJIN)

    assert created.person_id == "12010419880722078X"
    assert created.sex == "female"  # 17th digit even
    assert get_person(stub, "12010419880722078x") == created


def test_registering_the_same_person_again_answers_the_stored_person(
    stub: EnrollmentServiceStub,
) -> None:
    number = with_check_digit("41132319610101003")
    first = create_person(stub, number, name="李秀英", household="xixia-h-0002")

    again = create_person(stub, number, name="李秀英", household="xixia-h-0002")

    assert again == first


def test_registering_a_number_again_with_other_data_is_already_exists(
    stub: EnrollmentServiceStub,
) -> None:
    number = with_check_digit("41132319610101005")
    create_person(stub, number, name="李秀英", household="xixia-h-0003")

    error = rejected(stub.CreatePerson, person_request(number, name="李秀兰"))

    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert fields(error) == ["person.person_id"]
    assert "name" in error.message
    assert get_person(stub, number).name == "李秀英"


def test_concurrent_registrations_of_one_number_never_fail_inside(
    stub: EnrollmentServiceStub,
) -> None:
    same = with_check_digit("41132319700606007")
    other = with_check_digit("41132319700606009")

    with ThreadPoolExecutor(8) as pool:
        same_data = list(pool.map(lambda _: outcome(stub, person_request(same)), range(8)))
        other_data = list(
            pool.map(lambda n: outcome(stub, person_request(other, name=f"张{n}")), range(8))
        )

    assert same_data == [grpc.StatusCode.OK] * 8
    assert sorted(code.name for code in other_data) == ["ALREADY_EXISTS"] * 7 + ["OK"]


def test_a_wrong_check_digit_is_invalid_argument_and_stores_nothing(
    stub: EnrollmentServiceStub,
) -> None:
    right = with_check_digit("41132319800808001")
    wrong = right[:17] + ("0" if right[17] != "0" else "1")
    before = count_persons(stub)

    error = rejected(stub.CreatePerson, person_request(wrong))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["person.person_id"]
    assert "check digit" in error.message
    assert count_persons(stub) == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "person.name"),
        ({"name": "   "}, "person.name"),
        ({"name": "名" * 65}, "person.name"),
        ({"household": ""}, "person.household_id"),
        ({"household": "h" * 65}, "person.household_id"),
        ({"region": ""}, "person.region"),
    ],
)
def test_name_household_and_region_are_required_and_at_most_64_characters(
    stub: EnrollmentServiceStub, change: dict[str, str], field: str
) -> None:
    error = rejected(
        stub.CreatePerson, person_request(with_check_digit("41132319800808003"), **change)
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == [field]


def test_64_characters_of_name_and_household_are_enough(stub: EnrollmentServiceStub) -> None:
    person = create_person(
        stub, with_check_digit("41132319800808005"), name="名" * 64, household="h" * 64
    )

    assert (len(person.name), len(person.household_id)) == (64, 64)


def test_a_region_without_a_policy_pack_is_invalid_argument_naming_the_known_ones(
    stub: EnrollmentServiceStub,
) -> None:
    error = rejected(
        stub.CreatePerson, person_request(with_check_digit("41132319800808007"), region="xixia")
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["person.region"]
    assert all(code in error.message for code in (TIANJIN, XIXIA, TAISHAN, LINZHI))


def test_an_unknown_person_is_not_found(stub: EnrollmentServiceStub) -> None:
    error = rejected(
        stub.GetPerson, pb.GetPersonRequest(person_id=with_check_digit("41132319990101001"))
    )

    assert error.code == grpc.StatusCode.NOT_FOUND
    assert fields(error) == ["person_id"]


def test_get_person_validates_the_identity_number(stub: EnrollmentServiceStub) -> None:
    error = rejected(stub.GetPerson, pb.GetPersonRequest(person_id="41132319500315"))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["person_id"]


def test_persons_are_listed_a_page_at_a_time_in_number_order_within_a_region(
    stub: EnrollmentServiceStub,
) -> None:
    linzhi = sorted(with_check_digit(f"5404021985010100{n}") for n in range(5))
    for number in reversed(linzhi):
        create_person(stub, number, region=LINZHI)
    create_person(stub, with_check_digit("41132319850101001"), region=XIXIA)

    pages = []
    token = ""
    while True:
        page = stub.ListPersons(
            pb.ListPersonsRequest(region=LINZHI, page_size=2, page_token=token), metadata=INTERNAL
        )
        pages.append([person.person_id for person in page.persons])
        token = page.next_page_token
        if not token:
            break

    assert pages == [linzhi[0:2], linzhi[2:4], linzhi[4:5]]


def test_a_page_token_the_service_did_not_make_is_invalid_argument(
    stub: EnrollmentServiceStub,
) -> None:
    for token in ("not-a-token", "WzFd"):  # WzFd is [1]: a keyset of the wrong type
        error = rejected(stub.ListPersons, pb.ListPersonsRequest(page_token=token))

        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert fields(error) == ["page_token"]


# Enrolments


def test_an_enrolment_is_stored_once_per_person_and_year(stub: EnrollmentServiceStub) -> None:
    number = create_person(stub, with_check_digit("12010419700303002"), region=TIANJIN).person_id
    mid_tier = pb.Enrolment(
        person_id=number,
        year=2017,
        scheme=pb.SCHEME_RESIDENT,
        tier=pb.TIER_ADULT_MID,
        premium_fen=35000,
        premium_payer=pb.PREMIUM_PAYER_ASSISTANCE_FUND,
    )

    created = create_enrolment(stub, mid_tier)
    again = create_enrolment(stub, mid_tier)
    other = pb.Enrolment()
    other.CopyFrom(mid_tier)
    other.premium_fen = 12000
    error = rejected(stub.CreateEnrolment, pb.CreateEnrolmentRequest(enrolment=other))
    read = stub.GetEnrolment(
        pb.GetEnrolmentRequest(person_id=number, year=2017), metadata=INTERNAL
    ).enrolment

    assert created == again == read == mid_tier
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert fields(error) == ["enrolment.person_id"]
    assert "premium_fen" in error.message


def test_an_employee_needs_an_employment(stub: EnrollmentServiceStub) -> None:
    number = create_person(stub, with_check_digit("44078119750505001"), region=TAISHAN).person_id

    error = rejected(
        stub.CreateEnrolment,
        pb.CreateEnrolmentRequest(
            enrolment=pb.Enrolment(
                person_id=number,
                year=2022,
                scheme=pb.SCHEME_EMPLOYEE,
                premium_fen=0,
                premium_payer=pb.PREMIUM_PAYER_EMPLOYER,
            )
        ),
    )

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["enrolment.employment"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"premium_fen": -1}, "enrolment.premium_fen"),
        ({"year": 1989}, "enrolment.year"),
        ({"year": 2101}, "enrolment.year"),
        ({"scheme": pb.SCHEME_UNSPECIFIED}, "enrolment.scheme"),
        ({"premium_payer": pb.PREMIUM_PAYER_UNSPECIFIED}, "enrolment.premium_payer"),
        ({"person_id": "441323"}, "enrolment.person_id"),
    ],
)
def test_an_enrolment_breaking_a_rule_is_invalid_argument_on_that_field(
    stub: EnrollmentServiceStub, change: dict[str, Any], field: str
) -> None:
    number = create_person(stub, with_check_digit("44078119750505003"), region=TAISHAN).person_id
    enrolment = resident_enrolment(number, 2022)
    for name, value in change.items():
        setattr(enrolment, name, value)

    error = rejected(stub.CreateEnrolment, pb.CreateEnrolmentRequest(enrolment=enrolment))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == [field]


def test_enrolling_an_unregistered_person_is_not_found(stub: EnrollmentServiceStub) -> None:
    number = with_check_digit("44078119750505005")

    error = rejected(
        stub.CreateEnrolment,
        pb.CreateEnrolmentRequest(enrolment=resident_enrolment(number, 2022)),
    )

    assert error.code == grpc.StatusCode.NOT_FOUND
    assert fields(error) == ["enrolment.person_id"]


# Coverage: what a settlement asks


def test_coverage_answers_the_person_and_the_enrolment_of_the_visit_year(
    stub: EnrollmentServiceStub,
) -> None:
    person = create_person(stub, with_check_digit("41132319550909001"))
    create_enrolment(stub, resident_enrolment(person.person_id, 2023, premium_fen=32000))
    create_enrolment(stub, resident_enrolment(person.person_id, 2024, premium_fen=38000))

    coverage = stub.GetCoverage(
        pb.GetCoverageRequest(
            person_id=person.person_id, date=date_pb2.Date(year=2024, month=12, day=31)
        ),
        metadata=INTERNAL,
    )

    assert coverage.person == person
    assert coverage.enrolment == resident_enrolment(person.person_id, 2024, premium_fen=38000)


def test_coverage_of_an_unregistered_person_is_person_not_found(
    stub: EnrollmentServiceStub,
) -> None:
    error = rejected(
        stub.GetCoverage,
        pb.GetCoverageRequest(
            person_id=with_check_digit("41132319550909003"),
            date=date_pb2.Date(year=2024, month=6, day=1),
        ),
    )

    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "PERSON_NOT_FOUND")
    assert fields(error) == ["person_id"]


def test_coverage_in_a_year_without_enrolment_is_not_enrolled_naming_the_year(
    stub: EnrollmentServiceStub,
) -> None:
    person = create_person(stub, with_check_digit("41132319550909005"))
    create_enrolment(stub, resident_enrolment(person.person_id, 2023))

    error = rejected(
        stub.GetCoverage,
        pb.GetCoverageRequest(
            person_id=person.person_id, date=date_pb2.Date(year=2024, month=1, day=1)
        ),
    )

    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_ENROLLED")
    assert fields(error) == ["person_id"]
    assert "2024" in error.message


# Callers


def test_a_call_without_a_token_is_unauthenticated(stub: EnrollmentServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListPersons(pb.ListPersonsRequest())

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


# Helpers


def person_request(
    number: str,
    *,
    name: str = "张伟",
    household: str = "h-0001",
    region: str = XIXIA,
) -> pb.CreatePersonRequest:
    return pb.CreatePersonRequest(
        person=pb.Person(person_id=number, name=name, household_id=household, region=region)
    )


def create_person(stub: EnrollmentServiceStub, number: str, **given: str) -> pb.Person:
    person: pb.Person = stub.CreatePerson(person_request(number, **given), metadata=INTERNAL).person
    return person


def get_person(stub: EnrollmentServiceStub, number: str) -> pb.Person:
    person: pb.Person = stub.GetPerson(
        pb.GetPersonRequest(person_id=number), metadata=INTERNAL
    ).person
    return person


def resident_enrolment(number: str, year: int, *, premium_fen: int = 38000) -> pb.Enrolment:
    return pb.Enrolment(
        person_id=number,
        year=year,
        scheme=pb.SCHEME_RESIDENT,
        premium_fen=premium_fen,
        premium_payer=pb.PREMIUM_PAYER_PERSON,
    )


def create_enrolment(stub: EnrollmentServiceStub, enrolment: pb.Enrolment) -> pb.Enrolment:
    created: pb.Enrolment = stub.CreateEnrolment(
        pb.CreateEnrolmentRequest(enrolment=enrolment), metadata=INTERNAL
    ).enrolment
    return created


def count_persons(stub: EnrollmentServiceStub) -> int:
    page = stub.ListPersons(pb.ListPersonsRequest(page_size=1000), metadata=INTERNAL)
    assert not page.next_page_token
    return len(page.persons)


def rejected(call: Callable[..., Any], request: Any) -> DecodedStatus:
    """The status of a call (as the platform) that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=INTERNAL)
    return decode_status(caught.value)


def outcome(stub: EnrollmentServiceStub, request: pb.CreatePersonRequest) -> grpc.StatusCode:
    try:
        stub.CreatePerson(request, metadata=INTERNAL)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def fields(error: DecodedStatus) -> list[str]:
    return [violation.field for violation in error.violations]


@pytest.mark.postgres
def test_a_call_that_finds_its_database_connection_lost_is_unavailable_and_the_next_works(
    tmp_path: Path, postgres_url: str
) -> None:
    """After a database restart or failover the pooled connections are dead: the first
    call answers UNAVAILABLE (callers retry), the pool is discarded, the next call works."""
    with running_service(
        "enrollment", tmp_path, database_url=postgres_url, env=no_peers()
    ) as service:
        # A channel without the platform's retry policy (which retries UNAVAILABLE itself):
        # what the service answers is seen as it is.
        channel = grpc.insecure_channel(service.address)
        stub = EnrollmentServiceStub(channel)
        request = pb.GetPersonRequest(person_id=with_check_digit("41132319700101555"))
        assert _code(stub, request) == grpc.StatusCode.NOT_FOUND  # a pooled connection exists
        admin = sqlalchemy.create_engine(
            postgres_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        with admin.connect() as connection:
            connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        admin.dispose()

        assert _code(stub, request) == grpc.StatusCode.UNAVAILABLE
        assert _code(stub, request) == grpc.StatusCode.NOT_FOUND
        channel.close()


def _code(stub: EnrollmentServiceStub, request: pb.GetPersonRequest) -> grpc.StatusCode:
    try:
        stub.GetPerson(request, metadata=INTERNAL)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK

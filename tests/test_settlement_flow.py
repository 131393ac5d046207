"""One settlement at the window, end to end: the real platform, through the gateway.

Each backend's platform (four services and the gateway, subprocesses) starts
when a test first needs it and serves the whole module, loaded with the demo
data (the level-2 Xixia hospital whose key is ``demo-xixia-2``). Every test
registers persons of its own.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy

from doudi.cli import demo
from doudi.common.errors import decode_status
from doudi.common.protos import from_date
from doudi.common.roster_stream import ended
from doudi.core.identity import resident_id_number
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.settlement.tables import ledgers, person_coverage, person_statuses
from tests.outpatient import CERTIFIED_DIAGNOSIS, certify_chronic
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, bearer, start_service, stop_service
from tests.support import business_day, with_check_digit

YEAR = business_day().year
HOSPITAL_KEY = demo.HOSPITALS[0].api_key  # level 2, Xixia
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    """The platform on a backend, started when a test first asks for it, kept for the module."""
    with demo_platforms(tmp_path_factory, "platform", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    return platforms(backend)


# --- helpers ----------------------------------------------------------------------------


def new_person(platform: Platform, *, registered_poor: bool = False) -> str:
    """A Xixia resident enrolled this year, of this test alone."""
    number = person_number()
    register_person(platform, number)
    enrol(platform, number)
    if registered_poor:
        assert_registered_poor(platform, number)
    known_to_settlement(platform, number, with_statuses=registered_poor)
    return number


def certified(platform: Platform, *persons: str) -> None:
    """Give the persons a chronic certificate for hypertension valid all year, through
    enrollment's certificate RPCs (settlement pays a chronic visit as such only for a
    diagnosis a certificate covers: give ``CERTIFIED_DIAGNOSIS``)."""
    enrollment = platform.services["enrollment"]
    certify_chronic(enrollment.channel(), enrollment.address, persons, YEAR)


def known_to_settlement(platform: Platform, number: str, *, with_statuses: bool) -> None:
    """Wait until settlement holds the person's coverage (and statuses). Enrollment and the
    hub send them before they answer, but a send that fails goes by their outboxes' retry
    (2 s) instead: right after a test restarted settlement, their channels reconnect within
    gRPC's reconnect backoff (up to a second). The tests of instant identity settle without
    this wait."""
    wanted = person_coverage.c.person_id == number
    query = sqlalchemy.select(sqlalchemy.func.count()).select_from(person_coverage).where(wanted)
    if with_statuses:
        query = query.where(sqlalchemy.exists().where(person_statuses.c.person_id == number))
    engine = service_engine(platform, "settlement")
    deadline = time.monotonic() + 20
    try:
        while True:
            with engine.connect() as connection:
                if connection.execute(query).scalar_one():
                    return
            assert time.monotonic() < deadline, "settlement never received the new person"
            time.sleep(0.05)
    finally:
        engine.dispose()


def person_number() -> str:
    """An identity number of a Xixia resident of this test alone (registered nowhere)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    serial = next(_serial)
    return with_check_digit(
        f"411323{1940 + worker:04d}{1 + serial // 28 % 12:02d}{1 + serial % 28:02d}{serial // 336 % 1000:03d}"
    )


def register_person(platform: Platform, number: str) -> None:
    """Register a Xixia resident (not yet enrolled)."""
    enrollment_stub(platform).CreatePerson(
        enrollment_pb2.CreatePersonRequest(
            person=enrollment_pb2.Person(
                person_id=number, name="测试", household_id=f"h-{number[-8:]}", region="411323"
            )
        ),
        metadata=INTERNAL,
    )


def enrol(platform: Platform, number: str) -> None:
    """Enrol a registered person in resident insurance for this year."""
    enrollment_stub(platform).CreateEnrolment(
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


def enrollment_stub(platform: Platform) -> enrollment_pb2_grpc.EnrollmentServiceStub:
    return enrollment_pb2_grpc.EnrollmentServiceStub(platform.services["enrollment"].channel())


def assert_registered_poor(platform: Platform, number: str) -> None:
    """The poverty office certifies the person registered poor from 1 January."""
    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    hub.AssertStatus(
        datashare_pb2.AssertStatusRequest(
            person_id=number,
            household_id=f"h-{number[-8:]}",
            status=datashare_pb2.STATUS_REGISTERED_POOR,
            valid_from=from_date(date(YEAR, 1, 1)),
            reference=f"test-{number}",
        ),
        metadata=bearer(demo.POVERTY_OFFICE_KEY),
    )


def stay(
    visit_id: str, discharged: str, *amounts_yuan: int, item_class: str = "A"
) -> dict[str, Any]:
    """A stay at the hospital, discharged on ``MM-DD`` of this year."""
    return {
        "id": visit_id,
        "type": "inpatient",
        "admitted": f"{YEAR}-{discharged}",
        "discharged": f"{YEAR}-{discharged}",
        "items": [
            {"code": f"X{index}", "class": item_class, "amount_fen": amount * 100}
            for index, amount in enumerate(amounts_yuan)
        ],
    }


def settle(
    client: httpx.Client, person_id: str, visit: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return client.post(
        "/v1/settlements",
        json={"person_id": person_id, "visit": visit},
        headers={"Idempotency-Key": key or f"{person_id}-{visit['id']}"},
    )


def paid(settlement: dict[str, Any]) -> dict[str, int]:
    return {layer["layer"]: layer["paid_fen"] for layer in settlement["layers"]}


def balanced(settlement: dict[str, Any]) -> bool:
    return settlement["total_fen"] == sum(paid(settlement).values()) + settlement["self_pay_fen"]


def settlement_stub(platform: Platform) -> settlement_pb2_grpc.SettlementServiceStub:
    return settlement_pb2_grpc.SettlementServiceStub(platform.services["settlement"].channel())


def stored_count(platform: Platform) -> int:
    """How many settlements the demo hospital has made today (internal read)."""
    answer = settlement_stub(platform).ListSettlements(
        settlement_pb2.ListSettlementsRequest(
            hospital_id=demo.HOSPITALS[0].hospital_id,
            start_date=from_date(business_day()),
            page_size=1000,
        ),
        metadata=INTERNAL,
    )
    return len(answer.settlements)


def settlement_engine(platform: Platform) -> sqlalchemy.Engine:
    return service_engine(platform, "settlement")


def service_engine(platform: Platform, name: str) -> sqlalchemy.Engine:
    """An engine on the service's own database."""
    url = platform.services[name].env.get("DOUDI_DATABASE_URL") or (
        f"sqlite:///{platform.directory / f'{name}.db'}"
    )
    return sqlalchemy.create_engine(url)


# --- instant identity -------------------------------------------------------------------


def test_a_status_asserted_through_datashare_applies_at_the_next_settlement(
    platform: Platform,
) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform)  # enrolled, no status yet

    before = settle(client, person, stay("s1", "03-10", 20_000))
    assert before.status_code == 201, before.text
    assert paid(before.json())["basic"] == (20_000 - 500) * 80  # level 2: 500 deductible, 80%
    assert paid(before.json())["supplementary_critical_illness"] == 0
    assert paid(before.json())["medical_assistance"] == 0

    assert_registered_poor(platform, person)  # the poverty office, nothing else

    after = settle(client, person, stay("s2", "03-20", 20_000))
    assert after.status_code == 201, after.text
    # The poverty-only layers now pay. Basic leaves 4,400 yuan. The supplementary
    # layer's yearly deductible of 3,000 counts only visits on which the person
    # was eligible, so 1,400 x 30% = 420; insurance assistance (2,000 deductible)
    # (3,980 - 2,000) x 80% = 1,584; medical assistance 2,396 x 70% = 1,677.20.
    assert paid(after.json()) == {
        "basic": 1_560_000,
        "critical_illness": 0,
        "supplementary_critical_illness": 42_000,
        "insurance_assistance": 158_400,
        "medical_assistance": 167_720,
    }
    assert after.json()["self_pay_fen"] == 71_880
    assert balanced(after.json())


def revoke_registered_poor(platform: Platform, number: str) -> None:
    """The poverty office withdraws the status from 1 January."""
    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    hub.RevokeStatus(
        datashare_pb2.RevokeStatusRequest(
            person_id=number,
            status=datashare_pb2.STATUS_REGISTERED_POOR,
            valid_from=from_date(date(YEAR, 1, 1)),
            reference=f"test-revoke-{number}",
        ),
        metadata=bearer(demo.POVERTY_OFFICE_KEY),
    )


def poverty_layers_paid(client: httpx.Client, person: str) -> bool:
    """Whether a stay previewed now gets medical assistance (a poverty-only layer)."""
    answer = client.post(
        "/v1/settlements/preview", json={"person_id": person, "visit": stay("p", "04-01", 20_000)}
    )
    assert answer.status_code == 200, answer.text
    return paid(answer.json())["medical_assistance"] > 0


def test_a_revocation_through_datashare_applies_at_the_next_settlement(
    platform: Platform,
) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    assert poverty_layers_paid(client, person)

    revoke_registered_poor(platform, person)

    after = settle(client, person, stay("after-revocation", "03-20", 20_000))
    assert after.status_code == 201, after.text
    assert paid(after.json())["medical_assistance"] == 0
    assert paid(after.json())["supplementary_critical_illness"] == 0


def test_statuses_asserted_while_settlement_is_down_apply_once_it_is_back(
    platform: Platform,
) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform)
    service = platform.services["settlement"]
    assert stop_service(service) == 0

    assert_registered_poor(platform, person)  # the hub answers the agency all the same

    platform.services["settlement"] = start_service(
        "settlement",
        platform.directory,
        database_url=service.env.get("DOUDI_DATABASE_URL"),
        env={"DOUDI_PORT": str(service.port)},  # where the gateway and the hub look for it
    )
    # The hub's retry loop sends what it could not (every 2 s by default).
    deadline = time.monotonic() + 20
    while not poverty_layers_paid(client, person):
        assert time.monotonic() < deadline, "the queued statuses never reached settlement"
        time.sleep(0.2)
    assert "not yet sent to the settlement service" in platform.services["datashare"].log()


def taishan_persons(count: int, *, born: int) -> list[str]:
    """``count`` Taishan residents born in ``born`` plus the worker's number, of one test."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    return [
        with_check_digit(
            f"440781{born + worker:04d}{1 + n // 28 % 12:02d}{1 + n % 28:02d}{n // 336:03d}"
        )
        for n in range(count)
    ]


def submit_poverty_roster(
    platform: Platform, persons: list[str]
) -> datashare_pb2.SubmitRosterResponse:
    """The poverty office's roster of Taishan with these persons, in two messages."""
    hub = datashare_pb2_grpc.DatashareServiceStub(platform.services["datashare"].channel())
    header = datashare_pb2.RosterHeader(region="440781", as_of=from_date(date(YEAR, 1, 1)))
    rows = [
        datashare_pb2.RosterRow(
            line=line,
            person_id=person,
            name="李四",
            household_id=f"h-{person[-8:]}",
            status=datashare_pb2.STATUS_REGISTERED_POOR,
            valid_from=from_date(date(YEAR, 1, 1)),
            reference=f"taishan-{line}",
        )
        for line, person in enumerate(persons, start=2)
    ]
    half = len(rows) // 2

    def send(header: datashare_pb2.RosterHeader) -> datashare_pb2.SubmitRosterResponse:
        answer: datashare_pb2.SubmitRosterResponse = hub.SubmitRoster(
            ended(
                [
                    datashare_pb2.SubmitRosterRequest(header=header, rows=rows[:half]),
                    datashare_pb2.SubmitRosterRequest(rows=rows[half:]),
                ]
            ),
            metadata=bearer(demo.POVERTY_OFFICE_KEY),
        )
        return answer

    # The roster replaces whatever roster an earlier test of the module's platform sent:
    # its revocations are confirmed, as a clerk would after a dry run.
    preview = datashare_pb2.RosterHeader()
    preview.CopyFrom(header)
    preview.preview = True
    header.confirmed_revocations = send(preview).submission.revoked_count
    return send(header)


def test_a_roster_of_one_batch_is_sent_before_the_answer_and_not_again(
    platform: Platform,
) -> None:
    """The hub sends a roster's first batch before it answers the agency, and the
    background walk starts after that batch: a roster of one batch is then done."""
    persons = taishan_persons(40, born=1960)
    answer = submit_poverty_roster(platform, persons)
    assert answer.submission.asserted_count == len(persons)

    statuses = sqlalchemy.table("person_statuses", sqlalchemy.column("person_id"))
    engine = settlement_engine(platform)
    try:
        with engine.connect() as connection:
            received = connection.execute(
                sqlalchemy.select(sqlalchemy.func.count()).where(statuses.c.person_id.in_(persons))
            ).scalar_one()
    finally:
        engine.dispose()
    assert received == len(persons)
    deliveries = sqlalchemy.table(
        "roster_deliveries", sqlalchemy.column("set_id"), sqlalchemy.column("after")
    )
    engine = service_engine(platform, "datashare")
    try:
        with engine.connect() as connection:
            queued = connection.execute(
                sqlalchemy.select(deliveries.c.after).where(
                    deliveries.c.set_id == answer.submission.submission_id
                )
            ).all()
    finally:
        engine.dispose()
    assert queued == [], "the roster is still queued for the background walk"


def test_a_roster_larger_than_a_batch_reaches_settlement_whole_after_it_was_down(
    platform: Platform,
) -> None:
    """A roster queues one row for all its persons; the hub sends them a batch at a time
    (500), from where it got to, once settlement is back."""
    persons = taishan_persons(1_234, born=1950)
    service = platform.services["settlement"]
    assert stop_service(service) == 0
    answer = submit_poverty_roster(platform, persons)
    assert answer.submission.asserted_count == len(persons)

    platform.services["settlement"] = start_service(
        "settlement",
        platform.directory,
        database_url=service.env.get("DOUDI_DATABASE_URL"),
        env={"DOUDI_PORT": str(service.port)},
    )
    engine = settlement_engine(platform)
    statuses = sqlalchemy.table("person_statuses", sqlalchemy.column("person_id"))
    count = sqlalchemy.select(sqlalchemy.func.count()).where(statuses.c.person_id.in_(persons))
    deadline = time.monotonic() + 60
    try:
        while True:
            with engine.connect() as connection:
                received = connection.execute(count).scalar_one()
            if received == len(persons):
                break
            assert time.monotonic() < deadline, f"{received} of {len(persons)} reached settlement"
            time.sleep(0.2)
    finally:
        engine.dispose()


def test_statuses_sent_twice_or_out_of_order_keep_the_latest(platform: Platform) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform)
    stub = settlement_stub(platform)
    poor = settlement_pb2.StatusPeriod(
        status=settlement_pb2.STATUS_REGISTERED_POOR,
        valid_from=from_date(date(YEAR, 1, 1)),
        agency=settlement_pb2.AGENCY_POVERTY_OFFICE,
    )

    def sent(version: int, *periods: settlement_pb2.StatusPeriod) -> settlement_pb2.PersonStatuses:
        return settlement_pb2.PersonStatuses(person_id=person, version=version, periods=periods)

    def record(*persons: settlement_pb2.PersonStatuses) -> list[int]:
        request = settlement_pb2.RecordPersonStatusesRequest(persons=persons)
        return list(stub.RecordPersonStatuses(request, metadata=INTERNAL).versions)

    assert record(sent(5, poor)) == [5]
    assert record(sent(5, poor)) == [5]
    assert record(sent(3)) == [5]  # an older send, arriving late, changes nothing
    assert poverty_layers_paid(client, person)
    # In one batch, the person's later version wins whatever the order.
    other = new_person(platform)
    both = record(sent(7), settlement_pb2.PersonStatuses(person_id=other, version=2), sent(6, poor))
    assert both == [7, 2, 7]
    assert not poverty_layers_paid(client, person)

    with pytest.raises(grpc.RpcError) as refused:
        stub.RecordPersonStatuses(
            settlement_pb2.RecordPersonStatusesRequest(persons=[sent(8)]),
            metadata=bearer(HOSPITAL_KEY),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for bad, field in (
        ([sent(9, poor), sent(0, poor)], "persons[1].version"),
        ([], "persons"),
        ([sent(9)] * 1001, "persons"),
    ):
        with pytest.raises(grpc.RpcError) as invalid:
            record(*bad)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = decode_status(invalid.value)  # type: ignore[arg-type]
        assert [violation.field for violation in status.violations] == [field]
    assert poverty_layers_paid(client, person) is False


def test_a_sender_on_the_contract_before_settlement_had_its_own_messages_is_understood(
    platform: Platform,
) -> None:
    # Until settlement.proto had messages of its own, enrollment sent its whole Enrolment
    # and the hub its StatusPeriod: their bytes are what settlement's messages read.
    client = platform.client(HOSPITAL_KEY)
    stub = settlement_stub(platform)
    person = person_number()  # known to settlement alone, through the two calls
    enrolment = enrollment_pb2.Enrolment(
        person_id=person,
        year=YEAR,
        scheme=enrollment_pb2.SCHEME_RESIDENT,
        premium_fen=40000,
        premium_payer=enrollment_pb2.PREMIUM_PAYER_ASSISTANCE_FUND,
        subsidy_fen=40000,
        subsidy_category="registered_poor",
    )
    period = datashare_pb2.StatusPeriod(
        status=datashare_pb2.STATUS_REGISTERED_POOR,
        valid_from=from_date(date(YEAR, 1, 1)),
        agency=datashare_pb2.AGENCY_POVERTY_OFFICE,
    )
    coverage = settlement_pb2.PersonCoverage(
        person_id=person,
        version=1,
        region="411323",
        enrolments=[settlement_pb2.Enrolment.FromString(enrolment.SerializeToString())],
    )
    statuses = settlement_pb2.PersonStatuses(
        person_id=person,
        version=1,
        periods=[settlement_pb2.StatusPeriod.FromString(period.SerializeToString())],
    )
    stub.RecordPersonCoverage(
        settlement_pb2.RecordPersonCoverageRequest(persons=[coverage]), metadata=INTERNAL
    )
    assert poverty_layers_paid(client, person) is False
    stub.RecordPersonStatuses(
        settlement_pb2.RecordPersonStatusesRequest(persons=[statuses]), metadata=INTERNAL
    )
    assert poverty_layers_paid(client, person) is True


# --- reversal -----------------------------------------------------------------------------


def test_reversing_a_settlement_removes_it_from_every_yearly_accumulation(
    platform: Platform,
) -> None:
    """Settle A, settle B, reverse A: C pays what it pays for a person who had only B.

    B is a certified chronic-disease outpatient visit (basic insurance per visit), so its
    own increments do not depend on A; A and C are stays whose yearly layers
    (critical illness, supplementary) A would have moved up their bands.
    """
    client = platform.client(HOSPITAL_KEY)
    first, second, third = (new_person(platform, registered_poor=True) for _ in range(3))
    certified(platform, first, second, third)

    def chronic(visit_id: str) -> dict[str, Any]:
        return {
            "id": visit_id,
            "type": "outpatient_chronic",
            "date": f"{YEAR}-02-01",
            "diagnoses": [CERTIFIED_DIAGNOSIS],
            "items": [{"code": "M1", "class": "A", "amount_fen": 300_000}],
        }

    a = settle(client, first, stay("a", "01-20", 80_000)).json()
    settle(client, first, chronic("b"))
    reversal = client.post(
        f"/v1/settlements/{a['id']}/reversal", headers={"Idempotency-Key": f"rev-{a['id']}"}
    )
    assert reversal.status_code == 200, reversal.text
    assert reversal.json()["state"] == "reversed"
    c_after_reversal = settle(client, first, stay("c", "03-01", 100_000)).json()

    settle(client, second, chronic("b-2"))
    c_without_a = settle(client, second, stay("c-2", "03-01", 100_000)).json()

    settle(client, third, stay("a-3", "01-20", 80_000))
    settle(client, third, chronic("b-3"))
    c_with_a = settle(client, third, stay("c-3", "03-01", 100_000)).json()

    assert paid(c_after_reversal) == paid(c_without_a)
    assert c_after_reversal["self_pay_fen"] == c_without_a["self_pay_fen"]
    # Had A stood, its stay would have moved C up the yearly layers' bands.
    assert paid(c_with_a)["critical_illness"] > paid(c_without_a)["critical_illness"] > 0


def test_a_reversal_is_idempotent_and_clears_the_funds_back_to_zero(platform: Platform) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    made = settle(client, person, stay("r1", "04-02", 30_000)).json()

    first = client.post(
        f"/v1/settlements/{made['id']}/reversal", headers={"Idempotency-Key": "undo-r1"}
    )
    again = client.post(
        f"/v1/settlements/{made['id']}/reversal", headers={"Idempotency-Key": "undo-r1"}
    )
    assert first.status_code == again.status_code == 200
    assert first.json()["reversed_at"] == again.json()["reversed_at"]

    records = settlement_engine(platform)
    with records.connect() as connection:
        net = connection.execute(
            sqlalchemy.text(
                "SELECT fund, SUM(amount_fen) FROM clearing_records WHERE settlement_id = :id GROUP BY fund"
            ),
            {"id": made["id"]},
        ).all()
    records.dispose()
    assert net
    assert all(total == 0 for _, total in net)
    assert {fund for fund, _ in net} == {
        layer["fund"] for layer in made["layers"] if layer["paid_fen"]
    }


# --- never pay twice, never lose a settlement ---------------------------------------------


def test_a_retry_with_the_same_key_pays_once(platform: Platform) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    visit = stay("retry-1", "05-05", 10_000)
    before = stored_count(platform)

    answers = [settle(client, person, visit, key="retry-key") for _ in range(3)]

    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert stored_count(platform) == before + 1


def test_a_second_request_with_a_key_still_in_flight_answers_409(
    platform: Platform, backend: str
) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    assert settle(client, person, stay("warm", "05-06", 1_000)).status_code == 201
    engine = settlement_engine(platform)
    results: list[httpx.Response] = []
    # Hold what the first request needs (the person's ledger row; SQLite: the write
    # lock), so that it is still in flight when the second arrives.
    with engine.connect() as holder:
        if backend == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            holder.begin()
            holder.execute(
                sqlalchemy.text("SELECT 1 FROM ledgers WHERE person_id = :p FOR UPDATE"),
                {"p": person},
            )
        first = threading.Thread(
            target=lambda: results.append(
                settle(
                    platform.client(HOSPITAL_KEY),
                    person,
                    stay("slow", "05-07", 2_000),
                    key="slow-key",
                )
            )
        )
        first.start()
        threading.Event().wait(2.0)  # the first request reaches the lock and waits there
        second = settle(client, person, stay("slow", "05-07", 2_000), key="slow-key")
        if backend == "postgresql":
            holder.rollback()
        else:
            holder.exec_driver_sql("ROLLBACK")
    first.join()
    engine.dispose()
    assert second.status_code == 409, second.text
    assert second.headers["content-type"].startswith("application/problem+json")
    assert results[0].status_code == 201


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_settlements_for_one_person_never_exceed_the_yearly_cap(
    platform: Platform,
) -> None:
    """24 stays of 50,000 yuan at once: basic insurance would pay 39,600 yuan on each,
    950,400 in all, but its yearly cap is 150,000 yuan."""
    person = new_person(platform, registered_poor=True)
    visits = [stay(f"burst-{index}", f"06-{1 + index:02d}", 50_000) for index in range(24)]

    def one(visit: dict[str, Any]) -> httpx.Response:
        with httpx.Client(
            base_url=platform.base_url,
            headers={"Authorization": f"Bearer {HOSPITAL_KEY}"},
            timeout=60,
        ) as client:
            return settle(client, person, visit)

    with ThreadPoolExecutor(len(visits)) as pool:
        answers = list(pool.map(one, visits))

    assert [answer.status_code for answer in answers] == [201] * len(visits)
    settlements = [answer.json() for answer in answers]
    assert all(balanced(settlement) for settlement in settlements)
    assert sum(paid(settlement)["basic"] for settlement in settlements) == 150_000 * 100
    engine = settlement_engine(platform)
    with engine.connect() as connection:
        years = connection.execute(
            sqlalchemy.select(ledgers.c.years).where(ledgers.c.person_id == person)
        ).scalar_one()
    engine.dispose()
    assert years[str(YEAR)]["paid:basic:yearly"] == 150_000 * 100


def test_an_acknowledged_settlement_survives_the_settlement_process_being_killed(
    platform: Platform,
) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    made = settle(client, person, stay("crash-1", "07-01", 25_000), key="crash-key")
    assert made.status_code == 201

    service = platform.services["settlement"]
    assert stop_service(service, signal.SIGKILL) == -signal.SIGKILL
    restarted = start_service(
        "settlement",
        platform.directory,
        database_url=service.env.get("DOUDI_DATABASE_URL"),
        env={"DOUDI_PORT": str(service.port)},  # where the gateway looks for it
    )
    platform.services["settlement"] = restarted

    found = client.get(f"/v1/settlements/{made.json()['id']}")
    assert found.status_code == 200, found.text
    assert found.json() == made.json()
    retried = settle(client, person, stay("crash-1", "07-01", 25_000), key="crash-key")
    assert retried.json()["id"] == made.json()["id"]


# --- bad input through gRPC -----------------------------------------------------------


def test_bad_input_over_grpc_is_invalid_argument_naming_the_field_and_stores_nothing(
    platform: Platform,
) -> None:
    stub = settlement_stub(platform)
    person = new_person(platform, registered_poor=True)
    good = settlement_pb2.Visit(
        visit_id="g1",
        visit_type=settlement_pb2.VISIT_TYPE_INPATIENT,
        admitted=from_date(date(YEAR, 1, 2)),
        discharged=from_date(date(YEAR, 1, 5)),
        items=[
            settlement_pb2.Item(
                code="X", item_class=settlement_pb2.ITEM_CLASS_A, amount_fen=100_000
            )
        ],
    )
    cases: list[tuple[str, settlement_pb2.Visit, grpc.StatusCode, str]] = []
    negative = settlement_pb2.Visit()
    negative.CopyFrom(good)
    negative.items[0].amount_fen = -1
    unknown_class = settlement_pb2.Visit()
    unknown_class.CopyFrom(good)
    unknown_class.items[0].item_class = 9  # type: ignore[assignment]
    bad_id = person[:-1] + ("0" if person[-1] != "0" else "1")
    unknown_person = with_check_digit("41132319010101999")
    cases = [
        (bad_id, good, grpc.StatusCode.INVALID_ARGUMENT, "person_id"),
        (person, negative, grpc.StatusCode.INVALID_ARGUMENT, "visit.items[0].amount_fen"),
        (person, unknown_class, grpc.StatusCode.INVALID_ARGUMENT, "visit.items[0].class"),
        (unknown_person, good, grpc.StatusCode.NOT_FOUND, "person_id"),
    ]
    before = stored_count(platform)
    for number, visit, code, field in cases:
        with pytest.raises(grpc.RpcError) as raised:
            stub.Settle(
                settlement_pb2.SettleRequest(
                    request_id=f"bad-{field}", person_id=number, visit=visit
                ),
                metadata=bearer(HOSPITAL_KEY),
            )
        status = decode_status(raised.value)  # type: ignore[arg-type]
        assert status.code == code, (field, status)
        assert [violation.field for violation in status.violations] == [field]
    assert stored_count(platform) == before


def is_identity_number(run: str) -> bool:
    try:
        resident_id_number(run)
    except ValueError:
        return False
    return True


def test_identity_numbers_never_appear_whole_in_any_log(platform: Platform) -> None:
    client = platform.client(HOSPITAL_KEY)
    person = new_person(platform, registered_poor=True)
    settle(client, person, stay("log-1", "08-01", 5_000))
    settle(client, person[:-1] + "0", stay("log-2", "08-02", 5_000))  # a bad one is logged too
    # Each settlement's own line is at DEBUG; a refusal is logged at INFO with its path.
    assert client.get(f"/v1/settlements/{person}").status_code == 404
    logs = {
        path.name: path.read_text(errors="replace") for path in platform.directory.glob("*.log")
    }
    assert {"settlement.log", "enrollment.log", "datashare.log", "gateway.log"} <= set(logs)
    for name, text in logs.items():
        # Every run shaped as a number that is one (trace and request ids are hex: a run of
        # 18 digits inside one is no identity number, and the masking leaves it).
        whole = [
            run
            for run in re.findall(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])", text)
            if is_identity_number(run)
        ]
        assert not whole, name
    assert any(person[:6] + "********" + person[14:] in text for text in logs.values())


def test_a_person_enrolled_after_a_refused_settlement_settles_at_once(platform: Platform) -> None:
    """Coverage is cached once found, never while missing: enrolling takes effect at once."""
    client = platform.client(HOSPITAL_KEY)
    number = with_check_digit("41132319880808123")
    register_person(platform, number)

    refused = settle(client, number, stay("late-1", "09-01", 3_000))
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "person_id"

    enrol(platform, number)
    assert settle(client, number, stay("late-1", "09-01", 3_000), key="late-2").status_code == 201


def test_a_hospital_key_tried_before_it_was_registered_works_once_it_is(platform: Platform) -> None:
    stub = settlement_stub(platform)
    key = f"key-of-a-new-hospital-{next(_serial)}"
    ask = settlement_pb2.GetHospitalRequest()

    with pytest.raises(grpc.RpcError) as refused:
        stub.GetHospital(ask, metadata=bearer(key))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

    hospital = settlement_pb2.Hospital(
        hospital_id=f"new-{next(_serial)}", name="新医院", region="411323", level=1
    )
    stub.CreateHospital(
        settlement_pb2.CreateHospitalRequest(hospital=hospital, api_key=key), metadata=INTERNAL
    )
    assert stub.GetHospital(ask, metadata=bearer(key)).hospital == hospital

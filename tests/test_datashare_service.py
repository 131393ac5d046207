"""The datashare service: the status registry of the data-exchange hub (docs/domain.md section 3).

Each test starts ``python -m services.datashare`` as a real process on each
backend and calls it as the agencies (their demo keys) and as the platform (the
internal token). After every test the service's log is checked for full
identity numbers of the test's persons: there must be none (PIPL).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from doudi.cli.demo import DEMO_AGENCY_KEYS
from doudi.common.db import create_engine_for, write_transaction
from doudi.common.errors import AlreadyExists, DecodedStatus, decode_status
from doudi.common.migrations import upgrade
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from services.datashare import service
from services.datashare.server import SPEC
from services.datashare.settings import Settings
from services.datashare.tables import status_assertions
from tests.services import INTERNAL, bearer, no_peers, running_service
from tests.support import with_check_digit

POVERTY_OFFICE = bearer("demo-poverty-office")
CIVIL_AFFAIRS = bearer("demo-civil-affairs")

WANG = with_check_digit("41132319500315001")  # Xixia, born 1950
LI = with_check_digit("41132319820704002")
PERSONS = (WANG, LI)


@pytest.fixture
def hub(tmp_path: Path, database_url: str) -> Iterator[DatashareServiceStub]:
    with running_service(
        "datashare", tmp_path, database_url=database_url, env=no_peers()
    ) as running:
        yield DatashareServiceStub(running.channel())
    log = running.log()
    assert "listening" in log
    for number in PERSONS:
        assert number not in log, "the service logged a full identity number"


def day(text: str) -> Any:
    return from_date(date.fromisoformat(text))


def assert_request(
    person: str = WANG,
    status: int = pb.STATUS_REGISTERED_POOR,
    start: str = "2017-03-01",
    end: str | None = None,
    reference: str = "XX-2017-0001",
    household: str = "H-411323-0042",
) -> pb.AssertStatusRequest:
    request = pb.AssertStatusRequest(
        person_id=person,
        household_id=household,
        status=status,
        valid_from=day(start),
        reference=reference,
    )
    if end is not None:
        request.valid_to.CopyFrom(day(end))
    return request


def statuses_on(hub: DatashareServiceStub, person: str, on: str) -> list[int]:
    """The statuses the platform sees the person hold on a day."""
    answer = hub.GetPersonStatuses(
        pb.GetPersonStatusesRequest(person_id=person, on_date=day(on)), metadata=INTERNAL
    )
    return [period.status for period in answer.periods]


def history(hub: DatashareServiceStub, person: str) -> list[pb.StatusAssertion]:
    """Every record of the person, as the platform reads it."""
    answer = hub.ListStatusAssertions(
        pb.ListStatusAssertionsRequest(person_id=person), metadata=INTERNAL
    )
    return list(answer.assertions)


def audit_trail(hub: DatashareServiceStub, person: str = "") -> list[pb.AuditEvent]:
    answer = hub.ListAuditEvents(pb.ListAuditEventsRequest(person_id=person), metadata=INTERNAL)
    return list(answer.events)


def refused(call: Callable[[], object]) -> DecodedStatus:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return decode_status(caught.value)  # type: ignore[arg-type]


def fields(error: DecodedStatus) -> list[str]:
    return [violation.field for violation in error.violations]


def stored_records(database_url: str) -> int:
    """How many rows the registry holds, read from the service's database itself."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(status_assertions)) or 0
    finally:
        engine.dispose()


# -- asserting and revoking ---------------------------------------------------------


def test_the_poverty_office_asserts_registered_poor_and_a_revocation_ends_it(
    hub: DatashareServiceStub,
) -> None:
    stored = hub.AssertStatus(assert_request(start="2016-01-01"), metadata=POVERTY_OFFICE).assertion

    assert stored.assertion_id > 0
    assert stored.kind == pb.ASSERTION_KIND_ASSERT
    assert stored.agency == pb.AGENCY_POVERTY_OFFICE
    assert (stored.person_id, stored.household_id) == (WANG, "H-411323-0042")
    assert not stored.HasField("valid_to")
    assert stored.record_time.seconds > 0
    assert statuses_on(hub, WANG, "2016-01-01") == [pb.STATUS_REGISTERED_POOR]
    assert statuses_on(hub, WANG, "2015-12-31") == []
    assert statuses_on(hub, LI, "2016-01-01") == []

    # The household leaves poverty on 2019-12-15: registered poor ends, poverty exited begins.
    hub.RevokeStatus(
        pb.RevokeStatusRequest(
            person_id=WANG,
            status=pb.STATUS_REGISTERED_POOR,
            valid_from=day("2019-12-15"),
            reference="XX-2019-EXIT-0001",
        ),
        metadata=POVERTY_OFFICE,
    )
    hub.AssertStatus(
        assert_request(
            status=pb.STATUS_POVERTY_EXITED, start="2019-12-15", reference="XX-2019-0001"
        ),
        metadata=POVERTY_OFFICE,
    )

    assert statuses_on(hub, WANG, "2019-12-14") == [pb.STATUS_REGISTERED_POOR]
    assert statuses_on(hub, WANG, "2019-12-15") == [pb.STATUS_POVERTY_EXITED]
    periods = hub.GetPersonStatuses(
        pb.GetPersonStatusesRequest(person_id=WANG), metadata=INTERNAL
    ).periods
    assert [(p.status, p.valid_from, p.HasField("valid_to")) for p in periods] == [
        (pb.STATUS_POVERTY_EXITED, day("2019-12-15"), False),
        (pb.STATUS_REGISTERED_POOR, day("2016-01-01"), True),
    ]
    assert periods[1].valid_to == day("2019-12-14")
    # Nothing is overwritten: the history keeps every record, in recording order.
    records = history(hub, WANG)
    assert [r.kind for r in records] == [
        pb.ASSERTION_KIND_ASSERT,
        pb.ASSERTION_KIND_REVOKE,
        pb.ASSERTION_KIND_ASSERT,
    ]
    assert records[0] == stored
    assert [r.assertion_id for r in records] == sorted(r.assertion_id for r in records)
    assert records[1].household_id == ""  # a revocation names no household
    # The same history a page at a time.
    paged, token = [], ""
    while True:
        page = hub.ListStatusAssertions(
            pb.ListStatusAssertionsRequest(person_id=WANG, page_size=1, page_token=token),
            metadata=INTERNAL,
        )
        paged.extend(page.assertions)
        token = page.next_page_token
        if not token:
            break
    assert paged == records


def test_refused_requests_say_why_and_store_nothing(
    hub: DatashareServiceStub, database_url: str
) -> None:
    # Each agency records only its own statuses; the platform reads but never certifies.
    error = refused(lambda: hub.AssertStatus(assert_request(), metadata=CIVIL_AFFAIRS))
    assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["status"])
    revocation = pb.RevokeStatusRequest(
        person_id=WANG,
        status=pb.STATUS_REGISTERED_POOR,
        valid_from=day("2019-12-15"),
        reference="R1",
    )
    error = refused(lambda: hub.RevokeStatus(revocation, metadata=CIVIL_AFFAIRS))
    assert (error.code, fields(error)) == (grpc.StatusCode.PERMISSION_DENIED, ["status"])
    error = refused(lambda: hub.AssertStatus(assert_request(), metadata=INTERNAL))
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    # The audit trail is the platform's to read, not the agencies'.
    error = refused(
        lambda: hub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=CIVIL_AFFAIRS)
    )
    assert error.code == grpc.StatusCode.PERMISSION_DENIED

    # Only known tokens are served.
    reading = pb.GetPersonStatusesRequest(person_id=WANG, purpose="核对")
    for metadata in (bearer("demo-nobody"), bearer("demo-poverty-offic"), ()):
        error = refused(lambda m=metadata: hub.GetPersonStatuses(reading, metadata=m))
        assert error.code == grpc.StatusCode.UNAUTHENTICATED

    # Bad input is INVALID_ARGUMENT naming the field to blame.
    wrong_check_digit = WANG[:-1] + ("0" if WANG[-1] != "0" else "1")
    bad_input = {
        "person_id": [
            assert_request(person=wrong_check_digit),
            assert_request(person="41132319500315"),
            assert_request(person=""),
        ],
        "valid_to": [assert_request(start="2020-02-01", end="2020-01-31")],
        "valid_from": [
            pb.AssertStatusRequest(
                person_id=WANG, household_id="H", reference="X", status=pb.STATUS_AT_RISK
            )
        ],
        "status": [assert_request(status=pb.STATUS_UNSPECIFIED)],
        "reference": [assert_request(reference=""), assert_request(reference="R" * 65)],
        "household_id": [assert_request(household=" ")],
    }
    for field, requests in bad_input.items():
        for request in requests:
            error = refused(lambda r=request: hub.AssertStatus(r, metadata=POVERTY_OFFICE))
            assert (error.code, fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])

    assert stored_records(database_url) == 0


def test_the_agencys_reference_makes_a_record_idempotent(hub: DatashareServiceStub) -> None:
    first = hub.AssertStatus(assert_request(reference="XX-7"), metadata=POVERTY_OFFICE).assertion
    again = hub.AssertStatus(assert_request(reference="XX-7"), metadata=POVERTY_OFFICE).assertion
    assert again == first

    error = refused(
        lambda: hub.AssertStatus(
            assert_request(reference="XX-7", start="2018-01-01"), metadata=POVERTY_OFFICE
        )
    )
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert fields(error) == ["reference"]

    # Sent several times at once (a retry racing the original), it is stored once.
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(
                lambda _: (
                    hub.AssertStatus(
                        assert_request(person=LI, reference="XX-8"), metadata=POVERTY_OFFICE
                    ).assertion.assertion_id
                ),
                range(6),
            )
        )
    assert len(set(answers)) == 1
    assert len(history(hub, WANG)) == 1
    assert len(history(hub, LI)) == 1


def test_a_reference_a_concurrent_request_stored_first_is_answered_not_duplicated(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process, to make the race certain: the first look-up misses the row that the
    # concurrent request has stored, so the insert meets the unique (agency, reference).
    upgrade(database_url, SPEC.migrations)
    engine = create_engine_for(database_url)
    record = {
        "kind": "assert",
        "agency": "poverty_office",
        "person_id": WANG,
        "household_id": "H-1",
        "status": "registered_poor",
        "valid_from": date(2017, 1, 1),
        "valid_to": None,
        "reference": "XX-9",
    }

    def record_status(**values: Any) -> service.Assertion:
        with write_transaction(engine) as connection:
            return service.record_status(connection=connection, **values)

    try:
        stored = record_status(**record)
        look_up = service._by_reference
        misses = iter([True])
        monkeypatch.setattr(
            service,
            "_by_reference",
            lambda *args: None if next(misses, False) else look_up(*args),
        )
        assert record_status(**record) == stored
        misses = iter([True])
        with pytest.raises(AlreadyExists):
            record_status(**{**record, "valid_from": date(2018, 1, 1)})
    finally:
        engine.dispose()
    assert stored_records(database_url) == 1


# -- reading --------------------------------------------------------------------------


def test_agency_reads_need_a_purpose_are_audited_and_show_only_the_agencys_own_statuses(
    hub: DatashareServiceStub,
) -> None:
    hub.AssertStatus(assert_request(start="2017-03-01"), metadata=POVERTY_OFFICE)
    hub.AssertStatus(
        assert_request(status=pb.STATUS_DIBAO, start="2018-01-01", reference="MZ-2018-3"),
        metadata=CIVIL_AFFAIRS,
    )

    error = refused(
        lambda: hub.GetPersonStatuses(
            pb.GetPersonStatusesRequest(person_id=WANG), metadata=CIVIL_AFFAIRS
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields(error) == ["purpose"]

    periods = hub.GetPersonStatuses(
        pb.GetPersonStatusesRequest(person_id=WANG, purpose="低保年审 2019"),
        metadata=CIVIL_AFFAIRS,
    ).periods
    assert [(p.status, p.agency) for p in periods] == [(pb.STATUS_DIBAO, pb.AGENCY_CIVIL_AFFAIRS)]
    records = hub.ListStatusAssertions(
        pb.ListStatusAssertionsRequest(person_id=WANG, purpose="核对台账"),
        metadata=POVERTY_OFFICE,
    ).assertions
    assert [r.status for r in records] == [pb.STATUS_REGISTERED_POOR]
    # The platform sees both.
    assert statuses_on(hub, WANG, "2019-01-01") == [pb.STATUS_DIBAO, pb.STATUS_REGISTERED_POOR]

    trail = audit_trail(hub, WANG)
    assert [(e.caller, e.method, e.person_id, e.purpose) for e in trail] == [
        ("civil_affairs", "GetPersonStatuses", WANG, "低保年审 2019"),
        ("poverty_office", "ListStatusAssertions", WANG, "核对台账"),
    ]
    assert all(e.event_time.seconds > 0 for e in trail)
    # The platform's reads (the settlement service's, on every settlement) are not audited.
    assert statuses_on(hub, LI, "2019-01-01") == []
    assert history(hub, LI) == []
    assert audit_trail(hub, LI) == []
    assert len(audit_trail(hub)) == 2


# -- settings -------------------------------------------------------------------------

REAL_KEYS = {"k" * 32: "poverty_office", "c" * 32: "civil_affairs"}
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "internal_token": "t" * 32,
    "database_url": "postgresql+psycopg://doudi@db/datashare",
    "assistance_address": "dns:///assistance:50054",
    "settlement_address": "dns:///settlement:50053",
    "grpc_plaintext": True,
}


def test_no_key_is_accepted_by_default_and_the_demo_keys_name_every_agency() -> None:
    assert Settings(environment="local").agency_keys == {}
    assert Settings(environment="local", agency_keys=DEMO_AGENCY_KEYS).agency_keys == (
        DEMO_AGENCY_KEYS
    )
    assert set(DEMO_AGENCY_KEYS.values()) == {
        "civil_affairs",
        "poverty_office",
        "trade_union",
        "veteran_cadre_bureau",
        "disabled_persons_federation",
        "veterans_affairs",
    }


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(REAL_KEYS, id="real-keys"),
        pytest.param(DEMO_AGENCY_KEYS, id="the-demo-keys"),
    ],
)
def test_outside_local_no_key_is_taken_from_the_environment(
    keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside local the hub keeps the keys itself (doudi admin agency add)."""
    assert Settings(**PRODUCTION).agency_keys == {}
    monkeypatch.setenv("DOUDI_AGENCY_KEYS", json.dumps(keys))
    with pytest.raises(ValidationError, match="DOUDI_AGENCY_KEYS is for DOUDI_ENVIRONMENT=local"):
        Settings(**PRODUCTION)


def test_keys_of_unknown_agencies_or_equal_to_the_internal_token_are_refused() -> None:
    token = "t" * 32
    with pytest.raises(ValidationError, match="unknown agencies hospital"):
        Settings(environment="local", internal_token=token, agency_keys={"h" * 32: "hospital"})
    with pytest.raises(ValidationError, match="internal token"):
        Settings(environment="local", internal_token=token, agency_keys={token: "trade_union"})

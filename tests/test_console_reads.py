"""The reads the case workers' console makes (it calls the services with the platform's
token): a person's settlements across hospitals, every hospital's settlements and day of
clearing, the hospitals; a household's warnings, a person's applications, screening
offers and secondary-assistance entries across runs.

Each service runs as a real process on each backend (settlement with hospitals registered
and persons' coverage recorded as enrollment sends it, then settled with the hospitals'
keys; assistance fed events as settlement sends them). Every filter is checked beside the
old behaviour, a hospital's limits and bad input (INVALID_ARGUMENT naming the field).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import sqlalchemy

from doudi.common.db import create_engine_for
from doudi.common.migrations import upgrade
from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2 as spb
from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub
from services.settlement import service as settlement_service
from services.settlement.server import SPEC as SETTLEMENT
from tests.conftest import BACKENDS, new_database
from tests.services import INTERNAL, bearer, running_service
from tests.support import business_day, with_check_digit
from tests.test_assistance_intake import refusal

TODAY = business_day()
YEAR = TODAY.year
XIXIA = "411323"
TIANJIN = "120000"
PING = with_check_digit("41132319500315011")  # settles at both Xixia hospitals
QIU = with_check_digit("41132319620812012")  # settles at one
NOBODY = with_check_digit("41132319700101013")  # never settles


# --- settlement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hospital:
    hospital: spb.Hospital
    key: str

    @property
    def hospital_id(self) -> str:
        return self.hospital.hospital_id

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.key)


NORTH = Hospital(
    spb.Hospital(hospital_id="xx-north", name="西峡北院", region=XIXIA, level=2), "key-north-0001"
)
SOUTH = Hospital(
    spb.Hospital(hospital_id="xx-south", name="西峡南院", region=XIXIA, level=1), "key-south-0001"
)
HARBOUR = Hospital(
    spb.Hospital(hospital_id="tj-harbour", name="天津港医院", region=TIANJIN, level=3),
    "key-harbour-01",
)


@dataclass
class Settled:
    """A settlement service on one backend, and what was settled there (ids by hospital and
    person, in the order settled)."""

    stub: SettlementServiceStub
    made: list[spb.Settlement]

    def ids(self, *, hospital: Hospital | None = None, person: str | None = None) -> list[str]:
        return [
            made.settlement_id
            for made in self.made
            if (hospital is None or made.hospital_id == hospital.hospital_id)
            and (person is None or made.person_id == person)
        ]


def settle(stub: SettlementServiceStub, hospital: Hospital, person: str, visit_id: str) -> Any:
    """A stay discharged today of 8,000 yuan in scope."""
    visit = spb.Visit(
        visit_id=visit_id,
        visit_type=spb.VISIT_TYPE_INPATIENT,
        admitted=from_date(TODAY),
        discharged=from_date(TODAY),
        items=[spb.Item(code="BED", item_class=spb.ITEM_CLASS_A, amount_fen=800_000)],
    )
    answer = stub.Settle(
        spb.SettleRequest(request_id=visit_id, person_id=person, visit=visit),
        metadata=hospital.metadata,
    )
    return answer.settlement


@pytest.fixture(scope="module", params=BACKENDS)
def settled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settled]:
    """Settlement with three hospitals; Ping settles twice at the north hospital and once
    at the south one, Qiu once at the north one, in that order (module-wide: the tests
    only read)."""
    directory = tmp_path_factory.mktemp(f"settlement-{request.param}")
    with (
        new_database(request.param, directory) as url,
        running_service("settlement", directory, database_url=url) as running,
    ):
        stub = SettlementServiceStub(running.channel())
        for hospital in (SOUTH, HARBOUR, NORTH):
            stub.CreateHospital(
                spb.CreateHospitalRequest(hospital=hospital.hospital, api_key=hospital.key),
                metadata=INTERNAL,
            )
        stub.RecordPersonCoverage(
            spb.RecordPersonCoverageRequest(
                persons=[
                    spb.PersonCoverage(
                        person_id=person,
                        version=1,
                        region=XIXIA,
                        enrolments=[spb.Enrolment(year=YEAR, scheme=spb.SCHEME_RESIDENT)],
                    )
                    for person in (PING, QIU, NOBODY)
                ]
            ),
            metadata=INTERNAL,
        )
        made = [
            settle(stub, NORTH, PING, "n-1"),
            settle(stub, SOUTH, PING, "s-1"),
            settle(stub, NORTH, QIU, "n-2"),
            settle(stub, NORTH, PING, "n-3"),
        ]
        yield Settled(stub, made)
        log = running.log()
    for number in (PING, QIU):
        assert number not in log, "the service logged a full identity number"


def every_page(
    method: Any, asked: Any, items: str, metadata: tuple[tuple[str, str], ...] = INTERNAL
) -> list[Any]:
    """Every page of a List method's answer (``items``, its repeated field), asking again
    with each next page's token."""
    found: list[Any] = []
    while True:
        page = method(asked, metadata=metadata)
        found.extend(getattr(page, items))
        if not page.next_page_token:
            return found
        asked.page_token = page.next_page_token


def listed(
    stub: SettlementServiceStub,
    metadata: tuple[tuple[str, str], ...] = INTERNAL,
    *,
    page_size: int = 2,
    **filters: Any,
) -> list[str]:
    """The ids ListSettlements answers from today (by default), page_size at a time."""
    filters.setdefault("start_date", from_date(TODAY))
    asked = spb.ListSettlementsRequest(**filters, page_size=page_size)
    found = every_page(stub.ListSettlements, asked, "settlements", metadata)
    return [settlement.settlement_id for settlement in found]


def test_a_persons_settlements_at_every_hospital_for_the_platform(settled: Settled) -> None:
    stub = settled.stub

    assert listed(stub, person_id=PING) == settled.ids(person=PING)
    assert len(settled.ids(person=PING)) == 3
    assert listed(stub, person_id=PING, hospital_id=NORTH.hospital_id) == settled.ids(
        hospital=NORTH, person=PING
    )
    assert listed(stub, person_id=NOBODY) == []
    # Without a person, as before: a hospital's, or every hospital's.
    assert listed(stub, hospital_id=NORTH.hospital_id) == settled.ids(hospital=NORTH)
    assert listed(stub) == settled.ids()
    # The date range still decides.
    tomorrow = TODAY.toordinal() + 1
    assert listed(stub, person_id=PING, start_date=from_date(TODAY.fromordinal(tomorrow))) == []
    assert listed(stub, person_id=PING, end_date=from_date(TODAY.fromordinal(tomorrow))) == (
        settled.ids(person=PING)
    )
    yesterday = from_date(TODAY.fromordinal(tomorrow - 2))
    assert listed(stub, person_id=PING, start_date=yesterday, end_date=yesterday) == []


def test_a_hospital_lists_its_own_settlements_of_a_person_only(settled: Settled) -> None:
    stub = settled.stub

    assert listed(stub, NORTH.metadata, person_id=PING) == settled.ids(hospital=NORTH, person=PING)
    assert listed(stub, SOUTH.metadata, person_id=PING) == settled.ids(hospital=SOUTH, person=PING)
    assert listed(stub, SOUTH.metadata, person_id=QIU) == []
    assert listed(stub, SOUTH.metadata) == settled.ids(hospital=SOUTH)
    for filters in ({}, {"person_id": PING}):
        status = refusal(
            lambda filters=filters: listed(
                stub, SOUTH.metadata, hospital_id=NORTH.hospital_id, **filters
            )
        )
        assert status.code == grpc.StatusCode.NOT_FOUND
        assert [violation.field for violation in status.violations] == ["hospital_id"]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"person_id": "411323195003150010"}, "person_id"),  # a wrong check digit
        ({"person_id": "4113231950031501"}, "person_id"),
        ({"person_id": PING + "\x00"}, "person_id"),
        ({"person_id": PING, "start_date": None}, "start_date"),
        ({"person_id": PING, "end_date": from_date(TODAY.fromordinal(1))}, "end_date"),
        ({"person_id": PING, "page_token": "not-ours"}, "page_token"),
        ({"person_id": PING, "page_size": -1}, "page_size"),
    ],
)
def test_a_bad_listing_names_its_field(
    settled: Settled, filters: dict[str, Any], field: str
) -> None:
    asked = spb.ListSettlementsRequest(start_date=from_date(TODAY))
    for name, value in filters.items():
        if value is None:
            asked.ClearField(name)  # type: ignore[arg-type]
        elif name == "end_date":
            asked.end_date.CopyFrom(value)
        else:
            setattr(asked, name, value)
    for metadata in (INTERNAL, NORTH.metadata):
        status = refusal(
            lambda metadata=metadata: settled.stub.ListSettlements(asked, metadata=metadata)
        )
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
        assert [violation.field for violation in status.violations] == [field]


def clearing(
    stub: SettlementServiceStub, hospital_id: str, metadata: tuple[tuple[str, str], ...] = INTERNAL
) -> spb.GetDailyClearingResponse:
    answer: spb.GetDailyClearingResponse = stub.GetDailyClearing(
        spb.GetDailyClearingRequest(hospital_id=hospital_id, date=from_date(TODAY)),
        metadata=metadata,
    )
    return answer


def per_fund(answer: spb.GetDailyClearingResponse) -> dict[str, tuple[int, int, int, int]]:
    return {
        fund.fund: (fund.settled_fen, fund.reversed_fen, fund.net_fen, fund.record_count)
        for fund in answer.funds
    }


def test_every_hospitals_day_of_clearing_is_summed_per_fund_for_the_platform(
    settled: Settled,
) -> None:
    stub = settled.stub
    north, south = clearing(stub, NORTH.hospital_id), clearing(stub, SOUTH.hospital_id)
    expected: dict[str, list[int]] = {}
    for answer in (north, south):
        for fund, figures in per_fund(answer).items():
            sums = expected.setdefault(fund, [0, 0, 0, 0])
            for index, value in enumerate(figures):
                sums[index] += value

    every = clearing(stub, "")

    assert every.hospital_id == ""
    assert every.date == from_date(TODAY)
    assert per_fund(every) == {fund: tuple(sums) for fund, sums in expected.items()}
    assert every.net_fen == north.net_fen + south.net_fen > 0
    paid = sum(layer.paid_fen for made in settled.made for layer in made.layers)
    assert every.net_fen == paid
    # A hospital's day, as before: its own, with or without its id.
    assert clearing(stub, "", NORTH.metadata) == north
    assert clearing(stub, NORTH.hospital_id, NORTH.metadata) == north
    assert north.hospital_id == NORTH.hospital_id
    status = refusal(lambda: clearing(stub, NORTH.hospital_id, SOUTH.metadata))
    assert status.code == grpc.StatusCode.NOT_FOUND
    status = refusal(
        lambda: stub.GetDailyClearing(spb.GetDailyClearingRequest(), metadata=INTERNAL)
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in status.violations] == ["date"]


def hospitals(stub: SettlementServiceStub, *, page_size: int = 1, **filters: Any) -> list[Any]:
    asked = spb.ListHospitalsRequest(**filters, page_size=page_size)
    return every_page(stub.ListHospitals, asked, "hospitals")


def test_the_platform_lists_the_hospitals_without_their_keys(settled: Settled) -> None:
    stub = settled.stub

    every = hospitals(stub)

    assert every == sorted(
        (h.hospital for h in (NORTH, SOUTH, HARBOUR)), key=lambda h: h.hospital_id
    )
    assert hospitals(stub, page_size=0) == every
    assert hospitals(stub, region=TIANJIN) == [HARBOUR.hospital]
    assert hospitals(stub, region=XIXIA, page_size=1000) == [NORTH.hospital, SOUTH.hospital]
    # Nothing else is answered of a hospital: no key, no digest.
    assert {field.name for field in spb.Hospital.DESCRIPTOR.fields} == {
        "hospital_id",
        "name",
        "region",
        "level",
    }
    assert {field.name for field in spb.ListHospitalsResponse.DESCRIPTOR.fields} == {
        "hospitals",
        "next_page_token",
    }


def test_a_hospital_may_not_list_the_hospitals(settled: Settled) -> None:
    status = refusal(
        lambda: settled.stub.ListHospitals(spb.ListHospitalsRequest(), metadata=NORTH.metadata)
    )

    assert status.code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("asked", "field"),
    [
        (spb.ListHospitalsRequest(region="999999"), "region"),
        (spb.ListHospitalsRequest(region="4" * 100), "region"),
        (spb.ListHospitalsRequest(page_size=-5), "page_size"),
        (spb.ListHospitalsRequest(page_token="bm90LW91cnM"), "page_token"),
        (spb.ListHospitalsRequest(page_token="WzFd"), "page_token"),  # [1]: not an id
    ],
)
def test_a_bad_listing_of_hospitals_names_its_field(
    settled: Settled, asked: spb.ListHospitalsRequest, field: str
) -> None:
    status = refusal(lambda: settled.stub.ListHospitals(asked, metadata=INTERNAL))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
    assert [violation.field for violation in status.violations] == [field]


def test_the_listings_read_an_index_in_order_not_the_table(sqlite_url: str) -> None:
    """On SQLite's plan (PostgreSQL's depends on the table's size): a person's settlements,
    every hospital's and a day's clearing of every hospital come from an index."""
    upgrade(sqlite_url, SETTLEMENT.migrations)
    engine = create_engine_for(sqlite_url)
    listing = {"hospital_id": None, "start": TODAY, "end": TODAY, "page_size": 100, "after": None}
    try:
        plans = {
            "person": planned(
                engine, settlement_service.list_settlements, **listing, person_id=PING
            ),
            "every hospital": planned(
                engine, settlement_service.list_settlements, **listing, person_id=None
            ),
            "clearing": planned(
                engine, settlement_service.daily_clearing, hospital_id=None, day=TODAY
            ),
        }
    finally:
        engine.dispose()

    assert "USING INDEX ix_settlements_person_made" in plans["person"]
    assert "USING INDEX ix_settlements_made" in plans["every hospital"]
    assert "USING INDEX ix_clearing_day_hospital" in plans["clearing"]
    for plan in plans.values():
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert "SCAN settlements" not in plan, plan
        assert "SCAN clearing_records" not in plan, plan


def planned(engine: sqlalchemy.Engine, handler: Any, **arguments: Any) -> str:
    """SQLite's plan of the statement ``handler`` runs (its last)."""
    statements: list[tuple[str, Any]] = []

    def keep(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    sqlalchemy.event.listen(engine, "before_cursor_execute", keep)
    try:
        with engine.connect() as connection:
            handler(connection=connection, **arguments)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = statements[-1]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return "\n".join(str(row[-1]) for row in rows)

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

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.common.db import create_engine_for
from doudi.common.migrations import upgrade
from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2 as spb
from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub
from services.assistance import applications as assistance_applications
from services.assistance import screening as assistance_screening
from services.assistance import secondary as assistance_secondary
from services.assistance import warnings as assistance_warnings
from services.assistance.server import SPEC as ASSISTANCE
from services.settlement import service as settlement_service
from services.settlement.server import SPEC as SETTLEMENT
from tests import test_screening, test_secondary
from tests.conftest import BACKENDS, new_database
from tests.services import INTERNAL, bearer, running_service
from tests.support import business_day, with_check_digit
from tests.test_applications import request as application
from tests.test_assistance_copies import send_persons
from tests.test_assistance_intake import record, refusal
from tests.test_datashare_service import day
from tests.test_warnings import IMPOVERISHMENT_LINE
from tests.test_warnings import visit as burdened_visit

TODAY = business_day()
YEAR = TODAY.year
XIXIA = "411323"
TIANJIN = "120000"
PING = with_check_digit("41132319500315011")  # settles at both Xixia hospitals
QIU = with_check_digit("41132319620812012")  # settles at one
NOBODY = with_check_digit("41132319700101013")  # never settles, nor anything else
# Assistance: Zhou and his wife are one household of Xixia, Wu another; Sun and Tao are
# recipients of secondary assistance; Mei (test_screening's) and Hua have bills of Taishan.
ZHOU = with_check_digit("41132319550505021")
ZHOU_WIFE = with_check_digit("41132319580606022")
WU = with_check_digit("41132319660707023")
SUN = with_check_digit("41132319720808024")
TAO = with_check_digit("41132319740909025")
MEI = test_screening.MEI
HUA = test_screening.HUA
TAISHAN = test_screening.TAISHAN


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
    # Nothing else is answered of a hospital: no key, no digest; its keys' fingerprints
    # only when asked (doudi admin hospital list).
    assert {field.name for field in spb.Hospital.DESCRIPTOR.fields} == {
        "hospital_id",
        "name",
        "region",
        "level",
        "reformed",
    }
    assert {field.name for field in spb.ListHospitalsResponse.DESCRIPTOR.fields} == {
        "hospitals",
        "next_page_token",
        "keys",
    }
    page = stub.ListHospitals(spb.ListHospitalsRequest(), metadata=INTERNAL)
    assert not page.keys
    assert {field.name for field in spb.ApiKeyInfo.DESCRIPTOR.fields} == {
        "fingerprint",
        "create_time",
        "retire_time",
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


# --- assistance -------------------------------------------------------------------------


@dataclass
class Assisted:
    """An assistance service on one backend and what it was given: warnings of two
    households, applications, two screening runs, two secondary runs (the first approved)."""

    stub: AssistanceServiceStub
    warnings: dict[tuple[str, int], int]
    """Warning ids by household and year."""
    applications: dict[str, int]
    """Application ids by request id."""
    screening_runs: tuple[int, int]
    secondary_runs: tuple[int, int]


@pytest.fixture(scope="module", params=BACKENDS)
def assisted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Assisted]:
    directory = tmp_path_factory.mktemp(f"assistance-{request.param}")
    with (
        new_database(request.param, directory) as url,
        running_service("assistance", directory, database_url=url) as running,
    ):
        stub = AssistanceServiceStub(running.channel())
        ids = itertools.count(1)
        yield Assisted(
            stub,
            warnings=raise_warnings(stub, ids),
            applications=accept_applications(stub),
            screening_runs=screen(test_screening.Assistance(stub, running.address, ids)),
            secondary_runs=pay_secondary(test_secondary.Assistance(stub, running.address, ids)),
        )
        log = running.log()
    for number in (ZHOU, ZHOU_WIFE, WU, SUN, TAO, MEI, HUA):
        assert number not in log, "the service logged a full identity number"


def raise_warnings(stub: AssistanceServiceStub, ids: Iterator[int]) -> dict[tuple[str, int], int]:
    """Zhou's household past the 因病致贫 line in 2025 (his visit) and in 2026 (his
    wife's), Wu's in 2026."""
    send_persons(
        stub,
        *(
            pb.InsuredPerson(
                person_id=person, version=1, name=name, household_id=household, region=XIXIA
            )
            for person, name, household in (
                (ZHOU, "周一", "H-ZHOU"),
                (ZHOU_WIFE, "孙二", "H-ZHOU"),
                (WU, "吴三", "H-WU"),
            )
        ),
    )
    raised = {}
    for person, household, year in (
        (ZHOU, "H-ZHOU", 2025),
        (ZHOU_WIFE, "H-ZHOU", 2026),
        (WU, "H-WU", 2026),
    ):
        event = burdened_visit(next(ids), person, IMPOVERISHMENT_LINE + 1)
        event.settled_on.CopyFrom(day(f"{year}-05-20"))
        record(stub, event)
        (warning,) = stub.ListWarnings(
            pb.ListWarningsRequest(region=XIXIA, year=year), metadata=INTERNAL
        ).warnings[:1]
        assert warning.household_id == household
        raised[(household, year)] = warning.warning_id
    return raised


def accept_applications(stub: AssistanceServiceStub) -> dict[str, int]:
    """Zhou's two applications (Xixia's, then Tianjin's), Wu's one between them."""
    accepted = {}
    for request_id, person, on, kind, region in (
        ("zhou-1", ZHOU, "2026-03-02", pb.APPLICATION_KIND_TEMPORARY, XIXIA),
        ("wu-1", WU, "2026-03-10", pb.APPLICATION_KIND_TEMPORARY, XIXIA),
        ("zhou-2", ZHOU, "2026-04-01", pb.APPLICATION_KIND_OUT_OF_AREA_HARDSHIP, TIANJIN),
    ):
        asked = application(request_id, person=person, kind=kind, accepted_on=on, region=region)
        answer = stub.AcceptApplication(asked, metadata=INTERNAL)
        accepted[request_id] = answer.application.application_id
    return accepted


def screen(assistance: test_screening.Assistance) -> tuple[int, int]:
    """Mei's two bills of 2022 screened twice (the second run supersedes the first's
    offers and offers them again), Hua's bill the second time only."""
    test_screening.taishan_bills(assistance)
    first = assistance.run("console-screening-1")
    assistance.status(HUA, "2022-01-01")
    assistance.bill(
        HUA, "hua-1", yuan=20_000, insurance_yuan=10_000, admitted="2022-06-01",
        discharged="2022-06-10",
    )  # fmt: skip
    second = assistance.run("console-screening-2")
    return first.run_id, second.run_id


def pay_secondary(assistance: test_secondary.Assistance) -> tuple[int, int]:
    """Two runs of Xixia's 2026 (through June, approved; through December): Tao is owed
    500 yuan by June, paid by the first; Sun's burden passes the threshold in September."""
    assistance.visit(SUN, 3_000, on="2026-03-01")
    assistance.visit(TAO, 6_000, on="2026-04-01")
    assistance.visit(SUN, 4_000, on="2026-09-01")
    first = assistance.create("console-secondary-1", through="2026-06-30")
    assistance.approve(first.run_id)
    second = assistance.create("console-secondary-2", through="2026-12-31")
    return first.run_id, second.run_id


def picked(
    stub: AssistanceServiceStub,
    method: str,
    fields: tuple[str, ...],
    page_size: int,
    **filters: Any,
) -> list[tuple[Any, ...]]:
    """The ``fields`` of each item assistance's ``method`` lists, from every page."""
    asked = getattr(pb, f"{method}Request")(**filters, page_size=page_size)
    (items,) = (
        field.name
        for field in getattr(pb, f"{method}Response").DESCRIPTOR.fields
        if field.name != "next_page_token"
    )
    found = every_page(getattr(stub, method), asked, items)
    return [tuple(getattr(item, name) for name in fields) for item in found]


def warning_ids(stub: AssistanceServiceStub, *, page_size: int = 1, **filters: Any) -> list[int]:
    asked = pb.ListWarningsRequest(**filters, page_size=page_size)
    return [warning.warning_id for warning in every_page(stub.ListWarnings, asked, "warnings")]


def test_a_households_warnings_of_every_year_newest_first(assisted: Assisted) -> None:
    stub, raised = assisted.stub, assisted.warnings
    zhou = [raised[("H-ZHOU", 2026)], raised[("H-ZHOU", 2025)]]

    assert warning_ids(stub, household_id="H-ZHOU") == zhou
    assert warning_ids(stub, household_id="H-ZHOU", region=XIXIA) == zhou
    assert warning_ids(stub, household_id="H-ZHOU", year=2025) == zhou[1:]
    assert warning_ids(stub, household_id="H-ZHOU", region=TIANJIN) == []
    assert warning_ids(stub, household_id="H-WU", kind=pb.WARNING_KIND_IMPOVERISHMENT) == [
        raised[("H-WU", 2026)]
    ]
    assert warning_ids(stub, household_id="H-WU", kind=pb.WARNING_KIND_RETURN_TO_POVERTY) == []
    assert warning_ids(stub, household_id="H-NOBODY") == []
    # Without a household, as before: a region's year.
    assert warning_ids(stub, region=XIXIA, year=2026) == [
        raised[("H-WU", 2026)],
        raised[("H-ZHOU", 2026)],
    ]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"year": 2026}, "region"),  # no household: the region and the year are required
        ({"region": XIXIA}, "year"),
        ({"household_id": "H" * 65}, "household_id"),
        ({"household_id": "H-\x00"}, "household_id"),
        ({"household_id": "H-ZHOU", "year": 1800}, "year"),
        ({"household_id": "H-ZHOU", "region": "4" * 33}, "region"),
        ({"household_id": "H-ZHOU", "page_token": "not-ours"}, "page_token"),
    ],
)
def test_a_bad_listing_of_warnings_names_its_field(
    assisted: Assisted, filters: dict[str, Any], field: str
) -> None:
    status = refusal(
        lambda: assisted.stub.ListWarnings(pb.ListWarningsRequest(**filters), metadata=INTERNAL)
    )

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
    assert [violation.field for violation in status.violations] == [field]


def application_ids(stub: AssistanceServiceStub, **filters: Any) -> list[int]:
    asked = pb.ListApplicationsRequest(**filters, page_size=1)
    found = every_page(stub.ListApplications, asked, "applications")
    return [item.application_id for item in found]


def test_a_persons_applications_of_every_region_oldest_first(assisted: Assisted) -> None:
    stub, accepted = assisted.stub, assisted.applications

    assert application_ids(stub, person_id=ZHOU) == [accepted["zhou-1"], accepted["zhou-2"]]
    assert application_ids(stub, person_id=ZHOU, region=TIANJIN) == [accepted["zhou-2"]]
    assert application_ids(stub, person_id=ZHOU, kind=pb.APPLICATION_KIND_TEMPORARY) == [
        accepted["zhou-1"]
    ]
    assert application_ids(stub, person_id=NOBODY) == []
    # Without a person, as before.
    assert application_ids(stub, region=XIXIA) == [accepted["zhou-1"], accepted["wu-1"]]
    assert application_ids(stub) == sorted(accepted.values())


def offers(stub: AssistanceServiceStub, **filters: Any) -> list[tuple[Any, ...]]:
    """(run, offer, person, state) of each offer listed, two a page."""
    fields = ("run_id", "offer_id", "person_id", "state")
    return picked(stub, "ListScreeningOffers", fields, 2, **filters)


def test_a_persons_screening_offers_across_runs_in_the_order_made(assisted: Assisted) -> None:
    stub = assisted.stub
    first, second = assisted.screening_runs
    made = offers(stub, region=TAISHAN, year=2022)  # as before: a region's year
    meis = [offer for offer in made if offer[2] == MEI]

    assert [offer[0] for offer in meis] == [first, first, second, second]
    assert [offer[3] for offer in meis] == [pb.OFFER_STATE_SUPERSEDED] * 2 + [
        pb.OFFER_STATE_OFFERED
    ] * 2
    assert {offer[2] for offer in made} == {MEI, HUA}
    assert offers(stub, person_id=MEI) == meis
    assert offers(stub, person_id=MEI, year=2022, region=TAISHAN) == meis
    assert offers(stub, person_id=MEI, run_id=second) == meis[2:]
    assert offers(stub, person_id=MEI, states=[pb.OFFER_STATE_OFFERED]) == meis[2:]
    assert offers(stub, person_id=MEI, year=2023) == []
    assert offers(stub, person_id=MEI, region=XIXIA) == []
    assert offers(stub, person_id=NOBODY) == []
    # A run's offers, as before.
    assert offers(stub, run_id=first) == meis[:2]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({}, "region"),  # no run, no person: a region and a year, as before
        ({"region": TAISHAN}, "year"),
        ({"person_id": "44078119700101002X"}, "person_id"),
        ({"person_id": MEI, "region": "4"}, "region"),
        ({"person_id": MEI, "year": 3000}, "year"),
        ({"person_id": MEI, "run_id": -1}, "run_id"),
        ({"person_id": MEI, "states": [9]}, "states[0]"),
    ],
)
def test_a_bad_listing_of_offers_names_its_field(
    assisted: Assisted, filters: dict[str, Any], field: str
) -> None:
    status = refusal(
        lambda: assisted.stub.ListScreeningOffers(
            pb.ListScreeningOffersRequest(**filters), metadata=INTERNAL
        )
    )

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
    assert [violation.field for violation in status.violations] == [field]


def entries(stub: AssistanceServiceStub, **filters: Any) -> list[tuple[Any, ...]]:
    """(run, person, to pay, paid) of each entry listed, one a page."""
    fields = ("run_id", "person_id", "to_pay_fen", "paid_fen")
    return picked(stub, "ListSecondaryRunEntries", fields, 1, **filters)


def test_a_persons_secondary_entries_across_runs_in_run_order(assisted: Assisted) -> None:
    stub = assisted.stub
    first, second = assisted.secondary_runs

    # Sun: below the threshold by June (nothing to pay), 50% of 2,000 above it by December.
    assert entries(stub, person_id=SUN) == [(first, SUN, 0, 0), (second, SUN, 100_000, 0)]
    # Tao: 50% of 1,000 above the threshold, paid by the first run's approval.
    assert entries(stub, person_id=TAO) == [(first, TAO, 50_000, 50_000), (second, TAO, 0, 0)]
    assert entries(stub, person_id=TAO, paid_only=True) == [(first, TAO, 50_000, 50_000)]
    assert entries(stub, person_id=SUN, paid_only=True) == []
    assert entries(stub, person_id=SUN, run_id=second) == [(second, SUN, 100_000, 0)]
    assert entries(stub, person_id=NOBODY) == []
    # A run's entries, as before: in identity-number order.
    assert entries(stub, run_id=first) == sorted(
        [(first, SUN, 0, 0), (first, TAO, 50_000, 50_000)], key=lambda entry: entry[1]
    )


def test_a_bad_listing_of_entries_names_its_field(assisted: Assisted) -> None:
    first, _second = assisted.secondary_runs
    stub = assisted.stub
    across = stub.ListSecondaryRunEntries(
        pb.ListSecondaryRunEntriesRequest(person_id=SUN, page_size=1), metadata=INTERNAL
    )
    for asked, code, field in (
        (pb.ListSecondaryRunEntriesRequest(), grpc.StatusCode.INVALID_ARGUMENT, "run_id"),
        (
            pb.ListSecondaryRunEntriesRequest(person_id="4113231972080802"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "person_id",
        ),
        (
            pb.ListSecondaryRunEntriesRequest(person_id=SUN, run_id=-3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "run_id",
        ),
        # A page of a person's runs is no page of a run's persons.
        (
            pb.ListSecondaryRunEntriesRequest(run_id=first, page_token=across.next_page_token),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        ),
        (
            pb.ListSecondaryRunEntriesRequest(person_id=SUN, run_id=first + 100),
            grpc.StatusCode.NOT_FOUND,
            "run_id",
        ),
    ):
        status = refusal(lambda asked=asked: stub.ListSecondaryRunEntries(asked, metadata=INTERNAL))
        assert status.code == code, (asked, status)
        assert [violation.field for violation in status.violations] == [field]
    assert across.next_page_token


@pytest.mark.parametrize(
    "method",
    ["ListWarnings", "ListApplications", "ListScreeningOffers", "ListSecondaryRunEntries"],
)
def test_only_the_platform_lists_a_persons_or_households_data(
    assisted: Assisted, method: str
) -> None:
    asked = getattr(pb, f"{method}Request")()
    setattr(asked, "household_id" if method == "ListWarnings" else "person_id", ZHOU)

    status = refusal(lambda: getattr(assisted.stub, method)(asked, metadata=NORTH.metadata))

    assert status.code == grpc.StatusCode.UNAUTHENTICATED


# --- the indexes ------------------------------------------------------------------------


def test_the_listings_read_an_index_in_order_not_the_table(sqlite_url: str) -> None:
    """On SQLite's plan (PostgreSQL's depends on the table's size): a person's settlements,
    every hospital's and a day's clearing of every hospital come from an index."""
    listing = {"hospital_id": None, "start": TODAY, "end": TODAY, "page_size": 100, "after": None}
    plans = plans_of(
        sqlite_url,
        SETTLEMENT.migrations,
        person=(settlement_service.list_settlements, {**listing, "person_id": PING}),
        every_hospital=(settlement_service.list_settlements, {**listing, "person_id": None}),
        clearing=(settlement_service.daily_clearing, {"hospital_id": None, "day": TODAY}),
    )

    assert "USING INDEX ix_settlements_person_made" in plans["person"]
    assert "USING INDEX ix_settlements_made" in plans["every_hospital"]
    assert "USING INDEX ix_clearing_day_hospital" in plans["clearing"]
    for plan in plans.values():
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
        assert "SCAN settlements" not in plan, plan
        assert "SCAN clearing_records" not in plan, plan


def test_a_persons_and_a_households_listings_read_an_index(sqlite_url: str) -> None:
    page = {"page_size": 100, "page_token": ""}
    plans = plans_of(
        sqlite_url,
        ASSISTANCE.migrations,
        warnings=(
            assistance_warnings.list_warnings,
            {"household_id": "H-ZHOU", "region": None, "year": None, "kind": None,
             "state": None, "overdue_on": None, **page},
        ),
        applications=(
            assistance_applications.list_applications,
            {"region": None, "person_id": ZHOU, "state": None, "kind": None,
             "overdue_only": False, "today": None, **page},
        ),
        offers=(
            assistance_screening.list_offers,
            {"run_id": None, "person_id": MEI, "region": None, "year": None, "states": (), **page},
        ),
        entries=(
            assistance_secondary.list_entries,
            {"run_id": None, "person_id": SUN, "paid_only": False, **page},
        ),
    )  # fmt: skip

    assert "sqlite_autoindex_warnings" in plans["warnings"]  # (household, kind, year)
    assert "USING INDEX ix_applications_person" in plans["applications"]
    assert "USING INDEX ix_screening_offers_person" in plans["offers"]
    assert "USING INDEX ix_secondary_entries_person" in plans["entries"]
    for name, plan in plans.items():
        assert f"SCAN {name}" not in plan, plan


def plans_of(url: str, migrations: Path, **handlers: tuple[Any, dict[str, Any]]) -> dict[str, str]:
    """SQLite's plan of the first query each handler runs, on a database migrated to
    the head."""
    upgrade(url, migrations)
    engine = create_engine_for(url)
    try:
        return {
            name: planned(engine, handler, **arguments)
            for name, (handler, arguments) in handlers.items()
        }
    finally:
        engine.dispose()


def planned(engine: sqlalchemy.Engine, handler: Any, **arguments: Any) -> str:
    """SQLite's plan of the first query ``handler`` runs."""
    statements: list[tuple[str, Any]] = []

    def keep(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    sqlalchemy.event.listen(engine, "before_cursor_execute", keep)
    try:
        with engine.connect() as connection:
            handler(connection=connection, **arguments)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = next(
        (statement, parameters)
        for statement, parameters in statements
        if statement.lstrip().startswith("SELECT")
    )
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    return "\n".join(str(row[-1]) for row in rows)

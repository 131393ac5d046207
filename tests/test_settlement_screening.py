"""Proactive screening (主动救助), settlement's side: ``ScreenSettlements`` settles a person's
standing visits of a year again under the statuses settlement holds now, on the year's
accumulators replayed from zero, and answers the visits whose patient would have paid less.

A real settlement server on each backend, for the module; each test registers its own
persons (coverage and statuses sent as enrollment and the hub send them) and settles at a
level-2 Xixia hospital of the module's own. The figures are xixia-2017's, for chronic
outpatient visits (门诊慢性病, class A items, so everything is in scope):

- basic insurance pays 65%, no deductible;
- the insurance-assistance project (医疗保险救助工程, registered poor only) pays 70% of
  what is left, at most 2,000 yuan a person a year (chronic_yearly);
- civil affairs' medical assistance (民政医疗救助, registered poor, low income, ...) pays
  70% of what is left then (its yearly cap, 100,000 yuan, is not reached here).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import date

import grpc
import pytest

from doudi.common.errors import decode_status
from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from tests.services import INTERNAL, RunningService, alone_per_backend, bearer
from tests.support import business_day, with_check_digit

YEAR = business_day().year
HOSPITAL_KEY = "screening-hospital-key"
HOSPITAL = bearer(HOSPITAL_KEY)
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], RunningService]]:
    """A settlement server on a backend, started when a test first asks for it, with the
    module's hospital registered; kept for the module."""

    def register_hospital(server: RunningService) -> None:
        stub(server).CreateHospital(
            settlement_pb2.CreateHospitalRequest(
                hospital=settlement_pb2.Hospital(
                    hospital_id="screen-h2", name="西峡县筛查医院", region="411323", level=2
                ),
                api_key=HOSPITAL_KEY,
            ),
            metadata=INTERNAL,
        )

    with alone_per_backend("settlement", tmp_path_factory, register_hospital) as on:
        yield on


@pytest.fixture
def settlement(backend: str, servers: Callable[[str], RunningService]) -> RunningService:
    return servers(backend)


# --- helpers ----------------------------------------------------------------------------


def stub(server: RunningService) -> settlement_pb2_grpc.SettlementServiceStub:
    return settlement_pb2_grpc.SettlementServiceStub(server.channel())


def new_person(server: RunningService) -> str:
    """A Xixia resident enrolled this year with a chronic certificate for hypertension, of
    this test alone, with no status yet."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    serial = next(_serial)
    number = with_check_digit(f"411323{1950 + worker:04d}{1 + serial % 12:02d}15{serial:03d}")
    stub(server).RecordPersonCoverage(
        settlement_pb2.RecordPersonCoverageRequest(
            persons=[
                settlement_pb2.PersonCoverage(
                    person_id=number,
                    version=1,
                    region="411323",
                    enrolments=[
                        settlement_pb2.Enrolment(year=YEAR, scheme=settlement_pb2.SCHEME_RESIDENT)
                    ],
                    # A chronic certificate for the year: its chronic visits are paid as such.
                    certificates=[
                        settlement_pb2.Certificate(
                            disease="hypertension",
                            kind=settlement_pb2.CERTIFICATE_KIND_CHRONIC,
                            valid_from=from_date(date(YEAR, 1, 1)),
                            valid_to=from_date(date(YEAR, 12, 31)),
                        )
                    ],
                )
            ]
        ),
        metadata=INTERNAL,
    )
    return number


def certify(
    server: RunningService,
    person: str,
    status: settlement_pb2.Status.ValueType,
    valid_from: date,
    version: int = 1,
) -> None:
    """The hub sends the person's status, valid from ``valid_from`` (certified today)."""
    stub(server).RecordPersonStatuses(
        settlement_pb2.RecordPersonStatusesRequest(
            persons=[
                settlement_pb2.PersonStatuses(
                    person_id=person,
                    version=version,
                    periods=[
                        settlement_pb2.StatusPeriod(
                            status=status,
                            valid_from=from_date(valid_from),
                            agency=settlement_pb2.AGENCY_POVERTY_OFFICE,
                        )
                    ],
                )
            ]
        ),
        metadata=INTERNAL,
    )


def chronic(server: RunningService, person: str, visit_id: str, day: date, yuan: int) -> str:
    """Settle a chronic outpatient visit of ``yuan`` (class A); answers its settlement id."""
    answer = stub(server).Settle(
        settlement_pb2.SettleRequest(
            request_id=f"{person}-{visit_id}",
            person_id=person,
            visit=settlement_pb2.Visit(
                visit_id=f"{visit_id}-{person}",  # a hospital settles a visit once
                visit_type=settlement_pb2.VISIT_TYPE_OUTPATIENT_CHRONIC,
                date=from_date(day),
                diagnoses=["I10"],  # hypertension, certified
                items=[
                    settlement_pb2.Item(
                        code="X1", item_class=settlement_pb2.ITEM_CLASS_A, amount_fen=yuan * 100
                    )
                ],
            ),
        ),
        metadata=HOSPITAL,
    )
    return answer.settlement.settlement_id


def screen(
    server: RunningService,
    persons: list[str],
    year: int = YEAR,
    metadata: tuple[tuple[str, str], ...] = INTERNAL,
) -> list[settlement_pb2.ScreeningFinding]:
    answer = stub(server).ScreenSettlements(
        settlement_pb2.ScreenSettlementsRequest(person_ids=persons, year=year),
        metadata=metadata,
    )
    return list(answer.findings)


def self_pay(server: RunningService, settlement_id: str) -> int:
    answer = stub(server).GetSettlement(
        settlement_pb2.GetSettlementRequest(settlement_id=settlement_id), metadata=INTERNAL
    )
    return answer.settlement.self_pay_fen


def layers(paid: Iterable[settlement_pb2.LayerPayment]) -> dict[str, int]:
    return {layer.layer: layer.paid_fen for layer in paid}


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str | None]:
    """The code and the field named of a refused call."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    decoded = decode_status(raised.value)  # type: ignore[arg-type]
    return decoded.code, (decoded.violations[0].field if decoded.violations else None)


# --- findings ---------------------------------------------------------------------------


def test_a_status_certified_late_finds_both_visits_and_the_second_after_the_first(
    settlement: RunningService,
) -> None:
    person = new_person(settlement)
    other = new_person(settlement)  # settled, never certified: no findings
    first = chronic(settlement, person, "c1", date(YEAR, 3, 10), 10_000)
    second = chronic(settlement, person, "c2", date(YEAR, 5, 20), 10_000)
    chronic(settlement, other, "c1", date(YEAR, 3, 10), 10_000)
    # Settled without a status, each visit: basic 65% of 10,000 = 6,500; the patient 3,500.
    certify(settlement, person, settlement_pb2.STATUS_REGISTERED_POOR, date(YEAR, 1, 1))
    before = stub(settlement).GetSettlement(
        settlement_pb2.GetSettlementRequest(settlement_id=second), metadata=INTERNAL
    )

    findings = screen(settlement, [other, person])

    assert [f.settlement_id for f in findings] == [first, second]
    one, two = findings
    # First visit, now registered poor: basic 6,500; the project 70% of 3,500 = 2,450,
    # clipped to its yearly 2,000; medical assistance 70% of the 1,500 left = 1,050; the
    # patient 3,500 - 2,000 - 1,050 = 450, 3,050 less.
    assert layers(one.settled_layers)["basic"] == 650_000
    assert layers(one.recomputed_layers)["insurance_assistance"] == 200_000
    assert layers(one.recomputed_layers)["medical_assistance"] == 105_000
    assert (one.settled_self_pay_fen, one.recomputed_self_pay_fen) == (350_000, 45_000)
    assert one.difference_fen == 305_000
    # Second visit: the first used the project's 2,000 of the year, so it pays nothing;
    # medical assistance 70% of 3,500 = 2,450; the patient 1,050, 2,450 less (alone in its
    # year it would have been 3,050 less, as the first).
    assert layers(two.recomputed_layers)["insurance_assistance"] == 0
    assert layers(two.recomputed_layers)["medical_assistance"] == 245_000
    assert (two.settled_self_pay_fen, two.recomputed_self_pay_fen) == (350_000, 105_000)
    assert two.difference_fen == 245_000
    for found in findings:
        assert found.person_id == person
        assert found.region == "411323"
        assert found.policy == "xixia-2017"
        assert found.visit_type == settlement_pb2.VISIT_TYPE_OUTPATIENT_CHRONIC
        assert list(found.statuses_applied) == []
        assert list(found.statuses_now) == [settlement_pb2.STATUS_REGISTERED_POOR]
    assert (two.settles_on.month, two.settles_on.day) == (5, 20)
    # Screening changed nothing: the settlement stands as it was, a new screening answers
    # the same, and the ledger still has the project's 2,000 of the year unused, so a
    # visit settled now gets them (the patient pays 450, as the first recomputed).
    after = stub(settlement).GetSettlement(
        settlement_pb2.GetSettlementRequest(settlement_id=second), metadata=INTERNAL
    )
    assert after == before
    assert screen(settlement, [person]) == findings
    third = chronic(settlement, person, "c3", date(YEAR, 6, 1), 10_000)
    assert self_pay(settlement, third) == 45_000


def test_a_status_valid_only_after_the_visit_finds_nothing(settlement: RunningService) -> None:
    person = new_person(settlement)
    chronic(settlement, person, "c1", date(YEAR, 3, 10), 10_000)
    certify(settlement, person, settlement_pb2.STATUS_LOW_INCOME, date(YEAR, 3, 11))

    assert screen(settlement, [person]) == []
    # Valid from the visit's own day it is found: medical assistance 70% of 3,500.
    certify(settlement, person, settlement_pb2.STATUS_LOW_INCOME, date(YEAR, 3, 10), version=2)
    [found] = screen(settlement, [person])
    assert found.difference_fen == 245_000
    assert list(found.statuses_now) == [settlement_pb2.STATUS_LOW_INCOME]
    assert screen(settlement, [person], year=YEAR - 1) == []  # another year's visits only


def test_a_reversed_settlement_finds_nothing(settlement: RunningService) -> None:
    person = new_person(settlement)
    settled = chronic(settlement, person, "c1", date(YEAR, 3, 10), 10_000)
    stub(settlement).ReverseSettlement(
        settlement_pb2.ReverseSettlementRequest(settlement_id=settled, request_id=f"r-{settled}"),
        metadata=HOSPITAL,
    )
    certify(settlement, person, settlement_pb2.STATUS_REGISTERED_POOR, date(YEAR, 1, 1))

    assert screen(settlement, [person]) == []


def test_a_visit_that_pays_less_only_because_an_earlier_one_was_reversed_is_no_finding(
    settlement: RunningService,
) -> None:
    person = new_person(settlement)
    certify(settlement, person, settlement_pb2.STATUS_REGISTERED_POOR, date(YEAR, 1, 1))
    first = chronic(settlement, person, "c1", date(YEAR, 3, 10), 10_000)
    # The first took the project's 2,000 of the year; the second pays the patient 1,050.
    second = chronic(settlement, person, "c2", date(YEAR, 5, 20), 10_000)
    stub(settlement).ReverseSettlement(
        settlement_pb2.ReverseSettlementRequest(settlement_id=first, request_id=f"r-{first}"),
        metadata=HOSPITAL,
    )
    assert self_pay(settlement, second) == 105_000
    # Replayed alone the second would take the project's 2,000 and leave the patient 450;
    # but the statuses held on its day are those it applied, so nothing was missed.
    assert screen(settlement, [person]) == []


# --- refusals ---------------------------------------------------------------------------


def test_bad_input_and_strangers_are_refused_and_change_nothing(
    settlement: RunningService,
) -> None:
    person = new_person(settlement)
    chronic(settlement, person, "c1", date(YEAR, 3, 10), 10_000)
    certify(settlement, person, settlement_pb2.STATUS_LOW_INCOME, date(YEAR, 1, 1))
    findings = screen(settlement, [person])
    assert len(findings) == 1

    valid = with_check_digit("41132319500115001")
    mistyped = valid[:-1] + ("1" if valid[-1] == "0" else "0")  # a wrong check digit
    assert refusal(lambda: screen(settlement, [person, mistyped])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "person_ids[1]",
    )
    assert refusal(lambda: screen(settlement, [person], year=1800)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "year",
    )
    assert refusal(lambda: screen(settlement, [person] * 1001)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "person_ids",
    )
    code, _ = refusal(lambda: screen(settlement, [person], metadata=HOSPITAL))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = refusal(lambda: screen(settlement, [person], metadata=bearer("not-a-key")))
    assert code == grpc.StatusCode.UNAUTHENTICATED

    assert screen(settlement, [person] * 1000) == findings  # a person given twice: once
    assert screen(settlement, []) == []


def test_findings_come_by_person_in_the_order_asked(settlement: RunningService) -> None:
    first, second = new_person(settlement), new_person(settlement)
    for person in (first, second):
        chronic(settlement, person, "c1", date(YEAR, 3, 10), 10_000)
        certify(settlement, person, settlement_pb2.STATUS_LOW_INCOME, date(YEAR, 1, 1))

    assert [f.person_id for f in screen(settlement, [second, first])] == [second, first]
    assert [f.person_id for f in screen(settlement, [first, second])] == [first, second]

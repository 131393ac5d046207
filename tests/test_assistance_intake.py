"""Settlement events into the assistance service and the burden ledger they add up to
(issue 18, items 1 and 2): each event recorded once, a reversal taking its settlement's
figures away, a malformed batch refused whole.

Each test starts ``python -m services.assistance`` as a real process on each backend and
calls it as the settlement service does, with the platform's token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.common.errors import decode_status
from tests.services import INTERNAL, bearer, running_service
from tests.support import with_check_digit
from tests.test_datashare_service import day

ZHANG = with_check_digit("41132319500315001")
LI = with_check_digit("41132319620812002")


@pytest.fixture
def assistance(tmp_path: Path, database_url: str) -> Iterator[AssistanceServiceStub]:
    with running_service("assistance", tmp_path, database_url=database_url) as running:
        yield AssistanceServiceStub(running.channel())
    assert ZHANG not in running.log(), "the service logged a full identity number"


def stay(
    event_id: int,
    settlement_id: str,
    *,
    person: str = ZHANG,
    kind: int = pb.SETTLEMENT_EVENT_KIND_SETTLED,
    on: str = "2026-05-20",
) -> pb.SettlementEvent:
    """A stay of 50,000 yuan: 45,000 in scope; basic 30,000, assistance 8,000, the rest
    (12,000, of which 5,000 out of scope) paid by the person."""
    return pb.SettlementEvent(
        event_id=event_id,
        kind=kind,
        settlement_id=settlement_id,
        person_id=person,
        region="411323",
        visit_type=pb.VISIT_TYPE_INPATIENT,
        admitted=day("2026-05-10"),
        settled_on=day(on),
        total_fen=5_000_000,
        in_scope_fen=4_500_000,
        out_of_scope_fen=500_000,
        payments=[
            pb.FundPayment(layer="basic", fund="390100", paid_fen=3_000_000),
            pb.FundPayment(layer="medical_assistance", fund="assistance_project", paid_fen=800_000),
        ],
        self_pay_fen=1_200_000,
        statuses=[pb.STATUS_REGISTERED_POOR],
        policy="xixia-2017",
    )


def pharmacy(event_id: int, settlement_id: str) -> pb.SettlementEvent:
    """300 yuan at a pharmacy, all out of scope: the person pays all of it."""
    return pb.SettlementEvent(
        event_id=event_id,
        kind=pb.SETTLEMENT_EVENT_KIND_SETTLED,
        settlement_id=settlement_id,
        person_id=ZHANG,
        region="411323",
        visit_type=pb.VISIT_TYPE_PHARMACY,
        settled_on=day("2026-06-01"),
        total_fen=30_000,
        in_scope_fen=0,
        out_of_scope_fen=30_000,
        self_pay_fen=30_000,
        policy="xixia-2017",
    )


def record(stub: AssistanceServiceStub, *events: pb.SettlementEvent) -> int:
    answer = stub.RecordSettlementEvents(
        pb.RecordSettlementEventsRequest(events=events), metadata=INTERNAL
    )
    return int(answer.recorded_count)


def burden(stub: AssistanceServiceStub, person: str = ZHANG, year: int = 2026) -> pb.Burden:
    answer = stub.GetBurden(pb.GetBurdenRequest(person_id=person, year=year), metadata=INTERNAL)
    return answer.burden


def figures(found: pb.Burden) -> tuple[int, ...]:
    return (
        found.total_fen,
        found.fund_paid_fen,
        found.personal_burden_fen,
        found.eligible_burden_fen,
        found.inpatient_visits,
        found.pharmacy_visits,
    )


def test_settlements_add_up_per_person_and_year(assistance: AssistanceServiceStub) -> None:
    assert (
        record(
            assistance, stay(1, "s-101"), pharmacy(2, "s-102"), stay(3, "s-103", on="2025-12-30")
        )
        == 3
    )
    # 2026: the stay (self-pay 12,000, of it 7,000 in scope) and the pharmacy (300, none).
    assert figures(burden(assistance)) == (5_030_000, 3_800_000, 1_230_000, 700_000, 1, 1)
    assert [(p.fund, p.paid_fen) for p in burden(assistance).fund_payments] == [
        ("390100", 3_000_000),
        ("assistance_project", 800_000),
    ]
    assert figures(burden(assistance, year=2025)) == (
        5_000_000,
        3_800_000,
        1_200_000,
        700_000,
        1,
        0,
    )
    assert figures(burden(assistance, person=LI)) == (0, 0, 0, 0, 0, 0)


def test_an_event_sent_again_changes_nothing(assistance: AssistanceServiceStub) -> None:
    assert record(assistance, stay(1, "s-101")) == 1
    before = burden(assistance)
    assert record(assistance, stay(1, "s-101"), stay(1, "s-101")) == 0
    # The same settlement's event again under another id (a sender that lost its ids).
    assert record(assistance, stay(7, "s-101")) == 0
    assert burden(assistance) == before


def test_a_reversal_takes_its_settlement_away_once(assistance: AssistanceServiceStub) -> None:
    assert record(assistance, stay(1, "s-101"), pharmacy(2, "s-102")) == 2
    reversed_stay = stay(3, "s-101", kind=pb.SETTLEMENT_EVENT_KIND_REVERSED)
    assert record(assistance, reversed_stay) == 1
    assert record(assistance, reversed_stay) == 0
    assert figures(burden(assistance)) == (30_000, 0, 30_000, 0, 0, 1)
    assert list(burden(assistance).fund_payments) == []


def refusal(call: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return decode_status(caught.value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: setattr(e, "person_id", "411323195003150010"), "events[1].person_id"),
        (lambda e: setattr(e, "self_pay_fen", 1_200_001), "events[1].total_fen"),
        (lambda e: setattr(e, "in_scope_fen", 4_500_001), "events[1].total_fen"),
        (lambda e: e.payments[0].__setattr__("paid_fen", -1), "events[1].payments[0].paid_fen"),
        (lambda e: e.payments[0].__setattr__("fund", "f" * 33), "events[1].payments[0].fund"),
        (lambda e: setattr(e, "kind", 0), "events[1].kind"),
        (lambda e: setattr(e, "visit_type", 9), "events[1].visit_type"),
        (lambda e: e.settled_on.__setattr__("day", 31), "events[1].settled_on"),
        (lambda e: setattr(e, "event_id", 0), "events[1].event_id"),
        (lambda e: setattr(e, "policy", ""), "events[1].policy"),
        (lambda e: setattr(e, "settlement_id", ""), "events[1].settlement_id"),
    ],
)
def test_a_malformed_event_refuses_the_batch_and_records_nothing(
    assistance: AssistanceServiceStub, change: Any, field: str
) -> None:
    bad = stay(2, "s-102")
    bad.settled_on.month = 6  # 31 June does not exist
    bad.settled_on.day = 30
    change(bad)
    error = refusal(lambda: record(assistance, stay(1, "s-101"), bad))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == [field]
    assert figures(burden(assistance)) == (0, 0, 0, 0, 0, 0)


def test_only_the_platform_may_send_or_read(assistance: AssistanceServiceStub) -> None:
    error = refusal(
        lambda: assistance.RecordSettlementEvents(
            pb.RecordSettlementEventsRequest(events=[stay(1, "s-101")]),
            metadata=bearer("demo-poverty-office"),
        )
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    error = refusal(lambda: assistance.GetBurden(pb.GetBurdenRequest(person_id=ZHANG, year=2026)))
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert figures(burden(assistance)) == (0, 0, 0, 0, 0, 0)


def test_a_bad_read_names_its_field(assistance: AssistanceServiceStub) -> None:
    error = refusal(lambda: burden(assistance, person="411323"))
    assert [violation.field for violation in error.violations] == ["person_id"]
    error = refusal(lambda: burden(assistance, year=1900))
    assert [violation.field for violation in error.violations] == ["year"]

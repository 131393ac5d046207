"""Bills paid outside the window (issue 18, item 2): a clerk enters a bill from the
receipts with what insurance already paid there, and it counts toward the burden of its
person and year as a settlement does; recorded once per request id; bad input refused
naming the field, changing nothing.

``python -m services.assistance`` runs as a real process on each backend (one per module
and backend; each test has persons of its own), called with the platform's token.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.settlement.v1 import settlement_pb2
from tests.conftest import new_database
from tests.services import INTERNAL, bearer, running_service
from tests.support import with_check_digit
from tests.test_assistance_intake import figures, record, refusal, stay
from tests.test_contracts import test_settlements_fields_have_the_owners_numbers_and_types
from tests.test_datashare_service import day

_serial = itertools.count(1)


@dataclass(frozen=True)
class Assistance:
    stub: AssistanceServiceStub
    address: str


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Assistance]]:
    """The assistance service on a backend, started when a test first asks for it."""
    started: dict[str, Assistance] = {}
    logs: list[Callable[[], str]] = []
    with contextlib.ExitStack() as stack:

        def on(backend: str) -> Assistance:
            if backend not in started:
                directory = tmp_path_factory.mktemp(f"assistance-{backend}")
                url = stack.enter_context(new_database(backend, directory, "assistance"))
                running = stack.enter_context(
                    running_service("assistance", directory, database_url=url)
                )
                logs.append(running.log)
                started[backend] = Assistance(
                    AssistanceServiceStub(running.channel()), running.address
                )
            return started[backend]

        yield on
    for log in logs:
        assert "4113231970" not in log(), "the service logged a full identity number"


@pytest.fixture
def assistance(backend: str, services: Callable[[str], Assistance]) -> AssistanceServiceStub:
    return services(backend).stub


def someone() -> str:
    """A Xixia resident of this test alone."""
    n = next(_serial)
    return with_check_digit(f"4113231970{1 + n // 28 % 12:02d}{1 + n % 28:02d}{n // 336:03d}")


def out_of_area_stay(person: str, request_id: str = "") -> pb.Bill:
    """A stay in Zhengzhou, 40,000 yuan: insurance paid 15,000 (basic) and 3,000
    (critical illness) there; the person paid 22,000, of which class C 2,000, over-limit
    1,000 and the class B pre-payment (10% of 10,000) 1,000 are out of scope."""
    return pb.Bill(
        request_id=request_id or f"receipt-{person[-6:]}",
        person_id=person,
        region="411323",
        hospital_name="郑州大学第一附属医院",
        hospital_level=3,
        visit=pb.Visit(
            visit_id="ZZ-2026-0042",
            visit_type=pb.VISIT_TYPE_INPATIENT,
            admitted=day("2026-04-01"),
            discharged=day("2026-04-20"),
            out_of_area=True,
            diagnoses=["G04.9"],
            items=[
                pb.Item(code="BED", item_class=pb.ITEM_CLASS_A, amount_fen=2_600_000),
                pb.Item(
                    code="DRUG-B",
                    item_class=pb.ITEM_CLASS_B,
                    amount_fen=1_100_000,
                    over_limit_fen=100_000,
                ),
                pb.Item(code="SELF", item_class=pb.ITEM_CLASS_C, amount_fen=300_000),
            ],
        ),
        insurance_payments=[
            pb.BillPayment(fund="310100", paid_fen=1_500_000),
            pb.BillPayment(fund="390200", paid_fen=300_000),
        ],
        self_pay_fen=2_200_000,
    )


def enter(stub: AssistanceServiceStub, bill: pb.Bill) -> pb.RecordBillResponse:
    answer: pb.RecordBillResponse = stub.RecordBill(
        pb.RecordBillRequest(bill=bill), metadata=INTERNAL
    )
    return answer


def year_of(stub: AssistanceServiceStub, person: str, year: int = 2026) -> pb.GetBurdenResponse:
    answer: pb.GetBurdenResponse = stub.GetBurden(
        pb.GetBurdenRequest(person_id=person, year=year), metadata=INTERNAL
    )
    return answer


def bills_of(stub: AssistanceServiceStub, **request: Any) -> list[pb.Bill]:
    answer = stub.ListBills(pb.ListBillsRequest(**request), metadata=INTERNAL)
    return list(answer.bills)


def test_a_bill_counts_toward_its_persons_burden_of_its_discharge_year(
    assistance: AssistanceServiceStub,
) -> None:
    person = someone()
    answer = enter(assistance, out_of_area_stay(person))

    assert answer.recorded
    assert not answer.person_on_record  # enrollment never sent them: recorded all the same
    stored = answer.bill
    assert stored.bill_id > 0
    assert stored.total_fen == 4_000_000
    burden = year_of(assistance, person).burden
    # total, funds, personal (self-pay), eligible (self-pay less out of scope), stays, pharmacy
    assert figures(burden) == (
        4_000_000,
        1_800_000,
        2_200_000,
        2_200_000 - stored.out_of_scope_fen,
        1,
        0,
    )
    assert [(p.fund, p.paid_fen) for p in burden.fund_payments] == [
        ("310100", 1_500_000),
        ("390200", 300_000),
    ]
    assert figures(year_of(assistance, person, 2025).burden) == (0, 0, 0, 0, 0, 0)


def test_the_out_of_scope_part_follows_the_regions_pack(assistance: AssistanceServiceStub) -> None:
    stored = enter(assistance, out_of_area_stay(someone())).bill
    # Class C 300,000, over limit 100,000, the class B pre-payment 10% (xixia-2017's
    # catalogue) of the 1,000,000 within the limit.
    assert stored.out_of_scope_fen == 300_000 + 100_000 + 100_000
    assert stored.eligible_burden_fen == 2_200_000 - 500_000


def test_bills_and_settlements_add_up_in_one_ledger(assistance: AssistanceServiceStub) -> None:
    person = someone()
    event_id = 10_000 + next(_serial)
    assert record(assistance, stay(event_id, f"s-{event_id}", person=person)) == 1
    enter(assistance, out_of_area_stay(person))

    # The settled stay: 50,000 total, funds 38,000, self-pay 12,000 (7,000 eligible).
    burden = year_of(assistance, person).burden
    assert figures(burden) == (
        5_000_000 + 4_000_000,
        3_800_000 + 1_800_000,
        1_200_000 + 2_200_000,
        700_000 + 1_700_000,
        2,
        0,
    )


def test_the_same_request_id_records_the_bill_once(assistance: AssistanceServiceStub) -> None:
    person = someone()
    first = enter(assistance, out_of_area_stay(person, "twice"))
    again = enter(assistance, out_of_area_stay(person, "twice"))

    assert not again.recorded
    assert again.bill == first.bill
    assert figures(year_of(assistance, person).burden)[0] == 4_000_000

    other = out_of_area_stay(person, "twice")
    other.visit.items[0].amount_fen += 100
    other.self_pay_fen += 100
    error = refusal(lambda: enter(assistance, other))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "request_id" in error.message
    assert figures(year_of(assistance, person).burden)[0] == 4_000_000
    assert len(bills_of(assistance, person_id=person)) == 1


def test_a_bill_of_a_person_enrollment_sent_says_so(assistance: AssistanceServiceStub) -> None:
    person = someone()
    assistance.RecordPersons(
        pb.RecordPersonsRequest(
            persons=[
                pb.InsuredPerson(
                    person_id=person,
                    version=1,
                    name="张三",
                    household_id="H-bills",
                    region="411323",
                    years=[2026],
                )
            ]
        ),
        metadata=INTERNAL,
    )
    assert enter(assistance, out_of_area_stay(person)).person_on_record


def test_bills_are_listed_by_person_or_by_region_and_year(
    assistance: AssistanceServiceStub,
) -> None:
    person, other = someone(), someone()
    first = enter(assistance, out_of_area_stay(person, f"list-{person}-1")).bill
    late = out_of_area_stay(person, f"list-{person}-2")
    late.visit.admitted.CopyFrom(day("2025-12-20"))
    late.visit.discharged.CopyFrom(day("2025-12-28"))
    second = enter(assistance, late).bill
    taishan = out_of_area_stay(other, f"list-{other}")
    taishan.region = "440781"
    third = enter(assistance, taishan).bill

    assert [b.bill_id for b in bills_of(assistance, person_id=person)] == [
        first.bill_id,
        second.bill_id,
    ]
    assert [b.bill_id for b in bills_of(assistance, person_id=person, year=2025)] == [
        second.bill_id
    ]
    assert bills_of(assistance, person_id=person, year=2025)[0] == second
    taishans = bills_of(assistance, region="440781", year=2026)
    assert third.bill_id in [b.bill_id for b in taishans]
    assert {b.region for b in taishans} == {"440781"}
    assert third.bill_id not in [
        b.bill_id for b in bills_of(assistance, region="440781", year=2025)
    ]
    # A page at a time.
    page = assistance.ListBills(
        pb.ListBillsRequest(person_id=person, page_size=1), metadata=INTERNAL
    )
    assert [b.bill_id for b in page.bills] == [first.bill_id]
    rest = assistance.ListBills(
        pb.ListBillsRequest(person_id=person, page_size=1, page_token=page.next_page_token),
        metadata=INTERNAL,
    )
    assert [b.bill_id for b in rest.bills] == [second.bill_id]


def _unbalanced(bill: pb.Bill) -> None:
    bill.self_pay_fen -= 1


def _taishan_before_its_pack(bill: pb.Bill) -> None:
    bill.region = "440781"  # taishan-2022 starts in 2022
    bill.visit.admitted.year = bill.visit.discharged.year = 2016


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: setattr(b, "request_id", ""), "bill.request_id"),
        (lambda b: setattr(b, "person_id", "411323195003150010"), "bill.person_id"),
        (lambda b: setattr(b, "region", "999999"), "bill.region"),
        (_taishan_before_its_pack, "bill.region"),
        (lambda b: setattr(b, "hospital_name", ""), "bill.hospital_name"),
        (lambda b: setattr(b, "hospital_level", 4), "bill.hospital_level"),
        (lambda b: setattr(b, "hospital_level", 0), "bill.visit.hospital_level"),
        (_unbalanced, "bill.self_pay_fen"),
        (lambda b: setattr(b, "self_pay_fen", -1), "bill.self_pay_fen"),
        (
            lambda b: b.insurance_payments[0].__setattr__("paid_fen", -1),
            "bill.insurance_payments[0].paid_fen",
        ),
        (
            lambda b: b.insurance_payments[1].__setattr__("fund", "310100"),
            "bill.insurance_payments[1].fund",
        ),
        (
            lambda b: b.visit.items[0].__setattr__("amount_fen", -5),
            "bill.visit.items[0].amount_fen",
        ),
        (lambda b: b.visit.items[0].__setattr__("item_class", 0), "bill.visit.items[0].class"),
        (lambda b: b.visit.discharged.__setattr__("day", 31), "bill.visit.discharged"),
        (lambda b: b.visit.admitted.__setattr__("month", 7), "bill.visit.discharged"),
        (lambda b: setattr(b.visit, "visit_type", 9), "bill.visit.type"),
        (lambda b: b.visit.ClearField("items"), "bill.visit.items"),
    ],
)
def test_a_bad_bill_is_refused_naming_the_field_and_changes_nothing(
    assistance: AssistanceServiceStub, change: Callable[[pb.Bill], Any], field: str
) -> None:
    person = someone()
    bill = out_of_area_stay(person)
    bill.visit.discharged.month = 6  # 31 June does not exist
    bill.visit.discharged.day = 30
    change(bill)
    error = refusal(lambda: enter(assistance, bill))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in error.violations] == [field]
    assert figures(year_of(assistance, person).burden) == (0, 0, 0, 0, 0, 0)
    assert figures(year_of(assistance, person, 2016).burden) == (0, 0, 0, 0, 0, 0)
    assert bills_of(assistance, person_id=person) == []


def test_only_the_platform_may_enter_or_list_bills(assistance: AssistanceServiceStub) -> None:
    person = someone()
    error = refusal(
        lambda: assistance.RecordBill(
            pb.RecordBillRequest(bill=out_of_area_stay(person)),
            metadata=bearer("demo-civil-affairs"),
        )
    )
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert bills_of(assistance, person_id=person) == []


@pytest.mark.parametrize(
    ("settlements", "assistances"),
    [(settlement_pb2.Visit, pb.Visit), (settlement_pb2.Item, pb.Item)],
    ids=["visit", "item"],
)
def test_a_bills_visit_has_settlements_numbers_and_types(
    settlements: Any, assistances: Any
) -> None:
    test_settlements_fields_have_the_owners_numbers_and_types(settlements, assistances)
    assert dict(pb.ItemClass.items()) == dict(settlement_pb2.ItemClass.items())

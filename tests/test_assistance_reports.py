"""The monitoring report (issue 18, item 7; docs/domain.md section 8): every figure of a
small region, computed by hand beside its data, for a month and the year to date, by
category and visit type; the enrolments enrollment sends; ``doudi report`` as a table,
JSON, CSV and xlsx; bad input refused.

``python -m services.assistance`` runs as a real process on each backend, fed as
settlement, enrollment and the hub feed it and called as the bureau's command line calls
it (the platform's token). No RPC writes screening offers yet (item 5 is being built):
the confirmed offers are inserted into ``screening_offers`` directly.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import openpyxl
import pytest
from google.protobuf.descriptor import FieldDescriptor

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli.main import main
from doudi.common.db import create_engine_for
from doudi.common.protos import to_timestamp
from doudi.core.monitoring import bureau_day
from doudi.enrollment.v1 import enrollment_pb2
from services.assistance.tables import screening_offers
from tests.services import INTERNAL, running_service
from tests.support import with_check_digit
from tests.test_assistance_bills import out_of_area_stay
from tests.test_assistance_intake import record, refusal
from tests.test_datashare_service import day

XIXIA = "411323"
ANNA = with_check_digit("41132319500315001")  # dibao all year, low income in March
BO = with_check_digit("41132319620812002")  # registered poor from 15 April
CHEN = with_check_digit("41132319700101003")  # no status
DING = with_check_digit("12010119600404006")  # Tianjin: in no figure of Xixia
EN = with_check_digit("41132319800303005")  # monitored in 2025 only

Key = tuple[str, str, int, str]


@dataclass
class Assistance:
    stub: AssistanceServiceStub
    address: str
    database_url: str


@pytest.fixture
def assistance(tmp_path: Path, database_url: str) -> Iterator[Assistance]:
    with running_service("assistance", tmp_path, database_url=database_url) as running:
        yield Assistance(AssistanceServiceStub(running.channel()), running.address, database_url)
    for number in (ANNA, BO, CHEN):
        assert number not in running.log(), "the service logged a full identity number"


def moment(text: str) -> Any:
    return to_timestamp(datetime.fromisoformat(text).replace(tzinfo=UTC))


def enrolment(year: int, category: str, subsidy_fen: int, at: str) -> pb.Enrolment:
    return pb.Enrolment(
        year=year,
        premium_fen=18_000,
        subsidy_fen=subsidy_fen,
        subsidy_category=category,
        enrolled_at=moment(at),
    )


def insured(
    person: str, region: str, *enrolments: pb.Enrolment, version: int = 1
) -> pb.InsuredPerson:
    return pb.InsuredPerson(
        person_id=person,
        version=version,
        name="张三",
        household_id=f"H-{person[-4:]}",
        region=region,
        years=sorted({e.year for e in enrolments}),
        enrolments=enrolments,
    )


def period(status: int, start: str, end: str | None = None) -> pb.StatusPeriod:
    agency = (
        pb.AGENCY_POVERTY_OFFICE
        if status in (pb.STATUS_REGISTERED_POOR, pb.STATUS_AT_RISK)
        else pb.AGENCY_CIVIL_AFFAIRS
    )
    found = pb.StatusPeriod(status=status, valid_from=day(start), agency=agency)
    if end is not None:
        found.valid_to.CopyFrom(day(end))
    return found


def event(
    event_id: int,
    person: str,
    visit_type: int,
    on: str,
    total: int,
    payments: dict[str, int],
    self_pay: int,
    out_of_scope: int,
    *statuses: int,
    kind: int = pb.SETTLEMENT_EVENT_KIND_SETTLED,
    settlement: str = "",
) -> pb.SettlementEvent:
    return pb.SettlementEvent(
        event_id=event_id,
        kind=kind,
        settlement_id=settlement or f"s-{event_id}",
        person_id=person,
        region=XIXIA,
        visit_type=visit_type,
        settled_on=day(on),
        total_fen=total,
        in_scope_fen=total - out_of_scope,
        out_of_scope_fen=out_of_scope,
        payments=[
            pb.FundPayment(layer=f"l-{fund}", fund=fund, paid_fen=fen)
            for fund, fen in payments.items()
        ],
        self_pay_fen=self_pay,
        statuses=statuses,
        policy="xixia-2017",
    )


def application(stub: AssistanceServiceStub, request_id: str, kind: int, accepted_on: str) -> int:
    answer = stub.AcceptApplication(
        pb.AcceptApplicationRequest(
            request_id=request_id,
            person_id=CHEN,
            household_id="H-chen",
            region=XIXIA,
            kind=kind,
            accepted_on=day(accepted_on),
            documents_received=["身份证", "医疗费用发票"],
            case_worker="王芳",
        ),
        metadata=INTERNAL,
    )
    return int(answer.application.application_id)


def decide(stub: AssistanceServiceStub, application_id: int, on: str, *, approve: bool) -> None:
    stub.DecideApplication(
        pb.DecideApplicationRequest(
            application_id=application_id,
            decision=pb.DECISION_APPROVE if approve else pb.DECISION_REFUSE,
            reason="核实" if approve else "收入超标",
            decided_on=day(on),
            approved_amount_fen=100_000 if approve else 0,
            case_worker="李科长",
        ),
        metadata=INTERNAL,
    )


def offer(
    person: str, state: str, statuses: str, paid: int, confirmed: str | None
) -> dict[str, Any]:
    return {
        "run_id": 1,
        "source": "settlement",
        "reference": f"s-{person[-4:]}-{paid}",
        "person_id": person,
        "region": XIXIA,
        "year": 2026,
        "settled_on": date(2026, 3, 10),
        "visit_type": "inpatient",
        "statuses": statuses,
        "policy": "xixia-2017",
        "self_pay_fen": 1_200_000,
        "offered_fen": paid,
        "details": {},
        "state": state,
        "confirmed_at": None if confirmed is None else datetime.fromisoformat(confirmed),
        "confirmed_by": None if confirmed is None else "王芳",
        "paid_fen": paid if state == "confirmed" else 0,
    }


def small_region(assistance: Assistance) -> None:
    """Xixia's persons, statuses, visits, applications and screening offers of 2026; the
    figures each makes are worked out in the tests below."""
    stub = assistance.stub
    stub.RecordPersons(
        pb.RecordPersonsRequest(
            persons=[
                # Anna: subsidised 2026 in January; 2025's counts in no 2026 figure.
                insured(
                    ANNA,
                    XIXIA,
                    enrolment(2025, "registered_poor", 18_000, "2025-01-10T02:00:00"),
                    enrolment(2026, "registered_poor", 18_000, "2026-01-10T02:00:00"),
                ),
                # Bo: recorded at 00:30 on 1 April, Beijing time: April's.
                insured(
                    BO, XIXIA, enrolment(2026, "registered_poor", 15_000, "2026-03-31T16:30:00")
                ),
                insured(CHEN, XIXIA, enrolment(2026, "", 0, "2026-01-05T02:00:00")),
                insured(DING, "120000", enrolment(2026, "dibao", 18_000, "2026-02-01T02:00:00")),
                insured(EN, XIXIA),
            ]
        ),
        metadata=INTERNAL,
    )
    stub.RecordPersonStatuses(
        pb.RecordPersonStatusesRequest(
            persons=[
                pb.PersonStatuses(
                    person_id=ANNA,
                    version=1,
                    periods=[
                        period(pb.STATUS_DIBAO, "2026-01-01"),
                        period(pb.STATUS_LOW_INCOME, "2026-03-01", "2026-03-31"),
                    ],
                ),
                pb.PersonStatuses(
                    person_id=BO,
                    version=1,
                    periods=[period(pb.STATUS_REGISTERED_POOR, "2026-04-15")],
                ),
                pb.PersonStatuses(
                    person_id=DING, version=1, periods=[period(pb.STATUS_DIBAO, "2026-01-01")]
                ),
                pb.PersonStatuses(
                    person_id=EN,
                    version=1,
                    periods=[period(pb.STATUS_AT_RISK, "2025-01-01", "2025-12-31")],
                ),
            ]
        ),
        metadata=INTERNAL,
    )
    inpatient, general, pharmacy = (
        pb.VISIT_TYPE_INPATIENT,
        pb.VISIT_TYPE_OUTPATIENT_GENERAL,
        pb.VISIT_TYPE_PHARMACY,
    )
    record(
        stub,
        # March. Anna's stay under dibao and low income: 50,000; funds 30,000 + 8,000;
        # she pays 12,000, 5,000 of it out of scope.
        event(1, ANNA, inpatient, "2026-03-10", 5_000_000, {"390100": 3_000_000, "610100": 800_000}, 1_200_000, 500_000, pb.STATUS_DIBAO, pb.STATUS_LOW_INCOME),
        # Bo's visit before his status (1,000; fund 600), reversed: nothing is left of it.
        event(2, BO, general, "2026-03-20", 100_000, {"390100": 60_000}, 40_000, 0),
        event(3, BO, general, "2026-03-20", 100_000, {"390100": 60_000}, 40_000, 0, kind=pb.SETTLEMENT_EVENT_KIND_REVERSED, settlement="s-2"),
        # Chen at a pharmacy: 300, all out of scope.
        event(4, CHEN, pharmacy, "2026-03-05", 30_000, {}, 30_000, 30_000),
        # April. Bo's stay as registered poor: 20,000; funds 12,000 + 2,000; he pays
        # 6,000, 1,000 of it out of scope.
        event(5, BO, inpatient, "2026-04-20", 2_000_000, {"390100": 1_200_000, "390200": 200_000}, 600_000, 100_000, pb.STATUS_REGISTERED_POOR),
    )  # fmt: skip
    # April: Anna's bill paid out of area, under dibao (low income ended in March).
    # 40,000 yuan in Zhengzhou, discharged 20 April: insurance paid 15,000 (310100) and
    # 3,000 (390200) there; she paid 22,000, of which out of scope: class C 3,000,
    # over-limit 1,000 and the class B pre-payment (10% of 10,000) 1,000: eligible 17,000.
    stub.RecordBill(pb.RecordBillRequest(bill=out_of_area_stay(ANNA)), metadata=INTERNAL)
    # Applications: decided in 10 working days in March (3 March to 16 March), in 8 in
    # April (20 March to 1 April); one of January undecided, past its deadline (mid
    # February) ever since.
    quick = application(stub, "a-1", pb.APPLICATION_KIND_TEMPORARY, "2026-03-02")
    decide(stub, quick, "2026-03-16", approve=True)
    application(stub, "a-2", pb.APPLICATION_KIND_OUT_OF_AREA_HARDSHIP, "2026-01-05")
    slow = application(stub, "a-3", pb.APPLICATION_KIND_TEMPORARY, "2026-03-20")
    decide(stub, slow, "2026-04-01", approve=False)
    engine = create_engine_for(assistance.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                screening_offers.insert(),
                [
                    offer(
                        ANNA, "confirmed", "dibao low_income", 50_000, "2026-03-25T03:00:00+00:00"
                    ),
                    # 1 April at 01:00 Beijing time: April's.
                    offer(ANNA, "confirmed", "dibao", 20_000, "2026-03-31T17:00:00+00:00"),
                    offer(BO, "offered", "registered_poor", 30_000, None),
                    offer(BO, "superseded", "registered_poor", 40_000, None),
                ],
            )
    finally:
        engine.dispose()


def report(
    stub: AssistanceServiceStub, month: int, year: int = 2026, region: str = XIXIA
) -> dict[Key, tuple[int, int]]:
    answer = stub.GetReport(
        pb.GetReportRequest(region=region, year=year, month=month, as_of=day("2027-06-30")),
        metadata=INTERNAL,
    )
    found: dict[Key, tuple[int, int]] = {}
    for row in answer.rows:
        key = (row.figure, row.category, row.visit_type, row.fund)
        assert key not in found, key
        found[key] = (row.month, row.year_to_date)
    return found


def visit_figures(
    found: dict[Key, tuple[int, int]], category: str, visit_type: int = 0
) -> tuple[tuple[int, int], ...]:
    names = (
        "visits",
        "total_fen",
        "fund_paid_fen",
        "personal_burden_fen",
        "eligible_burden_fen",
        "reimbursement_ratio_bp",
    )
    return tuple(found[(name, category, visit_type, "")] for name in names)


def test_every_figure_of_a_small_region_as_computed_by_hand(assistance: Assistance) -> None:
    small_region(assistance)
    march, april = report(assistance.stub, 3), report(assistance.stub, 4)

    # Monitored people: March, Anna (dibao and low income: in each, once in the total);
    # April, Anna and Bo; En's status ended in 2025; Ding is Tianjin's.
    assert {k[1]: v for k, v in march.items() if k[0] == "monitored_people"} == {
        "monitored": (1, 1),
        "dibao": (1, 1),
        "low_income": (1, 1),
    }
    assert {k[1]: v for k, v in april.items() if k[0] == "monitored_people"} == {
        "monitored": (2, 2),
        "dibao": (1, 1),
        "low_income": (0, 1),
        "registered_poor": (1, 1),
    }

    # March, every visit: Anna's stay and Chen's pharmacy (Bo's visit reversed):
    # 2 visits, 50,300 total, funds 38,000, paid by patients 12,300, eligible 7,000;
    # ratio 38,000 / 50,300 = 75.55%. The year to date is March's.
    everyone_march = (
        (2, 2),
        (5_030_000,) * 2,
        (3_800_000,) * 2,
        (1_230_000,) * 2,
        (700_000,) * 2,
        (7555, 7555),
    )
    assert visit_figures(march, "") == everyone_march
    assert visit_figures(march, "", pb.VISIT_TYPE_INPATIENT) == (
        (1, 1),
        (5_000_000,) * 2,
        (3_800_000,) * 2,
        (1_200_000,) * 2,
        (700_000,) * 2,
        (7600, 7600),
    )
    assert visit_figures(march, "", pb.VISIT_TYPE_OUTPATIENT_GENERAL) == (
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
        (0, 0),
    )
    assert visit_figures(march, "", pb.VISIT_TYPE_PHARMACY) == (
        (1, 1),
        (30_000,) * 2,
        (0, 0),
        (30_000,) * 2,
        (0, 0),
        (0, 0),
    )
    anna_march = (
        (1, 1),
        (5_000_000,) * 2,
        (3_800_000,) * 2,
        (1_200_000,) * 2,
        (700_000,) * 2,
        (7600, 7600),
    )
    for category in ("monitored", "dibao", "low_income"):
        assert visit_figures(march, category) == anna_march
    assert ("visits", "registered_poor", 0, "") not in march

    # April: Bo's stay (20,000; funds 14,000; he pays 6,000, eligible 5,000) and Anna's
    # bill (40,000; insurance 18,000 there; she pays 22,000, eligible 17,000): 60,000,
    # funds 32,000, patients 28,000, ratio 53.33%. To date: 110,300, 70,000, 40,300,
    # 29,000; ratio 70,000 / 110,300 = 63.46%.
    assert visit_figures(april, "") == (
        (2, 4),
        (6_000_000, 11_030_000),
        (3_200_000, 7_000_000),
        (2_800_000, 4_030_000),
        (2_200_000, 2_900_000),
        (5333, 6346),
    )
    # Monitored: all but Chen's pharmacy; to date 110,000, patients 40,000: 63.64%.
    assert visit_figures(april, "monitored") == (
        (2, 3),
        (6_000_000, 11_000_000),
        (3_200_000, 7_000_000),
        (2_800_000, 4_000_000),
        (2_200_000, 2_900_000),
        (5333, 6364),
    )
    # Dibao: Anna's stay and bill (90,000; she paid 34,000); low income: the stay alone.
    assert visit_figures(april, "dibao") == (
        (1, 2),
        (4_000_000, 9_000_000),
        (1_800_000, 5_600_000),
        (2_200_000, 3_400_000),
        (1_700_000, 2_400_000),
        (4500, 6222),
    )
    assert visit_figures(april, "low_income") == (
        (0, 1),
        (0, 5_000_000),
        (0, 3_800_000),
        (0, 1_200_000),
        (0, 700_000),
        (0, 7600),
    )
    assert visit_figures(april, "registered_poor") == (
        (1, 1),
        (2_000_000,) * 2,
        (1_400_000,) * 2,
        (600_000,) * 2,
        (500_000,) * 2,
        (7000, 7000),
    )

    # Each fund's payments, and the clearing owed to hospitals: the window's alone (the
    # bill's 15,000 and 3,000 were paid in Zhengzhou).
    def funds(
        found: dict[Key, tuple[int, int]], figure: str, category: str = ""
    ) -> dict[str, tuple[int, int]]:
        return {k[3]: v for k, v in found.items() if k[:3] == (figure, category, 0) and k[3]}

    assert funds(march, "fund_paid_fen") == {"390100": (3_000_000,) * 2, "610100": (800_000,) * 2}
    assert funds(april, "fund_paid_fen") == {
        "310100": (1_500_000, 1_500_000),
        "390100": (1_200_000, 4_200_000),
        "390200": (500_000, 500_000),
        "610100": (0, 800_000),
    }
    assert funds(april, "fund_paid_fen", "registered_poor") == {
        "390100": (1_200_000,) * 2,
        "390200": (200_000,) * 2,
    }
    assert funds(april, "clearing_fen") == {
        "310100": (0, 0),
        "390100": (1_200_000, 4_200_000),
        "390200": (200_000, 200_000),
        "610100": (0, 800_000),
    }
    assert april[("clearing_fen", "", 0, "")] == (1_400_000, 5_200_000)
    assert april[("clearing_fen", "", pb.VISIT_TYPE_INPATIENT, "")] == (1_400_000, 5_200_000)

    # Subsidised enrolments of 2026: Anna's in January, Bo's on 1 April (Beijing time);
    # Chen's is not subsidised, Ding's is Tianjin's, Anna's 2025 another year's.
    assert march[("subsidised_enrolments", "", 0, "")] == (0, 1)
    assert april[("subsidised_enrolments", "registered_poor", 0, "")] == (1, 2)
    assert {
        k[3]: v
        for k, v in april.items()
        if k[:3] == ("subsidised_premium_fen", "registered_poor", 0)
    } == {
        "": (18_000, 36_000),
        "assistance_fund": (15_000, 33_000),
        "person": (3_000, 3_000),
    }

    # Applications: March accepted 2 (3 to date), decided 1 in 10 working days; January's
    # overdue at March's end. April: 1 decided in 8; to date 2 in 18, 9 days on average.
    assert march[("applications_accepted", "", 0, "")] == (2, 3)
    assert march[("applications_accepted", "temporary", 0, "")] == (2, 2)
    assert march[("applications_accepted", "out_of_area_hardship", 0, "")] == (0, 1)
    assert march[("applications_decided", "", 0, "")] == (1, 1)
    assert march[("decision_working_days", "", 0, "")] == (10, 10)
    assert march[("decision_working_days_average", "", 0, "")] == (1000, 1000)
    assert march[("applications_overdue", "", 0, "")] == (1, 1)
    assert march[("applications_overdue", "out_of_area_hardship", 0, "")] == (1, 1)
    assert april[("applications_decided", "temporary", 0, "")] == (1, 2)
    assert april[("decision_working_days", "", 0, "")] == (8, 18)
    assert april[("decision_working_days_average", "", 0, "")] == (800, 900)

    # Proactive: Anna's confirmed offers, 500 in March and 200 on 1 April (Beijing time);
    # Bo's unconfirmed offers pay nothing.
    assert march[("proactive_people", "", 0, "")] == (1, 1)
    assert march[("proactive_paid_fen", "low_income", 0, "")] == (50_000, 50_000)
    assert april[("proactive_people", "", 0, "")] == (1, 1)
    assert april[("proactive_person_times", "", 0, "")] == (1, 2)
    assert april[("proactive_paid_fen", "", 0, "")] == (20_000, 70_000)
    assert april[("proactive_person_times", "dibao", 0, "")] == (1, 2)
    assert ("proactive_people", "registered_poor", 0, "") not in april

    # The whole year: no month's column.
    year = report(assistance.stub, 0)
    assert visit_figures(year, "")[:2] == ((0, 4), (0, 11_030_000))
    assert all(month == 0 for month, _ in year.values())


@pytest.mark.parametrize("as_of", ["2027-06-30", "2026-04-10"])
def test_a_monthly_report_is_each_months_report_in_one_call(
    assistance: Assistance, as_of: str
) -> None:
    """The dashboard's monthly charts: the year and its twelve months in one call, each
    month as asked alone (overdue judged on the month's last day, or ``as_of`` before)."""
    small_region(assistance)
    stub = assistance.stub
    alone = [
        stub.GetReport(
            pb.GetReportRequest(region=XIXIA, year=2026, month=month, as_of=day(as_of)),
            metadata=INTERNAL,
        )
        for month in range(13)
    ]

    together = stub.GetReport(
        pb.GetReportRequest(region=XIXIA, year=2026, as_of=day(as_of), monthly=True),
        metadata=INTERNAL,
    )

    assert (together.region, together.year, together.month) == (XIXIA, 2026, 0)
    assert (together.as_of, list(together.rows)) == (alone[0].as_of, list(alone[0].rows))
    assert [(m.month, m.as_of, list(m.rows)) for m in together.months] == [
        (answer.month, answer.as_of, list(answer.rows)) for answer in alone[1:]
    ]
    assert not alone[0].months
    monitored = [
        next(
            row.month
            for row in m.rows
            if (row.figure, row.category) == ("monitored_people", "monitored")
        )
        for m in together.months
    ]
    assert monitored[2:4] == [1, 2]  # Anna in March; Bo too from 15 April


def test_warnings_and_secondary_assistance_count_on_the_day_they_happen(
    assistance: Assistance,
) -> None:
    small_region(assistance)
    stub = assistance.stub
    # Anna's household passed the 因病返贫 line (50% of 11,697) with her March stay:
    # raised today. Civil affairs dismisses it today.
    raised = stub.ListWarnings(pb.ListWarningsRequest(region=XIXIA, year=2026), metadata=INTERNAL)
    assert [w.kind for w in raised.warnings] == [pb.WARNING_KIND_RETURN_TO_POVERTY]
    now = datetime.now(UTC)
    stub.RecordWarningDecisions(
        pb.RecordWarningDecisionsRequest(
            decisions=[
                pb.WarningDecision(
                    warning_id=raised.warnings[0].warning_id,
                    version=2,
                    state=pb.WARNING_STATE_DISMISSED,
                    decided_by=pb.AGENCY_CIVIL_AFFAIRS,
                    decided_at=to_timestamp(now),
                    reason="已核实收入",
                )
            ]
        ),
        metadata=INTERNAL,
    )
    # Secondary: Anna's eligible 7,000 under dibao owes 50% of 2,000; Bo's 5,000 nothing.
    run = stub.CreateSecondaryRun(
        pb.CreateSecondaryRunRequest(
            request_id="run-1",
            region=XIXIA,
            year=2026,
            through=day("2026-12-31"),
            case_worker="王芳",
        ),
        metadata=INTERNAL,
    ).run
    stub.ApproveSecondaryRun(
        pb.ApproveSecondaryRunRequest(run_id=run.run_id, approver="李主任"), metadata=INTERNAL
    )
    today = bureau_day(datetime.now(UTC))

    found = report(stub, today.month, today.year)

    assert found[("warnings_raised", "", 0, "")] == (1, 1)
    assert found[("warnings_raised", "return_to_poverty", 0, "")] == (1, 1)
    assert found[("warnings_dismissed", "", 0, "")] == (1, 1)
    assert found[("warnings_certified", "", 0, "")] == (0, 0)
    assert found[("warnings_overdue", "", 0, "")] == (0, 0)
    assert found[("secondary_people", "", 0, "")] == (1, 1)
    assert found[("secondary_person_times", "", 0, "")] == (1, 1)
    assert found[("secondary_paid_fen", "", 0, "")] == (100_000, 100_000)


def test_a_warning_left_undecided_is_overdue_from_its_due_day(assistance: Assistance) -> None:
    small_region(assistance)
    stub = assistance.stub
    raised = stub.ListWarnings(pb.ListWarningsRequest(region=XIXIA, year=2026), metadata=INTERNAL)
    due = raised.warnings[0].due_on
    due_on = date(due.year, due.month, due.day)
    answer = stub.GetReport(
        pb.GetReportRequest(
            region=XIXIA, year=due_on.year, month=due_on.month, as_of=day(due_on.isoformat())
        ),
        metadata=INTERNAL,
    )
    overdue = {
        (r.figure, r.category): r.year_to_date
        for r in answer.rows
        if r.figure == "warnings_overdue"
    }
    assert overdue == {("warnings_overdue", ""): 1, ("warnings_overdue", "return_to_poverty"): 1}
    before = stub.GetReport(
        pb.GetReportRequest(
            region=XIXIA,
            year=due_on.year,
            month=due_on.month,
            as_of=day(date.fromordinal(due_on.toordinal() - 1).isoformat()),
        ),
        metadata=INTERNAL,
    )
    assert [r.year_to_date for r in before.rows if r.figure == "warnings_overdue"] == [0]


def test_a_newer_version_of_a_person_replaces_their_enrolments(assistance: Assistance) -> None:
    small_region(assistance)
    stub = assistance.stub
    newer = insured(
        BO, XIXIA, enrolment(2026, "registered_poor", 18_000, "2026-04-02T02:00:00"), version=2
    )
    older = insured(BO, XIXIA, version=1)
    answer = stub.RecordPersons(pb.RecordPersonsRequest(persons=[newer]), metadata=INTERNAL)
    assert list(answer.versions) == [2]
    stub.RecordPersons(pb.RecordPersonsRequest(persons=[older]), metadata=INTERNAL)  # stale

    april = report(stub, 4)
    assert april[("subsidised_premium_fen", "", 0, "assistance_fund")] == (18_000, 36_000)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"region": "999999", "year": 2026}, "region"),
        ({"region": "4113", "year": 2026}, "region"),
        ({"region": XIXIA, "year": 1800}, "year"),
        ({"region": XIXIA, "year": 2026, "month": 13}, "month"),
        ({"region": XIXIA, "year": 2026, "month": 4, "monthly": True}, "monthly"),
    ],
)
def test_a_bad_report_request_names_its_field(
    assistance: Assistance, request_fields: dict[str, Any], field: str
) -> None:
    status = refusal(
        lambda: assistance.stub.GetReport(pb.GetReportRequest(**request_fields), metadata=INTERNAL)
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [violation.field for violation in status.violations] == [field]


def test_a_bad_enrolment_refuses_the_persons(assistance: Assistance) -> None:
    bad = insured(ANNA, XIXIA, enrolment(2026, "registered_poor", 20_000, "2026-01-10T02:00:00"))
    status = refusal(
        lambda: assistance.stub.RecordPersons(
            pb.RecordPersonsRequest(persons=[bad]), metadata=INTERNAL
        )
    )
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in status.violations] == ["persons[0].enrolments[0].subsidy_fen"]
    assert report(assistance.stub, 1)[("subsidised_enrolments", "", 0, "")] == (0, 0)


def test_assistances_enrolment_has_enrollments_numbers_and_types() -> None:
    theirs = enrollment_pb2.Enrolment.DESCRIPTOR.fields_by_name
    for field in pb.Enrolment.DESCRIPTOR.fields:
        if field.name == "enrolled_at":  # read from enrollment's table, sent to assistance only
            assert field.number not in {
                f.number for f in enrollment_pb2.Enrolment.DESCRIPTOR.fields
            }
            assert field.type == FieldDescriptor.TYPE_MESSAGE
            continue
        owner = theirs[field.name]
        assert (field.number, field.type) == (owner.number, owner.type), field.name


def test_the_migration_adds_up_what_the_ledger_held_before_it(assistance: Assistance) -> None:
    """Migration 0009 on a database with settlements, a reversal and a bill makes the same
    aggregate as adding them one batch after another did."""
    from alembic import command

    from doudi.common.migrations import config
    from services.assistance.server import SPEC
    from services.assistance.tables import report_fund_payments, report_visits

    small_region(assistance)
    engine = create_engine_for(assistance.database_url)

    def aggregate() -> tuple[list[Any], list[Any]]:
        with engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                sorted(tuple(row) for row in connection.execute(table.select()))
                for table in (report_visits, report_fund_payments)
            )

    try:
        added = aggregate()
        assert added[0]
        cfg = config(assistance.database_url, SPEC.migrations)
        command.downgrade(cfg, "0008")
        command.upgrade(cfg, "head")
        assert aggregate() == added
    finally:
        engine.dispose()


# --- the command line ---


def doudi(
    assistance: Assistance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("DOUDI_ASSISTANCE_ADDRESS", assistance.address)
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_report_as_a_table_json_csv_and_xlsx(
    assistance: Assistance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    small_region(assistance)

    def april(*options: str) -> tuple[int, str, str]:
        return doudi(
            assistance,
            monkeypatch,
            capsys,
            "--region",
            XIXIA,
            "--year",
            "2026",
            "--month",
            "4",
            *options,
        )

    code, out, err = april("--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    rows = {(r["figure"], r["category"], r["visit_type"], r["fund"]): r for r in document["rows"]}
    assert (document["region"], document["year"], document["month"]) == (XIXIA, 2026, 4)
    assert rows[("total_fen", "", "", "")]["month"] == 6_000_000
    assert rows[("total_fen", "", "", "")]["year_to_date"] == 11_030_000
    assert rows[("visits", "dibao", "inpatient", "")]["category_name"] == "低保"
    # The status 建档立卡贫困户 and Xixia's subsidy category of the same code, each its name.
    assert rows[("visits", "registered_poor", "", "")]["category_name"] == "建档立卡贫困户"
    assert (
        rows[("subsidised_enrolments", "registered_poor", "", "")]["category_name"]
        == "未参保的建档立卡贫困人员"
    )

    code, out, err = april()
    assert (code, err) == (0, "")
    assert "110,300.00" in out
    assert "监测人员" in out
    assert "63.46" in out

    path = tmp_path / "report.csv"
    code, out, err = april("--csv", str(path))
    assert (code, err) == (0, "")
    with path.open(encoding="utf-8-sig", newline="") as file:
        lines = list(csv.reader(file))
    assert lines[0] == ["指标", "类别", "类别名称", "就诊类型", "基金", "单位", "当月", "年初至今"]
    assert ["医疗总费用", "", "合计", "合计", "", "元", "60000.00", "110300.00"] in lines
    assert ["综合报销比例", "monitored", "监测人员", "合计", "", "%", "53.33", "63.64"] in lines
    assert len(lines) == 1 + len(document["rows"])

    workbook_path = tmp_path / "report.xlsx"
    code, _, err = april("--xlsx", str(workbook_path))
    assert (code, err) == (0, "")
    sheet = openpyxl.load_workbook(workbook_path).active
    assert sheet is not None
    cells = [
        ["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)
    ]
    assert cells == lines


def test_the_command_refuses_bad_input(
    assistance: Assistance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for args, says in (
        (("--month", "13"), "argument --month: '13' is not a month from 1 to 12"),
        (("--month", "4", "--json", "--csv", "r.csv"), "not allowed with argument"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["report", "--region", XIXIA, "--year", "2026", *args])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert says in err
    missing = tmp_path / "no" / "r.csv"
    code, out, err = doudi(
        assistance, monkeypatch, capsys, "--region", XIXIA, "--year", "2026", "--csv", str(missing)
    )
    assert (code, out, err) == (
        2,
        "",
        f"doudi: error: --csv: {missing.parent} is not a directory\n",
    )
    code, out, err = doudi(assistance, monkeypatch, capsys, "--region", "999999", "--year", "2026")
    assert (code, out) == (2, "")  # the service refused it as bad input
    assert "region" in err
    assert len(err.strip().splitlines()) == 1


# --- enrollment's enrolments reach the report ---


def test_a_subsidised_enrolment_reaches_the_report_through_enrollment(
    tmp_path: Path, backend: str
) -> None:
    from doudi.assistance.v1 import assistance_pb2_grpc
    from doudi.datashare.v1 import datashare_pb2
    from tests.platform import running_platform
    from tests.services import bearer
    from tests.test_settlement_flow import YEAR, taishan_persons
    from tests.test_subsidised_enrolment import compare, enrol_gap, submit

    with running_platform(tmp_path, backend) as platform:
        persons = taishan_persons(3, born=1935)
        submit(
            platform,
            "440781",
            bearer("demo-civil-affairs"),
            [(person, "次仁", datashare_pb2.STATUS_DIBAO) for person in persons[:2]]
            + [(persons[2], "次仁", datashare_pb2.STATUS_ORPHAN)],
        )
        enrolled = enrol_gap(platform, compare(platform, "440781"))
        assert enrolled.enrolled_count == 3
        stub = assistance_pb2_grpc.AssistanceServiceStub(platform.services["assistance"].channel())
        answer = stub.GetReport(
            pb.GetReportRequest(region="440781", year=YEAR), metadata=INTERNAL
        )  # no waiting: enrollment sent them before it answered

    found = {(r.figure, r.category, r.fund): (r.category_name, r.year_to_date) for r in answer.rows}
    # Taishan's premium, 350 yuan, paid whole by the assistance fund for both categories.
    assert found[("subsidised_enrolments", "", "")] == ("合计", 3)
    assert found[("subsidised_enrolments", "dibao", "")] == ("最低生活保障家庭成员", 2)
    assert found[("subsidised_enrolments", "orphan", "")] == ("孤儿", 1)
    assert found[("subsidised_premium_fen", "", "assistance_fund")][1] == 3 * 35_000
    assert found[("subsidised_premium_fen", "", "person")][1] == 0


# --- the table for people --------------------------------------------------------------


def test_the_table_lines_up_its_columns_whatever_the_chinese_names() -> None:
    """A Chinese character takes two terminal columns: every line of the table has its
    figures end in the same column, whatever the category names' lengths."""
    from doudi.cli import columns
    from doudi.cli.report import report_text

    answer = pb.GetReportResponse(
        region="411323",
        year=2026,
        month=1,
        rows=[
            pb.ReportRow(figure="people", category="monitored", category_name="监测人员",
                         unit="count", month=2, year_to_date=2),
            pb.ReportRow(figure="people", category="registered_poor",
                         category_name="建档立卡贫困户", unit="count", month=1, year_to_date=1),
            pb.ReportRow(figure="total", category="", category_name="合计", unit="fen",
                         month=25_580_000, year_to_date=25_580_000),
        ],
    )  # fmt: skip
    assert answer.as_of.year == 0  # the header's day is not what this test looks at
    lines = report_text(answer).splitlines()[1:]
    assert len(lines) == 4
    assert len({columns.width(line) for line in lines}) == 1
    assert lines[3].endswith("255,800.00  255,800.00")
    # every line's category name starts in the same terminal column
    names = ["类别名称", "监测人员", "建档立卡贫困户", "合计"]
    starts = {
        columns.width(line[: line.index(name)]) for line, name in zip(lines, names, strict=True)
    }
    assert len(starts) == 1

"""The demo data ``doudi run`` loads on start: a Xixia county hospital and a poor patient
(``load``), Tianjin's and Linzhi's hospitals and persons with their personal accounts
(``load`` too), a chronic-disease certificate (``load_certificate``), and the cases the monitoring commands show (``load_cases``): a household past
a dual-early-warning line, a recipient owed secondary assistance, a bill paid outside the
window and an open application.

The web console's demo accounts (``load_console_users``, ``DEMO_CONSOLE_USERS``): one of
each role, the passwords ``demo-<username>-pass``.

Loaded through the services' own APIs, as an operator, an agency, a hospital and a
clerk would, and idempotent (every create answers the stored record when it is there,
by its fixed request id), so loading it on every start changes nothing after the first.
The README lists it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, NamedTuple, cast

import grpc

from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.cli.burden import read_bill
from doudi.common.errors import decode_status
from doudi.common.logs import mask_identity_numbers
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc


@dataclass(frozen=True)
class DemoHospital:
    hospital_id: str
    name: str
    region: str
    level: int
    api_key: str
    reformed: bool = False


@dataclass(frozen=True)
class DemoPerson:
    person_id: str
    name: str
    household_id: str
    region: str
    premium_fen: int
    employee: bool = False
    """An employee in service (职工医保), else a resident (城乡居民)."""


HOSPITALS = (
    DemoHospital("xixia-county-2", "西峡县示范二级医院", "411323", 2, "demo-xixia-2"),
    DemoHospital("xixia-township-1", "西峡县示范乡镇卫生院", "411323", 1, "demo-xixia-1"),
    # Tianjin's desk (issue 21): a community health centre (level 1) and a level-2 hospital
    # of the public-hospital reform, where residents' general outpatient visits are paid.
    DemoHospital(
        "tianjin-community-1", "天津市示范社区卫生服务中心", "120000", 1, "demo-tianjin-1"
    ),
    DemoHospital(
        "tianjin-district-2", "天津市示范区二级医院", "120000", 2, "demo-tianjin-2", reformed=True
    ),
)

# The person of examples/xixia-inpatient-level2.case.json, registered poor
# since 2016 (asserted by the poverty office), and a neighbour with no status yet,
# to show a status applying at the next settlement.
REGISTERED_POOR = DemoPerson("411323195003150014", "张建国", "411323-0001", "411323", 40000)
NEIGHBOUR = DemoPerson("411323196208120024", "李桂兰", "411323-0002", "411323", 40000)
PERSONS = (REGISTERED_POOR, NEIGHBOUR)

# Issue 21's persons, enrolled for the year as the Xixia ones are: a Tianjin employee in
# service and a Linzhi one, each with a personal account credited for the year
# (ACCOUNT_CREDITS), and a Linzhi resident, for a claim on the city's accident cover.
# An employee's own contribution is withheld from the wage, outside the platform: their
# enrolment's personal premium is 0 (assumed).
TIANJIN_EMPLOYEE = DemoPerson(
    "120104198503150022", "赵文静", "120000-0001", "120000", 0, employee=True
)
LINZHI_EMPLOYEE = DemoPerson(
    "540402198209110013", "扎西次仁", "540400-0001", "540400", 0, employee=True
)
LINZHI_RESIDENT = DemoPerson("540402199005120046", "次仁卓玛", "540400-0002", "540400", 40000)
OTHER_REGION_PERSONS = (TIANJIN_EMPLOYEE, LINZHI_EMPLOYEE, LINZHI_RESIDENT)
# Each employee's credit of the year (fen), assumed: 12,000 yuan in Tianjin (70%, 8,400,
# to the card month by month; 3,600 to the account at once) and 2,400 yuan in Linzhi (all
# to the account, which buys the catalogue's products).
ACCOUNT_CREDITS: Final = {TIANJIN_EMPLOYEE: 1_200_000, LINZHI_EMPLOYEE: 240_000}

# 李桂兰's application for a chronic-disease certificate (门诊慢性病: hypertension, I10) at
# the demo township health centre on this day of the month before, decided by that
# month's batch: Xixia's certificate lasts three years.
CERTIFICATE_DIAGNOSIS = "I10"
CERTIFICATE_APPLIED_DAY = 10

# The personal premium: 400 yuan, assumed (the national minimum personal contribution
# to resident insurance in 2025); the assistance fund pays it for the poor.

# The agencies' demo API keys, which `doudi run` gives the datashare hub (as
# DOUDI_AGENCY_KEYS, stored by the hub as digests at start-up) unless that is set: known
# to everyone who reads this file, so the hub takes keys by environment only with
# DOUDI_ENVIRONMENT=local (services/datashare/settings.py); the hospitals' demo keys are
# given to CreateHospital, which takes a given key only then too.
DEMO_AGENCY_KEYS: Final = {
    "demo-civil-affairs": "civil_affairs",
    "demo-poverty-office": "poverty_office",
    "demo-trade-union": "trade_union",
    "demo-veteran-cadre-bureau": "veteran_cadre_bureau",
    "demo-disabled-persons-federation": "disabled_persons_federation",
    "demo-veterans-affairs": "veterans_affairs",
}
POVERTY_OFFICE_KEY = "demo-poverty-office"
CIVIL_AFFAIRS_KEY = "demo-civil-affairs"


class DemoConsoleUser(NamedTuple):
    """A demo account of the web console: (role, display name, agency or None, regions,
    password)."""

    role: str
    display_name: str
    agency: str | None
    regions: tuple[str, ...]
    password: str


# The demo console accounts' passwords: known to everyone who reads this file, like the
# demo keys; `doudi run` (local only) creates the accounts (load_console_users).
CASEWORKER_PASSWORD: Final = "demo-caseworker-pass"
ANALYST_PASSWORD: Final = "demo-analyst-pass"
SUPERVISOR_PASSWORD: Final = "demo-supervisor-pass"
ADMIN_PASSWORD: Final = "demo-admin-pass"
CIVIL_PASSWORD: Final = "demo-civil-pass"
POVERTY_PASSWORD: Final = "demo-poverty-pass"
UNION_PASSWORD: Final = "demo-union-pass"
DEMO_REGIONS: Final = ("411323",)
"""The demo data's pooling region (Xixia County): the demo clerks serve it."""
DEMO_CONSOLE_USERS: Final = {
    "caseworker": DemoConsoleUser("case_worker", "王芳", None, (), CASEWORKER_PASSWORD),
    "analyst": DemoConsoleUser("analyst", "陈明", None, (), ANALYST_PASSWORD),
    "supervisor": DemoConsoleUser("supervisor", "赵丽", None, (), SUPERVISOR_PASSWORD),
    "admin": DemoConsoleUser("administrator", "周强", None, (), ADMIN_PASSWORD),
    "civil": DemoConsoleUser("agency_clerk", "李梅", "civil_affairs", DEMO_REGIONS, CIVIL_PASSWORD),
    "poverty": DemoConsoleUser(
        "agency_clerk", "吴刚", "poverty_office", DEMO_REGIONS, POVERTY_PASSWORD
    ),
    "union": DemoConsoleUser("agency_clerk", "郑华", "trade_union", DEMO_REGIONS, UNION_PASSWORD),
}
"""The demo console accounts, username → (role, display name, agency, regions, password):
one of each staff role, and a clerk of civil affairs, the poverty office and the trade
union serving Xixia."""
REGISTERED_POOR_SINCE = date(2016, 1, 1)

# The cases of load_cases, each a household of its own, enrolled paying their premium:
# a patient with no status whose stay puts the household past the 因病致贫 line (100% of
# the pack's reference income), who has applied for 支出型重病 assistance with a document
# still missing; and a 低保 recipient (civil affairs, since 2020) whose stay leaves an
# eligible burden above the secondary-assistance threshold, with an out-of-area bill.
WARNED = DemoPerson("411323196709210044", "刘春梅", "411323-0005", "411323", 40000)
RECIPIENT = DemoPerson("411323195804050013", "孙德福", "411323-0006", "411323", 40000)
CASE_PERSONS = (WARNED, RECIPIENT)
RECIPIENT_SINCE = date(2020, 1, 1)
# A stay of 100,000 yuan (class A) at the level-2 hospital: 17,700 yuan left to 刘春梅;
# 150,000 yuan for 孙德福, of which medical assistance leaves him 6,810 (xixia-2017).
CASE_STAYS: Final = {WARNED: 10_000_000, RECIPIENT: 15_000_000}
# Calls to assistance wait this long; a slow assistance is reported, never waited for.
ASSISTANCE_TIMEOUT_SECONDS = 10.0


def load(
    *,
    enrollment: grpc.Channel,
    datashare: grpc.Channel,
    settlement: grpc.Channel,
    internal_token: str,
    year: int,
) -> None:
    """Register the demo hospitals and persons, enrol the persons for ``year``, have
    the poverty office assert the first one's registered-poor status, and credit the
    employees' personal accounts for ``year`` (once a year: the same request id again
    answers the credit)."""
    internal = (("authorization", f"Bearer {internal_token}"),)
    settlements = settlement_pb2_grpc.SettlementServiceStub(settlement)
    for hospital in HOSPITALS:
        settlements.CreateHospital(
            settlement_pb2.CreateHospitalRequest(
                hospital=settlement_pb2.Hospital(
                    hospital_id=hospital.hospital_id,
                    name=hospital.name,
                    region=hospital.region,
                    level=hospital.level,
                    reformed=hospital.reformed,
                ),
                api_key=hospital.api_key,
            ),
            metadata=internal,
        )
    for person in PERSONS + OTHER_REGION_PERSONS:
        # The poor are enrolled with the premium paid by the assistance fund.
        _enrol(enrollment, internal, person, year, paid_by_fund=person is REGISTERED_POOR)
    _assert_status(
        datashare,
        REGISTERED_POOR,
        datashare_pb2.STATUS_REGISTERED_POOR,
        REGISTERED_POOR_SINCE,
        "XX-FPB-2016-0001",
        POVERTY_OFFICE_KEY,
    )
    for person, amount_fen in ACCOUNT_CREDITS.items():
        settlements.CreditPersonalAccount(
            settlement_pb2.CreditPersonalAccountRequest(
                request_id=account_credit_request_id(person, year),
                person_id=person.person_id,
                year=year,
                amount_fen=amount_fen,
            ),
            metadata=internal,
        )


def account_credit_request_id(person: DemoPerson, year: int) -> str:
    """The request id of the demo's credit of ``person``'s account for ``year`` (the
    README's `doudi accounts credit` gives it again, and is answered the same credit)."""
    return f"demo-credit-{year}-{person.household_id}"


def load_certificate(*, enrollment: grpc.Channel, internal_token: str, today: date) -> None:
    """NEIGHBOUR's application for a chronic-disease certificate, dated the
    CERTIFICATE_APPLIED_DAY of the month before ``today``, and that month's batch for
    Xixia (over, so decided today), which certifies it. Applied once: on a start in a
    later month the same request id answers ALREADY_EXISTS (its day differs), which means
    it is there, certified by its month's batch; a batch decided answers again, deciding
    nothing. In January the month before is last year's, for which NEIGHBOUR is enrolled
    too, as an application needs."""
    internal = (("authorization", f"Bearer {internal_token}"),)
    applied_on = (today.replace(day=1) - timedelta(days=1)).replace(day=CERTIFICATE_APPLIED_DAY)
    if applied_on.year != today.year:
        _enrol(enrollment, internal, NEIGHBOUR, applied_on.year, paid_by_fund=False)
    register = enrollment_pb2_grpc.EnrollmentServiceStub(enrollment)
    try:
        register.ApplyForCertificate(
            enrollment_pb2.ApplyForCertificateRequest(
                request_id=f"demo-certificate-{NEIGHBOUR.household_id}",
                person_id=NEIGHBOUR.person_id,
                kind=enrollment_pb2.CERTIFICATE_KIND_CHRONIC,
                diagnoses=[CERTIFICATE_DIAGNOSIS],
                applied_on=from_date(applied_on),
                health_centre=HOSPITALS[1].name,
            ),
            metadata=internal,
        )
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return
    register.DecideCertificateBatch(
        enrollment_pb2.DecideCertificateBatchRequest(
            region=NEIGHBOUR.region, month=f"{applied_on:%Y-%m}"
        ),
        metadata=internal,
    )


def load_console_users(*, datashare: grpc.Channel, internal_token: str) -> None:
    """Create the demo console accounts (DEMO_CONSOLE_USERS) at the hub; an account there
    already is left as it is (its password too)."""
    from doudi.common.enums import CONSOLE_ROLES

    internal = (("authorization", f"Bearer {internal_token}"),)
    hub = datashare_pb2_grpc.DatashareServiceStub(datashare)
    for username, account in DEMO_CONSOLE_USERS.items():
        try:
            hub.CreateConsoleUser(
                datashare_pb2.CreateConsoleUserRequest(
                    username=username,
                    display_name=account.display_name,
                    role=CONSOLE_ROLES.value(account.role),
                    agency=account.agency or "",
                    regions=account.regions,
                    password=account.password,
                ),
                metadata=internal,
            )
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


def load_cases(
    *,
    enrollment: grpc.Channel,
    datashare: grpc.Channel,
    settlement: grpc.Channel,
    assistance: grpc.Channel,
    internal_token: str,
    year: int,
    today: date,
) -> None:
    """The monitoring commands' cases (after ``load``): WARNED and RECIPIENT enrolled for
    ``year``, the recipient's 低保 asserted by civil affairs, a stay of each settled at
    the level-2 demo hospital (settlement sends them on to assistance in the background:
    the warning follows a moment later), the recipient's out-of-area bill entered and
    WARNED's application accepted with a document missing. When assistance cannot be
    reached or does not answer within ASSISTANCE_TIMEOUT_SECONDS, that is said on stderr
    and the bill and application wait for the next start; other refusals are raised."""
    internal = (("authorization", f"Bearer {internal_token}"),)
    for person in CASE_PERSONS:
        _enrol(enrollment, internal, person, year, paid_by_fund=False)
    _assert_status(
        datashare,
        RECIPIENT,
        datashare_pb2.STATUS_DIBAO,
        RECIPIENT_SINCE,
        "XX-MZJ-2020-0107",
        CIVIL_AFFAIRS_KEY,
    )
    hospital = HOSPITALS[0]
    admitted, discharged = _stay(year, today)
    settlements = settlement_pb2_grpc.SettlementServiceStub(settlement)
    for person, amount_fen in CASE_STAYS.items():
        visit_id = f"DEMO-{year}-{person.household_id}"
        with _unless_there():
            settlements.Settle(
                settlement_pb2.SettleRequest(
                    request_id=f"demo-settlement-{visit_id}",
                    person_id=person.person_id,
                    visit=settlement_pb2.Visit(
                        visit_id=visit_id,
                        visit_type=settlement_pb2.VISIT_TYPE_INPATIENT,
                        admitted=from_date(admitted),
                        discharged=from_date(discharged),
                        diagnoses=["C34.9"],
                        items=[
                            settlement_pb2.Item(
                                code="X01",
                                item_class=settlement_pb2.ITEM_CLASS_A,
                                amount_fen=amount_fen,
                            )
                        ],
                    ),
                ),
                metadata=(("authorization", f"Bearer {hospital.api_key}"),),
            )
    clerk = assistance_pb2_grpc.AssistanceServiceStub(assistance)
    try:
        with _unless_there():
            clerk.RecordBill(
                assistance_pb2.RecordBillRequest(
                    bill=_out_of_area_bill(year, admitted, discharged)
                ),
                metadata=internal,
                timeout=ASSISTANCE_TIMEOUT_SECONDS,
            )
        _accept_application(clerk, internal, year, today)
    except grpc.RpcError as error:
        if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise
        print(
            "doudi: the assistance service did not answer in time; the demo's bill and "
            f"application are entered at the next start ({mask_identity_numbers(str(error.details()))})",
            file=sys.stderr,
            flush=True,
        )


def _stay(year: int, today: date) -> tuple[date, date]:
    """The demo stays' admission and discharge: 2 to 5 January of ``year``, or up to
    today in its first days (a discharge after today would be refused)."""
    discharged = min(date(year, 1, 5), today) if today.year == year else date(year, 1, 5)
    return max(date(year, 1, 1), discharged - timedelta(days=3)), discharged


@contextlib.contextmanager
def _unless_there() -> Iterator[None]:
    """Pass over a refusal that says the request id is taken by another request: the
    demo's record of it is there, entered on an earlier day (its stay dated otherwise,
    in the first days of January)."""
    try:
        yield
    except grpc.RpcError as error:
        status = decode_status(cast(grpc.aio.AioRpcError, error))
        if status.code != grpc.StatusCode.FAILED_PRECONDITION or not (
            status.reason == "IDEMPOTENCY_KEY_REUSED"
            or any(violation.field == "request_id" for violation in status.violations)
        ):
            raise


def _enrol(
    enrollment: grpc.Channel,
    internal: tuple[tuple[str, str], ...],
    person: DemoPerson,
    year: int,
    *,
    paid_by_fund: bool,
) -> None:
    register = enrollment_pb2_grpc.EnrollmentServiceStub(enrollment)
    register.CreatePerson(
        enrollment_pb2.CreatePersonRequest(
            person=enrollment_pb2.Person(
                person_id=person.person_id,
                name=person.name,
                household_id=person.household_id,
                region=person.region,
            )
        ),
        metadata=internal,
    )
    register.CreateEnrolment(
        enrollment_pb2.CreateEnrolmentRequest(
            enrolment=enrollment_pb2.Enrolment(
                person_id=person.person_id,
                year=year,
                scheme=enrollment_pb2.SCHEME_EMPLOYEE
                if person.employee
                else enrollment_pb2.SCHEME_RESIDENT,
                employment=enrollment_pb2.EMPLOYMENT_IN_SERVICE
                if person.employee
                else enrollment_pb2.EMPLOYMENT_UNSPECIFIED,
                premium_fen=person.premium_fen,
                premium_payer=enrollment_pb2.PREMIUM_PAYER_ASSISTANCE_FUND
                if paid_by_fund
                else enrollment_pb2.PREMIUM_PAYER_PERSON,
            )
        ),
        metadata=internal,
    )


def _assert_status(
    datashare: grpc.Channel,
    person: DemoPerson,
    status: datashare_pb2.Status.ValueType,
    since: date,
    reference: str,
    agency_key: str,
) -> None:
    datashare_pb2_grpc.DatashareServiceStub(datashare).AssertStatus(
        datashare_pb2.AssertStatusRequest(
            person_id=person.person_id,
            household_id=person.household_id,
            status=status,
            valid_from=from_date(since),
            reference=reference,
        ),
        metadata=(("authorization", f"Bearer {agency_key}"),),
    )


def _out_of_area_bill(year: int, admitted: date, discharged: date) -> assistance_pb2.Bill:
    """孙德福's stay in Zhengzhou, paid at the hospital's window: 5,800 yuan, of which
    insurance paid 3,000 (services/assistance/README.md's shape, read by its one reader)."""
    return read_bill(
        json.dumps(
            {
                "request_id": f"demo-receipt-ZZ-{year}-0107",
                "person_id": RECIPIENT.person_id,
                "region": RECIPIENT.region,
                "hospital": "郑州大学第一附属医院",
                "visit": {
                    "id": f"ZZ-{year}-0107",
                    "type": "inpatient",
                    "hospital_level": 3,
                    "admitted": admitted.isoformat(),
                    "discharged": discharged.isoformat(),
                    "out_of_area": True,
                    "items": [
                        {"code": "BED", "class": "A", "amount_fen": 400000},
                        {
                            "code": "DRUG-B",
                            "class": "B",
                            "amount_fen": 150000,
                            "over_limit_fen": 10000,
                        },
                        {"code": "SELF", "class": "C", "amount_fen": 30000},
                    ],
                },
                "insurance_paid": [{"fund": "390100", "paid_fen": 300000}],
                "self_pay_fen": 280000,
            }
        )
    )


def _accept_application(
    clerk: assistance_pb2_grpc.AssistanceServiceStub,
    internal: tuple[tuple[str, str], ...],
    year: int,
    today: date,
) -> None:
    """WARNED's 支出型重病 application, accepted today with the inpatient record missing
    (容缺受理). Accepted once a year: on a later day the same request id answers
    ALREADY_EXISTS (its day differs), which means it is there."""
    try:
        clerk.AcceptApplication(
            assistance_pb2.AcceptApplicationRequest(
                request_id=f"demo-application-{year}-{WARNED.household_id}",
                person_id=WARNED.person_id,
                household_id=WARNED.household_id,
                region=WARNED.region,
                kind=assistance_pb2.APPLICATION_KIND_EXPENDITURE_HARDSHIP,
                accepted_on=from_date(today),
                documents_received=["身份证", "户口簿", "医疗费用发票"],
                missing_documents=[
                    assistance_pb2.MissingDocument(
                        name="住院病历", due_on=from_date(today + timedelta(days=10))
                    )
                ],
                commitments=["家庭收入证明"],
                case_worker="王芳",
            ),
            metadata=internal,
            timeout=ASSISTANCE_TIMEOUT_SECONDS,
        )
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise

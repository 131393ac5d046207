"""Employees' personal accounts (职工个人账户, services/settlement/accounts.py): the real
platform on both databases, the accounts' calls over gRPC with the internal token, the
window's payments through the gateway.

Accounts are credited for last year, whose twelve months have all begun, so that the
monthly run may be made for each of them. Each test registers employees of its own in
Tianjin (70% to the card month by month, the whole balance withdrawn above 50,000 yuan)
or Linzhi (everything to the account at once, a catalogue of health products), and
after each scenario checks that the person's ledger adds up to the account's pots.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy
import yaml

from doudi.common.errors import DecodedStatus, decode_status
from doudi.common.protos import from_date
from doudi.core.accounts import monthly_card_part
from doudi.core.errors import PolicyPackError
from doudi.core.money import apply_ratio
from doudi.core.packs import PackRegistry, compile_pack, personal_account_rules
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.settlement.tables import personal_account_movements, personal_accounts
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, ROOT, bearer
from tests.support import business_day, fields, problem, run_cli, with_check_digit
from tests.test_settlement_flow import (
    HOSPITAL_KEY,
    YEAR,
    enrollment_stub,
    known_to_settlement,
    new_person,
    settlement_engine,
)

ACCOUNT_YEAR = YEAR - 1
"""The year the accounts are credited for: every month of it has begun."""
TIANJIN, LINZHI = "120000", "540400"
HOSPITAL_KEYS = {TIANJIN: "test-accounts-tianjin-2", LINZHI: "test-accounts-linzhi-2"}
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with demo_platforms(tmp_path_factory, "accounts", YEAR) as on:
        yield on


@pytest.fixture
def platform(backend: str, platforms: Callable[[str], Platform]) -> Platform:
    on = platforms(backend)
    for region, key in HOSPITAL_KEYS.items():  # the same registration again answers it
        stub(on).CreateHospital(
            settlement_pb2.CreateHospitalRequest(
                hospital=settlement_pb2.Hospital(
                    hospital_id=f"T-{region}", name="测试医院", region=region, level=2
                ),
                api_key=key,
            ),
            metadata=INTERNAL,
        )
    return on


# --- helpers ----------------------------------------------------------------------------


def stub(platform: Platform) -> settlement_pb2_grpc.SettlementServiceStub:
    return settlement_pb2_grpc.SettlementServiceStub(platform.services["settlement"].channel())


def new_employee(platform: Platform, region: str) -> str:
    """An employee in service of ``region``, enrolled for the account's year and this
    year, of this test alone, known to settlement."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    serial = next(_serial)
    number = with_check_digit(
        f"{region[:4]}01{1960 + worker:04d}{1 + serial // 28 % 12:02d}{1 + serial % 28:02d}"
        f"{serial // 336 % 1000:03d}"
    )
    enrollment = enrollment_stub(platform)
    enrollment.CreatePerson(
        enrollment_pb2.CreatePersonRequest(
            person=enrollment_pb2.Person(
                person_id=number, name="职工", household_id=f"h-{number[-8:]}", region=region
            )
        ),
        metadata=INTERNAL,
    )
    for year in (ACCOUNT_YEAR, YEAR):
        enrollment.CreateEnrolment(
            enrollment_pb2.CreateEnrolmentRequest(
                enrolment=enrollment_pb2.Enrolment(
                    person_id=number,
                    year=year,
                    scheme=enrollment_pb2.SCHEME_EMPLOYEE,
                    employment=enrollment_pb2.EMPLOYMENT_IN_SERVICE,
                    premium_fen=100_000,
                    premium_payer=enrollment_pb2.PREMIUM_PAYER_PERSON,
                )
            ),
            metadata=INTERNAL,
        )
    known_to_settlement(platform, number, with_statuses=False)
    return number


def credit(
    platform: Platform, person: str, amount_fen: int, year: int = ACCOUNT_YEAR
) -> settlement_pb2.CreditPersonalAccountResponse:
    answer: settlement_pb2.CreditPersonalAccountResponse = stub(platform).CreditPersonalAccount(
        settlement_pb2.CreditPersonalAccountRequest(
            request_id=f"credit-{person}-{year}", person_id=person, year=year, amount_fen=amount_fen
        ),
        metadata=INTERNAL,
    )
    return answer


def account(platform: Platform, person: str) -> settlement_pb2.GetPersonalAccountResponse:
    answer: settlement_pb2.GetPersonalAccountResponse = stub(platform).GetPersonalAccount(
        settlement_pb2.GetPersonalAccountRequest(person_id=person, page_size=1000),
        metadata=INTERNAL,
    )
    return answer


def pots(platform: Platform, person: str) -> tuple[int, int]:
    found = account(platform, person).account
    assert found.balance_fen == found.card_fen + found.account_fen
    return found.card_fen, found.account_fen


def refused(call: Callable[[], Any]) -> DecodedStatus:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return decode_status(raised.value)  # type: ignore[arg-type]


def assert_ledger_balances(platform: Platform, person: str) -> None:
    """The person's movements add up to the account's pots, each movement's pots after it
    follow from the one before, and no pot was ever below zero."""
    engine = settlement_engine(platform)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sqlalchemy.select(personal_accounts).where(personal_accounts.c.person_id == person)
            ).one()
            movements = connection.execute(
                sqlalchemy.select(personal_account_movements)
                .where(personal_account_movements.c.person_id == person)
                .order_by(personal_account_movements.c.movement_id)
            ).all()
    finally:
        engine.dispose()
    card = kept = 0
    for movement in movements:
        card += movement.card_change_fen
        kept += movement.account_change_fen
        assert (movement.card_after_fen, movement.account_after_fen) == (card, kept)
        assert card >= 0
        assert kept >= 0
    assert (row.card_fen, row.account_fen) == (card, kept)


def stay(visit_id: str, discharged: str, amount_yuan: int) -> dict[str, Any]:
    """A stay of the account's year, discharged on ``MM-DD``, all class A."""
    return {
        "id": visit_id,
        "type": "inpatient",
        "admitted": f"{ACCOUNT_YEAR}-{discharged}",
        "discharged": f"{ACCOUNT_YEAR}-{discharged}",
        "items": [{"code": "X1", "class": "A", "amount_fen": amount_yuan * 100}],
    }


def settle(
    client: httpx.Client,
    person: str,
    visit: dict[str, Any],
    *,
    pay: bool | None = True,
    path: str = "/v1/settlements",
    key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"person_id": person, "visit": visit}
    if pay is not None:
        body["pay_from_personal_account"] = pay
    return client.post(
        path, json=body, headers={"Idempotency-Key": key or f"{person}-{visit['id']}"}
    )


def clearing_of(platform: Platform, region: str, fund: str) -> settlement_pb2.FundClearing:
    answer = stub(platform).GetDailyClearing(
        settlement_pb2.GetDailyClearingRequest(
            hospital_id=f"T-{region}", date=from_date(business_day())
        ),
        metadata=INTERNAL,
    )
    found = [total for total in answer.funds if total.fund == fund]
    return found[0] if found else settlement_pb2.FundClearing(fund=fund)


def transfer(platform: Platform, region: str, month: str) -> tuple[int, int, int]:
    """The monthly run of ``month``, page by page: persons moved now, moved before, fen."""
    moved = already = fen = 0
    token = ""
    while True:
        page = stub(platform).TransferToCards(
            settlement_pb2.TransferToCardsRequest(
                region=region, month=month, page_size=2, page_token=token
            ),
            metadata=INTERNAL,
        )
        moved += page.transferred_count
        already += page.already_count
        fen += page.moved_fen
        token = page.next_page_token
        if not token:
            assert moved + already == page.credited_count
            return moved, already, fen


# --- the monthly credit ------------------------------------------------------------------


def test_a_yearly_credit_goes_70_percent_to_the_card_in_twelve_exact_transfers(
    platform: Platform,
) -> None:
    person, other = new_employee(platform, TIANJIN), new_employee(platform, TIANJIN)
    amount = 1_234_567  # 12,345.67 yuan: neither part divides by twelve
    card_part = apply_ratio(amount, 7000)
    credited = credit(platform, person, amount)
    credit(platform, other, 600_000)
    assert credited.card_scheduled_fen == card_part
    assert credited.account.account_fen == amount - card_part
    assert credited.account.card_fen == 0
    assert not credited.replayed

    again = credit(platform, person, amount)  # the same request: answered, not booked twice
    assert again.replayed
    assert again.movement.movement_id == credited.movement.movement_id
    assert pots(platform, person) == (0, amount - card_part)

    for month in range(1, 13):
        moved, _already, fen = transfer(platform, TIANJIN, f"{ACCOUNT_YEAR}-{month:02d}")
        assert moved >= 2  # this test's two persons, and any other test's of the region
        card, _kept = pots(platform, person)
        assert card == sum(monthly_card_part(card_part, m) for m in range(1, month + 1))
        assert fen >= monthly_card_part(card_part, month)
        # Running the month again moves nothing.
        moved_again, already, fen_again = transfer(platform, TIANJIN, f"{ACCOUNT_YEAR}-{month:02d}")
        assert (moved_again, fen_again) == (0, 0)
        assert already == moved
    assert pots(platform, person) == (card_part, amount - card_part)  # exactly the 70%
    movements = account(platform, person).movements
    transfers = [
        m for m in movements if m.kind == settlement_pb2.ACCOUNT_MOVEMENT_KIND_CARD_TRANSFER
    ]
    assert sorted(m.month for m in transfers) == list(range(1, 13))
    assert sum(m.card_change_fen for m in transfers) == card_part
    for number in (person, other):
        assert_ledger_balances(platform, number)


# --- payment at the window -----------------------------------------------------------------


def test_the_account_pays_the_self_pay_at_the_window_and_a_reversal_refunds_it(
    platform: Platform,
) -> None:
    person = new_employee(platform, TIANJIN)
    credit(platform, person, 500_000)  # 1,500 yuan to the account now, 3,500 to the card later
    balance = sum(pots(platform, person))
    client = platform.client(HOSPITAL_KEYS[TIANJIN])
    cleared_before = clearing_of(platform, TIANJIN, "310200")

    preview = settle(client, person, stay("w-1", "06-01", 10_000), path="/v1/settlements/preview")
    assert preview.status_code == 200, preview.text
    assert preview.json()["personal_account_paid_fen"] == min(
        preview.json()["self_pay_fen"], balance
    )
    assert sum(pots(platform, person)) == balance  # a preview changes nothing

    made = settle(client, person, stay("w-1", "06-01", 10_000))
    assert made.status_code == 201, made.text
    settled = made.json()
    layers = sum(layer["paid_fen"] for layer in settled["layers"])
    assert settled["total_fen"] == layers + settled["self_pay_fen"]
    paid = settled["personal_account_paid_fen"]
    assert paid == min(settled["self_pay_fen"], balance) > 0
    assert settled["cash_pay_fen"] == settled["self_pay_fen"] - paid
    assert settled["summary"]["acct_pay"] == f"{paid // 100}.{paid % 100:02d}"
    assert sum(pots(platform, person)) == balance - paid
    assert clearing_of(platform, TIANJIN, "310200").settled_fen == cleared_before.settled_fen + paid

    retry = settle(client, person, stay("w-1", "06-01", 10_000))  # the same key: paid once
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["personal_account_paid_fen"] == paid
    assert sum(pots(platform, person)) == balance - paid

    reversal = client.post(
        f"/v1/settlements/{settled['id']}/reversal", headers={"Idempotency-Key": f"undo-{person}"}
    )
    assert reversal.status_code == 200, reversal.text
    assert sum(pots(platform, person)) == balance
    kinds = [m.kind for m in account(platform, person).movements]
    assert kinds[:2] == [
        settlement_pb2.ACCOUNT_MOVEMENT_KIND_WINDOW_REFUND,
        settlement_pb2.ACCOUNT_MOVEMENT_KIND_WINDOW_PAYMENT,
    ]
    cleared = clearing_of(platform, TIANJIN, "310200")
    assert cleared.reversed_fen == cleared_before.reversed_fen + paid
    assert_ledger_balances(platform, person)

    # Without the flag the account pays nothing.
    cash = settle(client, person, stay("w-2", "06-10", 2_000), pay=None)
    assert cash.status_code == 201, cash.text
    assert cash.json()["personal_account_paid_fen"] == 0
    assert cash.json()["cash_pay_fen"] == cash.json()["self_pay_fen"]
    assert sum(pots(platform, person)) == balance


def test_the_admission_desk_sees_the_account_balance_and_none_without_an_account(
    platform: Platform,
) -> None:
    person = new_employee(platform, TIANJIN)
    client = platform.client(HOSPITAL_KEYS[TIANJIN])
    day = f"{YEAR}-06-01"

    def asked() -> Any:
        answer = client.get(f"/v1/persons/{person}/eligibility", params={"date": day})
        assert answer.status_code == 200, answer.text
        return answer.json()["personal_account_fen"]

    assert asked() is None
    credit(platform, person, 500_000)
    assert asked() == sum(pots(platform, person)) == 150_000  # the account's 30% so far
    grpc_answer = stub(platform).GetEligibility(
        settlement_pb2.GetEligibilityRequest(
            person_id=person, date=from_date(date.fromisoformat(day)), hospital_id=f"T-{TIANJIN}"
        ),
        metadata=INTERNAL,
    )
    assert grpc_answer.eligibility.personal_account_fen == 150_000


def test_a_resident_asking_the_account_to_pay_pays_in_cash(platform: Platform) -> None:
    resident = new_person(platform)  # a Xixia resident: no account
    client = platform.client(HOSPITAL_KEY)
    visit = {
        "id": "resident-1",
        "type": "inpatient",
        "admitted": f"{YEAR}-02-01",
        "discharged": f"{YEAR}-02-03",
        "items": [{"code": "X1", "class": "A", "amount_fen": 1_000_000}],
    }
    made = settle(client, resident, visit)
    assert made.status_code == 201, made.text
    assert made.json()["personal_account_paid_fen"] == 0
    assert made.json()["cash_pay_fen"] == made.json()["self_pay_fen"] > 0


# --- the withdrawal above 50,000 -------------------------------------------------------------


def withdraw(platform: Platform, person: str, request_id: str) -> Any:
    return stub(platform).WithdrawPersonalAccount(
        settlement_pb2.WithdrawPersonalAccountRequest(
            request_id=request_id, person_id=person, year=ACCOUNT_YEAR
        ),
        metadata=INTERNAL,
    )


def test_the_whole_balance_is_withdrawn_once_when_the_years_stays_pass_50000_yuan(
    platform: Platform,
) -> None:
    person = new_employee(platform, TIANJIN)
    credit(platform, person, 2_000_000)
    client = platform.client(HOSPITAL_KEYS[TIANJIN])
    assert settle(client, person, stay("big-1", "03-01", 30_000), pay=False).status_code == 201

    below = refused(lambda: withdraw(platform, person, f"out-{person}"))
    assert below.code == grpc.StatusCode.FAILED_PRECONDITION
    assert below.reason == "BELOW_WITHDRAWAL_THRESHOLD"
    assert below.metadata["inpatient_costs_fen"] == "3000000"
    before = pots(platform, person)
    assert sum(before) > 0

    # A reversed stay does not count; exactly 50,000 is not above it.
    reversed_stay = settle(client, person, stay("big-r", "03-05", 40_000), pay=False).json()
    client.post(
        f"/v1/settlements/{reversed_stay['id']}/reversal",
        headers={"Idempotency-Key": f"undo-{person}"},
    )
    assert settle(client, person, stay("big-2", "04-01", 20_000), pay=False).status_code == 201
    at_line = refused(lambda: withdraw(platform, person, f"out-{person}"))
    assert at_line.reason == "BELOW_WITHDRAWAL_THRESHOLD"
    assert at_line.metadata["inpatient_costs_fen"] == "5000000"
    assert pots(platform, person) == before

    assert settle(client, person, stay("big-3", "05-01", 1), pay=False).status_code == 201
    done = withdraw(platform, person, f"out-{person}")
    assert done.withdrawn_fen == sum(before)
    assert (done.account.card_fen, done.account.account_fen) == (0, 0)
    assert not done.replayed

    replay = withdraw(platform, person, f"out-{person}")
    assert replay.replayed
    assert replay.movement.movement_id == done.movement.movement_id
    assert replay.withdrawn_fen == done.withdrawn_fen

    twice = refused(lambda: withdraw(platform, person, f"again-{person}"))
    assert twice.code == grpc.StatusCode.FAILED_PRECONDITION
    assert twice.reason == "ALREADY_WITHDRAWN"
    assert twice.metadata["request_id"] == f"out-{person}"
    assert pots(platform, person) == (0, 0)
    assert_ledger_balances(platform, person)


# --- Linzhi: purchases from the catalogue -------------------------------------------------------


def purchase(platform: Platform, person: str, product: str, request_id: str) -> Any:
    return stub(platform).PurchaseHealthProduct(
        settlement_pb2.PurchaseHealthProductRequest(
            request_id=request_id, person_id=person, product_id=product
        ),
        metadata=INTERNAL,
    )


def test_a_linzhi_employee_buys_a_product_of_the_catalogue_with_the_account(
    platform: Platform,
) -> None:
    person = new_employee(platform, LINZHI)
    credited = credit(platform, person, 50_000)  # 500 yuan, all to the account at once
    assert credited.card_scheduled_fen == 0
    assert pots(platform, person) == (0, 50_000)

    bought = purchase(platform, person, "picc_critical_illness", f"buy-{person}")  # 300 yuan
    assert bought.movement.product_id == "picc_critical_illness"
    assert bought.movement.account_change_fen == -30_000
    assert pots(platform, person) == (0, 20_000)
    replay = purchase(platform, person, "picc_critical_illness", f"buy-{person}")
    assert replay.replayed
    assert pots(platform, person) == (0, 20_000)

    too_little = refused(lambda: purchase(platform, person, "life_cancer", f"buy2-{person}"))
    assert too_little.code == grpc.StatusCode.FAILED_PRECONDITION
    assert too_little.reason == "INSUFFICIENT_BALANCE"
    unknown = refused(lambda: purchase(platform, person, "yacht_cover", f"buy3-{person}"))
    assert unknown.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in unknown.violations] == ["product_id"]
    reused = refused(lambda: purchase(platform, person, "picc_accident", f"buy-{person}"))
    assert reused.reason == "IDEMPOTENCY_KEY_REUSED"
    assert pots(platform, person) == (0, 20_000)

    # Linzhi has neither a card share nor a withdrawal.
    no_cards = refused(
        lambda: stub(platform).TransferToCards(
            settlement_pb2.TransferToCardsRequest(region=LINZHI, month=f"{ACCOUNT_YEAR}-01"),
            metadata=INTERNAL,
        )
    )
    assert no_cards.reason == "NO_CARD_SHARE"
    assert refused(lambda: withdraw(platform, person, f"w-{person}")).reason == "NO_WITHDRAWAL"
    assert_ledger_balances(platform, person)


# --- never below zero ------------------------------------------------------------------------


def test_the_balance_never_goes_below_zero_under_concurrent_payments_and_purchases(
    platform: Platform,
) -> None:
    person = new_employee(platform, LINZHI)
    credit(platform, person, 100_000)  # 1,000 yuan; the calls below ask for far more

    def pay_at_window(n: int) -> httpx.Response:
        with httpx.Client(
            base_url=platform.base_url,
            headers={"Authorization": f"Bearer {HOSPITAL_KEYS[LINZHI]}"},
            timeout=60,
        ) as own:
            return settle(own, person, stay(f"c-{n}", "07-01", 150))

    def buy(n: int) -> Any:
        try:
            return purchase(platform, person, "picc_accident", f"c-buy-{person}-{n}")  # 80 yuan
        except grpc.RpcError as error:
            return decode_status(error)  # type: ignore[arg-type]

    with ThreadPoolExecutor(16) as pool:
        windows = [pool.submit(pay_at_window, n) for n in range(12)]
        buys = [pool.submit(buy, n) for n in range(12)]
        settled = [future.result() for future in windows]
        bought = [future.result() for future in buys]

    assert all(answer.status_code == 201 for answer in settled), [a.text for a in settled]
    for answer in settled:
        body = answer.json()
        assert body["personal_account_paid_fen"] + body["cash_pay_fen"] == body["self_pay_fen"]
    window_paid = sum(answer.json()["personal_account_paid_fen"] for answer in settled)
    made = [answer for answer in bought if not isinstance(answer, DecodedStatus)]
    refusals = [answer for answer in bought if isinstance(answer, DecodedStatus)]
    assert all(status.reason == "INSUFFICIENT_BALANCE" for status in refusals)
    card, kept = pots(platform, person)
    assert card >= 0
    assert kept >= 0
    assert window_paid + 8_000 * len(made) == 100_000 - card - kept
    assert card + kept < 8_000  # the money ran out: it went as far as it could
    assert_ledger_balances(platform, person)


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_to_every_account_call_is_refused_naming_the_field_and_changes_nothing(
    platform: Platform,
) -> None:
    person = new_employee(platform, TIANJIN)
    credit(platform, person, 300_000)
    before = account(platform, person)
    accounts = stub(platform)
    wrong_digit = person[:-1] + ("0" if person[-1] != "0" else "1")
    future_month = f"{YEAR + 1}-01"
    invalid: list[tuple[Callable[[], Any], str]] = [
        (
            lambda: accounts.CreditPersonalAccount(
                settlement_pb2.CreditPersonalAccountRequest(
                    request_id="", person_id=person, year=ACCOUNT_YEAR, amount_fen=1
                ),
                metadata=INTERNAL,
            ),
            "request_id",
        ),
        (
            lambda: accounts.CreditPersonalAccount(
                settlement_pb2.CreditPersonalAccountRequest(
                    request_id="x", person_id=wrong_digit, year=ACCOUNT_YEAR, amount_fen=1
                ),
                metadata=INTERNAL,
            ),
            "person_id",
        ),
        (
            lambda: accounts.CreditPersonalAccount(
                settlement_pb2.CreditPersonalAccountRequest(
                    request_id="x", person_id=person, year=0, amount_fen=1
                ),
                metadata=INTERNAL,
            ),
            "year",
        ),
        (
            lambda: accounts.CreditPersonalAccount(
                settlement_pb2.CreditPersonalAccountRequest(
                    request_id="x", person_id=person, year=YEAR, amount_fen=-5
                ),
                metadata=INTERNAL,
            ),
            "amount_fen",
        ),
        *(
            (
                lambda month=month: accounts.TransferToCards(
                    settlement_pb2.TransferToCardsRequest(region=TIANJIN, month=month),
                    metadata=INTERNAL,
                ),
                "month",
            )
            for month in (f"{ACCOUNT_YEAR}-13", "March", f"{ACCOUNT_YEAR}-3", future_month)
        ),
        (
            lambda: accounts.TransferToCards(
                settlement_pb2.TransferToCardsRequest(region="999999", month=f"{ACCOUNT_YEAR}-01"),
                metadata=INTERNAL,
            ),
            "region",
        ),
        (
            lambda: accounts.TransferToCards(
                settlement_pb2.TransferToCardsRequest(
                    region=TIANJIN, month=f"{ACCOUNT_YEAR}-01", page_token="nonsense"
                ),
                metadata=INTERNAL,
            ),
            "page_token",
        ),
        (
            lambda: accounts.WithdrawPersonalAccount(
                settlement_pb2.WithdrawPersonalAccountRequest(
                    request_id="x", person_id=person, year=99999
                ),
                metadata=INTERNAL,
            ),
            "year",
        ),
        (
            lambda: accounts.PurchaseHealthProduct(
                settlement_pb2.PurchaseHealthProductRequest(
                    request_id="x", person_id=person, product_id=""
                ),
                metadata=INTERNAL,
            ),
            "product_id",
        ),
        (
            lambda: accounts.PurchaseHealthProduct(
                settlement_pb2.PurchaseHealthProductRequest(
                    request_id="x", person_id=person, product_id="anything"
                ),
                metadata=INTERNAL,
            ),
            "product_id",  # Tianjin names no catalogue
        ),
        (
            lambda: accounts.GetPersonalAccount(
                settlement_pb2.GetPersonalAccountRequest(person_id="12345"), metadata=INTERNAL
            ),
            "person_id",
        ),
    ]
    for call, field in invalid:
        status = refused(call)
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT, (field, status)
        assert [violation.field for violation in status.violations] == [field], status

    # State conflicts: FAILED_PRECONDITION with a reason.
    twice = refused(
        lambda: accounts.CreditPersonalAccount(
            settlement_pb2.CreditPersonalAccountRequest(
                request_id="another", person_id=person, year=ACCOUNT_YEAR, amount_fen=300_000
            ),
            metadata=INTERNAL,
        )
    )
    assert (twice.code, twice.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_CREDITED")
    resident = new_person(platform)
    not_employee = refused(lambda: credit(platform, resident, 1_000, year=YEAR))
    assert (not_employee.code, not_employee.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_AN_EMPLOYEE",
    )
    none = refused(lambda: account(platform, resident))
    assert none.code == grpc.StatusCode.NOT_FOUND
    # A hospital's key may not touch accounts.
    denied = refused(
        lambda: accounts.GetPersonalAccount(
            settlement_pb2.GetPersonalAccountRequest(person_id=person),
            metadata=bearer(HOSPITAL_KEYS[TIANJIN]),
        )
    )
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED

    # The gateway: the flag must be a boolean.
    client = platform.client(HOSPITAL_KEYS[TIANJIN])
    for path in ("/v1/settlements", "/v1/settlements/preview"):
        answer = client.post(
            path,
            json={
                "person_id": person,
                "visit": stay("bad-1", "08-01", 100),
                "pay_from_personal_account": "yes",
            },
            headers={"Idempotency-Key": f"bad-{person}"},
        )
        assert fields(problem(answer, 422)) == ["pay_from_personal_account"]

    after = account(platform, person)
    assert after.account == before.account
    assert list(after.movements) == list(before.movements)
    assert_ledger_balances(platform, person)


# --- the clerks' commands -------------------------------------------------------------------


def test_the_clerks_commands_credit_transfer_withdraw_purchase_and_show(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    address = platform.services["settlement"].address
    person, buyer = new_employee(platform, TIANJIN), new_employee(platform, LINZHI)

    def doudi(*argv: str) -> tuple[int, str, str]:
        return run_cli(["accounts", *argv, "--settlement", address], capsys)

    code, out, err = doudi(
        "credit", person, "--year", str(ACCOUNT_YEAR), "--yuan", "1200", "--request-id", "f-1"
    )
    assert code == 0, err
    assert "360.00" in out  # 30% to the account now
    assert "840.00" in out  # 70% to the card month by month
    code, out, err = doudi(
        "transfer", "--region", TIANJIN, "--month", f"{ACCOUNT_YEAR}-01", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["transferred_count"] + json.loads(out)["already_count"] >= 1
    assert pots(platform, person)[0] == 7_000  # 840 / 12 yuan
    code, out, err = doudi("show", person, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["account"]["balance_fen"] == 36_000 + 7_000  # the account and one month
    assert {movement["kind"] for movement in shown["movements"]} == {
        "ACCOUNT_MOVEMENT_KIND_CREDIT",
        "ACCOUNT_MOVEMENT_KIND_CARD_TRANSFER",
    }

    code, out, err = doudi(
        "credit", buyer, "--year", str(YEAR), "--yuan", "500", "--request-id", "f-2"
    )
    assert code == 0, err
    code, out, err = doudi("purchase", buyer, "--product", "picc_accident", "--request-id", "f-3")
    assert code == 0, err
    assert "80.00" in out
    assert "420.00" in out

    # Refusals: a clear sentence, exit 1 for a state conflict, 2 for bad input.
    code, out, err = doudi("withdraw", person, "--year", str(ACCOUNT_YEAR), "--request-id", "f-4")
    assert (code, out) == (1, "")
    assert "50,000.00" in err
    code, out, err = doudi("transfer", "--region", TIANJIN, "--month", "2026-13")
    assert (code, out) == (2, "")
    assert "month" in err
    code, out, err = doudi(
        "credit", person, "--year", str(ACCOUNT_YEAR), "--yuan", "0.001", "--request-id", "f-5"
    )
    assert (code, out) == (2, "")
    assert "--yuan" in err
    assert_ledger_balances(platform, person)
    assert_ledger_balances(platform, buyer)


# --- the packs' section and its arithmetic (no service) ----------------------------------------


def tianjin_document() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "doudi" / "packs" / "tianjin-2017.yaml").read_text("utf-8"))


def test_the_shipped_packs_personal_account_rules() -> None:
    registry = PackRegistry.load()
    tianjin = personal_account_rules(registry.get("tianjin-2017"))  # type: ignore[arg-type]
    linzhi = personal_account_rules(registry.get("linzhi-2020"))  # type: ignore[arg-type]
    assert tianjin is not None
    assert linzhi is not None
    assert (tianjin.card_share, tianjin.withdrawal_above_fen, tianjin.products) == (
        7000,
        5_000_000,
        (),
    )
    assert (linzhi.card_share, linzhi.withdrawal_above_fen) == (None, None)
    assert len(linzhi.products) == 10
    assert len({product.insurer for product in linzhi.products}) == 4
    for pack_id in ("xixia-2017", "taishan-2022"):
        assert personal_account_rules(registry.get(pack_id)) is None  # type: ignore[arg-type]
    # Twelve months add up to the card part exactly, for any amount.
    for card in (0, 1, 11, 12, 13, 864_197, 10**10):
        assert sum(monthly_card_part(card, month) for month in range(1, 13)) == card
        assert all(monthly_card_part(card, month) >= 0 for month in range(1, 13))


def _drop_card_source(section: dict[str, Any]) -> None:
    del section["card_share"]["source"]


def _float_percent(section: dict[str, Any]) -> None:
    section["card_share"]["percent"] = 70.5


def _negative_threshold(section: dict[str, Any]) -> None:
    section["withdrawal"]["above_yuan"] = -1


def _twin_products(section: dict[str, Any]) -> None:
    product = {"id": "p", "name": "n", "insurer": "i", "premium_yuan": 1}
    section["products"] = {"catalogue": [product, dict(product)], "assumed": "a test"}


def _unknown_key(section: dict[str, Any]) -> None:
    section["card_share_monthly"] = True


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (_drop_card_source, "personal_account.card_share"),
        (_float_percent, "personal_account.card_share.percent"),
        (_negative_threshold, "personal_account.withdrawal.above_yuan"),
        (_twin_products, "personal_account.products.catalogue[p]"),
        (_unknown_key, "personal_account"),
    ],
)
def test_a_bad_personal_account_section_is_refused_naming_the_rule(
    mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    document = tianjin_document()
    mutate(document["personal_account"])
    with pytest.raises(PolicyPackError) as raised:
        compile_pack(document, "tianjin-2017.yaml")
    assert raised.value.path == path

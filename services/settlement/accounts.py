"""Employees' personal accounts (职工个人账户): plain functions on a connection, as
``service.py``'s (docs/domain.md section 5; the rules: ``doudi.core.accounts``).

Settlement owns the accounts so that an account pays at the window in the settlement's
own transaction. Each account is one row with two pots, ``card_fen`` (the share of the
yearly credit moved to the social security card month by month) and ``account_fen`` (the
rest); every change is a movement appended to ``personal_account_movements`` with its
change to each pot and the pots after it, so a person's movements always add up to the
row. A movement is made once: its ``movement_key`` is unique (the kind and the caller's
request id, the settlement, or the person, year and month).

Every write locks the account row first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
write transaction holds the database's write lock) and changes the pots by a conditional
UPDATE that never takes a pot below zero, which the table's CHECK constraints back. A
settlement locks the person's ledger row before the account (service.py), the account's
own calls the account alone: the locks are always taken in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from doudi.common import paging
from doudi.common.errors import FailedPrecondition, NotFound, not_enrolled, person_not_found
from doudi.core.accounts import HealthProduct, PersonalAccountRules, draw, monthly_card_part
from doudi.core.codes import INPATIENT
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask
from doudi.core.money import format_yuan
from doudi.core.packs import PackRegistry, personal_account_rules
from doudi.core.policy import Pack
from services.settlement.tables import (
    person_coverage,
    personal_account_credits,
    personal_account_movements,
    personal_accounts,
    settlements,
)

CREDIT: Final = "credit"
CARD_TRANSFER: Final = "card_transfer"
WINDOW_PAYMENT: Final = "window_payment"
WINDOW_REFUND: Final = "window_refund"
WITHDRAWAL: Final = "withdrawal"
PURCHASE: Final = "purchase"
KINDS: Final = (CREDIT, CARD_TRANSFER, WINDOW_PAYMENT, WINDOW_REFUND, WITHDRAWAL, PURCHASE)
ACCOUNT_FUND: Final = "310200"
"""职工基本医疗保险个人账户: the fund that repays the hospital what an account paid."""
EMPLOYEE: Final = "employee"
_SETTLED: Final = "settled"  # service.SETTLED, which imports this module


@dataclass(frozen=True, slots=True)
class Account:
    """An account's pots as they stand."""

    person_id: str
    region: str
    card_fen: int
    account_fen: int

    @property
    def balance_fen(self) -> int:
        return self.card_fen + self.account_fen


@dataclass(frozen=True, slots=True)
class Movement:
    """One movement of the ledger: its change to each pot and the pots after it."""

    movement_id: int
    person_id: str
    kind: str
    card_change_fen: int
    account_change_fen: int
    card_after_fen: int
    account_after_fen: int
    year: int
    month: int | None
    settlement_id: str | None
    product_id: str | None
    request_id: str | None
    made_at: datetime


@dataclass(frozen=True, slots=True)
class Credited:
    """A yearly credit booked (or answered again): the account after it, the movement that
    put the account's part in, and the part the monthly transfers move to the card."""

    account: Account
    movement: Movement
    card_part_fen: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Moved:
    """A withdrawal or a purchase made (or answered again, ``replayed``)."""

    account: Account
    movement: Movement
    replayed: bool


@dataclass(frozen=True, slots=True)
class TransferPage:
    """One page of a monthly run: the persons whose card part moved now, those whose
    month had moved before, the amount moved now, every credited person of the region's
    year (for a progress bar) and where the next page starts ("" at the end)."""

    transferred: int
    already: int
    moved_fen: int
    credited: int
    next_page_token: str


# --- reading -------------------------------------------------------------------------------


def balance(connection: sqlalchemy.Connection, person_id: str) -> int | None:
    """The person's balance (card and account together) in fen; None when the person has
    no account. For other code of the service (the admission's eligibility answer)."""
    found = _account(connection, person_id, lock=False)
    return None if found is None else found.balance_fen


def get_account(
    *, connection: sqlalchemy.Connection, person_id: str, page_size: int, page_token: str
) -> tuple[Account, list[Movement], str]:
    """The account and a page of its movements, newest first, with the next page's token;
    NOT_FOUND without an account."""
    found = _account(connection, person_id, lock=False)
    if found is None:
        raise _no_account(person_id)
    query = select(personal_account_movements).where(
        personal_account_movements.c.person_id == person_id
    )
    rows, token = paging.keyset_page(
        connection,
        query,
        personal_account_movements.c.movement_id,
        page_size,
        page_token,
        newest_first=True,
    )
    return found, [_movement(row) for row in rows], token


def window_share(connection: sqlalchemy.Connection, person_id: str, self_pay_fen: int) -> int:
    """What the account would pay of ``self_pay_fen`` now, read without a lock (a preview)."""
    found = _account(connection, person_id, lock=False)
    if found is None:
        return 0
    return sum(draw(self_pay_fen, found.card_fen, found.account_fen))


# --- the yearly credit and the monthly run ----------------------------------------------


def credit(
    *,
    connection: sqlalchemy.Connection,
    request_id: str,
    person_id: str,
    year: int,
    amount_fen: int,
    packs: PackRegistry,
    now: datetime,
) -> Credited:
    """Book a person's credit of ``year`` (from the employer's contributions, recorded
    outside the platform): the account's part at once, the card's part left to the monthly
    run. Once per person and year (assumed): the same request again answers it, another
    one is FAILED_PRECONDITION (ALREADY_CREDITED)."""
    region, rules = _employee_account_rules(connection, person_id, year, packs)
    booked = connection.execute(
        select(personal_account_credits).where(
            personal_account_credits.c.person_id == person_id,
            personal_account_credits.c.year == year,
        )
    ).one_or_none()
    if booked is None:
        _check_request_unused(connection, CREDIT, request_id)
    else:
        return _credited_before(connection, booked, request_id, amount_fen)
    account_part, card_part = rules.split_credit(amount_fen)
    _locked_or_new(connection, person_id, region, now)
    connection.execute(
        personal_account_credits.insert().values(
            person_id=person_id,
            year=year,
            region=region,
            request_id=request_id,
            amount_fen=amount_fen,
            account_part_fen=account_part,
            card_part_fen=card_part,
            credited_at=now,
        )
    )
    movement = _move(
        connection,
        person_id,
        CREDIT,
        card_change=0,
        account_change=account_part,
        key=f"{CREDIT}:{person_id}:{year}",
        year=year,
        request_id=request_id,
        now=now,
    )
    return Credited(_after(movement, region), movement, card_part, replayed=False)


def _credited_before(
    connection: sqlalchemy.Connection, booked: Any, request_id: str, amount_fen: int
) -> Credited:
    if booked.request_id != request_id or booked.amount_fen != amount_fen:
        if booked.request_id == request_id:
            raise _key_reused()
        raise FailedPrecondition(
            f"the credit of {booked.year} is booked already ({format_yuan(booked.amount_fen)} "
            f"yuan, request {booked.request_id!r}); a year is credited once",
            reason="ALREADY_CREDITED",
            field="year",
            metadata={"request_id": booked.request_id, "amount_fen": str(booked.amount_fen)},
        )
    movement = _keyed(connection, f"{CREDIT}:{booked.person_id}:{booked.year}")
    assert movement is not None  # booked with the credit
    return Credited(
        _current(connection, booked.person_id), movement, booked.card_part_fen, replayed=True
    )


def transfer_to_cards(
    *,
    connection: sqlalchemy.Connection,
    region: str,
    year: int,
    month: int,
    packs: PackRegistry,
    page_size: int,
    page_token: str,
    now: datetime,
) -> TransferPage:
    """Move one page of a region's credited persons' card part of ``month`` (a twelfth,
    December the remainder) to their cards, persons in number order. A person whose month
    moved before is counted and skipped, so a run made again moves nothing. Each account
    is locked before its month is looked for: two runs at once move a month once."""
    rules = _rules(packs.in_force(region, date(year, 12, 31)))
    if rules is None or rules.card_share is None:
        raise FailedPrecondition(
            f"the policy of region {region} for {year} moves nothing to the cards month by "
            "month (no card share)",
            reason="NO_CARD_SHARE",
            field="region",
        )
    credits = personal_account_credits.c
    query = select(credits.person_id, credits.card_part_fen).where(
        credits.region == region, credits.year == year, credits.card_part_fen > 0
    )
    rows, token = paging.keyset_page(connection, query, credits.person_id, page_size, page_token)
    transferred = already = moved = 0
    for row in rows:
        key = f"{CARD_TRANSFER}:{row.person_id}:{year}-{month:02d}"
        _locked(connection, row.person_id)
        if _keyed(connection, key) is not None:
            already += 1
            continue
        part = monthly_card_part(row.card_part_fen, month)
        _move(
            connection,
            row.person_id,
            CARD_TRANSFER,
            card_change=part,
            account_change=0,
            key=key,
            year=year,
            month=month,
            now=now,
        )
        transferred += 1
        moved += part
    credited = connection.execute(
        select(func.count()).where(
            credits.region == region, credits.year == year, credits.card_part_fen > 0
        )
    ).scalar_one()
    return TransferPage(transferred, already, moved, int(credited), token)


# --- the withdrawal above the threshold and purchases -------------------------------------


def withdraw(
    *,
    connection: sqlalchemy.Connection,
    request_id: str,
    person_id: str,
    year: int,
    packs: PackRegistry,
    now: datetime,
) -> Moved:
    """Withdraw the whole balance (both pots) once the year's inpatient costs (the totals
    of the person's standing inpatient settlements discharged in ``year``) exceed the
    pack's threshold. Once per person and year (assumed: the source's 一次性): the same
    request again answers it, another is FAILED_PRECONDITION (ALREADY_WITHDRAWN)."""
    key = f"{WITHDRAWAL}:{person_id}:{year}"
    found = _keyed(connection, key)
    if found is None:
        _check_request_unused(connection, WITHDRAWAL, request_id)
    else:
        return _moved_before(connection, found, request_id, "ALREADY_WITHDRAWN")
    account = _locked(connection, person_id)
    if account is None:
        raise _no_account(person_id)
    rules = _rules(packs.in_force(account.region, date(year, 12, 31)))
    if rules is None or rules.withdrawal_above_fen is None:
        raise FailedPrecondition(
            f"the policy of region {account.region} for {year} allows no withdrawal",
            reason="NO_WITHDRAWAL",
            field="year",
        )
    costs = inpatient_costs(connection, person_id, year)
    if costs <= rules.withdrawal_above_fen:
        raise FailedPrecondition(
            f"the inpatient costs of {year} are {format_yuan(costs)} yuan so far; the balance "
            f"may be withdrawn above {format_yuan(rules.withdrawal_above_fen)} yuan",
            reason="BELOW_WITHDRAWAL_THRESHOLD",
            field="year",
            metadata={
                "inpatient_costs_fen": str(costs),
                "threshold_fen": str(rules.withdrawal_above_fen),
            },
        )
    if account.balance_fen == 0:
        raise FailedPrecondition(
            "the account holds nothing to withdraw", reason="EMPTY_ACCOUNT", field="person_id"
        )
    movement = _move(
        connection,
        person_id,
        WITHDRAWAL,
        card_change=-account.card_fen,
        account_change=-account.account_fen,
        key=key,
        year=year,
        request_id=request_id,
        now=now,
    )
    return Moved(_after(movement, account.region), movement, replayed=False)


def inpatient_costs(connection: sqlalchemy.Connection, person_id: str, year: int) -> int:
    """The total costs of the person's standing (not reversed) inpatient settlements
    discharged in ``year``."""
    total = connection.execute(
        select(func.coalesce(func.sum(settlements.c.total_fen), 0)).where(
            settlements.c.person_id == person_id,
            settlements.c.year == year,
            settlements.c.visit_type == INPATIENT,
            settlements.c.state == _SETTLED,
        )
    ).scalar_one()
    return int(total)


def purchase(
    *,
    connection: sqlalchemy.Connection,
    request_id: str,
    person_id: str,
    product_id: str,
    packs: PackRegistry,
    day: date,
    now: datetime,
) -> Moved:
    """Pay a product of the catalogue of the pack in force on ``day`` from the account,
    card first (assumed). An unknown product is INVALID_ARGUMENT; too little money,
    FAILED_PRECONDITION (INSUFFICIENT_BALANCE), nothing changed. The same request again
    answers the purchase made."""
    found = _keyed(connection, f"{PURCHASE}:{request_id}")
    if found is not None:
        if found.person_id != person_id or found.product_id != product_id:
            raise _key_reused()
        return Moved(_current(connection, found.person_id), found, replayed=True)
    account = _locked(connection, person_id)
    if account is None:
        raise _no_account(person_id)
    product = _product(packs.in_force(account.region, day), product_id, account.region)
    if account.balance_fen < product.premium_fen:
        raise FailedPrecondition(
            f"the account holds {format_yuan(account.balance_fen)} yuan; {product.name} costs "
            f"{format_yuan(product.premium_fen)}",
            reason="INSUFFICIENT_BALANCE",
            field="product_id",
            metadata={
                "balance_fen": str(account.balance_fen),
                "premium_fen": str(product.premium_fen),
            },
        )
    from_card, from_account = draw(product.premium_fen, account.card_fen, account.account_fen)
    movement = _move(
        connection,
        person_id,
        PURCHASE,
        card_change=-from_card,
        account_change=-from_account,
        key=f"{PURCHASE}:{request_id}",
        year=day.year,
        product_id=product.id,
        request_id=request_id,
        now=now,
    )
    return Moved(_after(movement, account.region), movement, replayed=False)


def _product(pack: Pack | None, product_id: str, region: str) -> HealthProduct:
    rules = _rules(pack)
    product = None if rules is None else rules.product(product_id)
    if product is None:
        known = ", ".join(product.id for product in rules.products) if rules else ""
        raise InvalidInput(
            "product_id",
            f"{product_id!r} is not in region {region}'s catalogue of health products"
            + (f" ({known})" if known else " (it has none)"),
        )
    return product


# --- at the window (service.settle and service.reverse) ------------------------------------


def pay_at_window(
    connection: sqlalchemy.Connection,
    *,
    person_id: str,
    scheme: str,
    settlement_id: str,
    year: int,
    self_pay_fen: int,
    now: datetime,
) -> int:
    """Pay what the employee's account can of the settlement's self-pay, card first, in
    the settlement's transaction (the person's ledger row already locked); answers the
    amount paid. A resident, or an employee without an account or money in it, pays
    nothing from it: 0, not an error."""
    if scheme != EMPLOYEE or self_pay_fen <= 0:
        return 0
    account = _locked(connection, person_id)
    if account is None:
        return 0
    from_card, from_account = draw(self_pay_fen, account.card_fen, account.account_fen)
    if from_card + from_account == 0:
        return 0
    _move(
        connection,
        person_id,
        WINDOW_PAYMENT,
        card_change=-from_card,
        account_change=-from_account,
        key=f"{WINDOW_PAYMENT}:{settlement_id}",
        year=year,
        settlement_id=settlement_id,
        now=now,
    )
    return from_card + from_account


def refund_at_window(connection: sqlalchemy.Connection, settlement_id: str, now: datetime) -> None:
    """A reversed settlement's account payment back to the pots it came from (a
    window_refund movement), in the reversal's transaction."""
    paid = _keyed(connection, f"{WINDOW_PAYMENT}:{settlement_id}")
    if paid is None:
        return
    _locked(connection, paid.person_id)
    _move(
        connection,
        paid.person_id,
        WINDOW_REFUND,
        card_change=-paid.card_change_fen,
        account_change=-paid.account_change_fen,
        key=f"{WINDOW_REFUND}:{settlement_id}",
        year=paid.year,
        settlement_id=settlement_id,
        now=now,
    )


# --- helpers ---------------------------------------------------------------------------


def _employee_account_rules(
    connection: sqlalchemy.Connection, person_id: str, year: int, packs: PackRegistry
) -> tuple[str, PersonalAccountRules]:
    """The person's region and its personal-account rules for ``year``: the person must be
    an employee enrolled that year in a region whose pack has a ``personal_account``
    section."""
    coverage = connection.execute(
        select(person_coverage.c.coverage).where(person_coverage.c.person_id == person_id)
    ).scalar_one_or_none()
    if coverage is None:
        raise person_not_found(person_id, "person_id")
    enrolment = coverage["years"].get(str(year))
    if enrolment is None:
        raise not_enrolled(person_id, year)
    if enrolment[0] != EMPLOYEE:
        raise FailedPrecondition(
            f"person {mask(person_id)} is not enrolled as an employee in {year}: only "
            "employees have a personal account",
            reason="NOT_AN_EMPLOYEE",
            field="person_id",
        )
    region = str(coverage["region"])
    rules = _rules(packs.in_force(region, date(year, 12, 31)))
    if rules is None:
        raise FailedPrecondition(
            f"the policy of region {region} for {year} has no personal accounts",
            reason="NO_PERSONAL_ACCOUNTS",
            field="person_id",
        )
    return region, rules


def _rules(pack: Pack | None) -> PersonalAccountRules | None:
    return None if pack is None else personal_account_rules(pack)


def _account(connection: sqlalchemy.Connection, person_id: str, *, lock: bool) -> Account | None:
    query = select(personal_accounts).where(personal_accounts.c.person_id == person_id)
    row = connection.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        return None
    return Account(row.person_id, row.region, row.card_fen, row.account_fen)


def _locked(connection: sqlalchemy.Connection, person_id: str) -> Account | None:
    """The account, its row locked until the transaction ends (PostgreSQL)."""
    return _account(connection, person_id, lock=True)


def _current(connection: sqlalchemy.Connection, person_id: str) -> Account:
    found = _account(connection, person_id, lock=False)
    assert found is not None  # a movement's account is never removed
    return found


def _locked_or_new(
    connection: sqlalchemy.Connection, person_id: str, region: str, now: datetime
) -> None:
    """Lock the account, opening it empty first if the person has none: an upsert that
    takes the row's lock on PostgreSQL whether it inserted it or not."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(personal_accounts).values(
        person_id=person_id, region=region, card_fen=0, account_fen=0, version=0, updated_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[personal_accounts.c.person_id],
            set_={"version": personal_accounts.c.version},
        )
    )


def _move(
    connection: sqlalchemy.Connection,
    person_id: str,
    kind: str,
    *,
    card_change: int,
    account_change: int,
    key: str,
    year: int,
    now: datetime,
    month: int | None = None,
    settlement_id: str | None = None,
    product_id: str | None = None,
    request_id: str | None = None,
) -> Movement:
    """Change the pots by a conditional UPDATE that never takes one below zero, and append
    the movement with the pots after it (the account's row locked by the caller)."""
    row = connection.execute(
        personal_accounts.update()
        .where(
            personal_accounts.c.person_id == person_id,
            personal_accounts.c.card_fen + card_change >= 0,
            personal_accounts.c.account_fen + account_change >= 0,
        )
        .values(
            card_fen=personal_accounts.c.card_fen + card_change,
            account_fen=personal_accounts.c.account_fen + account_change,
            version=personal_accounts.c.version + 1,
            updated_at=now,
        )
        .returning(personal_accounts.c.card_fen, personal_accounts.c.account_fen)
    ).one_or_none()
    if row is None:
        raise FailedPrecondition(
            "the account holds too little for this", reason="INSUFFICIENT_BALANCE"
        )
    values = {
        "person_id": person_id,
        "kind": kind,
        "card_change_fen": card_change,
        "account_change_fen": account_change,
        "card_after_fen": row.card_fen,
        "account_after_fen": row.account_fen,
        "year": year,
        "month": month,
        "settlement_id": settlement_id,
        "product_id": product_id,
        "request_id": request_id,
        "movement_key": key,
        "made_at": now,
    }
    movement_id = connection.execute(
        personal_account_movements.insert()
        .values(values)
        .returning(personal_account_movements.c.movement_id)
    ).scalar_one()
    return Movement(movement_id=movement_id, **_without(values, "movement_key"))


def _without(values: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key != name}


def _keyed(connection: sqlalchemy.Connection, key: str) -> Movement | None:
    row = connection.execute(
        select(personal_account_movements).where(personal_account_movements.c.movement_key == key)
    ).one_or_none()
    return None if row is None else _movement(row)


def _moved_before(
    connection: sqlalchemy.Connection, found: Movement, request_id: str, reason: str
) -> Moved:
    """A withdrawal made before: the same request answers it, another is refused with the
    first one's request and time."""
    if found.request_id != request_id:
        raise FailedPrecondition(
            f"the balance of {found.year} was withdrawn already on "
            f"{found.made_at.date().isoformat()} by the request {found.request_id!r} "
            f"(movement {found.movement_id}); a year's balance is withdrawn once",
            reason=reason,
            field="year",
            metadata={
                "movement_id": str(found.movement_id),
                "request_id": found.request_id or "",
            },
        )
    return Moved(_current(connection, found.person_id), found, replayed=True)


def _check_request_unused(connection: sqlalchemy.Connection, kind: str, request_id: str) -> None:
    """FAILED_PRECONDITION (IDEMPOTENCY_KEY_REUSED) when a movement of ``kind`` was made
    under ``request_id`` for another person or year."""
    used = connection.execute(
        select(personal_account_movements.c.movement_id).where(
            personal_account_movements.c.kind == kind,
            personal_account_movements.c.request_id == request_id,
        )
    ).first()
    if used is not None:
        raise _key_reused()


def _key_reused() -> FailedPrecondition:
    return FailedPrecondition(
        "this idempotency key was used for a different request",
        reason="IDEMPOTENCY_KEY_REUSED",
        field="request_id",
    )


def _no_account(person_id: str) -> NotFound:
    return NotFound(
        f"no personal account of person {mask(person_id)}",
        reason="NO_PERSONAL_ACCOUNT",
        field="person_id",
    )


def _after(movement: Movement, region: str) -> Account:
    return Account(movement.person_id, region, movement.card_after_fen, movement.account_after_fen)


def _movement(row: Any) -> Movement:
    return Movement(
        movement_id=row.movement_id,
        person_id=row.person_id,
        kind=row.kind,
        card_change_fen=row.card_change_fen,
        account_change_fen=row.account_change_fen,
        card_after_fen=row.card_after_fen,
        account_after_fen=row.account_after_fen,
        year=row.year,
        month=row.month,
        settlement_id=row.settlement_id,
        product_id=row.product_id,
        request_id=row.request_id,
        made_at=row.made_at,
    )

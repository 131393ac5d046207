"""Bills paid outside the window (docs/domain.md section 7, personal burden): an out-of-area
stay the patient paid in full, or any bill the one-stop window did not settle, entered by
a clerk from the receipts with what insurance already paid there.

A bill is recorded once per caller's request id (the same id and content answer the
stored bill; another content under the id is refused) and added to the burden ledger of
its person and discharge year in the same transaction, through
:func:`services.assistance.service.add_to_ledger` as settlements are. Its visit is kept
in docs/case-format.md's shape, so that screening can run the engine on it under the
region's pack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import select

from doudi.common.errors import FailedPrecondition
from doudi.common.outbox import dialect_module
from doudi.common.paging import keyset_page
from doudi.common.visits import visit_document
from doudi.core.cases import parse_visit
from doudi.core.engine import classify_costs
from doudi.core.errors import InvalidInput
from doudi.core.model import Visit
from doudi.core.money import MAX_BILL_FEN
from doudi.core.packs import PackRegistry
from services.assistance import people
from services.assistance.service import LedgerEntry, add_to_ledger
from services.assistance.tables import assistance_bills


@dataclass(frozen=True, slots=True)
class Bill:
    """A bill as a clerk entered it, checked (:func:`checked_bill`)."""

    request_id: str
    person_id: str
    region: str
    hospital_name: str
    visit: Visit
    """The visit with the hospital's level, as the engine reads it."""
    insurance_payments: tuple[tuple[str, int], ...]
    """(fund, fen) of each fund that paid where the bill was paid."""
    self_pay_fen: int
    out_of_scope_fen: int
    """Class C, over-limit and the class B pre-payment under the region's pack."""

    @property
    def total_fen(self) -> int:
        return sum(item.amount_fen for item in self.visit.items)

    @property
    def insurance_paid_fen(self) -> int:
        return sum(fen for _fund, fen in self.insurance_payments)

    @property
    def eligible_burden_fen(self) -> int:
        """The in-scope part of what the person paid, as for a settlement."""
        return max(0, self.self_pay_fen - self.out_of_scope_fen)


@dataclass(frozen=True, slots=True)
class StoredBill:
    bill_id: int
    bill: Bill
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    stored: StoredBill
    recorded: bool
    """False: recorded before under this request id, nothing changed."""
    person_on_record: bool
    """Whether enrollment has sent the person."""


def checked_bill(
    *,
    registry: PackRegistry,
    request_id: str,
    person_id: str,
    region: str,
    hospital_name: str,
    visit: Visit,
    insurance_payments: Sequence[tuple[str, int]],
    self_pay_fen: int,
) -> Bill:
    """The bill, checked: InvalidInput names the field at fault. ``person_id`` and
    ``visit`` are checked already (the identity number and the engine's visit rules)."""
    request_id = request_id.strip()
    if not request_id:
        raise InvalidInput("request_id", "required: the caller's id of this bill")
    if len(request_id) > 64 or not request_id.isprintable():
        raise InvalidInput("request_id", "at most 64 printable characters")
    if not hospital_name.strip():
        raise InvalidInput("hospital_name", "required: where the bill was paid")
    if len(hospital_name) > 128 or not hospital_name.isprintable():
        raise InvalidInput("hospital_name", "at most 128 printable characters")
    if region not in registry.regions:
        known = ", ".join(sorted(registry.regions))
        raise InvalidInput(
            "region",
            f"required: one of {known}" if not region else f"unknown region {region!r}",
        )
    pack = registry.in_force(region, visit.settles_on)
    if pack is None:
        raise InvalidInput(
            "region", f"no policy pack of {region} is in force on {visit.settles_on}"
        )
    funds: dict[str, int] = {}
    for index, (fund, fen) in enumerate(insurance_payments):
        where = f"insurance_payments[{index}]"
        if not fund or len(fund) > 16 or not fund.isprintable():
            raise InvalidInput(f"{where}.fund", "required: a fund code of at most 16 characters")
        if fund in funds:
            raise InvalidInput(f"{where}.fund", f"fund {fund!r} is listed twice")
        if not 0 <= fen <= MAX_BILL_FEN:
            raise InvalidInput(f"{where}.paid_fen", f"from 0 to {MAX_BILL_FEN} fen, got {fen}")
        funds[fund] = fen
    if not 0 <= self_pay_fen <= MAX_BILL_FEN:
        raise InvalidInput("self_pay_fen", f"from 0 to {MAX_BILL_FEN} fen, got {self_pay_fen}")
    total = sum(item.amount_fen for item in visit.items)
    paid = sum(funds.values())
    if paid + self_pay_fen != total:
        raise InvalidInput(
            "self_pay_fen",
            f"the items come to {total} fen: what insurance paid ({paid}) and self_pay_fen "
            f"({self_pay_fen}) must add up to it, to the fen",
        )
    return Bill(
        request_id=request_id,
        person_id=person_id,
        region=region,
        hospital_name=hospital_name.strip(),
        visit=visit,
        insurance_payments=tuple(funds.items()),
        self_pay_fen=self_pay_fen,
        out_of_scope_fen=classify_costs(visit.items, pack.class_b_pre_self_pay).out_of_scope_fen,
    )


def record_bill(*, connection: sqlalchemy.Connection, bill: Bill, now: datetime) -> Recorded:
    """Record the bill and add it to the ledger, unless its request id is recorded: then
    answer the stored bill if it is the same, FailedPrecondition if not."""
    digest = _digest(bill)
    bill_id = connection.execute(
        dialect_module(connection)
        .insert(assistance_bills)
        .values(_row(bill, digest, now))
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(assistance_bills.c.bill_id)
    ).scalar_one_or_none()
    on_record = bill.person_id in people.persons(connection, [bill.person_id])
    if bill_id is not None:
        periods = people.status_periods(connection, [bill.person_id]).get(bill.person_id, ())
        held = people.statuses_on(periods, bill.visit.settles_on)
        add_to_ledger(connection, [_entry(bill, bill_id, tuple(sorted(held)))])
        return Recorded(StoredBill(bill_id, bill, now), True, on_record)
    row = connection.execute(
        select(assistance_bills).where(assistance_bills.c.request_id == bill.request_id)
    ).one()
    if row.digest != digest:
        raise FailedPrecondition(
            f"request_id {bill.request_id!r} is already recorded with another bill",
            field="request_id",
        )
    return Recorded(_stored(row), False, on_record)


def list_bills(
    *,
    connection: sqlalchemy.Connection,
    person_id: str | None,
    region: str | None,
    year: int | None,
    size: int,
    token: str,
) -> tuple[list[StoredBill], str]:
    """A person's bills (of ``year``, or all) or a region's of ``year``, in recording
    order, a page at a time."""
    bills = assistance_bills.c
    query = select(assistance_bills)
    if person_id is not None:
        query = query.where(bills.person_id == person_id)
    if region is not None:
        query = query.where(bills.region == region)
    if year is not None:
        query = query.where(
            bills.settled_on >= date(year, 1, 1), bills.settled_on <= date(year, 12, 31)
        )
    rows, next_token = keyset_page(connection, query, bills.bill_id, size, token)
    return [_stored(row) for row in rows], next_token


def _entry(bill: Bill, bill_id: int, statuses: tuple[str, ...]) -> LedgerEntry:
    return LedgerEntry(
        person_id=bill.person_id,
        year=bill.visit.year,
        sign=1,
        visit_type=bill.visit.visit_type,
        total_fen=bill.total_fen,
        fund_payments=bill.insurance_payments,
        self_pay_fen=bill.self_pay_fen,
        eligible_burden_fen=bill.eligible_burden_fen,
        region=bill.region,
        on=bill.visit.settles_on,
        source=f"bill {bill_id}",
        statuses=statuses,
        in_window=False,
    )


def _digest(bill: Bill) -> str:
    content = {
        "person_id": bill.person_id,
        "region": bill.region,
        "hospital_name": bill.hospital_name,
        "visit": visit_document(bill.visit),
        "insurance_payments": [list(payment) for payment in bill.insurance_payments],
        "self_pay_fen": bill.self_pay_fen,
    }
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _row(bill: Bill, digest: str, now: datetime) -> dict[str, Any]:
    visit = bill.visit
    return {
        "request_id": bill.request_id,
        "digest": digest,
        "person_id": bill.person_id,
        "region": bill.region,
        "hospital_name": bill.hospital_name,
        "hospital_level": visit.hospital_level,
        "visit_type": visit.visit_type,
        "out_of_area": visit.out_of_area,
        "admitted": visit.admitted,
        "settled_on": visit.settles_on,
        "visit": visit_document(visit),
        "insurance_payments": [list(payment) for payment in bill.insurance_payments],
        "total_fen": bill.total_fen,
        "insurance_paid_fen": bill.insurance_paid_fen,
        "out_of_scope_fen": bill.out_of_scope_fen,
        "self_pay_fen": bill.self_pay_fen,
        "eligible_burden_fen": bill.eligible_burden_fen,
        "recorded_at": now,
    }


def _stored(row: sqlalchemy.Row[Any]) -> StoredBill:
    bill = Bill(
        request_id=row.request_id,
        person_id=row.person_id,
        region=row.region,
        hospital_name=row.hospital_name,
        visit=parse_visit(row.visit),
        insurance_payments=tuple((fund, int(fen)) for fund, fen in row.insurance_payments),
        self_pay_fen=row.self_pay_fen,
        out_of_scope_fen=row.out_of_scope_fen,
    )
    return StoredBill(row.bill_id, bill, row.recorded_at)

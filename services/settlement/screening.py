"""Proactive screening (主动救助, docs/domain.md section 7), settlement's side: which settled
visits would have left the patient less to pay under the statuses settlement holds now.

A status is often certified after the visit it should have helped: the agency's
valid-from lies on or before the visit's day, but the settlement applied what
the person held when it was made. :func:`screen` settles each person's standing
settlements of a year again with the engine, in the order they were settled,
on accumulators replayed from zero over those recomputed visits (so a yearly
cap or deductible the earlier visits used is used the same way), under the
pack that settled each visit, the person's coverage and the statuses held now
on the visit's day. A visit whose patient would have paid less, and on whose
day the person now holds a status the settlement did not apply, is a finding:
the difference is the statuses' doing, not a reversal's (a reversed visit
leaves the later ones of its year what they paid; replaying without it can
lower their self-pay too, and that is no one's omission).

Reads only; a plain function on a connection, as ``service.py``'s handlers. A call
takes up to :data:`MAX_PERSONS` persons in two queries: their standing
settlements of the year, and their coverage, statuses and ledgers together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy
from sqlalchemy import select

from doudi.core.cases import parse_visit
from doudi.core.engine import LayerPayment, Payout, PersonLedger
from doudi.core.identity import parse_resident_id
from doudi.core.model import Person
from doudi.core.packs import PackRegistry
from services.settlement.service import SETTLED, check_amounts, status_periods, stored_record
from services.settlement.tables import ledgers, person_coverage, person_statuses, settlements

MAX_PERSONS = 1000
"""The most persons one call screens (a region's run sends its persons in batches)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A settled visit that would have left the patient less to pay under the statuses held
    now: what the layers paid then and would pay now."""

    settlement_id: str
    person_id: str
    region: str
    visit_type: str
    settles_on: date
    policy: str
    statuses_applied: tuple[str, ...]
    statuses_now: tuple[str, ...]
    settled_layers: tuple[LayerPayment, ...]
    recomputed_layers: tuple[LayerPayment, ...]
    settled_self_pay_fen: int
    recomputed_self_pay_fen: int

    @property
    def difference_fen(self) -> int:
        """What the patient paid that the layers would have (above zero)."""
        return self.settled_self_pay_fen - self.recomputed_self_pay_fen


def screen(
    *, connection: sqlalchemy.Connection, person_ids: Sequence[str], year: int, packs: PackRegistry
) -> list[Finding]:
    """The findings of the persons' standing settlements discharged in ``year``: by person
    in the order given (each once), then in settlement order. A person with no standing
    settlement in the year, or no coverage of the year on record, has none."""
    wanted = list(dict.fromkeys(person_ids))
    rows = connection.execute(
        select(settlements)
        .where(
            settlements.c.person_id.in_(wanted),
            settlements.c.year == year,
            settlements.c.state == SETTLED,
        )
        .order_by(settlements.c.settled_at, settlements.c.settlement_id)
    ).all()
    if not rows:
        return []
    by_person: dict[str, list[Any]] = {}
    for row in rows:
        by_person.setdefault(row.person_id, []).append(row)
    known = {
        row.person_id: row
        for row in connection.execute(
            select(
                person_coverage.c.person_id,
                person_coverage.c.coverage,
                person_statuses.c.periods,
                ledgers.c.years,
                ledgers.c.payouts,
                ledgers.c.first_year,
            )
            .select_from(
                person_coverage.outerjoin(
                    person_statuses, person_statuses.c.person_id == person_coverage.c.person_id
                ).outerjoin(ledgers, ledgers.c.person_id == person_coverage.c.person_id)
            )
            .where(person_coverage.c.person_id.in_(list(by_person)))
        )
    }
    findings: list[Finding] = []
    for person_id in wanted:
        person_rows = by_person.get(person_id)
        held = known.get(person_id)
        if person_rows is not None and held is not None:
            findings.extend(_screen_person(person_id, year, person_rows, held, packs))
    return findings


def _screen_person(
    person_id: str, year: int, rows: list[Any], held: Any, packs: PackRegistry
) -> list[Finding]:
    """Settle the person's year again, visit after visit, and answer the findings."""
    enrolment = held.coverage["years"].get(str(year))
    if enrolment is None:
        return []  # no coverage of the year on record now: nothing to recompute with
    scheme, employment, tier = enrolment
    periods = status_periods(held.periods)
    person = Person(parse_resident_id(person_id), scheme, employment, tier, periods)
    ledger = _ledger_before(year, rows, held)
    findings: list[Finding] = []
    for row in rows:
        record = stored_record(row)
        check_amounts(record)  # DATA_LOSS for a record written past the amount limits
        visit = parse_visit(row.visit)
        pack = packs.get(record.policy) or packs.in_force(row.region, visit.settles_on)
        if pack is None:
            # The pack that settled it is gone and none is in force: keep what it added,
            # so the visits after it see the year as it was.
            ledger.apply_increments(
                year,
                {str(key): int(amount) for key, amount in row.deltas.items()},
                [Payout(*payout).ledger_key for payout in row.payouts],
            )
            continue
        result = ledger.settle(pack, person, visit)
        applied = tuple(sorted(row.statuses))
        now = tuple(sorted({p.code for p in periods if p.holds_on(visit.settles_on)}))
        if result.self_pay_fen < record.self_pay_fen and set(now) - set(applied):
            findings.append(
                Finding(
                    settlement_id=record.settlement_id,
                    person_id=person_id,
                    region=row.region,
                    visit_type=record.visit_type,
                    settles_on=record.settles_on,
                    policy=record.policy,
                    statuses_applied=applied,
                    statuses_now=now,
                    settled_layers=record.layers,
                    recomputed_layers=tuple(
                        LayerPayment(layer.layer, layer.fund, layer.paid_fen)
                        for layer in result.layers
                    ),
                    settled_self_pay_fen=record.self_pay_fen,
                    recomputed_self_pay_fen=result.self_pay_fen,
                )
            )
    return findings


def _ledger_before(year: int, rows: list[Any], held: Any) -> PersonLedger:
    """The person's ledger as it stood before the year's first visit: the earlier years'
    outpatient costs (Tianjin carries unused quota), the instant payouts made other than
    by the year's standing settlements, and the year itself empty."""
    if held.years is None:
        return PersonLedger()
    stored = PersonLedger.from_document(
        {"years": held.years, "payouts": held.payouts, "first_year": held.first_year}
    )
    ledger = PersonLedger(stored.outpatient_costs_before(year))
    ledger.payouts = stored.payouts - {
        Payout(*payout).ledger_key for row in rows for payout in row.payouts
    }
    return ledger

"""Proactive screening (主动救助, docs/domain.md section 7): runs a case worker starts for a
region and a year, the offers they find, and each offer confirmed and paid once.

A run finds two kinds of eligible cost that got no assistance:

- **settled visits** (source ``settlement``, reference the settlement id): the settlement
  service recomputes the year of each person sent to it under the statuses it holds now,
  replaying that year's accumulators over the person's unreversed settlements
  (``ScreenSettlements``); each visit whose patient would have paid less is a finding.
  The persons sent: those of the region (enrollment's copy) holding a status that makes
  them eligible for a layer of one of the region's packs of the year, and those whose
  screening was asked for (``screening_requests``: an approved application, a certified
  warning), whose requests the run consumes. The call is the servicer's, before the run's
  transaction (:func:`to_screen`, then :func:`create_run` with the findings);
- **bills paid outside the window** (source ``bill``, reference the bill id): every bill of
  the region and year whose person held such a status on its day is settled again with
  the engine under the pack in force in its region on that day, with the bill's own
  out-of-area and referral flags (the pack's out-of-area rules: Taishan's assistance is
  20 points lower out of area without referral) and the person's statuses on that day;
  the person's bills of the year are replayed in date order on one ledger, so yearly
  deductibles and caps count them together. What the *assistance layers* (the layers a
  status makes the person eligible for) pay there, less what their funds paid where the
  bill was paid, never more than the person paid, is owed.

An offer is what is owed less what confirmed offers of the same visit or bill paid
(``screening_paid``); nothing is offered at or below zero, and a run leaves the older
unconfirmed offers of what it screened ``superseded``. A case worker confirms an offer
(the person contacted, the account known: who and a note); the confirmation locks the
visit's row of ``screening_paid`` and pays the least of the offer and what is owed less
what is paid, so two confirmations, at once or one after the other, of offers of the same
visit pay it once; a visit reversed since its offer was made is not paid. Nothing paid is taken back: a visit reversed, or a status revoked,
after payment leaves the confirmed offer as it is, and later runs offer nothing more.

Who is assessed as a resident (城乡居民): assistance keeps no scheme, and the assistance
categories are enrolled in resident insurance (资助参保); the offer's details say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy
from sqlalchemy import and_, delete, func, literal, select, text, update

from doudi.common.errors import FailedPrecondition, NotFound
from doudi.common.outbox import dialect_module
from doudi.common.paging import keyset_page, runs_page
from doudi.core.cases import parse_visit
from doudi.core.engine import PersonLedger, VisitSettlement
from doudi.core.identity import parse_resident_id
from doudi.core.model import Person, StatusPeriod
from doudi.core.money import fen_to_yuan
from doudi.core.packs import PackRegistry
from doudi.core.policy import Pack
from doudi.core.statuses import EffectivePeriod
from services.assistance import people
from services.assistance.tables import (
    assistance_bills,
    assistance_persons,
    screening_offers,
    screening_paid,
    screening_requests,
    screening_runs,
    settlement_events,
)

SETTLEMENT: Final = "settlement"
BILL: Final = "bill"
SOURCES: Final = (SETTLEMENT, BILL)
OFFERED: Final = "offered"
CONFIRMED: Final = "confirmed"
SUPERSEDED: Final = "superseded"
STATES: Final = (OFFERED, CONFIRMED, SUPERSEDED)
MAX_SCREENED: Final = 1000
"""The most persons one ``ScreenSettlements`` call takes."""
ASSUMED_SCHEME: Final = "resident"
REVERSED: Final = "reversed"
"""A settlement event's kind (``services.assistance.service.REVERSED``)."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A case worker's run, checked."""

    request_id: str
    region: str
    year: int
    case_worker: str


@dataclass(frozen=True, slots=True)
class Run:
    run_id: int
    region: str
    year: int
    case_worker: str
    created_at: datetime
    offer_count: int
    offered_fen: int


@dataclass(frozen=True, slots=True)
class Finding:
    """A visit or bill that the assistance layers owe something on (before what was paid
    for it is taken off)."""

    source: str
    reference: str
    person_id: str
    region: str
    settled_on: date
    visit_type: str
    statuses: tuple[str, ...]
    policy: str
    self_pay_fen: int
    owed_fen: int
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: int
    run_id: int
    source: str
    reference: str
    person_id: str
    name: str
    region: str
    year: int
    settled_on: date
    visit_type: str
    statuses: tuple[str, ...]
    policy: str
    self_pay_fen: int
    offered_fen: int
    details: Mapping[str, Any]
    state: str
    confirmed_at: datetime | None
    confirmed_by: str | None
    confirm_note: str | None
    paid_fen: int


@dataclass(frozen=True, slots=True)
class ToScreen:
    """What a run sends the settlement service, read before its transaction."""

    stored: Run | None
    """The run already made under the request id (then nothing is sent)."""
    person_ids: tuple[str, ...]
    """In identity-number order."""
    last_request: int
    """The newest ``screening_requests`` row read: the run consumes those up to it."""


# --- the assistance statuses of a region's packs ---


def assistance_layers(pack: Pack) -> tuple[int, ...]:
    """The positions of the pack's layers that a status makes a person eligible for (医疗救助,
    and such insurance layers as Xixia's for the registered poor)."""
    return tuple(
        index
        for index, layer in enumerate(pack.document["layers"])
        if (layer.get("eligible") or {}).get("statuses")
    )


def assistance_statuses(pack: Pack) -> frozenset[str]:
    """The statuses that make a person eligible for one of the pack's assistance layers (a
    status the pack names with conditions, such as 脱贫 within a year, counts too: the engine
    applies the condition)."""
    layers = pack.document["layers"]
    return frozenset(
        entry if isinstance(entry, str) else str(entry["status"])
        for index in assistance_layers(pack)
        for entry in layers[index]["eligible"]["statuses"]
    )


def _packs_of_year(packs: PackRegistry, region: str, year: int) -> list[Pack]:
    """The region's packs in force on some day of ``year``."""
    first = packs.in_force(region, date(year, 1, 1))
    found = [] if first is None else [first]
    for pack in packs:
        if pack.region_code == region and date(year, 1, 1) < pack.effective_from <= date(
            year, 12, 31
        ):
            found.append(pack)
    return found


# --- a run ---


def to_screen(
    *, connection: sqlalchemy.Connection, packs: PackRegistry, request: RunRequest
) -> ToScreen:
    """The persons whose settled visits a run sends to the settlement service: the region's
    persons holding one of its packs' assistance statuses in the year, and the persons whose
    screening was asked for in the year; or the run already made under the request id."""
    before = connection.execute(
        select(screening_runs).where(screening_runs.c.request_id == request.request_id)
    ).one_or_none()
    if before is not None:
        return ToScreen(replay_run(before, request), (), 0)
    statuses = frozenset().union(
        *(assistance_statuses(pack) for pack in _packs_of_year(packs, request.region, request.year))
    )
    in_region = set(
        connection.execute(
            select(assistance_persons.c.person_id).where(
                assistance_persons.c.region == request.region
            )
        ).scalars()
    )
    wanted = {
        person_id
        for person_id, periods in people.status_periods(connection, in_region).items()
        if statuses & people.statuses_in_year(periods, request.year)
    }
    requests = screening_requests.c
    asked = connection.execute(
        select(requests.request_id, requests.person_id).where(
            requests.year == request.year,
            requests.person_id.in_(
                select(assistance_persons.c.person_id).where(
                    assistance_persons.c.region == request.region
                )
            ),
        )
    ).all()
    wanted.update(person_id for _id, person_id in asked)
    last = max((int(request_id) for request_id, _person in asked), default=0)
    return ToScreen(None, tuple(sorted(wanted)), last)


def create_run(
    *,
    connection: sqlalchemy.Connection,
    packs: PackRegistry,
    request: RunRequest,
    screened: ToScreen,
    findings: Sequence[Finding],
    now: datetime,
) -> Run:
    """Store the run: its offers for the settlement service's ``findings`` on the persons
    ``screened`` sent and for the region's bills of the year; the older unconfirmed offers
    of what it screened superseded, the screening requests it read consumed. Or the run
    stored before under the same request id (FAILED_PRECONDITION when asked otherwise).

    Runs of one region and year take turns (PostgreSQL: an advisory lock to the end of the
    transaction; SQLite's write lock): each supersedes the open offers the one before left,
    so a visit has one open offer at a time."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 18))"),
            {"key": f"screening {request.region} {request.year}"},
        )
    before = connection.execute(
        select(screening_runs).where(screening_runs.c.request_id == request.request_id)
    ).one_or_none()
    if before is not None:
        return replay_run(before, request)
    all_findings = [*findings, *bill_findings(connection, packs, request.region, request.year)]
    paid = _paid(connection, [(f.source, f.reference) for f in all_findings])
    rows = []
    for finding in all_findings:
        paid_before = paid.get((finding.source, finding.reference), 0)
        offered = finding.owed_fen - paid_before
        if offered <= 0:
            continue
        rows.append(_offer_row(finding, request.year, paid_before, offered))
    run_id = connection.execute(
        screening_runs.insert()
        .values(
            request_id=request.request_id,
            region=request.region,
            year=request.year,
            case_worker=request.case_worker,
            created_at=now,
            offer_count=len(rows),
            offered_fen=sum(row["offered_fen"] for row in rows),
        )
        .returning(screening_runs.c.run_id)
    ).scalar_one()
    offers = screening_offers.c
    open_offers = and_(offers.state == OFFERED, offers.year == request.year)
    # What the run screened: the region's bills of the year, the persons' settled visits.
    connection.execute(
        update(screening_offers)
        .where(open_offers, offers.source == BILL, offers.region == request.region)
        .values(state=SUPERSEDED)
    )
    for start in range(0, len(screened.person_ids), MAX_SCREENED):
        chunk = screened.person_ids[start : start + MAX_SCREENED]
        connection.execute(
            update(screening_offers)
            .where(open_offers, offers.source == SETTLEMENT, offers.person_id.in_(chunk))
            .values(state=SUPERSEDED)
        )
        connection.execute(
            delete(screening_requests).where(
                screening_requests.c.year == request.year,
                screening_requests.c.request_id <= screened.last_request,
                screening_requests.c.person_id.in_(chunk),
            )
        )
    if rows:
        connection.execute(screening_offers.insert(), [{**row, "run_id": run_id} for row in rows])
    return get_run(connection=connection, run_id=run_id)


def find_run_by_request(*, connection: sqlalchemy.Connection, request: RunRequest) -> Run:
    """After a create broke the unique ``request_id`` (another process made it at the same
    moment): that run, as :func:`create_run` answers a retry."""
    row = connection.execute(
        select(screening_runs).where(screening_runs.c.request_id == request.request_id)
    ).one()
    return replay_run(row, request)


def replay_run(row: sqlalchemy.Row[Any], request: RunRequest) -> Run:
    if (row.region, row.year, row.case_worker) != (
        request.region,
        request.year,
        request.case_worker,
    ):
        raise FailedPrecondition(
            f"this idempotency key made screening run {row.run_id} with other parameters",
            reason="IDEMPOTENCY_KEY_REUSED",
            field="request_id",
        )
    return _run(row)


def _paid(
    connection: sqlalchemy.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """What confirmations paid for each (source, reference) of ``keys``."""
    found: dict[tuple[str, str], int] = {}
    paid = screening_paid.c
    for source in SOURCES:
        references = sorted({reference for kind, reference in keys if kind == source})
        for start in range(0, len(references), MAX_SCREENED):
            chunk = references[start : start + MAX_SCREENED]
            for reference, fen in connection.execute(
                select(paid.reference, paid.paid_fen).where(
                    paid.source == source, paid.reference.in_(chunk)
                )
            ):
                found[(source, reference)] = int(fen)
    return found


def _offer_row(finding: Finding, year: int, paid_before: int, offered: int) -> dict[str, Any]:
    details = dict(finding.details)
    details["owed_fen"] = finding.owed_fen
    details["paid_before_fen"] = paid_before
    details["offered_fen"] = offered
    if paid_before:
        details["explanation"] = (
            f"{details.get('explanation', '')}; confirmed offers paid "
            f"{fen_to_yuan(paid_before)} before: offered {fen_to_yuan(offered)}"
        )
    return {
        "source": finding.source,
        "reference": finding.reference,
        "person_id": finding.person_id,
        "region": finding.region,
        "year": year,
        "settled_on": finding.settled_on,
        "visit_type": finding.visit_type,
        "statuses": " ".join(sorted(finding.statuses)),
        "policy": finding.policy,
        "self_pay_fen": finding.self_pay_fen,
        "offered_fen": offered,
        "details": details,
        "state": OFFERED,
        "paid_fen": 0,
    }


# --- bills paid outside the window ---


def bill_findings(
    connection: sqlalchemy.Connection, packs: PackRegistry, region: str, year: int
) -> list[Finding]:
    """The region's bills of ``year`` whose person held an assistance status on the bill's
    day, each with what its assistance layers owe (zero ones too: a run supersedes the open
    offer of a bill now owed nothing)."""
    bills = assistance_bills.c
    in_year = bills.settled_on.between(date(year, 1, 1), date(year, 12, 31))
    persons = (
        select(bills.person_id).where(bills.region == region, in_year).distinct().scalar_subquery()
    )
    # Every bill of the year of those persons, wherever: their yearly accumulators.
    rows = connection.execute(
        select(assistance_bills)
        .where(in_year, bills.person_id.in_(persons))
        .order_by(bills.person_id, bills.settled_on, bills.bill_id)
    ).all()
    periods = people.status_periods(connection, {row.person_id for row in rows})
    findings: list[Finding] = []
    ledger: PersonLedger | None = None
    person_id = ""
    for row in rows:
        if row.person_id != person_id:
            person_id, ledger = row.person_id, PersonLedger()
        assert ledger is not None
        found = _assess_bill(packs, row, periods.get(row.person_id, ()), ledger)
        if found is not None and row.region == region:
            findings.append(found)
    return findings


def _assess_bill(
    packs: PackRegistry,
    row: sqlalchemy.Row[Any],
    periods: Sequence[EffectivePeriod],
    ledger: PersonLedger,
) -> Finding | None:
    """The bill settled again on the person's ledger of the year; a finding when the person
    held an assistance status of the pack on its day."""
    day: date = row.settled_on
    pack = packs.in_force(row.region, day)
    if pack is None:
        return None
    held = people.statuses_on(periods, day)
    person = Person(
        resident_id=parse_resident_id(row.person_id),
        scheme=ASSUMED_SCHEME,
        statuses=tuple(
            StatusPeriod(period.status, period.valid_from, period.valid_to) for period in periods
        ),
    )
    visit = parse_visit(row.visit)
    settled = ledger.settle(pack, person, visit, explain=True)
    qualifying = held & assistance_statuses(pack)
    if not qualifying:
        return None
    layers = assistance_layers(pack)
    computed = sum(settled.paid[index] for index in layers)
    funds = {settled.funds[index] for index in layers}
    paid_there = sum(int(fen) for fund, fen in row.insurance_payments if fund in funds)
    owed = max(0, min(computed - paid_there, row.self_pay_fen))
    return Finding(
        source=BILL,
        reference=str(row.bill_id),
        person_id=row.person_id,
        region=row.region,
        settled_on=day,
        visit_type=row.visit_type,
        statuses=tuple(sorted(held)),
        policy=pack.id,
        self_pay_fen=row.self_pay_fen,
        owed_fen=owed,
        details=_bill_details(pack, row, settled, layers, held, paid_there, owed),
    )


def _bill_details(
    pack: Pack,
    row: sqlalchemy.Row[Any],
    settled: VisitSettlement,
    layers: tuple[int, ...],
    held: frozenset[str],
    paid_there: int,
    owed: int,
) -> dict[str, Any]:
    """The rule and its figures: every layer as the pack pays it, the assistance layers'
    rules in words, what was paid where the bill was paid, what is owed."""
    explanations = settled.explanations or ()
    words, idle = [], []
    for index in layers:
        trace = explanations[index] if index < len(explanations) else {}
        if trace.get("applies"):
            words.append(_layer_words(settled.layer_ids[index], settled.funds[index], trace))
        else:
            idle.append(settled.layer_ids[index])
    if idle:
        words.append(f"{', '.join(idle)} not for this person or visit")
    computed = sum(settled.paid[index] for index in layers)
    where = "out of area" if row.out_of_area else "in the region"
    referred = bool(row.visit.get("referred", False))
    if row.out_of_area:
        where += ", referred" if referred else ", not referred"
    explanation = (
        f"bill {row.bill_id} at {row.hospital_name} ({where}) under {pack.id}, statuses "
        f"{', '.join(sorted(held))} held on {row.settled_on}: {'; '.join(words)}; the "
        f"assistance layers owe {fen_to_yuan(computed)}, their funds paid "
        f"{fen_to_yuan(paid_there)} there, the person paid {fen_to_yuan(row.self_pay_fen)}: "
        f"owed {fen_to_yuan(owed)}"
    )
    return {
        "rule": "bill paid outside the window, settled again under the pack in force",
        "bill_id": row.bill_id,
        "hospital_name": row.hospital_name,
        "out_of_area": bool(row.out_of_area),
        "referred": referred,
        "scheme_assumed": ASSUMED_SCHEME,
        "statuses_held": sorted(held),
        "layers": [
            [layer, fund, fen]
            for layer, fund, fen in zip(settled.layer_ids, settled.funds, settled.paid, strict=True)
        ],
        "assistance_layers": [settled.layer_ids[index] for index in layers],
        "assistance_computed_fen": computed,
        "paid_there": [[fund, int(fen)] for fund, fen in row.insurance_payments],
        "paid_there_by_assistance_fen": paid_there,
        "self_pay_fen": row.self_pay_fen,
        "accumulators": "the person's bills of the year replayed in date order",
        "explanation": explanation,
    }


def _layer_words(layer: str, fund: str, trace: Mapping[str, Any]) -> str:
    """One assistance layer's payment in words: ratio (and its out-of-area adjustment),
    base, deductible, caps."""
    bands = trace.get("bands") or []
    ratio = ", ".join(str(band.get("ratio")) for band in bands) or "?"
    text = f"{layer} ({fund}) {ratio}"
    points = trace.get("ratio_adjustment_points")
    if points:
        text += f" ({points:+d} points: the pack's rule for this visit)"
    text += f" of {fen_to_yuan(int(trace.get('base_fen', 0)))}"
    deductible = int(trace.get("deductible_applied_fen", 0))
    if deductible:
        text += f" above a deductible of {fen_to_yuan(deductible)}"
    clipped = int(trace.get("clipped_by_cap_fen", 0))
    if clipped:
        text += f", {fen_to_yuan(clipped)} clipped by the cap"
    return f"{text} = {fen_to_yuan(int(trace.get('paid_fen', 0)))}"


# --- settled visits (the settlement service's findings) ---


def settlement_finding(
    *,
    settlement_id: str,
    person_id: str,
    region: str,
    visit_type: str,
    settled_on: date,
    policy: str,
    statuses_applied: Sequence[str],
    statuses_now: Sequence[str],
    settled_layers: Sequence[tuple[str, str, int]],
    recomputed_layers: Sequence[tuple[str, str, int]],
    settled_self_pay_fen: int,
    recomputed_self_pay_fen: int,
    difference_fen: int,
) -> Finding:
    """A finding of ``ScreenSettlements``: the layers as settled and as recomputed under the
    statuses held now, the difference owed."""
    changed = [
        f"{now[0]} {fen_to_yuan(then[2])} -> {fen_to_yuan(now[2])}"
        for then, now in zip(settled_layers, recomputed_layers, strict=False)
        if then[2] != now[2]
    ]
    explanation = (
        f"settlement {settlement_id} of {settled_on} under {policy} applied "
        f"{', '.join(statuses_applied) or 'no status'}; with "
        f"{', '.join(statuses_now) or 'no status'} held that day now, recomputed on the "
        f"year's accumulators: {'; '.join(changed) or 'no layer changed'}; the patient "
        f"paid {fen_to_yuan(settled_self_pay_fen)} and would have paid "
        f"{fen_to_yuan(recomputed_self_pay_fen)}: owed {fen_to_yuan(difference_fen)}"
    )
    return Finding(
        source=SETTLEMENT,
        reference=settlement_id,
        person_id=person_id,
        region=region,
        settled_on=settled_on,
        visit_type=visit_type,
        statuses=tuple(statuses_now),
        policy=policy,
        self_pay_fen=settled_self_pay_fen,
        owed_fen=difference_fen,
        details={
            "rule": "settled visit recomputed under a status certified later",
            "settlement_id": settlement_id,
            "statuses_applied": list(statuses_applied),
            "statuses_now": list(statuses_now),
            "settled_layers": [list(layer) for layer in settled_layers],
            "recomputed_layers": [list(layer) for layer in recomputed_layers],
            "settled_self_pay_fen": settled_self_pay_fen,
            "recomputed_self_pay_fen": recomputed_self_pay_fen,
            "accumulators": "the settlement service's: the year replayed in settlement order",
            "explanation": explanation,
        },
    )


# --- confirming ---


def confirm_offer(
    *,
    connection: sqlalchemy.Connection,
    offer_id: int,
    case_worker: str,
    note: str,
    now: datetime,
) -> Offer:
    """Confirm the offer and pay it, in the caller's transaction: the least of the offer and
    what is owed less what confirmations paid for its visit or bill, against the visit's
    row of ``screening_paid`` locked here. FAILED_PRECONDITION, changing nothing, for an
    offer confirmed or superseded already, or whose visit is paid already."""
    row = connection.execute(
        select(screening_offers).where(screening_offers.c.offer_id == offer_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise _no_offer(offer_id)
    if row.state == CONFIRMED:
        raise FailedPrecondition(
            f"offer {offer_id} was confirmed by {row.confirmed_by} on "
            f"{row.confirmed_at.date().isoformat()}; confirming again pays nothing",
            reason="ALREADY_CONFIRMED",
            field="offer_id",
        )
    if row.state == SUPERSEDED:
        newer = connection.execute(
            select(func.max(screening_offers.c.offer_id)).where(
                screening_offers.c.source == row.source,
                screening_offers.c.reference == row.reference,
            )
        ).scalar_one()
        raise FailedPrecondition(
            f"offer {offer_id} was superseded by a later run (the newest offer of its "
            f"{row.source} is {newer}): confirm that one",
            reason="OFFER_SUPERSEDED",
            field="offer_id",
            metadata={"newest_offer_id": str(newer)},
        )
    if row.source == SETTLEMENT:
        events = settlement_events.c
        reversed_ = connection.execute(
            select(events.event_id).where(
                events.settlement_id == row.reference, events.kind == REVERSED
            )
        ).first()
        if reversed_ is not None:
            raise FailedPrecondition(
                f"the visit of offer {offer_id} (settlement {row.reference}) was reversed "
                "after the offer was made: nothing to pay",
                reason="VISIT_REVERSED",
                field="offer_id",
            )
    paid = screening_paid.c
    connection.execute(
        dialect_module(connection)
        .insert(screening_paid)
        .values(
            source=row.source,
            reference=row.reference,
            person_id=row.person_id,
            year=row.year,
            paid_fen=literal(0),
        )
        .on_conflict_do_nothing(index_elements=["source", "reference"])
    )
    paid_before = connection.execute(
        select(paid.paid_fen)
        .where(paid.source == row.source, paid.reference == row.reference)
        .with_for_update()
    ).scalar_one()
    owed = int(row.details.get("owed_fen", row.offered_fen))
    pay = min(row.offered_fen, owed - int(paid_before))
    if pay <= 0:
        raise FailedPrecondition(
            f"the {row.source} of offer {offer_id} is paid already "
            f"({fen_to_yuan(int(paid_before))} yuan by another confirmation)",
            reason="ALREADY_PAID",
            field="offer_id",
        )
    connection.execute(
        update(screening_paid)
        .where(paid.source == row.source, paid.reference == row.reference)
        .values(paid_fen=paid.paid_fen + pay)
    )
    connection.execute(
        update(screening_offers)
        .where(screening_offers.c.offer_id == offer_id)
        .values(
            state=CONFIRMED,
            confirmed_at=now,
            confirmed_by=case_worker,
            confirm_note=note,
            paid_fen=pay,
        )
    )
    return get_offer(connection=connection, offer_id=offer_id)


# --- reading ---


def get_run(*, connection: sqlalchemy.Connection, run_id: int) -> Run:
    row = connection.execute(
        select(screening_runs).where(screening_runs.c.run_id == run_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no screening run {run_id}", reason="RUN_NOT_FOUND", field="run_id")
    return _run(row)


def list_runs(
    *,
    connection: sqlalchemy.Connection,
    region: str | None,
    year: int | None,
    page_size: int,
    page_token: str,
) -> tuple[list[Run], str]:
    """Runs, newest first, of the region and the year if given."""
    rows, token = runs_page(
        connection, screening_runs, region=region, year=year, size=page_size, token=page_token
    )
    return [_run(row) for row in rows], token


def get_offer(*, connection: sqlalchemy.Connection, offer_id: int) -> Offer:
    row = connection.execute(_named().where(screening_offers.c.offer_id == offer_id)).one_or_none()
    if row is None:
        raise _no_offer(offer_id)
    return _offer(row)


def list_offers(
    *,
    connection: sqlalchemy.Connection,
    run_id: int | None,
    person_id: str | None,
    region: str | None,
    year: int | None,
    states: Iterable[str],
    page_size: int,
    page_token: str,
) -> tuple[list[Offer], str]:
    """A run's offers, or a region's of a year, or a person's (of the run, region and
    year given: None, any), in the states asked (all: none asked), in the order they were
    made. A person's are read by ``ix_screening_offers_person``."""
    offers = screening_offers.c
    query = _named()
    if run_id is not None:
        get_run(connection=connection, run_id=run_id)  # NOT_FOUND for a run not there
        query = query.where(offers.run_id == run_id)
    if person_id is not None:
        query = query.where(offers.person_id == person_id)
    if region is not None:
        query = query.where(offers.region == region)
    if year is not None:
        query = query.where(offers.year == year)
    wanted = sorted(set(states))
    if wanted:
        query = query.where(offers.state.in_(wanted))
    rows, token = keyset_page(connection, query, offers.offer_id, page_size, page_token)
    return [_offer(row) for row in rows], token


def _named() -> sqlalchemy.Select[Any]:
    """Offers with the person's name as enrollment last sent it."""
    named = screening_offers.outerjoin(
        assistance_persons, assistance_persons.c.person_id == screening_offers.c.person_id
    )
    return select(screening_offers, assistance_persons.c.name).select_from(named)


def _run(row: sqlalchemy.Row[Any]) -> Run:
    values = row._mapping
    return Run(
        run_id=values["run_id"],
        region=values["region"],
        year=values["year"],
        case_worker=values["case_worker"],
        created_at=values["created_at"],
        offer_count=values["offer_count"],
        offered_fen=values["offered_fen"],
    )


def _offer(row: sqlalchemy.Row[Any]) -> Offer:
    values = row._mapping
    return Offer(
        offer_id=values["offer_id"],
        run_id=values["run_id"],
        source=values["source"],
        reference=values["reference"],
        person_id=values["person_id"],
        name=values["name"] or "",
        region=values["region"],
        year=values["year"],
        settled_on=values["settled_on"],
        visit_type=values["visit_type"],
        statuses=tuple(values["statuses"].split()),
        policy=values["policy"],
        self_pay_fen=values["self_pay_fen"],
        offered_fen=values["offered_fen"],
        details=values["details"],
        state=values["state"],
        confirmed_at=values["confirmed_at"],
        confirmed_by=values["confirmed_by"],
        confirm_note=values["confirm_note"],
        paid_fen=values["paid_fen"],
    )


def _no_offer(offer_id: int) -> NotFound:
    return NotFound(f"no screening offer {offer_id}", reason="OFFER_NOT_FOUND", field="offer_id")

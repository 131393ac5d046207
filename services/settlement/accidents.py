"""Accident cover claims (意外伤害附加保险, docs/domain.md section 6): plain functions on a
database connection, run by the servicer (server.py) in a read or write transaction.

A claim is filed by the bureau's clerk for a person of a region whose pack in force on the
event's day has an ``accident_cover`` section (doudi.core.accidents), checked against
settlement's copy of the person's region and enrolments (``person_coverage``, as the
enrollment service sends it) and the pack's window, judged on the bureau's day it arrives.
It is decided once: approving pays it in the decision's transaction (the pack's fixed sum
for a death, the costs claimed up to the pack's cap for medical costs), and the pack's
insurer repays the bureau each day's paid claims (:func:`clearing`).

Never paid twice: a request id files one claim (a retry answers it), a person, kind and
event day have one claim, a claim leaves ``filed`` once (a conditional update: of two
concurrent decisions exactly one changes the row) and a person's death is paid once (a
partial unique index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy
from sqlalchemy import func, select

from doudi.common import paging
from doudi.common.errors import FailedPrecondition, NotFound, not_enrolled, person_not_found
from doudi.common.protos import to_timestamp
from doudi.core.accidents import ACCIDENT_KIND_NAMES, DEATH, AccidentCover
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask
from doudi.core.packs import PackRegistry, accident_cover
from doudi.core.policy import Pack
from services.settlement.tables import accident_claims, person_coverage

FILED: Final = "filed"
PAID: Final = "paid"
REJECTED: Final = "rejected"
CLAIM_STATES: Final = (FILED, PAID, REJECTED)

_CLAIMS = accident_claims.c


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """A claim as the clerk files it, its fields checked by the caller."""

    request_id: str
    region: str
    person_id: str
    kind: str
    event_date: date
    claimed_fen: int
    """Medical costs: the costs on the receipts; a death: 0."""


@dataclass(frozen=True, slots=True)
class AccidentClaim:
    """A claim as stored."""

    claim_id: int
    request_id: str
    person_id: str
    region: str
    kind: str
    event_date: date
    received_on: date
    filed_at: datetime
    claimed_fen: int
    state: str
    policy: str
    fund: str
    decided_at: datetime | None
    decided_on: date | None
    paid_fen: int
    rejection_reason: str | None


@dataclass(frozen=True, slots=True)
class FundPaid:
    """What one insurer owes the bureau for the claims it paid on a day."""

    fund: str
    claim_count: int
    paid_fen: int


# --- filing ------------------------------------------------------------------------------


def file_claim(
    *,
    connection: sqlalchemy.Connection,
    request: ClaimRequest,
    packs: PackRegistry,
    now: datetime,
    today: date,
) -> tuple[AccidentClaim, bool]:
    """File the claim, or answer the one its request id filed before (True: replayed).

    ``today`` is the bureau's day: the claim is received on it, and the pack's window is
    judged on it. Refused, with nothing written: another request under the same id
    (IDEMPOTENCY_KEY_REUSED), a region without accident cover on the event's day, an event
    outside the window (INVALID_ARGUMENT on event_date, naming the day it closed), a person
    settlement holds no coverage of (NOT_FOUND), a resident of another region
    (INVALID_ARGUMENT on person_id), a person not insured (in a covered scheme) in the
    event's year, a second claim for the person, kind and event day (DUPLICATE_CLAIM) and
    a death claim for a person whose death was paid (DEATH_ALREADY_PAID).
    """
    stored = _by_request(connection, request.request_id)
    if stored is not None:
        return _replayed(stored, request), True
    pack, cover = _cover(packs, request.region, request.event_date)
    closes = cover.window_closes(request.event_date)
    if today > closes:
        raise InvalidInput(
            "event_date",
            f"claims for an accident on {request.event_date.isoformat()} were accepted for "
            f"{cover.claim_within_years} years, until {closes.isoformat()}: the window closed "
            f"on that day (today is {today.isoformat()} on the bureau's calendar)",
        )
    _check_insured(connection, request, cover)
    if request.kind == DEATH:
        paid = _paid_death(connection, request.person_id)
        if paid is not None:
            raise _death_already_paid(request.person_id, paid)
    try:
        with connection.begin_nested():
            claim_id = connection.execute(
                accident_claims.insert()
                .values(
                    request_id=request.request_id,
                    person_id=request.person_id,
                    region=request.region,
                    kind=request.kind,
                    event_date=request.event_date,
                    received_on=today,
                    filed_at=now,
                    claimed_fen=request.claimed_fen,
                    state=FILED,
                    policy=pack.id,
                    fund=cover.fund,
                    paid_fen=0,
                )
                .returning(_CLAIMS.claim_id)
            ).scalar_one()
    except sqlalchemy.exc.IntegrityError:
        # Stored meanwhile by another call: the same request (a concurrent retry), or
        # another claim of the same person, kind and event day.
        stored = _by_request(connection, request.request_id)
        if stored is not None:
            return _replayed(stored, request), True
        raise _duplicate(connection, request) from None
    return get_claim(connection=connection, claim_id=claim_id), False


def _cover(packs: PackRegistry, region: str, event_date: date) -> tuple[Pack, AccidentCover]:
    """The region's pack in force on the event's day and its accident cover, or
    FAILED_PRECONDITION (NO_ACCIDENT_COVER)."""
    pack = packs.in_force(region, event_date)
    cover = None if pack is None else accident_cover(pack)
    if pack is None or cover is None:
        under = "no policy pack" if pack is None else f"its pack {pack.id} has none"
        raise FailedPrecondition(
            f"region {region} has no accident cover on {event_date.isoformat()} ({under})",
            reason="NO_ACCIDENT_COVER",
            field="region",
        )
    return pack, cover


def _check_insured(
    connection: sqlalchemy.Connection, request: ClaimRequest, cover: AccidentCover
) -> None:
    """The person is of the claim's region and insured, in a scheme the cover covers, in
    the event's year, as settlement's copy of their coverage says."""
    coverage = connection.execute(
        select(person_coverage.c.coverage).where(person_coverage.c.person_id == request.person_id)
    ).scalar_one_or_none()
    if coverage is None:
        raise person_not_found(request.person_id, "person_id")
    if coverage["region"] != request.region:
        raise InvalidInput(
            "person_id",
            f"person {mask(request.person_id)} is a resident of region {coverage['region']}, "
            f"not of {request.region}: file the claim in the person's own region",
        )
    year = request.event_date.year
    enrolment = coverage["years"].get(str(year))
    if enrolment is None:
        raise not_enrolled(request.person_id, year)
    if enrolment[0] not in cover.schemes:
        raise FailedPrecondition(
            f"person {mask(request.person_id)} was insured in the {enrolment[0]} scheme in "
            f"{year}, which the region's accident cover does not cover",
            reason="NOT_COVERED",
            field="person_id",
        )


def _replayed(stored: AccidentClaim, request: ClaimRequest) -> AccidentClaim:
    """The claim filed before under the request id, if the request is the same."""
    asked = (request.person_id, request.region, request.kind)
    if (stored.person_id, stored.region, stored.kind) != asked or (
        stored.event_date != request.event_date or stored.claimed_fen != request.claimed_fen
    ):
        raise FailedPrecondition(
            f"request id {request.request_id!r} filed claim {stored.claim_id}, another claim",
            reason="IDEMPOTENCY_KEY_REUSED",
            field="request_id",
            metadata={"claim_id": str(stored.claim_id)},
        )
    return stored


def _duplicate(connection: sqlalchemy.Connection, request: ClaimRequest) -> FailedPrecondition:
    existing = connection.execute(
        select(_CLAIMS.claim_id, _CLAIMS.state).where(
            _CLAIMS.person_id == request.person_id,
            _CLAIMS.kind == request.kind,
            _CLAIMS.event_date == request.event_date,
        )
    ).one()
    return FailedPrecondition(
        f"person {mask(request.person_id)} already has claim {existing.claim_id} "
        f"({existing.state}) for {ACCIDENT_KIND_NAMES[request.kind]} on "
        f"{request.event_date.isoformat()}: one claim per person, kind and accident",
        reason="DUPLICATE_CLAIM",
        field="event_date",
        metadata={"claim_id": str(existing.claim_id), "state": existing.state},
    )


def _paid_death(connection: sqlalchemy.Connection, person_id: str) -> int | None:
    """The claim that paid the person's death, if one did."""
    found: int | None = connection.execute(
        select(_CLAIMS.claim_id).where(
            _CLAIMS.person_id == person_id, _CLAIMS.kind == DEATH, _CLAIMS.state == PAID
        )
    ).scalar_one_or_none()
    return found


def _death_already_paid(person_id: str, claim_id: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"the death of person {mask(person_id)} was paid by claim {claim_id}: a death is paid once",
        reason="DEATH_ALREADY_PAID",
        field="person_id",
        metadata={"claim_id": str(claim_id)},
    )


# --- deciding ----------------------------------------------------------------------------


def decide_claim(
    *,
    connection: sqlalchemy.Connection,
    claim_id: int,
    approve: bool,
    reason: str,
    packs: PackRegistry,
    now: datetime,
    today: date,
) -> AccidentClaim:
    """Decide a filed claim, once: approving pays it now (state paid, on the bureau's day
    ``today``, under the pack in force on the event's day); rejecting keeps ``reason``.
    A decided claim is FAILED_PRECONDITION (ALREADY_DECIDED); so is the second of two
    concurrent decisions, which changes nothing (the update is conditional on ``filed``).
    """
    stored = get_claim(connection=connection, claim_id=claim_id)
    if stored.state != FILED:
        raise _already_decided(stored)
    values: dict[str, Any] = {"decided_at": now, "decided_on": today}
    if approve:
        pack, cover = _cover(packs, stored.region, stored.event_date)
        values.update(
            state=PAID,
            paid_fen=cover.payable(stored.kind, stored.claimed_fen),
            policy=pack.id,
            fund=cover.fund,
        )
    else:
        values.update(state=REJECTED, rejection_reason=reason)
    try:
        with connection.begin_nested():
            changed = connection.execute(
                accident_claims.update()
                .where(_CLAIMS.claim_id == claim_id, _CLAIMS.state == FILED)
                .values(values)
            ).rowcount
    except sqlalchemy.exc.IntegrityError:
        # The person's death was paid meanwhile, by another claim.
        paid = _paid_death(connection, stored.person_id)
        if paid is None:
            raise
        raise _death_already_paid(stored.person_id, paid) from None
    decided = get_claim(connection=connection, claim_id=claim_id)
    if not changed:  # another decision came first
        raise _already_decided(decided)
    return decided


def _already_decided(claim: AccidentClaim) -> FailedPrecondition:
    decided_at = "" if claim.decided_at is None else to_timestamp(claim.decided_at).ToJsonString()
    return FailedPrecondition(
        f"claim {claim.claim_id} was already decided ({claim.state}) at {decided_at}: a claim "
        "is decided once",
        reason="ALREADY_DECIDED",
        field="claim_id",
        metadata={"claim_id": str(claim.claim_id), "state": claim.state, "decide_time": decided_at},
    )


# --- reading -----------------------------------------------------------------------------


def get_claim(*, connection: sqlalchemy.Connection, claim_id: int) -> AccidentClaim:
    row = connection.execute(
        select(accident_claims).where(_CLAIMS.claim_id == claim_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no accident claim {claim_id}", field="claim_id")
    return _claim(row)


def list_claims(
    *,
    connection: sqlalchemy.Connection,
    region: str,
    state: str | None,
    size: int,
    token: str,
) -> tuple[list[AccidentClaim], str]:
    """A region's claims (in ``state``, if given) in the order they were filed, a page at a
    time, and the next page's token ("" at the end)."""
    query = select(accident_claims).where(_CLAIMS.region == region)
    if state is not None:
        query = query.where(_CLAIMS.state == state)
    rows, next_token = paging.keyset_page(connection, query, _CLAIMS.claim_id, size, token)
    return [_claim(row) for row in rows], next_token


def clearing(*, connection: sqlalchemy.Connection, region: str, day: date) -> list[FundPaid]:
    """Per insurer, the region's claims paid on the bureau's ``day`` (their count and what
    they paid), which the insurer repays the bureau. A claim pays at most a pack's sum
    (at most ``MAX_ITEM_FEN``, 10^10 fen), so a day's total fits 64 bits for 900 million
    claims."""
    rows = connection.execute(
        select(_CLAIMS.fund, func.count(), func.sum(_CLAIMS.paid_fen))
        .where(_CLAIMS.state == PAID, _CLAIMS.decided_on == day, _CLAIMS.region == region)
        .group_by(_CLAIMS.fund)
        .order_by(_CLAIMS.fund)
    ).all()
    return [FundPaid(fund, int(count), int(paid)) for fund, count, paid in rows]


def _by_request(connection: sqlalchemy.Connection, request_id: str) -> AccidentClaim | None:
    row = connection.execute(
        select(accident_claims).where(_CLAIMS.request_id == request_id)
    ).one_or_none()
    return None if row is None else _claim(row)


def _claim(row: Any) -> AccidentClaim:
    return AccidentClaim(
        claim_id=row.claim_id,
        request_id=row.request_id,
        person_id=row.person_id,
        region=row.region,
        kind=row.kind,
        event_date=row.event_date,
        received_on=row.received_on,
        filed_at=row.filed_at,
        claimed_fen=row.claimed_fen,
        state=row.state,
        policy=row.policy,
        fund=row.fund,
        decided_at=row.decided_at,
        decided_on=row.decided_on,
        paid_fen=row.paid_fen,
        rejection_reason=row.rejection_reason,
    )

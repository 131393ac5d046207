"""Secondary assistance (二次救助, docs/domain.md section 7): runs a case worker creates for a
region and a year, approves once, and the ledger of what was paid per person and year.

Who and how much, from the settlement events this service keeps:

- a visit is a *recipient visit* when its settlement applied a status in the secondary
  statuses of the pack that settled it (the event's ``policy``); a person is a recipient
  of a region for a year when a recipient visit of theirs in that year was settled in
  the region;
- their eligible burden is the eligible burden (self-pay less out-of-scope costs, never
  below zero) of all their recipient visits of the year settled on or before the run's
  ``through`` day, in whichever region, net of reversals (a reversal carries its visit's
  date and figures);
- what they are owed to date is the pack's ``secondary_owed`` of that burden, under the
  rule of the pack that settled their latest recipient visit (a year whose visits span
  two packs, a new pack or a move, is judged by the newest: the reason names both);
- what to pay now is that less what approved runs paid them for the year
  (``secondary_paid``), never below zero; a person owed less than was paid (a reversal
  lowered the burden) is flagged, and nothing is taken back.

Approving pays each entry the least of its amount and what it owes less what the ledger
holds, with the ledger's rows locked in the approving transaction (SQLite's write lock;
PostgreSQL's row locks, taken in identity-number order): two runs created before either
was approved pay the same money once, and a run is approved once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import sqlalchemy
from sqlalchemy import case, func, literal, select, update

from doudi.common.db import analyze, bulk_insert
from doudi.common.errors import FailedPrecondition, NotFound
from doudi.common.outbox import dialect_module
from doudi.common.paging import keyset_page, runs_page
from doudi.core.money import fen_to_yuan, format_percent
from doudi.core.monitoring import MonitoringRules
from doudi.core.packs import PackRegistry, monitoring_rules
from services.assistance.tables import (
    assistance_persons,
    secondary_entries,
    secondary_paid,
    secondary_runs,
    settlement_events,
)

SETTLED: Final = "settled"
"""A settlement event's kind (``services.assistance.service.SETTLED``)."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A case worker's run, checked."""

    request_id: str
    region: str
    year: int
    through: date
    case_worker: str


@dataclass(frozen=True, slots=True)
class Run:
    run_id: int
    region: str
    year: int
    through: date
    case_worker: str
    created_at: datetime
    approver: str | None
    approved_at: datetime | None
    entry_count: int
    payable_count: int
    to_pay_fen: int
    flagged_count: int
    paid_count: int
    paid_fen: int
    unjudged_policies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    run_id: int
    person_id: str
    name: str
    policy: str
    eligible_burden_fen: int
    threshold_fen: int
    share_basis_points: int
    yearly_cap_fen: int
    owed_fen: int
    paid_before_fen: int
    to_pay_fen: int
    flagged: bool
    reason: str
    paid_fen: int


@dataclass(slots=True)
class _Person:
    """What a run learns of one person: their recipient visits' burden and packs."""

    in_region: bool = False
    eligible_fen: int = 0
    latest: tuple[bool, date, str] | None = None
    """(still has a visit, its day, the pack) of the newest recipient visits' group."""
    policies: set[str] = field(default_factory=set)


# --- creating a run ---


def create_run(
    *, connection: sqlalchemy.Connection, packs: PackRegistry, request: RunRequest, now: datetime
) -> Run:
    """The run ``request`` asks for: stored with an entry per recipient of the region, or the
    run stored before under the same ``request_id`` (FAILED_PRECONDITION when that one was
    asked with other parameters)."""
    before = connection.execute(
        select(secondary_runs).where(secondary_runs.c.request_id == request.request_id)
    ).one_or_none()
    if before is not None:
        return replay_run(before, request)
    persons, unjudged = _recipients(connection, packs, request)
    paid = dict(
        connection.execute(
            select(secondary_paid.c.person_id, secondary_paid.c.paid_fen).where(
                secondary_paid.c.year == request.year
            )
        ).all()
    )
    rules_of = _Rules(packs)
    rows: list[tuple[Any, ...]] = []
    for person_id in sorted(persons):
        person = persons[person_id]
        assert person.latest is not None
        policy = person.latest[2]
        rules = rules_of(policy)
        assert rules is not None
        rows.append(_entry_row(person_id, person, policy, rules, paid.get(person_id, 0)))
    run_id = connection.execute(
        secondary_runs.insert()
        .values(
            request_id=request.request_id,
            region=request.region,
            year=request.year,
            through=request.through,
            case_worker=request.case_worker,
            created_at=now,
            entry_count=len(rows),
            payable_count=sum(1 for row in rows if row[_TO_PAY] > 0),
            to_pay_fen=sum(row[_TO_PAY] for row in rows),
            flagged_count=sum(1 for row in rows if row[_FLAGGED]),
            paid_count=0,
            paid_fen=0,
            unjudged_policies=" ".join(sorted(unjudged)),
        )
        .returning(secondary_runs.c.run_id)
    ).scalar_one()
    bulk_insert(connection, secondary_entries, _ENTRY_COLUMNS, ((run_id, *row) for row in rows))
    analyze(connection, secondary_entries)  # the approval plans its joins on these rows
    return get_run(connection=connection, run_id=run_id)


def find_run_by_request(*, connection: sqlalchemy.Connection, request: RunRequest) -> Run:
    """After a create broke the unique ``request_id`` (another process created it at the same
    moment): that run, as :func:`create_run` would answer a retry."""
    row = connection.execute(
        select(secondary_runs).where(secondary_runs.c.request_id == request.request_id)
    ).one()
    return replay_run(row, request)


def replay_run(row: sqlalchemy.Row[Any], request: RunRequest) -> Run:
    asked = (request.region, request.year, request.through, request.case_worker)
    if (row.region, row.year, row.through, row.case_worker) != asked:
        raise FailedPrecondition(
            f"this idempotency key made run {row.run_id} with other parameters",
            reason="IDEMPOTENCY_KEY_REUSED",
            field="request_id",
        )
    return _run(row)


def _recipients(
    connection: sqlalchemy.Connection, packs: PackRegistry, request: RunRequest
) -> tuple[dict[str, _Person], set[str]]:
    """The region's recipients for the run, and the packs whose visits could not be judged
    (unknown here, or without a monitoring section)."""
    events = settlement_events.c
    eligible = case(
        (
            events.self_pay_fen > events.out_of_scope_fen,
            events.self_pay_fen - events.out_of_scope_fen,
        ),
        else_=literal(0),
    )
    settled = events.kind == SETTLED
    here = case((events.region == request.region, 1), else_=0)
    # One row per person and group of like visits: summing in the database keeps a year of a
    # million events from crossing into Python one by one. Every person of the year with a
    # status is summed (their visits elsewhere count too); ``here`` tells the region's: a
    # scan of the year's events and a sort.
    groups = connection.execute(
        select(
            events.person_id,
            events.policy,
            events.statuses,
            func.max(here),
            func.sum(case((settled, eligible), else_=-eligible)),
            func.sum(case((settled, 1), else_=-1)),
            func.max(events.settled_on),
        )
        .where(
            events.settled_on.between(date(request.year, 1, 1), request.through),
            events.statuses != "",
        )
        .group_by(events.policy, events.statuses, events.person_id)
    )
    rules_of = _Rules(packs)
    recipient_statuses: dict[tuple[str, str], bool] = {}
    unjudged: set[str] = set()
    persons: dict[str, _Person] = {}
    for person_id, policy, statuses, in_region, fen, visits, latest in groups:
        key = (policy, statuses)
        if key not in recipient_statuses:
            rules = rules_of(policy)
            if rules is None:
                unjudged.add(policy)
            recipient_statuses[key] = rules is not None and bool(
                rules.secondary_statuses.intersection(statuses.split())
            )
        if not recipient_statuses[key]:
            continue
        person = persons.setdefault(person_id, _Person())
        person.in_region = person.in_region or bool(in_region)
        person.eligible_fen += int(fen)
        person.policies.add(policy)
        group = (int(visits) > 0, latest, policy)
        if person.latest is None or group > person.latest:
            person.latest = group
    return {key: person for key, person in persons.items() if person.in_region}, unjudged


class _Rules:
    """Each pack's monitoring rules, compiled once per run; None for a pack unknown here or
    without a ``monitoring`` section."""

    def __init__(self, packs: PackRegistry) -> None:
        self._packs = packs
        self._rules: dict[str, MonitoringRules | None] = {}

    def __call__(self, pack_id: str) -> MonitoringRules | None:
        if pack_id not in self._rules:
            pack = self._packs.get(pack_id)
            self._rules[pack_id] = None if pack is None else monitoring_rules(pack)
        return self._rules[pack_id]


_ENTRY_COLUMNS: Final = (
    "run_id",
    "person_id",
    "policy",
    "eligible_burden_fen",
    "threshold_fen",
    "share_basis_points",
    "yearly_cap_fen",
    "owed_fen",
    "paid_before_fen",
    "to_pay_fen",
    "flagged",
    "reason",
    "paid_fen",
)
_TO_PAY: Final = _ENTRY_COLUMNS.index("to_pay_fen") - 1
_FLAGGED: Final = _ENTRY_COLUMNS.index("flagged") - 1


def _entry_row(
    person_id: str, person: _Person, policy: str, rules: MonitoringRules, paid_before: int
) -> tuple[Any, ...]:
    """An entry's values in ``_ENTRY_COLUMNS`` order, without the run id."""
    # A reversal delivered before its settlement could make a sum negative for a moment.
    burden = max(0, person.eligible_fen)
    owed = rules.secondary_owed(burden)
    to_pay = max(0, owed - paid_before)
    flagged = owed < paid_before
    reason = _reason(rules, burden, owed, paid_before, to_pay, policy, person.policies)
    return (
        person_id,
        policy,
        burden,
        rules.secondary_threshold_fen,
        rules.secondary_share,
        rules.secondary_yearly_cap_fen,
        owed,
        paid_before,
        to_pay,
        flagged,
        reason,
        0,
    )


def _reason(
    rules: MonitoringRules,
    burden: int,
    owed: int,
    paid_before: int,
    to_pay: int,
    policy: str,
    policies: Iterable[str],
) -> str:
    """Why the entry says what it says, in figures (yuan)."""
    threshold = rules.secondary_threshold_fen
    if owed == 0:
        text = (
            f"eligible burden {fen_to_yuan(burden)} yuan, not above the threshold "
            f"{fen_to_yuan(threshold)}: nothing owed"
        )
    else:
        share = format_percent(rules.secondary_share)
        text = (
            f"eligible burden {fen_to_yuan(burden)} yuan above the threshold "
            f"{fen_to_yuan(threshold)}: {share} of {fen_to_yuan(burden - threshold)}"
        )
        if owed == rules.secondary_yearly_cap_fen:
            text += f", capped at the yearly {fen_to_yuan(owed)}"
        else:
            text += f" = {fen_to_yuan(owed)}"
    if paid_before:
        text += f"; paid before {fen_to_yuan(paid_before)}"
    if owed < paid_before:
        text += (
            f"; owed now {fen_to_yuan(owed)} is below what was paid (a reversal lowered the "
            f"burden): {fen_to_yuan(paid_before - owed)} overpaid, not taken back"
        )
    text += f"; to pay {fen_to_yuan(to_pay)}"
    others = sorted(set(policies) - {policy})
    if others:
        text += (
            f" (visits under {', '.join([*others, policy])}: the rule of {policy}, "
            "the latest visit's)"
        )
    else:
        text += f" ({policy})"
    return text


# --- approving ---


def approve_run(
    *, connection: sqlalchemy.Connection, run_id: int, approver: str, now: datetime
) -> Run:
    """Approve the run and pay its entries against the ledger, in the caller's transaction;
    FAILED_PRECONDITION (ALREADY_APPROVED) the second time."""
    row = connection.execute(
        select(secondary_runs).where(secondary_runs.c.run_id == run_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise _no_run(run_id)
    if row.approver is not None:
        raise FailedPrecondition(
            f"run {run_id} was approved by {row.approver} on {_day(row.approved_at)}; "
            "approving again pays nothing",
            reason="ALREADY_APPROVED",
            field="run_id",
        )
    entries, ledger = secondary_entries.c, secondary_paid.c
    _lock_ledger(connection, run_id, row.year)
    # Set-based, in the database (UPDATE ... FROM): a run of tens of thousands of persons
    # pays in two statements, not one per person. Each entry: the least of its amount and
    # what it owes less what the (locked) ledger holds, never below zero; then the ledger
    # takes it.
    owed_now = entries.owed_fen - ledger.paid_fen
    connection.execute(
        update(secondary_entries)
        .where(
            entries.run_id == run_id,
            entries.to_pay_fen > 0,
            ledger.person_id == entries.person_id,
            ledger.year == row.year,
        )
        .values(
            paid_fen=case(
                (owed_now <= 0, 0),
                (entries.to_pay_fen < owed_now, entries.to_pay_fen),
                else_=owed_now,
            )
        )
    )
    connection.execute(
        update(secondary_paid)
        .where(
            entries.run_id == run_id,
            entries.paid_fen > 0,
            ledger.person_id == entries.person_id,
            ledger.year == row.year,
        )
        .values(paid_fen=ledger.paid_fen + entries.paid_fen)
    )
    paid_count, paid_fen = connection.execute(
        select(func.count(), func.coalesce(func.sum(entries.paid_fen), 0)).where(
            entries.run_id == run_id, entries.paid_fen > 0
        )
    ).one()
    connection.execute(
        update(secondary_runs)
        .where(secondary_runs.c.run_id == run_id)
        .values(approver=approver, approved_at=now, paid_count=paid_count, paid_fen=int(paid_fen))
    )
    return get_run(connection=connection, run_id=run_id)


def _lock_ledger(connection: sqlalchemy.Connection, run_id: int, year: int) -> None:
    """Make the ledger's row of the year of each person the run has something to pay if
    missing, and lock them all until the transaction ends, in identity-number order
    (PostgreSQL; SQLite's write lock holds it all): an approval of another run of the same
    persons waits here."""
    entries = secondary_entries.c
    payable = (entries.run_id == run_id, entries.to_pay_fen > 0)
    insert = dialect_module(connection).insert(secondary_paid)
    connection.execute(
        insert.from_select(
            ["person_id", "year", "paid_fen"],
            select(entries.person_id, literal(year), literal(0))
            .where(*payable)
            .order_by(entries.person_id),
        ).on_conflict_do_nothing(index_elements=["person_id", "year"])
    )
    connection.execute(
        select(secondary_paid.c.person_id)
        .where(
            secondary_paid.c.year == year,
            secondary_paid.c.person_id.in_(select(entries.person_id).where(*payable)),
        )
        .order_by(secondary_paid.c.person_id)
        .with_for_update()
    ).all()


# --- reading ---


def get_run(*, connection: sqlalchemy.Connection, run_id: int) -> Run:
    row = connection.execute(
        select(secondary_runs).where(secondary_runs.c.run_id == run_id)
    ).one_or_none()
    if row is None:
        raise _no_run(run_id)
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
        connection, secondary_runs, region=region, year=year, size=page_size, token=page_token
    )
    return [_run(row) for row in rows], token


def list_entries(
    *,
    connection: sqlalchemy.Connection,
    run_id: int | None,
    person_id: str | None,
    paid_only: bool,
    page_size: int,
    page_token: str,
) -> tuple[list[Entry], str]:
    """A run's entries in identity-number order, or a person's (``run_id`` None) in run
    order, oldest first (only those the approval paid, if asked)."""
    entries = secondary_entries.c
    conditions = []
    if run_id is not None:
        get_run(connection=connection, run_id=run_id)  # NOT_FOUND for a run that is not there
        conditions.append(entries.run_id == run_id)
    if person_id is not None:
        # Every run's entries of the person: ix_secondary_entries_person.
        conditions.append(entries.person_id == person_id)
    if paid_only:
        conditions.append(entries.paid_fen > 0)
    # The name as enrollment last sent it ("" for a person it has not sent).
    named = secondary_entries.outerjoin(
        assistance_persons, assistance_persons.c.person_id == entries.person_id
    )
    rows, token = keyset_page(
        connection,
        select(secondary_entries, assistance_persons.c.name).select_from(named).where(*conditions),
        entries.person_id if run_id is not None else entries.run_id,
        page_size,
        page_token,
    )
    return [_entry(row, row.name or "") for row in rows], token


def _run(row: sqlalchemy.Row[Any]) -> Run:
    values = row._mapping
    return Run(
        run_id=values["run_id"],
        region=values["region"],
        year=values["year"],
        through=values["through"],
        case_worker=values["case_worker"],
        created_at=values["created_at"],
        approver=values["approver"],
        approved_at=values["approved_at"],
        entry_count=values["entry_count"],
        payable_count=values["payable_count"],
        to_pay_fen=values["to_pay_fen"],
        flagged_count=values["flagged_count"],
        paid_count=values["paid_count"],
        paid_fen=values["paid_fen"],
        unjudged_policies=tuple(values["unjudged_policies"].split()),
    )


def _entry(row: sqlalchemy.Row[Any], name: str) -> Entry:
    values = row._mapping
    return Entry(name=name, **{column: values[column] for column in _ENTRY_COLUMNS})


def _no_run(run_id: int) -> NotFound:
    return NotFound(f"no secondary run {run_id}", reason="RUN_NOT_FOUND", field="run_id")


def _day(moment: datetime | None) -> str:
    return "" if moment is None else moment.date().isoformat()

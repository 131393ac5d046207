"""The dual early warning (双预警, docs/domain.md section 7): raised in the transaction
that adds to the burden ledger, read by the bureau, decided by the agencies at the hub.

For each household and year an addition touches, the household's burden is its members'
personal burdens together (a person enrollment has not sent is a household alone, under
their identity number); its kind follows the statuses its members held in the year (a
poverty status that ended counts as 脱贫); its line is the pack's, of the household's
region, in force on the day of the addition. When an addition takes the burden past the
line (:func:`doudi.core.monitoring.passes`), a warning is raised, listing the members
and their burdens, once per household, kind and year: a reversal that drops the burden
below the line leaves the warning, and passing the line again raises no second one.

Two transactions adding to members of one household at once (PostgreSQL) take the
household's lock, in the same order, before they read its burden: the second reads the
first's addition and counts from there, so the crossing is seen exactly once. SQLite
writes one transaction at a time.

Each warning raised is queued in ``warning_deliveries`` for the datashare hub (the
platform's outbox, :mod:`doudi.common.outbox`); the agencies decide there and the hub
sends back what they did (:func:`record_decisions`).
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson
import sqlalchemy
from sqlalchemy import select, text

from doudi.common import outbox, paging
from doudi.common.db import copy_to_temporary, is_one_of, temporary_of
from doudi.common.errors import NotFound
from doudi.common.outbox import dialect_module
from doudi.common.warnings import (
    CERTIFIED,
    DECISION_COLUMNS,
    RAISED,
    RAISED_COLUMNS,
    Decision,
    Warning,
    filtered,
    from_row,
)
from doudi.core.monitoring import WARNING_KINDS, MonitoringRules, passes, warning_due_on
from doudi.core.packs import PackRegistry, monitoring_rules
from doudi.core.policy import Pack
from doudi.core.statuses import EffectivePeriod
from services.assistance import ledger_batch, people
from services.assistance.tables import (
    burdens,
    screening_requests,
    warning_deliveries,
    warnings,
)

POVERTY_EXITED: Final = "poverty_exited"
_POVERTY: Final = ("registered_poor", POVERTY_EXITED)

SUBSCRIBERS: Final = (outbox.DATASHARE,)
"""Who keeps a copy of the warnings: the hub, where the agencies decide."""


@dataclass(frozen=True, slots=True)
class BurdenChange:
    """An addition to a person's personal burden of a year (negative: taken away), and
    what made it: the one input of :func:`raise_warnings`."""

    person_id: str
    year: int
    region: str
    """The region of the settlement or bill: the person's, when enrollment has not sent
    the person."""
    personal_burden_fen: int
    on: date
    """The day it counts on (a visit's discharge): the pack in force then draws the line."""
    raised_by: str
    """What it is, for the warning it may raise (``settlement event 12``)."""


@functools.cache
def packs() -> PackRegistry:
    """The packs the deployment knows (loaded once per process)."""
    return PackRegistry.load()


# --- raising ----------------------------------------------------------------------------


def raise_warnings(connection: sqlalchemy.Connection, now: datetime) -> list[int]:
    """Raise the warnings the connection's ledger batch (``ledger_batch``) calls for, in
    the caller's transaction, which has added it to ``burdens`` already; answers the ids
    of the warnings raised.

    Most households a batch touches pass no line in it. The database sums the batch by
    household and year (what it added, and how far up and down it went); with the
    household's burden now, that bounds where its walk went, and only a household whose
    bounds hold one of the region's lines (either kind's, on any day of the batch)
    reads its additions in order, and only one whose walk passes a line reads its
    members, names and statuses."""
    statements = _statements(connection)
    if statements.lock is not None:
        connection.execute(statements.lock)
    touched = connection.execute(statements.touched).all()
    if not touched:
        return []
    alone = {household for household, _year, _region, is_alone, *_ in touched if is_alone}
    days: list[date] | None = None
    lines_of: dict[str, list[int]] = {}
    candidates: dict[tuple[str, int], str] = {}
    sums: dict[tuple[str, int], int] = {}
    for household, year, region, _alone, added, up, down, after in touched:
        sums[(household, year)] = after = int(after)
        lines = lines_of.get(region)
        if lines is None:
            if days is None:
                days = [
                    _day(day)
                    for (day,) in connection.execute(
                        text("SELECT DISTINCT on_day FROM ledger_batch")
                    )
                ]
            lines = lines_of[region] = sorted(
                {
                    line
                    for day in days
                    if (found := _rules(region, day))
                    for line in _lines(found[1])
                }
            )
        # The walk went no lower than ``low`` and no higher than ``high``: it can pass only
        # a line in between (passes: before <= line < after).
        before = after - int(added)
        low, high = before - int(down), before + int(up)
        index = bisect.bisect_left(lines, low)
        if index < len(lines) and lines[index] < high:
            candidates[(household, year)] = region
    if not candidates:
        return []
    groups: dict[tuple[str, int], list[BurdenChange]] = defaultdict(list)
    wanted = sorted({household for household, _ in candidates})
    for household, person, year, fen, on, source in connection.execute(
        statements.changes,
        {"households": ledger_batch.sql(connection).bound(wanted)},
    ).all():
        key = (household, year)
        if key in candidates:
            groups[key].append(
                BurdenChange(person, year, candidates[key], int(fen), _day(on), source)
            )
    passing = {
        key: group
        for key, group in groups.items()
        if _may_pass(candidates[key], sums.get(key, 0), group)
    }
    if not passing:
        return []
    households = {household for household, _ in passing}
    members_of: dict[str, list[tuple[str, str]]] = {
        household: [(member.person_id, member.name) for member in members]
        for household, members in people.household_members(connection, households - alone).items()
    }
    members_of.update({household: [(household, "")] for household in households & alone})
    everyone = {person for members in members_of.values() for person, _ in members}
    periods = people.status_periods(connection, everyone)
    burdens_of = _burdens(connection, everyone, {year for _, year in passing})
    rows: list[dict[str, Any]] = []
    for (household, year), group in sorted(passing.items()):
        members = members_of[household]
        found_row = _raise_one(
            household=household,
            year=year,
            region=candidates[(household, year)],
            members=members,
            burdens_now={person: burdens_of.get((person, year), 0) for person, _ in members},
            statuses=_household_statuses(
                (period for person, _ in members for period in periods.get(person, ())), year
            ),
            changes=group,
            now=now,
        )
        if found_row is not None:
            rows.append(found_row)
    raised = _insert_warnings(connection, rows)
    if raised:
        outbox.queue_many(
            connection, warning_deliveries, [(str(id_), 1) for id_ in raised], now, SUBSCRIBERS
        )
    return raised


def _day(value: date | str) -> date:
    """A day as the batch's ``on_day`` reads back in a raw statement (SQLite: its text)."""
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class _Statements:
    lock: sqlalchemy.TextClause | None
    """PostgreSQL: hold the lock of each household and year of the batch to the end of
    the transaction, taken in one order (the keys sorted) by every transaction, so that
    two never wait on each other in a circle, before their burdens are read."""
    touched: sqlalchemy.TextClause
    """The batch's households and years, in key order: region, whether the household is
    a person alone (not sent by enrollment), the personal burden the batch added, the
    sums of its additions up and of its reductions, and the household's burden now (its
    members' personal burdens together, as the transaction sees them)."""
    changes: sqlalchemy.TextClause
    """The additions of the households ``:households``, in the batch's order."""


_BATCH_STATEMENTS: dict[str, _Statements] = {}


def _statements(connection: sqlalchemy.Connection) -> _Statements:
    found = _BATCH_STATEMENTS.get(connection.dialect.name)
    if found is None:
        household = "COALESCE(b.household, b.person_id)"
        change = "b.sign * b.self_pay_fen"
        households = ledger_batch.sql(connection).values("households", "text")
        lock = None
        if connection.dialect.name == "postgresql":
            lock = text(
                "SELECT count(pg_advisory_xact_lock(hashtextextended(key, 18))) FROM ("
                f"SELECT DISTINCT 'warning ' || {household} || ' ' || b.year AS key "
                "FROM ledger_batch AS b ORDER BY 1) AS sorted"
            )
        # Each burden is read by its key (person and year), whatever the planner knows.
        burden = (
            "(SELECT u.personal_burden_fen FROM burdens AS u "
            "WHERE u.person_id = {person} AND u.year = t.year)"
        )
        found = _BATCH_STATEMENTS[connection.dialect.name] = _Statements(
            lock=lock,
            touched=text(
                "SELECT t.*, CASE WHEN t.alone = 1 THEN COALESCE("
                + burden.format(person="t.household")
                + ", 0) ELSE (SELECT COALESCE(SUM("
                + burden.format(person="m.person_id")
                + "), 0) FROM assistance_persons AS m WHERE m.household_id = t.household"
                ") END FROM ("
                f"SELECT {household} AS household, b.year AS year, "
                "MAX(COALESCE(b.household_region, b.region)) AS region, "
                "MAX(CASE WHEN b.household IS NULL THEN 1 ELSE 0 END) AS alone, "
                f"SUM({change}) AS added, "
                f"SUM(CASE WHEN {change} > 0 THEN {change} ELSE 0 END) AS up, "
                f"SUM(CASE WHEN {change} < 0 THEN -{change} ELSE 0 END) AS down "
                "FROM ledger_batch AS b GROUP BY 1, 2) AS t ORDER BY 1, 2"
            ),
            changes=text(
                f"SELECT {household}, b.person_id, b.year, {change}, b.on_day, b.source "
                f"FROM ledger_batch AS b WHERE {household} IN ({households}) ORDER BY b.seq"
            ),
        )
    return found


def _may_pass(region: str, after: int, changes: list[BurdenChange]) -> bool:
    """Whether a change of the household's walk from ``after`` less the changes passes the
    line of either kind (whatever the household's statuses): if none does, no warning."""
    running = after - sum(change.personal_burden_fen for change in changes)
    for change in changes:
        before, running = running, running + change.personal_burden_fen
        if running <= before:
            continue
        found = _rules(region, change.on)
        if found is not None and any(passes(before, running, line) for line in _lines(found[1])):
            return True
    return False


@functools.cache
def _lines(rules: MonitoringRules) -> tuple[int, ...]:
    return tuple(rules.warning_line(kind) for kind in WARNING_KINDS)


def _raise_one(
    *,
    household: str,
    year: int,
    region: str,
    members: list[tuple[str, str]],
    burdens_now: dict[str, int],
    statuses: frozenset[str],
    changes: list[BurdenChange],
    now: datetime,
) -> dict[str, Any] | None:
    """Walk the household's changes of the year in order from the burden before them;
    the warning of the first that passes its line (None: none did)."""
    after = sum(burdens_now.values())
    running = after - sum(change.personal_burden_fen for change in changes)
    for index, change in enumerate(changes):
        before, running = running, running + change.personal_burden_fen
        found = _rules(region, change.on)
        if found is None:
            continue
        pack, rules = found
        kind = rules.warning_kind(statuses)
        line = rules.warning_line(kind)
        if not passes(before, running, line):
            continue
        later: defaultdict[str, int] = defaultdict(int)
        for following in changes[index + 1 :]:
            later[following.person_id] += following.personal_burden_fen
        listed = [
            [person, name, burdens_now.get(person, 0) - later[person]] for person, name in members
        ]
        return {
            "version": 1,
            "kind": kind,
            "household_id": household,
            "region": region,
            "year": year,
            "burden_fen": running,
            "threshold_fen": line,
            "members": listed,
            "raised_by": change.raised_by,
            "raised_at": now,
            "due_on": warning_due_on(now, rules.overdue_days),
            "policy": pack.id,
            "state": RAISED,
            "hub_version": 0,
        }
    return None


_INSERTS: dict[str, Any] = {}


def _insert_warnings(connection: sqlalchemy.Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the warnings not raised before (one per household, kind and year), in one
    statement built once per dialect (a statement built per warning cost more than the
    rest of the pass); answers the ids of those inserted. On PostgreSQL they are copied
    in first (:func:`doudi.common.db.copy_to_temporary`): a statement of a placeholder
    a value took a hundred microseconds a warning to convert."""
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        copy_to_temporary(
            connection,
            warnings,
            _INSERTED,
            (
                tuple(
                    orjson.dumps(row[name]).decode() if name == "members" else row[name]
                    for name in _INSERTED
                )
                for row in rows
            ),
        )
        return list(connection.execute(_COPIED_INSERT).scalars())
    statement = _INSERTS.get(connection.dialect.name)
    if statement is None:
        statement = _INSERTS[connection.dialect.name] = (
            dialect_module(connection)
            .insert(warnings)
            .on_conflict_do_nothing(index_elements=["household_id", "kind", "year"])
            .returning(warnings.c.warning_id)
        )
    return list(connection.execute(statement, rows).scalars())


_INSERTED: Final = (*RAISED_COLUMNS, "state", "hub_version")
"""The columns a warning is raised with (:func:`_raise_one`'s keys)."""
_COPIED_INSERT: Final = text(
    f"INSERT INTO warnings ({', '.join(_INSERTED)}) SELECT {', '.join(_INSERTED)} "
    f"FROM {temporary_of(warnings)} ORDER BY household_id, kind, year "
    "ON CONFLICT (household_id, kind, year) DO NOTHING RETURNING warning_id"
)


@functools.cache
def _rules_of(pack_id: str) -> MonitoringRules | None:
    pack = packs().get(pack_id)
    return None if pack is None else monitoring_rules(pack)


@functools.lru_cache(maxsize=4096)
def _rules(region: str, day: date) -> tuple[Pack, MonitoringRules] | None:
    """The pack in force in ``region`` on ``day`` and its monitoring rules, if it has any."""
    pack = packs().in_force(region, day)
    if pack is None:
        return None
    rules = _rules_of(pack.id)
    return None if rules is None else (pack, rules)


def _burdens(
    connection: sqlalchemy.Connection, persons: set[str], years: set[int]
) -> dict[tuple[str, int], int]:
    """Each person's personal burden of each year (as the caller's transaction sees it)."""
    return {
        (row.person_id, row.year): row.personal_burden_fen
        for row in connection.execute(
            select(burdens.c.person_id, burdens.c.year, burdens.c.personal_burden_fen).where(
                is_one_of(connection, burdens.c.person_id, persons), burdens.c.year.in_(years)
            )
        )
    }


def _household_statuses(periods: Iterable[EffectivePeriod], year: int) -> frozenset[str]:
    """The statuses the members held in ``year``; 脱贫 also for a poverty status that
    ended on or before its last day, or a 脱贫 that began before it."""
    held = set()
    last = date(year, 12, 31)
    for period in periods:
        if period.valid_from > last:
            continue
        if period.status in _POVERTY and (
            period.status == POVERTY_EXITED
            or (period.valid_to is not None and period.valid_to <= last)
        ):
            held.add(POVERTY_EXITED)
        if period.valid_to is None or period.valid_to >= date(year, 1, 1):
            held.add(period.status)
    return frozenset(held)


# --- reading ----------------------------------------------------------------------------


def list_warnings(
    *,
    connection: sqlalchemy.Connection,
    region: str | None,
    year: int | None,
    household_id: str | None,
    kind: str | None,
    state: str | None,
    overdue_on: date | None,
    page_size: int,
    page_token: str,
) -> tuple[list[Warning], str]:
    """A page of the warnings of the region, year and household given (None: any),
    newest first; with ``overdue_on``, only those overdue that day. A household's are
    found by the unique key (household, kind, year)."""
    query = select(warnings)
    for column, wanted in (
        (warnings.c.household_id, household_id),
        (warnings.c.region, region),
        (warnings.c.year, year),
    ):
        if wanted is not None:
            query = query.where(column == wanted)
    query = filtered(query, warnings, kind=kind, state=state, overdue_on=overdue_on)
    rows, token = paging.keyset_page(
        connection, query, warnings.c.warning_id, page_size, page_token, newest_first=True
    )
    return [from_row(row) for row in rows], token


def get_warning(*, connection: sqlalchemy.Connection, warning_id: int) -> Warning:
    found = by_ids(connection=connection, warning_ids=[warning_id])
    if not found:
        raise NotFound(f"no warning {warning_id}", reason="WARNING_NOT_FOUND", field="warning_id")
    return found[0]


def by_ids(*, connection: sqlalchemy.Connection, warning_ids: Iterable[int]) -> list[Warning]:
    """The warnings among ``warning_ids``, in id order."""
    rows = connection.execute(
        select(warnings)
        .where(warnings.c.warning_id.in_(set(warning_ids)))
        .order_by(warnings.c.warning_id)
    )
    return [from_row(row) for row in rows]


# --- what the agencies did (sent back by the hub) ---------------------------------------


def record_decisions(
    *, connection: sqlalchemy.Connection, decisions: Sequence[Decision]
) -> list[int]:
    """Store each decision on its warning unless the hub's later version is stored;
    answers the hub's version now stored of each. NotFound for a warning not raised here
    (nothing stored)."""
    wanted = {decision.warning_id for decision in decisions}
    known = set(
        connection.execute(
            select(warnings.c.warning_id).where(warnings.c.warning_id.in_(wanted))
        ).scalars()
    )
    for index, decision in enumerate(decisions):
        if decision.warning_id not in known:
            raise NotFound(
                f"no warning {decision.warning_id}",
                reason="WARNING_NOT_FOUND",
                field=f"decisions[{index}].warning_id",
            )
    _request_screening(connection, decisions)
    for decision in decisions:
        values: dict[str, Any] = {name: getattr(decision, name) for name in DECISION_COLUMNS}
        values["hub_version"] = values.pop("version")
        connection.execute(
            sqlalchemy.update(warnings)
            .where(
                warnings.c.warning_id == decision.warning_id,
                warnings.c.hub_version < decision.version,
            )
            .values(**values)
        )
    stored = {
        row[0]: row[1]
        for row in connection.execute(
            select(warnings.c.warning_id, warnings.c.hub_version).where(
                warnings.c.warning_id.in_(wanted)
            )
        )
    }
    return [int(stored[decision.warning_id]) for decision in decisions]


SCREENING_REASON: Final = "warning_certified"


def _request_screening(connection: sqlalchemy.Connection, decisions: Sequence[Decision]) -> None:
    """Ask for screening (主动救助) of every member's year of each warning the agencies
    certify now: a decision newer than the stored one that certifies a warning not certified
    before (a resend, or a later act on a certified warning, asks nothing)."""
    newest: dict[int, Decision] = {}
    for decision in decisions:
        if (
            decision.warning_id not in newest
            or decision.version > newest[decision.warning_id].version
        ):
            newest[decision.warning_id] = decision
    certified = [d.warning_id for d in newest.values() if d.state == CERTIFIED]
    if not certified:
        return
    rows = connection.execute(
        select(
            warnings.c.warning_id,
            warnings.c.year,
            warnings.c.members,
            warnings.c.state,
            warnings.c.hub_version,
        ).where(warnings.c.warning_id.in_(certified))
    )
    now = datetime.now(UTC)
    requests = [
        {
            "person_id": str(member[0]),
            "year": row.year,
            "reason": SCREENING_REASON,
            "source": f"warning {row.warning_id}",
            "requested_at": now,
        }
        for row in rows
        if row.state != CERTIFIED and row.hub_version < newest[row.warning_id].version
        for member in row.members
    ]
    if requests:
        connection.execute(screening_requests.insert(), requests)

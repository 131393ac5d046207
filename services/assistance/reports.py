"""The monitoring figures (docs/domain.md section 8): a region's month and year to date,
by category and visit type.

Visits are read from a monthly aggregate, not from the events: :func:`add_visits`, which
``service.add_to_ledger`` calls once per batch in the ledger's transaction, adds every
entry (a settlement, a reversal, a bill) to ``report_visits`` and ``report_fund_payments``
under its region, discharge month, visit type and each category it counts in (every
status it applied, ``monitored`` once if it applied any, and "" for every visit), summed
by the database first (the batch, :mod:`services.assistance.ledger_batch`), so that a
batch of 1,000 events is a few dozen upserts. A report then
reads at most a few thousand rows. The other figures come from the tables their features
keep (``assistance_enrolments``, ``warnings``, ``applications``, the approved secondary
runs, the confirmed screening offers), each dated by its own day (:data:`FIGURES`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import orjson
import sqlalchemy
from sqlalchemy import and_, delete, func, or_, select

from doudi.common.outbox import dialect_module
from doudi.common.warnings import CERTIFIED, DISMISSED
from doudi.core.codes import STATUSES, VISIT_TYPES
from doudi.core.monitoring import (
    APPLICATION_KIND_NAMES,
    BUREAU_TIMEZONE,
    WARNING_KIND_NAMES,
    bureau_day,
)
from doudi.core.packs import PackRegistry, subsidy_categories
from doudi.core.workdays import WorkingCalendar
from services.assistance import ledger_batch, people
from services.assistance.tables import (
    applications,
    assistance_enrolments,
    assistance_persons,
    assistance_statuses,
    report_fund_payments,
    report_visits,
    screening_offers,
    secondary_entries,
    secondary_runs,
    warnings,
)

ALL: Final = ""
"""The category (or visit type, or fund) of every one together."""
MONITORED: Final = "monitored"
"""The category of anyone with a status, each counted once."""
ASSISTANCE_FUND: Final = "assistance_fund"
PERSON: Final = "person"


COUNT: Final = "count"
FEN: Final = "fen"
BASIS_POINTS: Final = "basis_points"
HUNDREDTHS: Final = "hundredths"

FIGURES: Final = {
    "monitored_people": "persons of the region (enrollment's copy) holding a status on a day of the period",
    "visits": "settlements and bills discharged in the period, less reversals of such",
    "total_fen": "their total cost",
    "fund_paid_fen": "what the funds paid of them (each fund, and all)",
    "personal_burden_fen": "what the patients paid (self-pay)",
    "eligible_burden_fen": "the in-scope part of it",
    "reimbursement_ratio_bp": "(total - personal burden) / total, in basis points",
    "clearing_fen": "what the funds owe the hospitals: the window's settlements' fund payments",
    "subsidised_enrolments": "subsidised enrolments of the year recorded in the period",
    "subsidised_premium_fen": "their premiums (all, the assistance fund's, the persons')",
    "warnings_raised": "warnings raised on a day of the period",
    "warnings_certified": "warnings certified on a day of the period",
    "warnings_dismissed": "warnings dismissed on a day of the period",
    "warnings_overdue": "warnings undecided on their due day or later, at the period's end",
    "applications_accepted": "applications accepted on a day of the period",
    "applications_decided": "applications approved or refused on a day of the period",
    "applications_overdue": "applications undecided after their deadline, at the period's end",
    "decision_working_days": "the working days from acceptance to decision, all decided",
    "decision_working_days_average": "their average, in hundredths of a working day",
    "secondary_people": "persons an approved secondary run paid (approval day)",
    "secondary_person_times": "payments of approved secondary runs",
    "secondary_paid_fen": "what they paid",
    "proactive_people": "persons paid by a confirmed screening offer (confirmation day)",
    "proactive_person_times": "confirmed screening offers that paid",
    "proactive_paid_fen": "what they paid",
}
"""Each figure's name and what it counts (services/assistance/README.md, reports)."""


# --- the persons' enrolments ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A person's enrolment of a year as enrollment sent it."""

    year: int
    premium_fen: int
    subsidy_fen: int
    subsidy_category: str | None
    enrolled_at: datetime | None


def record_persons(
    *,
    connection: sqlalchemy.Connection,
    persons: Sequence[people.InsuredPerson],
    enrolments: Sequence[Sequence[Enrolment]],
    now: datetime,
) -> list[int]:
    """Store each person (``people.record_persons``) and, where the version sent is the one
    stored, their enrolments (``enrolments[i]`` are ``persons[i]``'s), replacing those kept
    before; answers the versions stored."""
    versions = people.record_persons(connection=connection, persons=persons, now=now)
    current = {
        person.person_id: person_enrolments
        for person, person_enrolments, version in zip(persons, enrolments, versions, strict=True)
        if version == person.version
    }
    if current:
        connection.execute(
            delete(assistance_enrolments).where(assistance_enrolments.c.person_id.in_(current))
        )
        rows = [
            {
                "person_id": person_id,
                "year": enrolment.year,
                "premium_fen": enrolment.premium_fen,
                "subsidy_fen": enrolment.subsidy_fen,
                "subsidy_category": enrolment.subsidy_category,
                "enrolled_at": enrolment.enrolled_at,
            }
            for person_id, person_enrolments in sorted(current.items())
            for enrolment in {e.year: e for e in person_enrolments}.values()
        ]
        if rows:
            connection.execute(assistance_enrolments.insert(), rows)
    return versions


# --- the visits' monthly aggregate -----------------------------------------------------

_VISIT_SUMS: Final = (
    "visits",
    "total_fen",
    "fund_paid_fen",
    "personal_burden_fen",
    "eligible_burden_fen",
)
_FUND_SUMS: Final = ("paid_fen", "cleared_fen")
_KEY: Final = ("region", "year", "month", "category", "visit_type")


def add_visits(connection: sqlalchemy.Connection) -> None:
    """Add the connection's ledger batch (:mod:`services.assistance.ledger_batch`) to the
    monthly aggregate, in the caller's transaction."""
    # The database sums the batch by what tells its visits apart here (a batch shares a
    # few keys); each sum is then added once into each of its categories.
    visits_of, funds_of = _batch_sums(connection)
    visits: defaultdict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 5)
    funds: defaultdict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for *group, count, total, fund_paid, personal, eligible in connection.execute(visits_of):
        sums = (count, total, fund_paid, personal, eligible)
        for key in _keys(group):
            added = visits[key]
            for index, value in enumerate(sums):
                added[index] += int(value)
    for *group, fund, fen in connection.execute(funds_of):
        window = bool(group[5])
        for key in _keys(group):
            fund_sums = funds[(*key, fund)]
            fund_sums[0] += int(fen)
            if window:
                fund_sums[1] += int(fen)
    if not visits:
        return
    statements = _statements(connection)
    # In key order: batches lock the rows they share in one order (PostgreSQL).
    connection.execute(
        statements[0],
        [
            {**dict(zip(_KEY, key, strict=True)), **dict(zip(_VISIT_SUMS, sums, strict=True))}
            for key, sums in sorted(visits.items())
        ],
    )
    if funds:
        connection.execute(
            statements[1],
            [
                {
                    **dict(zip((*_KEY, "fund"), key, strict=True)),
                    **dict(zip(_FUND_SUMS, sums, strict=True)),
                }
                for key, sums in sorted(funds.items())
            ],
        )


_GROUP: Final = "b.region, b.year, b.month, b.visit_type, b.statuses, b.in_window"
_BATCH_SUMS: dict[str, tuple[sqlalchemy.TextClause, sqlalchemy.TextClause]] = {}


def _batch_sums(
    connection: sqlalchemy.Connection,
) -> tuple[sqlalchemy.TextClause, sqlalchemy.TextClause]:
    """The batch's visits summed by :data:`_GROUP`, and its payments by group and fund."""
    found = _BATCH_SUMS.get(connection.dialect.name)
    if found is None:
        batch = ledger_batch.sql(connection)
        found = _BATCH_SUMS[connection.dialect.name] = (
            sqlalchemy.text(
                f"SELECT {_GROUP}, SUM(b.sign), SUM(b.sign * b.total_fen), "
                "SUM(b.sign * b.fund_paid_fen), SUM(b.sign * b.self_pay_fen), "
                f"SUM(b.sign * b.eligible_burden_fen) FROM ledger_batch AS b GROUP BY {_GROUP}"
            ),
            sqlalchemy.text(
                f"SELECT {_GROUP}, {batch.fund}, SUM(b.sign * {batch.fen}) "
                f"FROM {batch.payments_from} GROUP BY {_GROUP}, {batch.fund}"
            ),
        )
    return found


def _keys(group: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The aggregate's keys a group of visits counts under: every visit (""), and with
    statuses (space-separated codes) once under ``monitored`` and once under each
    status."""
    region, year, month, visit_type, statuses = group[:5]
    held = statuses.split()
    categories = (ALL, MONITORED, *dict.fromkeys(held)) if held else (ALL,)
    return [(region, year, month, category, visit_type) for category in categories]


_STATEMENTS: dict[str, tuple[Any, Any]] = {}


def _statements(connection: sqlalchemy.Connection) -> tuple[Any, Any]:
    """The aggregate's adding upserts for the connection's dialect, built once."""
    found = _STATEMENTS.get(connection.dialect.name)
    if found is None:
        dialect = dialect_module(connection)

        def adding(table: sqlalchemy.Table, keys: Sequence[str], sums: Sequence[str]) -> Any:
            insert = dialect.insert(table)
            return insert.on_conflict_do_update(
                index_elements=list(keys),
                set_={name: table.c[name] + insert.excluded[name] for name in sums},
            )

        found = _STATEMENTS[connection.dialect.name] = (
            adding(report_visits, _KEY, _VISIT_SUMS),
            adding(report_fund_payments, (*_KEY, "fund"), _FUND_SUMS),
        )
    return found


# --- the report ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of a report: the month's and the year's to the month's end."""

    figure: str
    category: str
    category_name: str
    visit_type: str
    """A visit type, or "" (every type, or a figure without one)."""
    fund: str
    unit: str
    month: int
    year_to_date: int


@dataclass(frozen=True, slots=True)
class Report:
    region: str
    year: int
    month: int
    """0: the whole year."""
    as_of: date
    """The day overdue is judged on: the period's end, or the day asked if earlier."""
    rows: tuple[Row, ...]
    months: tuple[Report, ...] = ()
    """Asked ``monthly`` (the whole year): each month's report, January to December."""


@dataclass(frozen=True, slots=True)
class _Period:
    """The month's days and the year's to the month's end (``month`` 0: no month)."""

    year: int
    month: int
    as_of: date

    @property
    def first(self) -> date:
        return date(self.year, 1, 1)

    @property
    def last(self) -> date:
        if self.month in (0, 12):
            return date(self.year, 12, 31)
        return date(self.year, self.month + 1, 1) - timedelta(days=1)

    @property
    def month_first(self) -> date | None:
        return None if self.month == 0 else date(self.year, self.month, 1)

    def in_month(self, day: date) -> bool:
        first = self.month_first
        return first is not None and first <= day <= self.last

    def in_year(self, day: date) -> bool:
        return self.first <= day <= self.last

    @property
    def firsts(self) -> tuple[date, ...]:
        """The first days of the windows a query sums: the month's (if one is asked) and
        the year's; without a month the database adds up nothing for it."""
        month_first = self.month_first
        return (self.first,) if month_first is None else (month_first, self.first)

    def pair(self, sums: Sequence[Any]) -> list[int]:
        """[month, year to date] from one sum per window of :attr:`firsts`."""
        values = [int(value or 0) for value in sums]
        return values if len(values) == 2 else [0, *values]


class _Figures:
    """The rows of a report as they are added up: (figure, category, visit type, fund) →
    [month, year to date]."""

    def __init__(self, period: _Period) -> None:
        self.period = period
        self.values: dict[tuple[str, str, str, str], list[int]] = {}
        self.units: dict[str, str] = {}
        self.subsidy_names: dict[str, str] = {}
        """The region's packs' names of their subsidy categories (the enrolments' only: an
        id may also be a status's code, ``registered_poor``)."""
        self.ratios: set[tuple[str, str]] = set()
        """The (category, visit type) pairs whose reimbursement ratio to report."""

    def add(
        self,
        figure: str,
        category: str,
        day: date | None,
        value: int = 1,
        *,
        visit_type: str = ALL,
        fund: str = ALL,
        unit: str = COUNT,
    ) -> None:
        """Add ``value`` dated ``day`` (None: in both the month and the year)."""
        sums = self.values.setdefault((figure, category, visit_type, fund), [0, 0])
        self.units[figure] = unit
        if day is None or self.period.in_month(day):
            sums[0] += value
        if day is None or self.period.in_year(day):
            sums[1] += value

    def set(self, figure: str, category: str, values: Sequence[int], **kwargs: str) -> None:
        key = (figure, category, kwargs.get("visit_type", ALL), kwargs.get("fund", ALL))
        self.values[key] = list(values)
        self.units[figure] = kwargs.get("unit", COUNT)

    def rows(self) -> tuple[Row, ...]:
        for category, visit_type in self.ratios:
            total = self.values[("total_fen", category, visit_type, ALL)]
            personal = self.values[("personal_burden_fen", category, visit_type, ALL)]
            self.set(
                "reimbursement_ratio_bp",
                category,
                [_ratio(total[index], personal[index]) for index in (0, 1)],
                visit_type=visit_type,
                unit=BASIS_POINTS,
            )
        order = {figure: index for index, figure in enumerate(FIGURES)}
        visit_order = {visit_type: index for index, visit_type in enumerate((ALL, *VISIT_TYPES))}
        return tuple(
            Row(
                figure=figure,
                category=category,
                category_name=self._name(figure, category),
                visit_type=visit_type,
                fund=fund,
                unit=self.units[figure],
                month=values[0] if self.period.month else 0,
                year_to_date=values[1],
            )
            for (figure, category, visit_type, fund), values in sorted(
                self.values.items(),
                key=lambda item: (
                    order[item[0][0]],
                    item[0][1] not in (ALL, MONITORED),
                    item[0][1] != ALL,
                    item[0][1],
                    visit_order[item[0][2]],
                    item[0][3],
                ),
            )
        )

    def _name(self, figure: str, category: str) -> str:
        if figure.startswith("subsidised_") and category in self.subsidy_names:
            return self.subsidy_names[category]
        return _category_name(category)


def _category_name(category: str) -> str:
    if category == ALL:
        return "合计"
    if category == MONITORED:
        return "监测人员"
    if category in STATUSES:
        return STATUSES[category][0]
    return WARNING_KIND_NAMES.get(category) or APPLICATION_KIND_NAMES.get(category, category)


def get_report(
    *,
    connection: sqlalchemy.Connection,
    region: str,
    year: int,
    month: int,
    as_of: date,
    registry: PackRegistry,
    calendar: WorkingCalendar,
    monthly: bool = False,
) -> Report:
    """The region's figures of ``month`` (0: none) and of the year to its end; overdue is
    judged on the period's last day, or on ``as_of`` if that is earlier. ``monthly`` (with
    ``month`` 0): each month's report too, as asked alone, in the same transaction.

    The persons' status histories, which cost most of a report (every person of the
    region holding a status), are read once for them all; each other figure reads a few
    thousand rows at most from an index, again for each month."""
    reading = _Reading(
        connection,
        region,
        year,
        as_of,
        registry,
        calendar,
        _status_histories(connection, region, year),
    )
    report = reading.report(month)
    if not monthly:
        return report
    return dataclasses.replace(report, months=tuple(reading.report(m) for m in range(1, 13)))


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one call's reports are read with: the region's status histories of the year
    read once (:func:`_status_histories`)."""

    connection: sqlalchemy.Connection
    region: str
    year: int
    as_of: date
    registry: PackRegistry
    calendar: WorkingCalendar
    histories: Counter[_History]

    def report(self, month: int) -> Report:
        """The figures of ``month`` (0: none) and of the year to its end."""
        connection, region = self.connection, self.region
        period = _Period(self.year, month, self.as_of)
        period = _Period(self.year, month, min(self.as_of, period.last))
        figures = _Figures(period)
        _visit_figures(connection, region, figures)
        _monitored_people(self.histories, figures)
        _subsidised_enrolments(connection, region, figures, self.registry)
        _warning_figures(connection, region, figures)
        _application_figures(connection, region, figures, self.calendar)
        _assistance_paid(connection, region, figures)
        return Report(region, self.year, month, period.as_of, figures.rows())


def _visit_figures(connection: sqlalchemy.Connection, region: str, figures: _Figures) -> None:
    period = figures.period
    for table, keys, sums in (
        (report_visits, ("category", "visit_type"), _VISIT_SUMS),
        (report_fund_payments, ("category", "visit_type", "fund"), _FUND_SUMS),
    ):
        # The month's and the year's sums by the database: a few hundred rows come back.
        in_month = table.c.month == period.month
        month_sums = [_sum(in_month, table.c[name]) for name in sums if period.month]
        query = (
            select(
                *(table.c[key] for key in keys),
                *month_sums,
                *(func.sum(table.c[name]) for name in sums),
            )
            .where(
                table.c.region == region,
                table.c.year == period.year,
                table.c.month <= period.last.month,
            )
            .group_by(*(table.c[key] for key in keys))
        )
        width = len(sums)
        for row in connection.execute(query):
            key, values = row[: len(keys)], [int(value or 0) for value in row[len(keys) :]]
            if not month_sums:
                values = [0] * width + values
            if table is report_visits:
                _add_visits(figures, key[0], key[1], values[:width], values[width:])
            else:
                _add_funds(figures, key[0], key[1], key[2], values[:width], values[width:])
    if ("visits", ALL, ALL, ALL) not in figures.values:
        _add_visits(figures, ALL, ALL, [0] * 5, [0] * 5)


def _add_visits(
    figures: _Figures, category: str, visit_type: str, in_month: list[int], to_date: list[int]
) -> None:
    """A row of the aggregate into its visit type's figures and every type's."""
    for shown_type in dict.fromkeys((ALL, visit_type)):
        for index, name in enumerate(_VISIT_SUMS):
            figures.add(
                name,
                category,
                None,
                0,
                visit_type=shown_type,
                unit=COUNT if name == "visits" else FEN,
            )
            sums = figures.values[(name, category, shown_type, ALL)]
            sums[0] += in_month[index]
            sums[1] += to_date[index]
        figures.ratios.add((category, shown_type))


def _add_funds(
    figures: _Figures,
    category: str,
    visit_type: str,
    fund: str,
    in_month: list[int],
    to_date: list[int],
) -> None:
    """A fund's row of the aggregate: its payments, and (every visit) its clearing."""
    for shown_type in dict.fromkeys((ALL, visit_type)):
        targets = [("fund_paid_fen", category, fund, 0)]
        if category == ALL:
            targets += [("clearing_fen", ALL, ALL, 1), ("clearing_fen", ALL, fund, 1)]
        for figure, shown_category, shown_fund, index in targets:
            figures.add(
                figure, shown_category, None, 0, visit_type=shown_type, fund=shown_fund, unit=FEN
            )
            sums = figures.values[(figure, shown_category, shown_type, shown_fund)]
            sums[0] += in_month[index]
            sums[1] += to_date[index]


def _ratio(total: int, personal: int) -> int:
    """(total - personal burden) / total in basis points, rounded half up; 0 for no cost."""
    if total <= 0:
        return 0
    return ((total - personal) * 20_000 + total) // (2 * total)


_History = tuple[tuple[str, int, int], ...]
"""A person's status history within a year: each status held and the first and last month
of the year a period of it covers, in order."""


def _status_histories(
    connection: sqlalchemy.Connection, region: str, year: int
) -> Counter[_History]:
    """The region's persons holding a status on a day of ``year``, by the months of the
    year their statuses cover (:data:`_History`): how many persons have each."""
    # As text, parsed by orjson, each distinct history once with how many persons have it
    # (the database groups them: a roster gives many persons the same periods): the JSON
    # type's own parsing of each person's took most of the report's time with tens of
    # thousands of persons holding a status.
    periods = sqlalchemy.cast(assistance_statuses.c.periods, sqlalchemy.Text)
    rows = connection.execute(
        select(periods, func.count())
        .select_from(
            assistance_statuses.join(
                assistance_persons,
                assistance_persons.c.person_id == assistance_statuses.c.person_id,
            )
        )
        .where(assistance_persons.c.region == region)
        .group_by(periods)
    ).all()
    first, last = date(year, 1, 1).isoformat(), date(year, 12, 31).isoformat()
    histories: Counter[_History] = Counter()
    for text, persons in rows:
        covered = set()
        # ISO dates compare as the days they name; a month is their 6th and 7th characters.
        for status, valid_from, valid_to, _agency in orjson.loads(text):
            if valid_from > last or (valid_to is not None and valid_to < first):
                continue
            from_month = 1 if valid_from < first else int(valid_from[5:7])
            to_month = 12 if valid_to is None or valid_to > last else int(valid_to[5:7])
            covered.add((status, from_month, to_month))
        if covered:
            histories[tuple(sorted(covered))] += persons
    return histories


def _monitored_people(histories: Counter[_History], figures: _Figures) -> None:
    """Persons of the region holding a status on a day of the period: in each status's
    category, and once in ``monitored``."""
    month = figures.period.month
    through = figures.period.last.month
    counted: Counter[tuple[str, int]] = Counter()
    for history, persons in histories.items():
        # A period covering a month from its first to its last overlaps the month, and the
        # year to the month's end from the first on.
        held_month = {status for status, start, end in history if start <= month <= end}
        held_year = {status for status, start, _end in history if start <= through}
        for index, held in enumerate((held_month, held_year)):
            for status in held:
                counted[(status, index)] += persons
            if held:
                counted[(MONITORED, index)] += persons
    for category in sorted({category for category, _index in counted} | {MONITORED}):
        figures.set("monitored_people", category, (counted[(category, 0)], counted[(category, 1)]))


def _subsidised_enrolments(
    connection: sqlalchemy.Connection, region: str, figures: _Figures, registry: PackRegistry
) -> None:
    """The year's subsidised enrolments of the region's persons, by the day enrollment
    recorded them (one recorded before the year, or not said when, counts in January; one
    recorded after it in December)."""
    period = figures.period
    for pack in registry:
        if pack.region_code == region:
            figures.subsidy_names.update({c.id: c.name for c in subsidy_categories(pack)})
    table = assistance_enrolments
    windows = [_clamped(table.c.enrolled_at, first, period.last) for first in period.firsts]
    query = (
        select(
            table.c.subsidy_category,
            *(_count(window) for window in windows),
            *(_sum(window, table.c.premium_fen) for window in windows),
            *(_sum(window, table.c.subsidy_fen) for window in windows),
        )
        .select_from(
            table.join(assistance_persons, assistance_persons.c.person_id == table.c.person_id)
        )
        .where(
            assistance_persons.c.region == region,
            table.c.year == period.year,
            table.c.subsidy_category.is_not(None),
        )
        .group_by(table.c.subsidy_category)
    )
    figures.set("subsidised_enrolments", ALL, (0, 0))
    width = len(windows)
    for category, *values in connection.execute(query):
        count, premium, subsidy = (
            period.pair(values[n * width : (n + 1) * width]) for n in (0, 1, 2)
        )
        person = [premium[index] - subsidy[index] for index in (0, 1)]
        for shown in (ALL, category):
            figures.add("subsidised_enrolments", shown, None, 0)
            _accumulate(figures, ("subsidised_enrolments", shown, ALL, ALL), count)
            for fund, fen in ((ALL, premium), (ASSISTANCE_FUND, subsidy), (PERSON, person)):
                figures.add("subsidised_premium_fen", shown, None, 0, fund=fund, unit=FEN)
                _accumulate(figures, ("subsidised_premium_fen", shown, ALL, fund), fen)


def _accumulate(figures: _Figures, key: tuple[str, str, str, str], values: Sequence[int]) -> None:
    sums = figures.values[key]
    sums[0] += values[0]
    sums[1] += values[1]


def _instant(day: date) -> datetime:
    """The first moment of the bureau's ``day`` (Asia/Shanghai), in UTC."""
    return datetime.combine(day, time.min, BUREAU_TIMEZONE).astimezone(UTC)


def _on_days(column: Any, first: date, last: date) -> Any:
    """The moment in ``column`` falls on a bureau day from ``first`` to ``last``."""
    return and_(column >= _instant(first), column < _instant(last + timedelta(days=1)))


def _clamped(column: Any, first: date, last: date) -> Any:
    """As :func:`_on_days`, with a moment before the year (or none) on 1 January and one
    after it on 31 December."""
    conditions = []
    if (first.month, first.day) != (1, 1):
        conditions.append(column >= _instant(first))
    if (last.month, last.day) != (12, 31):
        conditions.append(column < _instant(last + timedelta(days=1)))
    within = and_(sqlalchemy.true(), *conditions)
    return or_(within, column.is_(None)) if (first.month, first.day) == (1, 1) else within


def _count(condition: Any) -> Any:
    # FILTER rather than a CASE in the sum: the database skips the row instead of adding 0.
    return func.count().filter(condition)


def _sum(condition: Any, column: Any) -> Any:
    return func.sum(column).filter(condition)


def _warning_figures(connection: sqlalchemy.Connection, region: str, figures: _Figures) -> None:
    """Warnings raised and decided in the month and the year to date, and overdue on the
    period's last day, by kind: summed by the database, each moment on its bureau day."""
    period = figures.period
    table = warnings
    raised = [_on_days(table.c.raised_at, first, period.last) for first in period.firsts]
    decided = [_on_days(table.c.decided_at, first, period.last) for first in period.firsts]
    end_of_as_of = _instant(period.as_of + timedelta(days=1))
    overdue = and_(
        table.c.raised_at < end_of_as_of,
        table.c.due_on <= period.as_of,
        or_(table.c.decided_at.is_(None), table.c.decided_at >= end_of_as_of),
    )
    query = (
        select(
            table.c.kind,
            *(_count(window) for window in raised),
            *(_count(and_(table.c.state == CERTIFIED, window)) for window in decided),
            *(_count(and_(table.c.state == DISMISSED, window)) for window in decided),
            _count(overdue),
        )
        .where(
            table.c.region == region, table.c.raised_at < _instant(period.last + timedelta(days=1))
        )
        .group_by(table.c.kind)
    )
    for name in ("warnings_raised", "warnings_certified", "warnings_dismissed"):
        figures.set(name, ALL, (0, 0))
    late: Counter[str] = Counter()
    width = len(raised)
    for kind, *values in connection.execute(query):
        for shown in (ALL, kind):
            for index, name in enumerate(
                ("warnings_raised", "warnings_certified", "warnings_dismissed")
            ):
                figures.add(name, shown, None, 0)
                window = values[width * index : width * (index + 1)]
                _accumulate(figures, (name, shown, ALL, ALL), period.pair(window))
        late[kind] += int(values[3 * width] or 0)
    _overdue(figures, "warnings_overdue", +late)


def _overdue(figures: _Figures, figure: str, overdue: Counter[str]) -> None:
    """A state on the period's last day: the same in the month and the year to date."""
    figures.set(figure, ALL, (overdue.total(), overdue.total()))
    for category, count in overdue.items():
        figures.set(figure, category, (count, count))


def _application_figures(
    connection: sqlalchemy.Connection,
    region: str,
    figures: _Figures,
    calendar: WorkingCalendar,
) -> None:
    period = figures.period
    rows = connection.execute(
        select(
            applications.c.kind,
            applications.c.accepted_on,
            applications.c.deadline,
            applications.c.decided_on,
        ).where(
            applications.c.region == region,
            applications.c.accepted_on <= period.last,
            or_(applications.c.decided_on.is_(None), applications.c.decided_on >= period.first),
        )
    ).all()
    working_days = _WorkingDaysCounted(
        calendar, min((row.accepted_on for row in rows), default=period.first)
    )
    # By kind, each day placed once: accepted [month, year]; decided [days in the month,
    # decided in the month, days in the year, decided in the year].
    accepted: dict[str, list[int]] = {}
    decided: dict[str, list[int]] = {}
    overdue: Counter[str] = Counter()
    month_first = period.month_first or date.max
    first, last, on = period.first, period.last, period.as_of
    for kind, accepted_on, deadline, decided_on in rows:
        sums = accepted.setdefault(kind, [0, 0])
        if first <= accepted_on <= last:
            sums[1] += 1
            if month_first <= accepted_on:
                sums[0] += 1
        if decided_on is not None:
            sums = decided.setdefault(kind, [0, 0, 0, 0])
            if first <= decided_on <= last:
                days = working_days.between(accepted_on, decided_on)
                sums[2] += days
                sums[3] += 1
                if month_first <= decided_on:
                    sums[0] += days
                    sums[1] += 1
        if accepted_on <= on and (decided_on is None or decided_on > on) and on > deadline:
            overdue[kind] += 1
    for name in ("applications_accepted", "applications_decided", "decision_working_days"):
        figures.set(name, ALL, (0, 0))
    for kind, sums in accepted.items():
        for shown in (ALL, kind):
            figures.add("applications_accepted", shown, None, 0)
            _accumulate(figures, ("applications_accepted", shown, ALL, ALL), sums)
    averaged: dict[str, list[int]] = {}
    for kind, sums in decided.items():
        for shown in (ALL, kind):
            for name, values in (
                ("applications_decided", sums[1::2]),
                ("decision_working_days", sums[0::2]),
            ):
                figures.add(name, shown, None, 0)
                _accumulate(figures, (name, shown, ALL, ALL), values)
            total = averaged.setdefault(shown, [0, 0, 0, 0])
            for index, value in enumerate(sums):
                total[index] += value
    _overdue(figures, "applications_overdue", overdue)
    for category, (month_days, month_n, year_days, year_n) in averaged.items():
        figures.set(
            "decision_working_days_average",
            category,
            (_hundredths(month_days, month_n), _hundredths(year_days, year_n)),
            unit=HUNDREDTHS,
        )


class _WorkingDaysCounted:
    """``calendar.working_days_between`` for many applications accepted on ``first`` or
    later: each day asked of the calendar once, and the working days from ``first`` to it
    kept by day (a decision's count is the difference of two)."""

    def __init__(self, calendar: WorkingCalendar, first: date) -> None:
        self.calendar = calendar
        self.first = first
        self.counted = [0]
        """The working days after ``first`` up to and including ``first + index`` days."""

    def between(self, start: date, end: date) -> int:
        """The working days after ``start`` (not before ``first``) up to and including
        ``end`` (0 when ``end`` is not after ``start``)."""
        if end <= start:
            return 0
        counted = self.counted
        while len(counted) <= (end - self.first).days:
            day = self.first + timedelta(days=len(counted))
            counted.append(counted[-1] + self.calendar.is_working_day(day))
        return counted[(end - self.first).days] - counted[(start - self.first).days]


def _hundredths(days: int, count: int) -> int:
    """days / count in hundredths, rounded half up; 0 for none."""
    return 0 if count == 0 else (days * 200 + count) // (2 * count)


def _assistance_paid(connection: sqlalchemy.Connection, region: str, figures: _Figures) -> None:
    """Secondary assistance by the approval day of its run, proactive by the day its offer
    was confirmed: persons (each once), payments and what they paid."""
    period = figures.period
    runs, entries = secondary_runs, secondary_entries
    # The runs approved in the year to date alone are read; the month's within them.
    month = [_on_days(runs.c.approved_at, first, period.last) for first in period.firsts[:-1]]
    query = (
        select(
            *(func.count(sqlalchemy.distinct(entries.c.person_id)).filter(w) for w in month),
            func.count(sqlalchemy.distinct(entries.c.person_id)),
            *(_count(window) for window in month),
            func.count(),
            *(_sum(window, entries.c.paid_fen) for window in month),
            func.sum(entries.c.paid_fen),
        )
        .select_from(entries.join(runs, runs.c.run_id == entries.c.run_id))
        .where(
            runs.c.region == region,
            _on_days(runs.c.approved_at, period.first, period.last),
            entries.c.paid_fen > 0,
        )
    )
    values = connection.execute(query).one()
    width = len(month) + 1
    for index, name in enumerate(("people", "person_times", "paid_fen")):
        figures.set(
            f"secondary_{name}",
            ALL,
            period.pair(values[width * index : width * (index + 1)]),
            unit=FEN if name == "paid_fen" else COUNT,
        )
    offers = screening_offers
    proactive = connection.execute(
        select(
            offers.c.person_id, offers.c.statuses, offers.c.paid_fen, offers.c.confirmed_at
        ).where(
            offers.c.region == region,
            offers.c.state == "confirmed",
            _on_days(offers.c.confirmed_at, period.first, period.last),
            offers.c.paid_fen > 0,
        )
    )
    _paid(
        figures,
        "proactive",
        (
            (row.person_id, row.statuses.split(), row.paid_fen, row.confirmed_at)
            for row in proactive
        ),
    )


def _paid(
    figures: _Figures,
    kind: str,
    payments: Iterable[tuple[str, Sequence[str], int, datetime]],
) -> None:
    period = figures.period
    people_in: dict[str, list[set[str]]] = {}
    figures.set(f"{kind}_people", ALL, (0, 0))
    figures.set(f"{kind}_person_times", ALL, (0, 0))
    figures.set(f"{kind}_paid_fen", ALL, (0, 0), unit=FEN)
    for person_id, statuses, paid_fen, at in payments:
        day = bureau_day(at)
        if not period.in_year(day):
            continue
        for category in (ALL, *dict.fromkeys(statuses)):
            figures.add(f"{kind}_person_times", category, day)
            figures.add(f"{kind}_paid_fen", category, day, paid_fen, unit=FEN)
            seen = people_in.setdefault(category, [set(), set()])
            if period.in_month(day):
                seen[0].add(person_id)
            seen[1].add(person_id)
    for category, (in_month, in_year) in people_in.items():
        figures.set(f"{kind}_people", category, (len(in_month), len(in_year)))

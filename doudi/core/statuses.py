"""The status registry's rule: which statuses a person holds, from every assertion and revocation.

Agencies assert and revoke statuses of persons for periods (docs/domain.md section 3),
and nothing is ever overwritten. For each status and each day, the most recently
recorded record that covers the day decides: an assertion grants the status that
day, a revocation withdraws it. Held days of one status and one agency that follow
each other make one period. Dates are inclusive; an unset end is open.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final

from doudi.core.codes import STATUSES
from doudi.core.errors import InvalidInput

ASSERT: Final = "assert"
REVOKE: Final = "revoke"
KINDS: Final = frozenset({ASSERT, REVOKE})

# The agencies that certify statuses, by the codes STATUSES names them with.
AGENCIES: Final = frozenset(agency for _name, agency in STATUSES.values())


def owns(agency: str, status: str) -> bool:
    """Whether ``agency`` is the one that may assert and revoke ``status``."""
    return status in STATUSES and STATUSES[status][1] == agency


def certifier(status: str) -> str:
    """The agency that certifies ``status`` (a status STATUSES names)."""
    return STATUSES[status][1]


def owned_statuses(agency: str) -> frozenset[str]:
    """The statuses ``agency`` certifies (none for a code that is not an agency's)."""
    return frozenset(status for status in STATUSES if owns(agency, status))


def check_period(valid_from: date, valid_to: date | None) -> None:
    """InvalidInput on ``valid_to`` when a period ends before it starts."""
    if valid_to is not None and valid_to < valid_from:
        raise InvalidInput(
            "valid_to",
            f"{valid_to.isoformat()} is before valid_from {valid_from.isoformat()}",
        )


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """One assertion or revocation of a status, as the registry recorded it.

    ``order`` is the recording order: a record with a higher order was recorded
    later and decides the days it covers.
    """

    kind: str
    status: str
    agency: str
    valid_from: date
    valid_to: date | None
    order: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput("kind", f"unknown kind {self.kind!r} (assert or revoke)")
        check_period(self.valid_from, self.valid_to)

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class EffectivePeriod:
    """A status held from ``valid_from`` to ``valid_to`` (inclusive; None = open), certified by ``agency``."""

    status: str
    valid_from: date
    valid_to: date | None
    agency: str

    def holds_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def effective_periods(records: Iterable[StatusRecord]) -> tuple[EffectivePeriod, ...]:
    """The periods in which each status is held after every record is applied.

    Sorted by status, then start. A period that lasts to the last representable
    day (``date.max``) is reported as open.
    """
    by_status: defaultdict[str, list[StatusRecord]] = defaultdict(list)
    for record in records:
        by_status[record.status].append(record)
    periods: list[EffectivePeriod] = []
    for status in sorted(by_status):
        periods.extend(_periods_of(status, by_status[status]))
    return tuple(periods)


_LAST_DAY = date.max.toordinal()


def _periods_of(status: str, records: list[StatusRecord]) -> list[EffectivePeriod]:
    """The periods of one status: the days between record boundaries, each decided once.

    Every record starts or ends at a boundary, so a record covers the whole
    stretch from one boundary to the next or none of it, and the latest record
    covering a stretch's first day decides the stretch.
    """
    if len(records) == 1:  # most persons: one assertion, its own period
        (record,) = records
        if record.kind != ASSERT:
            return []
        last = record.valid_to
        return [
            EffectivePeriod(
                status, record.valid_from, None if last == date.max else last, record.agency
            )
        ]
    latest_first = sorted(records, key=lambda record: record.order, reverse=True)
    boundaries = {record.valid_from.toordinal() for record in records}
    boundaries |= {
        record.valid_to.toordinal() + 1
        for record in records
        if record.valid_to is not None and record.valid_to.toordinal() < _LAST_DAY
    }
    periods: list[EffectivePeriod] = []
    held: tuple[date, str] | None = None  # the start and agency of the period being built
    for boundary in sorted(boundaries):
        day = date.fromordinal(boundary)
        decider = next((record for record in latest_first if record.covers(day)), None)
        agency = decider.agency if decider is not None and decider.kind == ASSERT else None
        if held is not None and held[1] == agency:
            continue
        if held is not None:
            periods.append(
                EffectivePeriod(status, held[0], date.fromordinal(boundary - 1), held[1])
            )
        held = None if agency is None else (day, agency)
    if held is not None:
        # Held from the last boundary on: only an open record (or one to date.max) does that.
        periods.append(EffectivePeriod(status, held[0], None, held[1]))
    return periods

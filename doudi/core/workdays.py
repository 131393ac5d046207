"""Working days on the Chinese calendar: an application is decided within 30 working days of
its acceptance (docs/domain.md section 7, ``taishan-2022``).

The State Council publishes each year's public holidays and the weekend days swapped for
working days (调休) late in the year before. ``chinesecalendar`` knows the years
published when it was released; the bureau's own table (:meth:`WorkingCalendar.from_table`)
adds later years, or corrects one, as they are published. A day of a year neither knows
is counted as a working day from Monday to Friday, and a deadline that counted such a day
is *provisional*: it says so, and is counted again once the year is known. Nothing here
fails for a year it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import chinese_calendar

from doudi.core.dates import parse_date
from doudi.core.errors import InvalidInput

MAX_WORKING_DAYS = 3660
"""The most working days a deadline may count (about fifteen years)."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """The last day of a period of working days; ``provisional`` when a day counted lies in a
    year whose holidays were not known (counted Monday to Friday)."""

    day: date
    provisional: bool


@dataclass(frozen=True)
class WorkingCalendar:
    """``chinesecalendar``'s years, overlaid by the bureau's table of years it declares in
    full: ``holidays`` (days off, weekdays or not) and ``workdays`` (weekend days worked)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    declared_years: frozenset[int] = frozenset()
    _known: dict[int, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> WorkingCalendar:
        """A calendar from the bureau's table: ``{"2027": {"holidays": ["2027-01-01", ...],
        "workdays": ["2027-02-07", ...]}, ...}`` (dates as YYYY-MM-DD, each in its year).
        A year given replaces what ``chinesecalendar`` says of it. InvalidInput names the
        entry at fault."""
        if not isinstance(table, Mapping):
            raise InvalidInput("calendar", "expected an object of years")
        holidays: set[date] = set()
        workdays: set[date] = set()
        years: set[int] = set()
        for year_text, entry in table.items():
            where = f"calendar.{year_text}"
            if not (isinstance(year_text, str) and year_text.isdigit() and len(year_text) == 4):
                raise InvalidInput(where, 'expected a year such as "2027"')
            year = int(year_text)
            if not isinstance(entry, Mapping) or set(entry) - {"holidays", "workdays"}:
                raise InvalidInput(where, 'expected an object with "holidays" and "workdays"')
            for key, into in (("holidays", holidays), ("workdays", workdays)):
                days = entry.get(key, [])
                if not isinstance(days, list):
                    raise InvalidInput(f"{where}.{key}", "expected a list of dates")
                for index, text in enumerate(days):
                    try:
                        day = parse_date(text)
                    except ValueError as error:
                        raise InvalidInput(f"{where}.{key}[{index}]", str(error)) from None
                    if day.year != year:
                        raise InvalidInput(f"{where}.{key}[{index}]", f"is not in {year}")
                    if key == "workdays" and day.weekday() < 5:
                        raise InvalidInput(
                            f"{where}.{key}[{index}]",
                            f"{day.isoformat()} is a weekday: list only weekend days worked",
                        )
                    into.add(day)
            years.add(year)
        both = holidays & workdays
        if both:
            first = min(both).isoformat()
            raise InvalidInput(f"calendar.{first[:4]}", f"{first} is both a holiday and a workday")
        return cls(frozenset(holidays), frozenset(workdays), frozenset(years))

    def knows(self, year: int) -> bool:
        """Whether the holidays of ``year`` are known (published, or in the bureau's table)."""
        known = self._known.get(year)
        if known is None:
            known = year in self.declared_years
            if not known:
                try:
                    chinese_calendar.is_workday(date(year, 1, 1))
                    known = True
                except NotImplementedError:
                    known = False
            self._known[year] = known
        return known

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is worked; in a year not known, Monday to Friday."""
        if day.year in self.declared_years:
            if day in self.holidays:
                return False
            return day in self.workdays or day.weekday() < 5
        if self.knows(day.year):
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5

    def add_working_days(self, start: date, count: int) -> Deadline:
        """The ``count``-th working day after ``start`` (the day of acceptance is not
        counted): the deadline of a period of ``count`` working days."""
        if not 1 <= count <= MAX_WORKING_DAYS:
            raise InvalidInput("working_days", f"from 1 to {MAX_WORKING_DAYS}, got {count}")
        day = start
        provisional = False
        left = count
        while left:
            day += timedelta(days=1)
            if not self.knows(day.year):
                provisional = True
            if self.is_working_day(day):
                left -= 1
        return Deadline(day, provisional)

    def working_days_between(self, start: date, end: date) -> int:
        """The working days after ``start`` up to and including ``end`` (0 when ``end`` is
        not after ``start``): how long a decision took."""
        days = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            days += self.is_working_day(day)
        return days

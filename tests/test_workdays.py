"""Working days on the Chinese calendar (doudi.core.workdays): an application's 30 working
days across holidays and swapped working days, and in a year not yet published."""

from __future__ import annotations

from datetime import date

import pytest

from doudi.core.errors import InvalidInput
from doudi.core.workdays import WorkingCalendar

CALENDAR = WorkingCalendar()


def test_national_day_2025_and_its_swapped_saturday() -> None:
    # 1-8 October 2025 off; Sunday 28 September and Saturday 11 October worked.
    assert CALENDAR.is_working_day(date(2025, 9, 28))
    assert not CALENDAR.is_working_day(date(2025, 10, 3))
    assert CALENDAR.is_working_day(date(2025, 10, 11))
    # Accepted Friday 26 September: Sunday 28, 29, 30 September (3), Thursday 9, Friday
    # 10, Saturday 11 October (6), five a week from 13 October (26 by Friday 7 November),
    # 10-13 November (30).
    deadline = CALENDAR.add_working_days(date(2025, 9, 26), 30)
    assert not deadline.provisional
    assert deadline.day == date(2025, 11, 13)
    assert CALENDAR.working_days_between(date(2025, 9, 26), deadline.day) == 30


def test_the_spring_festival_2026() -> None:
    # 15-23 February 2026 off; Saturday 14 and Saturday 28 February worked.
    assert not CALENDAR.is_working_day(date(2026, 2, 17))
    assert CALENDAR.is_working_day(date(2026, 2, 14))
    assert CALENDAR.is_working_day(date(2026, 2, 28))
    deadline = CALENDAR.add_working_days(date(2026, 2, 10), 30)
    # Accepted Tuesday 10 February: 11-13 and Saturday 14 (4), 24-27 and Saturday 28 (9),
    # five a week from 2 March (29 by Friday 27 March), Monday 30 March (30).
    assert deadline.day == date(2026, 3, 30)
    assert not deadline.provisional


def test_a_deadline_in_a_year_not_yet_published_is_provisional_never_a_failure() -> None:
    deadline = CALENDAR.add_working_days(date(2026, 12, 10), 30)
    assert deadline.provisional
    # Accepted Thursday 10 December: 11 (1), 14-18 (6), 21-25 (11), 28-31 (15), then
    # Monday to Friday in 2027, New Year's Day not known as a holiday yet: 1 January
    # (16), 4-8 (21), 11-15 (26), 18-21 January (30).
    assert deadline.day == date(2027, 1, 21)
    assert not CALENDAR.add_working_days(date(2026, 11, 2), 20).provisional


def test_the_bureaus_table_makes_a_year_known_and_overrides_the_package() -> None:
    calendar = WorkingCalendar.from_table(
        {"2027": {"holidays": ["2027-01-01"], "workdays": ["2027-01-02"]}}
    )
    assert calendar.knows(2027)
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2027, 1, 2))
    deadline = calendar.add_working_days(date(2026, 12, 10), 30)
    assert not deadline.provisional
    # 1 January off and Saturday 2 January worked: the same count lands on the same day.
    assert deadline.day == date(2027, 1, 21)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"27": {}}, "calendar.27"),
        ({"2027": {"holidays": ["2027-02-30"]}}, "calendar.2027.holidays[0]"),
        ({"2027": {"holidays": ["2028-01-01"]}}, "calendar.2027.holidays[0]"),
        ({"2027": {"workdays": ["2027-01-04"]}}, "calendar.2027.workdays[0]"),
        ({"2027": {"days": []}}, "calendar.2027"),
        ({"2027": {"holidays": ["2027-01-02"], "workdays": ["2027-01-02"]}}, "calendar.2027"),
    ],
)
def test_a_bad_table_is_refused_naming_the_entry(table: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        WorkingCalendar.from_table(table)
    assert raised.value.field == field


def test_a_count_out_of_bounds_is_refused() -> None:
    with pytest.raises(InvalidInput):
        CALENDAR.add_working_days(date(2026, 1, 5), 0)

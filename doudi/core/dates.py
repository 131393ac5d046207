"""Dates as the platform reads and counts them."""

from __future__ import annotations

import re
from datetime import date

from doudi.core.errors import InvalidInput

# The years an enrolment, a comparison or a subsidy summary may be of.
FIRST_YEAR = 1990
LAST_YEAR = 2100

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: object) -> date:
    """A calendar date written ``YYYY-MM-DD`` and nothing else (no week dates, no times)."""
    if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
        raise ValueError(f"expected a date as YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a real calendar date") from None


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later; 29 February moves to 1 March in a common year.

    Used for anniversaries: a poverty exit on 2016-02-29 keeps its grace through
    2017-02-28, the day before the anniversary 2017-03-01.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def age_on(birth: date, day: date) -> int:
    """Completed years of age on ``day`` (周岁)."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def check_year(year: int, field: str) -> None:
    """InvalidInput on ``field`` unless ``year`` is one the platform keeps records of."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInput(field, f"must be from {FIRST_YEAR} to {LAST_YEAR}, got {year}")

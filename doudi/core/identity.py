"""The resident identity number (公民身份号码, GB 11643-1999): the one validator.

A person is keyed by this number everywhere. We check its length, digits,
check digit (ISO 7064 MOD 11-2), birth date and province prefix, and we do
*not* reject an address code created after the birth year, as
``stdnum.cn.ric.is_valid`` does: a card keeps the code of the county where it
was first issued (docs/domain.md section 2).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time

from stdnum.cn import ric

from doudi.core.dates import age_on
from doudi.core.errors import InvalidInput

# Province-level prefixes of GB/T 2260; 71 Taiwan, 81 Hong Kong, 82 Macao, and
# 83 used on the residence permits of Taiwan residents (台湾居民居住证).
PROVINCE_PREFIXES = frozenset(
    {
        *("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37"),
        *("41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64"),
        *("65", "71", "81", "82", "83"),
    }
)

_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII digits only: a full-width 4 is not the same key


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A validated identity number with what it tells: birth date and sex."""

    number: str
    birth_date: date
    sex: str  # "male" / "female", from the parity of the 17th digit

    def age_on(self, day: date) -> int:
        return age_on(self.birth_date, day)


def parse_resident_id(text: object, *, today: date | None = None) -> ResidentId:
    """Validate an identity number; raise ``ValueError`` saying what is wrong with it.

    A lower-case ``x`` check character is accepted and stored upper-case.
    """
    number = resident_id_number(text, today=today)
    birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    return ResidentId(number, birth, "male" if int(number[16]) % 2 else "female")


def resident_id_number(text: object, *, today: date | None = None) -> str:
    """The number, stripped and with an upper-case ``X``, when valid (what
    :func:`parse_resident_id` checks, without the birth date and sex it builds: a roster
    checks a million numbers); ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(text, str):
        raise ValueError("an identity number must be a string of 18 characters")
    number = text.strip().upper()
    if len(number) != 18:
        raise ValueError(f"an identity number has 18 characters, not {len(number)}")
    if not _SHAPE.fullmatch(number):
        raise ValueError("an identity number is 17 digits and a check digit (ASCII 0-9 or X)")
    if number[:2] not in PROVINCE_PREFIXES:
        raise ValueError(f"unknown province prefix {number[:2]}")
    birth = number[6:14]
    # Eight digits compare as dates do: the common case needs no date object.
    if not (
        _EARLIEST_BIRTH <= birth <= (_today_text() if today is None else f"{today:%Y%m%d}")
        and birth[4:] in _MONTH_DAYS
        and (birth[4:] != "0229" or calendar.isleap(int(birth[:4])))
    ):
        _birth_problem(birth, today or date.today())
    expected = ric.calc_check_digit(number)
    if number[-1] != expected:
        raise ValueError(f"wrong check digit {number[-1]} (the number's digits give {expected})")
    return number


def _birth_problem(birth: str, today: date) -> None:
    """Raise what is wrong with the eight digits of a birth date."""
    try:
        day = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        raise ValueError(f"birth date {birth} is not a real date") from None
    if day > today:
        raise ValueError(f"birth date {day.isoformat()} is in the future")
    if day.year < 1880:
        raise ValueError(f"birth date {day.isoformat()} is too far in the past")


_EARLIEST_BIRTH = "18800101"
# Every month and day of a leap year, as the last four digits of a birth date.
_MONTH_DAYS = frozenset(
    f"{month:02d}{day:02d}"
    for month in range(1, 13)
    for day in range(1, calendar.monthrange(2000, month)[1] + 1)
)
_today: tuple[str, float] = ("", 0.0)  # today as YYYYMMDD, until when (time.time()) it is


def _today_text() -> str:
    """Today as eight digits, remembered until midnight (``date.today()`` costs more than
    the rest of a number's checks)."""
    global _today
    text, until = _today
    if time.time() < until:
        return text
    day = date.today()
    _today = (f"{day:%Y%m%d}", datetime.combine(day + timedelta(days=1), dt_time()).timestamp())
    return _today[0]


def read_resident_id(text: object, field: str, *, today: date | None = None) -> ResidentId:
    """:func:`parse_resident_id` for input fields: a bad number is InvalidInput on ``field``."""
    try:
        return parse_resident_id(text, today=today)
    except ValueError as error:
        raise InvalidInput(field, f"invalid identity number: {error}") from None


def mask(number: str) -> str:
    """What logs may show of an identity number: ``110105********002X`` (PIPL)."""
    if len(number) != 18:
        return "*" * len(number)
    return number[:6] + "*" * 8 + number[14:]

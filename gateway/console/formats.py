"""How the console writes values for people: yuan with two decimals, percentages, times in
the bureau's time zone, identity numbers masked unless the role may see them whole.
Templates use these as filters (``{{ fen | yuan }}``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from google.protobuf import timestamp_pb2
from google.type import date_pb2

from doudi.core.identity import mask
from doudi.core.money import format_percent, format_yuan
from doudi.core.monitoring import BUREAU_TIMEZONE


def yuan(fen: int | None) -> str:
    """``123456`` fen → ``1,234.56`` (yuan, two decimals)."""
    return "" if fen is None else format_yuan(int(fen))


def hundredths(value: int) -> str:
    """Hundredths as a number with two decimals (``1234`` → ``12.34``), exactly."""
    sign = "-" if value < 0 else ""
    whole, rest = divmod(abs(int(value)), 100)
    return f"{sign}{whole}.{rest:02d}"


def percent(basis_points: int | None) -> str:
    return "" if basis_points is None else format_percent(int(basis_points))


def moment(value: Any) -> str:
    """A timestamp (proto or aware datetime) as the bureau's local time, to the minute."""
    if isinstance(value, timestamp_pb2.Timestamp):
        if value.seconds == 0 and value.nanos == 0:
            return ""
        value = datetime.fromtimestamp(value.seconds, UTC)
    if not isinstance(value, datetime):
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local: datetime = value.astimezone(BUREAU_TIMEZONE)
    return local.strftime("%Y-%m-%d %H:%M")


def day(value: Any) -> str:
    """A date (proto or ``date``) as ``2026-12-04``; empty when unset."""
    if isinstance(value, date_pb2.Date):
        if value.year == 0:
            return ""
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, date):
        return value.isoformat()
    return ""


def today() -> date:
    """The bureau's date now."""
    return datetime.now(BUREAU_TIMEZONE).date()


def identity(number: str, full: bool) -> str:
    """An identity number as the role may see it: whole, or ``411323********0012``."""
    return number if full else mask(number)

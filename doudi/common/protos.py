"""Conversions between protobuf messages and the core's values, shared by every service.

Dates travel as ``google.type.Date``; enums as ``<ENUM>_<CODE>`` values whose
lower-cased suffix is the core's code (``STATUS_REGISTERED_POOR`` is
``registered_poor``). An unset or unknown value is an :class:`InvalidInput`
naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from google.protobuf import timestamp_pb2
from google.type import date_pb2

from doudi.core.errors import InvalidInput

# The range of the int64 fields (amounts, ids): a Python int outside it cannot be sent.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def to_date(value: date_pb2.Date, field: str) -> date:
    """A complete calendar date, or InvalidInput (unset, partial or impossible dates)."""
    if value.year == 0 and value.month == 0 and value.day == 0:
        raise InvalidInput(field, "required")
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise InvalidInput(
            field, f"{value.year:04d}-{value.month:02d}-{value.day:02d} is not a real date"
        ) from None


def optional_date(message: object, name: str, field: str) -> date | None:
    """The date in ``message.name`` if the field is set, else None."""
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    return to_date(getattr(message, name), field)


def from_date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """A moment as a Timestamp; naive datetimes (SQLite hands them back) are UTC, as stored.

    Worked out from the moment's distance to the epoch, as ``Timestamp.FromDatetime`` does
    through a time tuple at several times the cost (every settlement answered makes one)."""
    since = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000
    )


class EnumCodes:
    """The two-way mapping between a proto enum and the core's codes for it."""

    def __init__(
        self,
        enum: Any,  # a generated enum class (mypy-protobuf types each one separately)
        prefix: str,
        *,
        code: Callable[[str], str] = str.lower,
    ) -> None:
        self.enum = enum
        self._by_value: dict[int, str] = {}
        self._by_code: dict[str, int] = {}
        for name, number in enum.items():
            if number == 0:
                continue
            core_code = code(name.removeprefix(prefix))
            self._by_value[number] = core_code
            self._by_code[core_code] = number

    @property
    def by_value(self) -> Mapping[int, str]:
        """The core code of each set value, for a caller that writes a field's name only
        for its error (:meth:`code` then raises it)."""
        return self._by_value

    def code(self, value: int, field: str) -> str:
        """The core code of ``value``; unset or unknown values are InvalidInput."""
        found = self._by_value.get(value)
        if found is None:
            known = ", ".join(self.enum.Name(number) for number in self._by_value)
            raise InvalidInput(
                field,
                f"required: one of {known}"
                if value == 0
                else (f"unknown value {value} (one of {known})"),
            )
        return found

    def codes(self, values: Iterable[int], field: str) -> list[str]:
        """The core codes of a repeated field's ``values``; an unset or unknown one is
        InvalidInput naming ``field[index]`` (the name is written only then)."""
        by_value = self._by_value
        codes = []
        for index, value in enumerate(values):
            found = by_value.get(value)
            codes.append(found if found is not None else self.code(value, f"{field}[{index}]"))
        return codes

    def optional_code(self, value: int, field: str) -> str | None:
        return None if value == 0 else self.code(value, field)

    def __iter__(self) -> Iterator[str]:
        """The core codes, in the enum's order."""
        return iter(self._by_code)

    def value(self, code: str | None) -> Any:
        """The enum number of a core code (0 for None), typed for any message field."""
        return 0 if code is None else self._by_code[code]

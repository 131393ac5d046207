"""An agency's roster file (名单, 花名册), read as typed lines for ``doudi roster submit``.

A roster is a CSV (UTF-8, with or without BOM, or GB18030 as Chinese Excel
exports often are) or an Excel ``.xlsx`` workbook (its first sheet). The first
non-empty row is the header; its names (see :data:`HEADER_ALIASES`) say which
column holds which field, and other columns are ignored. Each later row with a
value in those columns becomes a :class:`RosterLine`, or one :class:`LineError`
per value that cannot be read at all: a malformed date, an unknown status, an
identity number Excel stored as a number. Everything else (identity-number checks, blank
required values, status ownership, periods) is the datashare service's to
judge, so that rows sent over gRPC and rows read from files are checked in one
place.

Line numbers are what the clerk sees: the row number in Excel, the line on
which the record starts in a text editor (the header is line 1 when it is the
first line).

:func:`read_roster` reads the whole file; :func:`read_roster_batches` reads the
same lines a batch at a time, for rosters of a million rows (one reader: the
first gathers the batches of the second).
"""

from __future__ import annotations

import codecs
import csv
import re
import sys
import zipfile
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from pathlib import Path
from typing import Final, TypeVar
from xml.etree.ElementTree import ParseError

from doudi.core.codes import STATUSES
from doudi.core.errors import InvalidInput

PERSON_ID: Final = "person_id"
NAME: Final = "name"
HOUSEHOLD_ID: Final = "household_id"
STATUS: Final = "status"
VALID_FROM: Final = "valid_from"
VALID_TO: Final = "valid_to"
REFERENCE: Final = "reference"

# Accepted header names per field, matched ignoring case and surrounding spaces.
HEADER_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    PERSON_ID: ("person_id", "身份证号", "身份证号码", "公民身份号码", "证件号码"),
    NAME: ("name", "姓名"),
    HOUSEHOLD_ID: ("household_id", "户编号", "家庭编号"),
    STATUS: ("status", "身份类别", "救助类别", "人员类别"),
    VALID_FROM: ("valid_from", "起始日期", "认定日期", "开始日期"),
    VALID_TO: ("valid_to", "终止日期", "结束日期"),
    REFERENCE: ("reference", "业务编号"),
}
# Names used only when none of the field's HEADER_ALIASES is present: a roster
# without a household number groups households by the householder's identity
# number, and a bare 编号 may sit beside a 业务编号 that is the real reference.
FALLBACK_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    HOUSEHOLD_ID: ("户主身份证号", "户主身份证号码"),
    REFERENCE: ("编号",),
}
REQUIRED_FIELDS: Final = (PERSON_ID, NAME, HOUSEHOLD_ID, STATUS, VALID_FROM, REFERENCE)

# The Chinese names agencies write for each status code of doudi.core.codes.STATUSES
# (docs/domain.md sections 3 and 4). The codes themselves are accepted too, in any case.
STATUS_NAMES: Final[dict[str, str]] = {
    "特困供养": "extreme_poverty",
    "特困供养人员": "extreme_poverty",
    "低保": "dibao",
    "最低生活保障": "dibao",
    "最低生活保障家庭成员": "dibao",
    "孤儿": "orphan",
    "低收入": "low_income",
    "低保边缘": "low_income",
    "低收入家庭成员": "low_income",
    "支出型困难": "expenditure_hardship",
    "支出型重病": "expenditure_hardship",
    "支出型重病患者": "expenditure_hardship",
    "事实无人抚养儿童": "unsupported_child",
    "边缘家庭": "marginal",
    "边缘家庭救助对象": "marginal",
    "建档立卡贫困户": "registered_poor",
    "脱贫户": "poverty_exited",
    "易返贫致贫": "at_risk",
    "易返贫致贫人口": "at_risk",
    "监测对象": "at_risk",
    "困难职工": "difficult_worker",
    "离休干部": "retired_cadre",
    "重度残疾": "severely_disabled",
    "优抚对象": "entitled_group",
}

XLSX: Final = "xlsx"  # RosterFile.encoding of a workbook


@dataclass(frozen=True, slots=True)
class RosterLine:
    """One roster row as read: text passed through (trimmed), the status as its code.

    ``status``, ``valid_from`` and ``valid_to`` are None where the cell is blank.
    """

    line: int
    person_id: str
    name: str
    household_id: str
    status: str | None
    valid_from: date | None
    valid_to: date | None
    reference: str


@dataclass(frozen=True, slots=True)
class LineError:
    """A value on ``line`` that cannot be read; ``field`` is a RosterLine field name."""

    line: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class RosterFile:
    """A roster as read, or (:func:`read_roster_batches`) consecutive lines of one:
    ``encoding`` is ``utf-8-sig`` (UTF-8 with BOM), ``utf-8``, ``gb18030`` or ``xlsx``;
    lines and errors each in file order.
    """

    encoding: str
    lines: list[RosterLine]
    errors: list[LineError]


BATCH_SIZE: Final = 10_000


def read_roster(path: Path) -> RosterFile:
    """Read a ``.csv`` or ``.xlsx`` roster; InvalidInput on ``file`` when it is neither,
    cannot be read as one, or lacks a required column. OSError when it cannot be opened.
    """
    encoding = ""
    lines: list[RosterLine] = []
    errors: list[LineError] = []
    for batch in read_roster_batches(path, batch_size=sys.maxsize):
        encoding = batch.encoding
        lines += batch.lines
        errors += batch.errors
    return RosterFile(encoding, lines, errors)


def read_roster_batches(path: Path, batch_size: int = BATCH_SIZE) -> Generator[RosterFile]:
    """:func:`read_roster` a batch at a time, holding one batch in memory.

    Each batch covers consecutive rows and holds at most ``batch_size`` lines: it ends
    once its lines and errors together number ``batch_size`` (one row's errors stay in
    one batch). There is at least one batch (empty when the roster has no rows), so
    the first ``next()`` checks the file's format and header. The exceptions are
    :func:`read_roster`'s, raised by the ``next()`` that meets them: a record deep in
    the file may turn out not to be CSV after earlier batches came. Closing the
    iterator closes the file.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        encoding = _csv_encoding(path)
        with path.open(encoding=encoding, newline="") as text:
            try:
                yield from _read_rows(encoding, _csv_rows(text), batch_size)
            except UnicodeDecodeError:
                raise InvalidInput("file", "is neither UTF-8 nor GB18030 text") from None
        return
    if suffix == ".xlsx":
        _check_xlsx(path)
        with closing(_xlsx_rows(path)) as rows:  # closes the workbook also when reading stops early
            yield from _read_rows(XLSX, rows, batch_size)
        return
    if suffix == ".xls":
        raise InvalidInput(
            "file", "is an Excel 97-2003 workbook (.xls); save it as .xlsx or CSV and submit that"
        )
    raise InvalidInput(
        "file",
        f"must be a CSV (.csv) or Excel (.xlsx) file, not {suffix or 'one without a suffix'}",
    )


def line_count(path: Path) -> int | None:
    """How many lines a CSV roster has (a last line without a line break counted), the
    measure of its progress: batches carry line numbers. None for a workbook, whose rows
    are known only by reading them. OSError when the file cannot be read."""
    if path.suffix.lower() != ".csv":
        return None
    lines = 0
    last = b"\n"
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


# -- file formats -------------------------------------------------------------------------

_CHUNK = 1 << 20
# What a file starts with when it is not text, for clear refusals.
_SIGNATURES: Final = (
    (b"PK\x03\x04", "a zip archive (an .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 (.xls) or password-protected workbook"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\xff\xfe", "UTF-16 text (Excel's 'Unicode text'); save it as CSV UTF-8"),
    (b"\xfe\xff", "UTF-16 text; save it as CSV UTF-8"),
)
# Bytes below 0x80 are ASCII in both UTF-8 and GB18030, so these bytes are these
# control characters in either, and never appear in a CSV.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _what_it_is(head: bytes) -> str | None:
    return next((what for magic, what in _SIGNATURES if head.startswith(magic)), None)


def _csv_encoding(path: Path) -> str:
    """``utf-8-sig``, ``utf-8`` or ``gb18030``: one pass over the bytes, a chunk at a time."""
    with path.open("rb") as file:
        chunk = file.read(_CHUNK)
        if not chunk:
            raise InvalidInput("file", "is empty")
        what = _what_it_is(chunk)
        if what is not None:
            raise InvalidInput("file", f"is {what}, not CSV text")
        bom = chunk.startswith(codecs.BOM_UTF8)
        decoder = codecs.getincrementaldecoder("utf-8")()
        utf8 = True
        offset = 0
        while chunk:
            control = _CONTROL_BYTES.search(chunk)
            if control is not None:
                raise InvalidInput(
                    "file",
                    f"is not CSV text: byte 0x{control.group()[0]:02x} at offset "
                    f"{offset + control.start()} is a control character",
                )
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            offset += len(chunk)
            chunk = file.read(_CHUNK)
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if bom and not utf8:
        raise InvalidInput("file", "starts as UTF-8 (with a BOM) but is not UTF-8 text throughout")
    if bom:
        return "utf-8-sig"
    return "utf-8" if utf8 else "gb18030"


def _csv_rows(text: Iterator[str]) -> Iterator[tuple[int, Sequence[object]]]:
    """Each record with the line on which it starts."""
    reader = csv.reader(text)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as error:
        raise InvalidInput("file", f"line {start}: not valid CSV: {error}") from None


def _check_xlsx(path: Path) -> None:
    with path.open("rb") as file:
        head = file.read(8)
    if not head.startswith(b"PK\x03\x04"):
        what = _what_it_is(head) or ("empty" if not head else "not a zip archive")
        raise InvalidInput("file", f"is not an Excel (.xlsx) workbook: it is {what}")


# What openpyxl raises on a zip that is not a workbook or a damaged one.
_WORKBOOK_ERRORS = (zipfile.BadZipFile, KeyError, ValueError, OSError, ParseError, TypeError)


def _xlsx_rows(path: Path) -> Generator[tuple[int, Sequence[object]]]:
    """Each row of the first sheet with its row number, cached formula results as values."""
    # Imported here: openpyxl takes a fifth of a second to import, which the other
    # commands need not pay.
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except _WORKBOOK_ERRORS as error:
        raise InvalidInput("file", f"is not a readable Excel (.xlsx) workbook: {error}") from None
    try:
        if not workbook.worksheets:
            raise InvalidInput("file", "is an Excel workbook without a worksheet")
        sheet = workbook.worksheets[0]
        if hasattr(sheet, "reset_dimensions"):  # every sheet of a read-only workbook
            # The stored dimensions may be wrong (some programs write A1); without
            # them openpyxl reads every row there is.
            sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        number = 0
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except _WORKBOOK_ERRORS as error:
                raise InvalidInput(
                    "file", f"row {number + 1} of the workbook cannot be read: {error}"
                ) from None
            number += 1
            yield number, row
    finally:
        workbook.close()


# -- header ---------------------------------------------------------------------------------


def _key(header: object) -> str:
    return str(header).strip().casefold() if header is not None else ""


_PRIMARY = {_key(alias): field for field, aliases in HEADER_ALIASES.items() for alias in aliases}
_FALLBACK = {_key(alias): field for field, aliases in FALLBACK_ALIASES.items() for alias in aliases}


def _columns(line: int, header: Sequence[object]) -> dict[str, int]:
    """Which column holds each field; InvalidInput on a missing or doubled column."""
    found: dict[str, list[int]] = {}
    fallback: dict[str, list[int]] = {}
    for index, cell in enumerate(header):
        key = _key(cell)
        if key in _PRIMARY:
            found.setdefault(_PRIMARY[key], []).append(index)
        elif key in _FALLBACK:
            fallback.setdefault(_FALLBACK[key], []).append(index)
    for field, indexes in fallback.items():
        found.setdefault(field, indexes)
    for field, indexes in found.items():
        if len(indexes) > 1:
            names = ", ".join(repr(str(header[index]).strip()) for index in indexes)
            raise InvalidInput(
                "file", f"line {line}: columns {names} all give {field}; keep one of them"
            )
    missing = [field for field in REQUIRED_FIELDS if field not in found]
    if missing:
        accepted = "; ".join(
            f"{field}: {', '.join(HEADER_ALIASES[field] + FALLBACK_ALIASES.get(field, ()))}"
            for field in missing
        )
        present = ", ".join(str(cell).strip() for cell in header if _key(cell))
        raise InvalidInput(
            "file",
            f"missing column {', '.join(missing)} in the header (the first non-empty row, "
            f"line {line}: {present}); accepted header names: {accepted}",
        )
    return {field: indexes[0] for field, indexes in found.items()}


# -- values ---------------------------------------------------------------------------------

_SCIENTIFIC = re.compile(r"[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+")
_DATE_FORMS = (
    re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"),
    re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})"),
    re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"),
    re.compile(r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日"),
)
_STATUS_LOOKUP: Final = {**{code: code for code in STATUSES}, **STATUS_NAMES}
_CACHE_LIMIT = 1 << 16  # distinct date and status texts remembered per file

T = TypeVar("T")


def _number_text(value: int | float) -> str:
    """The digits of a whole number Excel holds exactly; ValueError for any other number."""
    if abs(value) < 10**15 and (isinstance(value, int) or value.is_integer()):
        return str(int(value))
    raise ValueError(
        f"the cell holds the number {value!r}, which Excel may have rounded; "
        "format the column as text (文本) and enter the values again"
    )


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(value)
    return str(value)


def _person_id(value: object) -> str:
    """The number as text without spaces and with an upper-case X; not validated here."""
    if isinstance(value, str):
        number = value.strip()
        if len(number) == 18 and number.isalnum():  # the usual case: nothing to tidy inside
            return number if number[-1] != "x" else number[:-1] + "X"
        number = "".join(number.split())
        if number[-1:] == "x":
            number = number[:-1] + "X"
        if len(number) != 18 and _SCIENTIFIC.fullmatch(number):
            raise ValueError(
                f"{value.strip()!r} is a number Excel shortened to 15 digits; "
                "format the column as text (文本) and enter the identity numbers again"
            )
        return number
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"the cell holds the number {value!r}, not text: Excel keeps only 15 digits of a "
            "number; format the column as text (文本) and enter the identity numbers again"
        )
    raise ValueError(f"the cell holds {value!r}, not the identity number as text")


def _parse_date(value: object) -> date | None:
    """A date cell, or text in one of the four forms; None when blank."""
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise ValueError(f"the cell holds {value.isoformat(' ')}, a time of day, not a date")
        return value.date()
    if isinstance(value, date):
        return value
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)  # 20240301 typed into a number cell
    else:
        raise ValueError(f"the cell holds {value!r}, not a date")
    if not text:
        return None
    for form in _DATE_FORMS:
        match = form.fullmatch(text)
        if match is not None:
            year, month, day = (int(part) for part in match.groups())
            try:
                return date(year, month, day)
            except ValueError:
                raise ValueError(f"{text!r} is not a real calendar date") from None
    raise ValueError(
        f"{text!r} is not a date written 2024-03-01, 2024/3/1, 20240301 or 2024年3月1日"
    )


def _parse_status(value: object) -> str | None:
    """The status code of a code or Chinese name; None when blank."""
    if value is None:
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    if not text:
        return None
    code = _STATUS_LOOKUP.get(text) or _STATUS_LOOKUP.get(text.lower())
    if code is None:
        raise ValueError(f"unknown status {text!r}: neither a status code nor its Chinese name")
    return code


def _remembered(parse: Callable[[object], T]) -> Callable[[object], T]:
    """``parse`` keeping its answers for the first distinct values (rosters repeat them)."""
    answers: dict[object, T] = {}

    def remembered(value: object) -> T:
        try:
            return answers[value]
        except KeyError:
            answer = parse(value)
            if len(answers) < _CACHE_LIMIT:
                answers[value] = answer
            return answer

    return remembered


# -- rows -----------------------------------------------------------------------------------


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_rows(
    encoding: str, rows: Iterator[tuple[int, Sequence[object]]], batch_size: int
) -> Generator[RosterFile]:
    """The header, then a RosterLine or LineErrors for every row with a roster value, in
    batches cut once they number ``batch_size`` together (at least one batch).

    A row whose roster columns are all blank is skipped, as is one with text only
    in other columns (a template's pre-numbered 序号 rows).
    """
    for line, row in rows:
        if not all(_is_blank(cell) for cell in row):
            columns = _columns(line, row)
            break
    else:
        raise InvalidInput("file", "has no header row: every row is empty")
    person_id, name, household_id, status, valid_from, reference = (
        columns[field] for field in REQUIRED_FIELDS
    )
    valid_to = columns.get(VALID_TO)
    roster_values = itemgetter(*columns.values())
    width = max(columns.values()) + 1
    read_status = _remembered(_parse_status)
    read_date = _remembered(_parse_date)
    readers: tuple[tuple[str, int | None, Callable[[object], object]], ...] = (
        (PERSON_ID, person_id, _person_id),
        (NAME, name, _text),
        (HOUSEHOLD_ID, household_id, _text),
        (STATUS, status, read_status),
        (VALID_FROM, valid_from, read_date),
        (VALID_TO, valid_to, read_date),
        (REFERENCE, reference, _text),
    )
    lines: list[RosterLine] = []
    errors: list[LineError] = []
    batches = 0
    for line, row in rows:
        if len(row) < width:
            row = [*row, *(None,) * (width - len(row))]
        if _is_blank(row[person_id]) and all(_is_blank(value) for value in roster_values(row)):
            continue
        try:
            lines.append(
                RosterLine(
                    line,
                    _person_id(row[person_id]),
                    _text(row[name]),
                    _text(row[household_id]),
                    read_status(row[status]),
                    read_date(row[valid_from]),
                    None if valid_to is None else read_date(row[valid_to]),
                    _text(row[reference]),
                )
            )
        except ValueError:
            # Rare: read each value again to report every one that is bad.
            for field, column, read in readers:
                if column is not None:
                    try:
                        read(row[column])
                    except ValueError as error:
                        errors.append(LineError(line, field, str(error)))
        if len(lines) + len(errors) >= batch_size:
            yield RosterFile(encoding, lines, errors)
            lines, errors = [], []
            batches += 1
    if lines or errors or not batches:
        yield RosterFile(encoding, lines, errors)

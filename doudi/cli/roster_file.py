"""An agency's roster file (名单, 花名册), read as typed lines for ``doudi roster submit``.

A roster is a CSV (UTF-8, with or without BOM, or GB18030 as Chinese Excel
exports often are) or an Excel ``.xlsx`` workbook (its active visible sheet). The first
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

Files are read strictly and within bounds (docs/roster-files.md): a CSV's quotes
must pair up on their lines, its encoding is decided once for the file (a line in
another is a line error, not garbled text), a workbook's rows must be numbered in
order, and a file beyond the limits below or damaged in any way is refused whole
(InvalidInput on ``file``, one sentence) before the first batch, so that nothing is
sent of it. Invisible and control characters are removed from values.
"""

from __future__ import annotations

import codecs
import csv
import posixpath
import re
import sys
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Final, TypeVar
from xml.parsers import expat

from doudi.core.codes import STATUSES
from doudi.core.errors import InvalidInput
from doudi.core.names import HIDDEN_CATEGORIES, visible

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

# The limits of a roster file (docs/roster-files.md); a file beyond one is refused whole,
# before anything is sent, except MAX_VALUE_CHARS, a line error of the value.
MAX_ROWS: Final = 2_000_000  # records of a CSV file (a workbook's sheet stops at 1,048,576)
MAX_COLUMNS: Final = 200  # columns with a value (column GR of a sheet)
MAX_CELL_CHARS: Final = 32_767  # characters of any cell, Excel's own limit
MAX_VALUE_CHARS: Final = 200  # characters of a roster value: a name, a number, a reference
MAX_LINE_BYTES: Final = 1 << 20  # bytes of one line of a CSV file
MAX_UNCOMPRESSED_BYTES: Final = 1 << 30  # bytes a workbook unpacks to, all parts together
MAX_COMPRESSION_RATIO: Final = 100  # unpacked to packed size of a part (above 1 MiB): a zip bomb


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
    one batch). There is at least one batch (empty when the roster has no rows). The
    first ``next()`` raises :func:`read_roster`'s exceptions: the whole file is read
    once to find what makes it unreadable (a quote never closed, a damaged workbook,
    a limit passed) before the first batch comes, so that nothing is sent of a file
    that cannot be read to its end. Closing the iterator closes the file.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        scan = _scan_csv(path)
        if (
            scan.quoted
            or scan.longest > MAX_CELL_CHARS
            or scan.widest > MAX_COLUMNS
            or scan.breaks > MAX_ROWS
        ):
            # What the scan cannot rule out: a quote that never closes or joins lines, a
            # cell or a row too large, too many records (CR ends a line too), found
            # before the first batch.
            _read_through(_csv_rows(path, scan))
        with closing(_csv_rows(path, scan)) as rows:
            yield from _read_rows(scan.encoding, rows, batch_size)
        return
    if suffix == ".xlsx":
        _check_xlsx(path)
        with path.open("rb") as file, closing(_workbook(file)) as workbook:
            _read_through(workbook.rows())
            yield from _read_rows(XLSX, workbook.rows(), batch_size)
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


def _read_through(rows: Iterator[object]) -> None:
    """Read every row, for the faults of the file: bounded memory, one row at a time."""
    for _ in rows:
        pass


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """A cell whose text cannot be taken as written (a line in another encoding, a date
    serial no calendar holds): the reading of a roster value it is in fails with ``reason``."""

    reason: str


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _CsvScan:
    """What one pass over a CSV file's bytes found: ``clean`` when every line decodes in
    ``encoding``; whether it holds a quote; its longest line (bytes), the most commas
    of a line, plus one, and how many CR and LF bytes it holds."""

    encoding: str
    clean: bool
    quoted: bool
    longest: int
    widest: int
    breaks: int


def _scan_csv(path: Path) -> _CsvScan:
    """The file's encoding, ``utf-8-sig``, ``utf-8`` or ``gb18030``, decided once for the
    file in one pass over its bytes, a chunk at a time, which also refuses control bytes,
    overlong lines and files of more than :data:`MAX_ROWS` lines.

    A file with a BOM is UTF-8. Otherwise it is UTF-8 unless as many of its lines that
    are not ASCII fail to decode as UTF-8 as decode; lines in the other encoding are
    then line errors (:func:`_csv_rows`), not text decoded wrongly.
    """
    with path.open("rb") as file:
        chunk = file.read(_CHUNK)
        if not chunk:
            raise InvalidInput("file", "is empty")
        what = _what_it_is(chunk)
        if what is not None:
            raise InvalidInput("file", f"is {what}, not CSV text")
        bom = chunk.startswith(codecs.BOM_UTF8)
        utf8 = not_utf8 = 0  # lines that are not ASCII, by whether they decode as UTF-8
        lines_before = longest = commas = offset = breaks = 0
        quoted = False
        rest = b""
        while chunk or rest:
            text = rest + chunk
            end = text.rfind(b"\n") + 1 if chunk else len(text)
            text, rest = text[:end], text[end:]
            lines = text.split(b"\n")
            longest = max(longest, *map(len, lines))
            if len(rest) > MAX_LINE_BYTES or longest > MAX_LINE_BYTES:
                long = next((n for n, line in enumerate(lines) if len(line) > MAX_LINE_BYTES), -1)
                number = lines_before + (long if long >= 0 else len(lines) - 1) + 1
                raise InvalidInput(
                    "file",
                    f"line {number} is longer than {MAX_LINE_BYTES:,} bytes, "
                    "more than a roster's line holds",
                )
            control = _CONTROL_BYTES.search(text)
            if control is not None:
                number = lines_before + text.count(b"\n", 0, control.start()) + 1
                raise InvalidInput(
                    "file",
                    f"is not CSV text: byte 0x{control.group()[0]:02x} at offset "
                    f"{offset + control.start()}, on line {number}, is a control character",
                )
            if not text.isascii():
                if _is_utf8(text):
                    utf8 += sum(not line.isascii() for line in lines)
                else:
                    for line in lines:
                        if not line.isascii():
                            if _is_utf8(line):
                                utf8 += 1
                            else:
                                not_utf8 += 1
            quoted = quoted or b'"' in text
            commas = max(commas, *map(bytes.count, lines, repeat(b",")))
            lines_before += len(lines) - 1
            offset += len(text)
            breaks += len(lines) - 1 + text.count(b"\r")
            if lines_before > MAX_ROWS:
                raise InvalidInput(
                    "file", f"has more than {MAX_ROWS:,} lines, the most a roster holds"
                )
            chunk = file.read(_CHUNK)
    encoding = "utf-8" if utf8 > not_utf8 or not not_utf8 else "gb18030"
    if bom:
        encoding = "utf-8-sig"
    clean = encoding != "gb18030" and not not_utf8
    return _CsvScan(encoding, clean, quoted, longest, commas + 1, breaks)


_SURROGATES = re.compile("[\udc80-\udcff]")  # the bytes errors="surrogateescape" kept


def _misfit(encoding: str, line: str) -> str | None:
    """Why a line decoded with errors="surrogateescape" is not text in ``encoding``."""
    if _SURROGATES.search(line):
        name = "GB18030" if encoding == "gb18030" else "UTF-8"
        return f"does not decode as {name}, the encoding of the rest of the file"
    if encoding == "gb18030" and _is_utf8(line.encode("gb18030")):
        return "is UTF-8 text in a file that is otherwise GB18030"
    return None


_CSV_ERRORS: Final = (
    ("unexpected end of data", "line {start}: a quote opened on this line is never closed"),
    (
        "field larger than field limit",
        "line {start}: a value of more than {cell:,} characters, the most a cell holds "
        "(or a quote opened on this line is never closed)",
    ),
    (
        "expected after",
        "line {line}: a stray quote: text follows the closing quote of a value{opened} (a "
        'quote inside a value is written twice, "")',
    ),
)


def _csv_rows(path: Path, scan: _CsvScan) -> Generator[tuple[int, Sequence[object]]]:
    """Each record with the line on which it starts, read strictly: InvalidInput at its line
    for a quote never closed, a stray quote, a value holding both a line break and a comma
    (a quote closed lines later, which would join those lines into one value) and for a
    record beyond the limits. The values of a line not in ``encoding`` are _Unreadable.
    """
    encoding = scan.encoding
    misfits: list[str] = []  # why lines of the record being read are not in ``encoding``
    cells = scan.longest > MAX_CELL_CHARS  # whether a line may hold a cell too long

    def lines(text: Iterator[str]) -> Iterator[str]:
        for line in text:
            if not line.isascii():
                reason = _misfit(encoding, line)
                if reason is not None:
                    misfits.append(reason)
            yield line

    with path.open(encoding=encoding, errors="surrogateescape", newline="") as text:
        reader = csv.reader(text if scan.clean else lines(text), strict=True)
        start = 1
        records = 0
        try:
            for row in reader:
                end = reader.line_num
                records += 1
                _check_record(start, end, row, records, cells)
                if misfits:
                    reason = misfits[0]
                    misfits.clear()
                    yield start, [_Unreadable(reason) if _misfits(encoding, v) else v for v in row]
                else:
                    yield start, row
                start = end + 1
        except csv.Error as error:
            message = str(error)
            template = next((t for key, t in _CSV_ERRORS if key in message), None)
            if template is None:
                template = "line {start}: not valid CSV: " + message.replace("{", "{{")
            line = reader.line_num
            opened = f" quoted from line {start}" if line > start else ""
            raise InvalidInput(
                "file",
                template.format(start=start, line=line, opened=opened, cell=MAX_CELL_CHARS),
            ) from None


def _check_record(start: int, end: int, row: list[str], records: int, cells: bool) -> None:
    """InvalidInput for a record beyond the limits or holding lines a stray quote joined;
    the length of its cells is checked when ``cells`` or the record spans lines."""
    if records > MAX_ROWS:
        raise InvalidInput("file", f"has more than {MAX_ROWS:,} rows, the most a roster holds")
    if len(row) > MAX_COLUMNS:
        raise InvalidInput(
            "file", f"line {start}: {len(row)} columns, more than the {MAX_COLUMNS} a roster holds"
        )
    if (cells or end > start) and max(map(len, row), default=0) > MAX_CELL_CHARS:
        raise InvalidInput(
            "file",
            f"line {start}: a value of more than {MAX_CELL_CHARS:,} characters, "
            "the most a cell holds",
        )
    if end > start and any(("\n" in v or "\r" in v) and "," in v for v in row):
        raise InvalidInput(
            "file",
            f"line {start}: a quote opened on this line is closed only on line {end}, "
            f"which joins {end - start + 1} lines into one value; remove the stray "
            'quote (a quote inside a value is written twice, "")',
        )


def _misfits(encoding: str, value: str) -> bool:
    """Whether a value of a line not in ``encoding`` holds the text that is not."""
    return bool(_SURROGATES.search(value)) if encoding != "gb18030" else not value.isascii()


def _check_xlsx(path: Path) -> None:
    with path.open("rb") as file:
        head = file.read(8)
    if not head.startswith(b"PK\x03\x04"):
        what = _what_it_is(head) or ("empty" if not head else "not a zip archive")
        raise InvalidInput("file", f"is not an Excel (.xlsx) workbook: it is {what}")


def _workbook(file: BinaryIO) -> _Workbook:
    """The workbook in ``file``, its parts checked and its active sheet found."""
    try:
        archive = zipfile.ZipFile(file)
    except _DAMAGE as error:
        raise _unreadable(f"its zip archive is damaged ({error})") from None
    try:
        return _Workbook(archive)
    except InvalidInput:
        archive.close()
        raise
    except _DAMAGE as error:
        archive.close()
        raise _unreadable(f"it is damaged ({error})") from None


# -- workbooks --------------------------------------------------------------------------------

_EXCEL_ROWS: Final = 1_048_576  # Excel's last row and column (XFD)
_EXCEL_COLUMNS: Final = 16_384
_RATIO_FLOOR: Final = 1 << 20  # parts unpacking to less are not judged by their ratio
_XML_CHUNK: Final = 1 << 16
# What zipfile, zlib and expat raise while a damaged archive or part is read:
# NotImplementedError for a compression method zipfile lacks, RuntimeError for an
# encrypted part, EOFError and OSError for a truncated one, ValueError for offsets
# or sizes out of range.
_DAMAGE: Final = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    expat.ExpatError,
    UnicodeError,
)
_CELL_REF = re.compile(r"\$?([A-Z]{1,3})\$?([0-9]{1,7})")
_INTEGER = re.compile(r"[+-]?[0-9]{1,17}")
_ROW_NUMBER = re.compile(r"[0-9]{1,20}")
_BOOLEANS: Final = {"1": True, "0": False, "true": True, "false": False}
# The number formats ECMA-376 reserves for dates in Chinese, Japanese and Korean Excel,
# which openpyxl's table of built-in formats leaves out.
_CJK_DATE_FORMATS: Final = frozenset((*range(27, 37), *range(50, 59)))
_HIDDEN: Final = frozenset(("hidden", "veryHidden"))


def _unreadable(reason: str) -> InvalidInput:
    return InvalidInput("file", f"is not a readable Excel (.xlsx) workbook: {reason}")


def _short(text: str, most: int = 40) -> str:
    """``text`` quoted, cut to ``most`` characters."""
    return repr(text if len(text) <= most else text[:most] + "…")


def _local(name: str) -> str:
    return name.rpartition(":")[2]


def _no_dtd(*_: object) -> None:
    raise _unreadable("one of its parts declares a DTD, which no workbook does")


def _xml(
    archive: zipfile.ZipFile,
    part: str,
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None] | None = None,
    text: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Feed the part's XML through expat, a chunk at a time, pausing after each chunk.

    Element and attribute names come with their prefix, if any (``x:row``); no DTD is
    allowed (entity expansion)."""
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    if text is not None:
        parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = _no_dtd
    parser.EntityDeclHandler = _no_dtd
    with archive.open(part) as stream:
        while chunk := stream.read(_XML_CHUNK):
            parser.Parse(chunk, False)
            yield
        parser.Parse(b"", True)


def _attribute(attributes: dict[str, str], name: str) -> str | None:
    """The attribute ``name`` whatever its prefix (``r:id``)."""
    if name in attributes:
        return attributes[name]
    return next((v for key, v in attributes.items() if _local(key) == name), None)


def _relationships(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """The relationships of ``part``: id → (type, the part it targets)."""
    folder, _, name = part.rpartition("/")
    rels = f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels"
    found: dict[str, tuple[str, str]] = {}
    if rels not in archive.NameToInfo:
        return found

    def start(tag: str, attributes: dict[str, str]) -> None:
        if _local(tag) == "Relationship" and attributes.get("TargetMode") != "External":
            target = attributes.get("Target", "")
            path = target[1:] if target.startswith("/") else posixpath.join(folder, target)
            found[attributes.get("Id", "")] = (
                attributes.get("Type", ""),
                posixpath.normpath(path),
            )

    for _ in _xml(archive, rels, start):
        pass
    return found


def _related(relationships: dict[str, tuple[str, str]], kind: str) -> str | None:
    return next((t for type_, t in relationships.values() if type_.endswith("/" + kind)), None)


class _Workbook:
    """A workbook's active visible sheet, read a row at a time with its shared strings and
    date styles; InvalidInput for any damage, a zip bomb and a sheet beyond the limits."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self._check_parts()
        office = _related(_relationships(archive, ""), "officeDocument") or "xl/workbook.xml"
        if office not in archive.NameToInfo:
            raise _unreadable("it holds no workbook part (xl/workbook.xml)")
        sheet_name, self.sheet, self.date1904 = self._active_sheet(office)
        self.sheet_name = sheet_name
        relationships = _relationships(archive, office)
        strings = _related(relationships, "sharedStrings")
        self.shared: list[str] = [] if strings is None else self._shared_strings(strings)
        styles = _related(relationships, "styles")
        self.date_styles = frozenset() if styles is None else self._date_styles(styles)

    def close(self) -> None:
        self.archive.close()

    def _check_parts(self) -> None:
        total = 0
        for info in self.archive.infolist():
            if info.flag_bits & 0x1:
                raise InvalidInput(
                    "file",
                    "is an encrypted (password-protected) workbook; remove the password "
                    "in Excel and save it again",
                )
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _unreadable(
                    f"its part {_short(info.filename)} is compressed with method "
                    f"{info.compress_type}, which Excel never uses"
                )
            if info.file_size > _RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * max(
                info.compress_size, 1
            ):
                raise InvalidInput(
                    "file",
                    f"is refused as a zip bomb: its part {_short(info.filename)} unpacks "
                    f"from {info.compress_size:,} to {info.file_size:,} bytes, more than "
                    f"{MAX_COMPRESSION_RATIO} times its size",
                )
            total += info.file_size
        if total > MAX_UNCOMPRESSED_BYTES:
            raise InvalidInput(
                "file",
                f"unpacks to {total:,} bytes, more than the {MAX_UNCOMPRESSED_BYTES:,} "
                "a roster workbook may",
            )

    def _active_sheet(self, office: str) -> tuple[str, str, bool]:
        sheets: list[tuple[str, str, str]] = []  # name, state, relationship id
        active = [0]
        date1904 = [False]
        views = [0]

        def start(tag: str, attributes: dict[str, str]) -> None:
            tag = _local(tag)
            if tag == "sheet":
                sheets.append(
                    (
                        attributes.get("name", ""),
                        attributes.get("state", "visible"),
                        _attribute(attributes, "id") or "",
                    )
                )
            elif tag == "workbookView":
                views[0] += 1
                if views[0] == 1:
                    tab = attributes.get("activeTab", "0")
                    active[0] = int(tab) if tab.isascii() and tab.isdigit() else 0
            elif tag == "workbookPr":
                date1904[0] = attributes.get("date1904", "0") in ("1", "true")

        for _ in _xml(self.archive, office, start):
            pass
        if not sheets:
            raise InvalidInput("file", "is an Excel workbook without a worksheet")
        visible = [sheet for sheet in sheets if sheet[1] not in _HIDDEN]
        if not visible:
            raise InvalidInput("file", "is an Excel workbook whose every sheet is hidden")
        index = active[0]
        name, _, rid = (
            sheets[index] if index < len(sheets) and sheets[index] in visible else visible[0]
        )
        kind, part = _relationships(self.archive, office).get(rid, ("", ""))
        if not kind.endswith("/worksheet"):
            raise _unreadable(f"its active sheet {_short(name)} is not a worksheet")
        if part not in self.archive.NameToInfo:
            raise _unreadable(f"the part of its sheet {_short(name)} ({_short(part)}) is missing")
        return name, part, date1904[0]

    def _shared_strings(self, part: str) -> list[str]:
        strings: list[str] = []
        pieces: list[str] = []
        state = {"text": False, "phonetic": False, "length": 0}

        def start(tag: str, attributes: dict[str, str]) -> None:
            tag = _local(tag)
            if tag == "t":
                state["text"] = not state["phonetic"]
            elif tag == "si":
                pieces.clear()
                state["length"] = 0
            elif tag == "rPh":
                state["phonetic"] = True

        def end(tag: str) -> None:
            tag = _local(tag)
            if tag == "t":
                state["text"] = False
            elif tag == "si":
                strings.append("".join(pieces))
            elif tag == "rPh":
                state["phonetic"] = False

        def text(data: str) -> None:
            if state["text"]:
                pieces.append(data)
                state["length"] += len(data)
                if state["length"] > MAX_CELL_CHARS:
                    raise InvalidInput(
                        "file",
                        f"shared string {len(strings)} holds more than {MAX_CELL_CHARS:,} "
                        "characters, the most a cell holds",
                    )

        for _ in _xml(self.archive, part, start, end, text):
            pass
        return strings

    def _date_styles(self, part: str) -> frozenset[int]:
        """The indexes of the cell formats that show a date."""
        # Imported here: openpyxl takes a fifth of a second to import, which the other
        # commands need not pay.
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format

        formats: dict[int, str] = {}
        cell_formats: list[int] = []
        inside = [False]

        def _shows_date(code: str | None) -> bool:
            return code is not None and is_date_format(code) and not is_timedelta_format(code)

        def start(tag: str, attributes: dict[str, str]) -> None:
            tag = _local(tag)
            number = attributes.get("numFmtId", "0")
            number_id = int(number) if number.isascii() and number.isdigit() else 0
            if tag == "xf" and inside[0]:
                cell_formats.append(number_id)
            elif tag == "cellXfs":
                inside[0] = True
            elif tag == "numFmt":
                formats[number_id] = attributes.get("formatCode", "")

        def end(tag: str) -> None:
            if _local(tag) == "cellXfs":
                inside[0] = False

        for _ in _xml(self.archive, part, start, end):
            pass
        return frozenset(
            index
            for index, number in enumerate(cell_formats)
            if number in _CJK_DATE_FORMATS
            or _shows_date(formats.get(number) or BUILTIN_FORMATS.get(number))
        )

    def rows(self) -> Generator[tuple[int, Sequence[object]]]:
        """Each row with a value, with its number: InvalidInput where the sheet is damaged."""
        sheet = _SheetReader(self)
        try:
            for _ in _xml(self.archive, self.sheet, sheet.start, sheet.end, sheet.text):
                yield from sheet.rows
                sheet.rows.clear()
        except InvalidInput:
            raise
        except _DAMAGE as error:
            raise _unreadable(f"its sheet {_short(self.sheet_name)} is damaged: {error}") from None


class _SheetReader:
    """expat's handlers for a sheet's XML: rows (number, values) gathered in ``rows``."""

    def __init__(self, workbook: _Workbook) -> None:
        from openpyxl.utils.cell import column_index_from_string, get_column_letter
        from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH, from_excel

        self.column_number = column_index_from_string
        self.column_name = get_column_letter
        self.from_excel = from_excel
        self.shared = workbook.shared
        self.date_styles = workbook.date_styles
        self.epoch = MAC_EPOCH if workbook.date1904 else WINDOWS_EPOCH
        self.rows: list[tuple[int, list[object]]] = []
        self.row = 0  # the row being read, 0 outside rows
        self.last_row = 0
        self.cells: list[object] = []
        self.column = 0
        self.type = "n"
        self.style = ""
        self.pieces: list[str] = []
        self.length = 0
        self.capture = False
        self.inline = False
        self.phonetic = False

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        if ":" in tag:  # a prefixed name, x:c: inlined, the sheet's elements are many
            tag = _local(tag)
        if tag == "c":
            self._cell(attributes)
        elif tag == "v":
            self.capture = True
        elif tag == "row":
            self._row(attributes.get("r"))
        elif tag == "t":
            self.capture = self.inline and not self.phonetic
        elif tag == "is":
            self.inline = True
        elif tag == "rPh":
            self.phonetic = True

    def end(self, tag: str) -> None:
        if ":" in tag:
            tag = _local(tag)
        if tag == "c":
            if self.pieces:
                self._value("".join(self.pieces))
                self.pieces = []
                self.length = 0
            self.capture = self.inline = False
        elif tag in ("v", "t"):
            self.capture = False
        elif tag == "row":
            if self.cells:
                self.rows.append((self.row, self.cells))
                self.cells = []
            self.row = 0
        elif tag == "rPh":
            self.phonetic = False

    def text(self, data: str) -> None:
        if self.capture:
            self.pieces.append(data)
            self.length += len(data)
            if self.length > MAX_CELL_CHARS:
                raise InvalidInput(
                    "file",
                    f"cell {self._reference()} holds more than {MAX_CELL_CHARS:,} characters, "
                    "the most a cell holds",
                )

    def _row(self, number_text: str | None) -> None:
        if number_text is None:
            number = self.last_row + 1
        elif _ROW_NUMBER.fullmatch(number_text):
            number = int(number_text)
        else:
            raise _unreadable(f"a row is numbered {_short(number_text)}, not with a number")
        if number > _EXCEL_ROWS:
            raise _unreadable(f"row {number} lies beyond Excel's last row, {_EXCEL_ROWS:,}")
        if number <= self.last_row:
            raise _unreadable(
                f"its rows are out of order: row {number} comes after row {self.last_row}"
            )
        self.row = self.last_row = number
        self.column = 0

    def _cell(self, attributes: dict[str, str]) -> None:
        if not self.row:
            raise _unreadable("a cell lies outside any row")
        reference = attributes.get("r")
        if reference is None:
            column = self.column + 1
        else:
            match = _CELL_REF.fullmatch(reference)
            if match is None:
                raise _unreadable(f"a cell of row {self.row} is named {_short(reference)}")
            column = self.column_number(match[1])
            if int(match[2]) != self.row:
                raise _unreadable(f"cell {reference} lies in row {self.row}")
        if column <= self.column:
            raise _unreadable(
                f"the cells of row {self.row} are out of order: {self._reference(column)} "
                f"comes after {self._reference()}"
            )
        if column > _EXCEL_COLUMNS:
            raise _unreadable(f"row {self.row} has a cell beyond Excel's last column, XFD")
        self.column = column
        self.type = attributes.get("t", "n")
        self.style = attributes.get("s", "")

    def _reference(self, column: int = 0) -> str:
        return f"{self.column_name(min(column or self.column, _EXCEL_COLUMNS) or 1)}{self.row}"

    def _value(self, text: str) -> None:
        value = self._typed(text)
        if _is_blank(value):
            return
        if self.column > MAX_COLUMNS:
            raise InvalidInput(
                "file",
                f"cell {self._reference()} holds a value beyond column "
                f"{self.column_name(MAX_COLUMNS)}: a roster has at most {MAX_COLUMNS} columns",
            )
        cells = self.cells
        if len(cells) < self.column - 1:
            cells.extend([None] * (self.column - 1 - len(cells)))
        cells.append(value)

    def _typed(self, text: str) -> object:
        kind = self.type
        if kind == "s":
            index = int(text) if _INTEGER.fullmatch(text) else -1
            if not 0 <= index < len(self.shared):
                raise _unreadable(
                    f"cell {self._reference()} refers to shared string {_short(text)}, "
                    f"but the workbook holds {len(self.shared)}"
                )
            return self.shared[index]
        if kind in ("str", "inlineStr", "e"):
            return text
        if kind == "n":
            if not text.strip():
                return None
            try:
                number: int | float = int(text) if _INTEGER.fullmatch(text) else float(text)
            except ValueError:
                raise _unreadable(
                    f"cell {self._reference()} holds {_short(text)}, which is not a number"
                ) from None
            if self.style and self.style.isdigit() and int(self.style) in self.date_styles:
                try:
                    return self.from_excel(number, self.epoch)
                except (ValueError, OverflowError, TypeError):
                    return _Unreadable(f"the date cell holds {number!r}, which is no date")
            return number
        if kind == "b":
            if text.strip() not in _BOOLEANS:
                raise _unreadable(
                    f"cell {self._reference()} holds {_short(text)}, not TRUE or FALSE"
                )
            return _BOOLEANS[text.strip()]
        if kind == "d":
            try:
                return datetime.fromisoformat(text.strip())
            except ValueError:
                return _Unreadable(f"the cell holds {_short(text)}, not a date")
        raise _unreadable(f"cell {self._reference()} is of the unknown type {_short(kind)}")


# -- header ---------------------------------------------------------------------------------


def _key(header: object) -> str:
    return str(header).strip().casefold() if header is not None else ""


_PRIMARY = {_key(alias): field for field, aliases in HEADER_ALIASES.items() for alias in aliases}
_FALLBACK = {_key(alias): field for field, aliases in FALLBACK_ALIASES.items() for alias in aliases}


def _columns(line: int, header: Sequence[object]) -> dict[str, int]:
    """Which column holds each field; InvalidInput on a missing or doubled column, and on
    a header name holding an invisible character, which would hide its column."""
    found: dict[str, list[int]] = {}
    fallback: dict[str, list[int]] = {}
    for index, cell in enumerate(header):
        if isinstance(cell, _Unreadable):
            raise InvalidInput("file", f"line {line}: the header {cell.reason}")
        key = _key(cell)
        if not key.isprintable() and _key(visible(key)) in _PRIMARY.keys() | _FALLBACK.keys():
            hidden = ", ".join(
                f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()
                for char in dict.fromkeys(key)
                if unicodedata.category(char) in HIDDEN_CATEGORIES
            )
            raise InvalidInput(
                "file",
                f"line {line}: the header {visible(key).strip()!r} holds an invisible "
                f"character ({hidden}); type the header again",
            )
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


def _value_text(value: str) -> str:
    """A text cell as a value: trimmed, without invisible characters, at most
    :data:`MAX_VALUE_CHARS` long (ValueError)."""
    text = visible(value).strip()
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(
            f"the cell holds {len(text):,} characters ({_short(text)}); a roster value "
            f"holds at most {MAX_VALUE_CHARS}"
        )
    return text


def _other(value: object, what: str) -> ValueError:
    """The error of a cell holding neither text nor a number."""
    if isinstance(value, _Unreadable):
        return ValueError(value.reason)
    return ValueError(f"the cell holds {value!r}, not {what}")


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
        if len(value) <= MAX_VALUE_CHARS and value.isprintable():  # the usual case
            return value.strip()
        return _value_text(value)
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(value)
    if isinstance(value, _Unreadable):
        raise _other(value, "text")
    return str(value)


def _person_id(value: object) -> str:
    """The number as text without spaces and with an upper-case X; not validated here."""
    if isinstance(value, str):
        number = value.strip()
        if len(number) == 18 and number.isalnum():  # the usual case: nothing to tidy inside
            return number if number[-1] != "x" else number[:-1] + "X"
        number = "".join(_value_text(number).split())
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
    raise _other(value, "the identity number as text")


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
        text = _value_text(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = _number_text(value)  # 20240301 typed into a number cell
    else:
        raise _other(value, "a date")
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
    if isinstance(value, _Unreadable):
        raise _other(value, "a status")
    text = _value_text(value) if isinstance(value, str) else str(value)
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

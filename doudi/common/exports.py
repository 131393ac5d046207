"""Tables written as files people open in a spreadsheet: CSV (UTF-8 with a byte-order mark,
as Excel opens it) or xlsx, every cell as text and never as a formula. The bureau's
commands write their exports through :func:`export` (a comparison, the bank file of a
secondary run, the monitoring report), and the console its downloads through
:func:`export_bytes`."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from doudi.core.money import fen_to_yuan

FORMATS = ("csv", "xlsx")
BANK_COLUMNS = ("身份证号", "姓名", "年度", "金额(元)", "批次")
"""The bank file of a secondary-assistance run (二次救助发放): one line per payment."""
BANK_SHEET = "二次救助发放"
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


# Where a spreadsheet would start a cell that it evaluates: the cell's start, or a
# separator it may split on (a line break counts once), followed by a character that
# begins a formula.
_FORMULA_START = re.compile(r"(^|\r\n|[,;\t|\r\n])(?=[=+\-@\t\r\n])")


def _csv_cell(text: str) -> str:
    """Text as a spreadsheet opening the CSV shows it, never as a formula: a quote before
    each place where a cell would begin with ``= + - @``, tab, CR or LF."""
    # Searching first is four times quicker for the many cells that need nothing.
    return _FORMULA_START.sub(r"\1'", text) if _FORMULA_START.search(text) else text


def export(
    rows: Iterator[tuple[str, ...]],
    path: Path,
    file_format: str,
    *,
    columns: tuple[str, ...],
    sheet: str,
) -> int:
    """Write the header ``columns`` and ``rows`` to ``path`` as CSV (UTF-8 with a byte-order
    mark, as Excel opens it) or xlsx (one sheet named ``sheet``); answer how many rows. The
    other exports of the bureau's commands (the bank file of doudi/cli/secondary.py) write
    through here too."""
    if file_format not in FORMATS:
        raise ValueError(f"unknown format {file_format!r} (one of {', '.join(FORMATS)})")
    # Written aside and moved into place at the end: a failed export leaves no half file.
    partial = path.with_name(f".{path.name}.part")
    try:
        if file_format == "csv":
            count = _write_csv(rows, partial, columns)
        else:
            count = _write_xlsx(rows, partial, columns, sheet)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return count


def _write_csv(rows: Iterator[tuple[str, ...]], path: Path, columns: tuple[str, ...]) -> int:
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_ALL)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(text) for text in row])
            count += 1
    return count


def _write_xlsx(
    rows: Iterator[tuple[str, ...]], path: Path, columns: tuple[str, ...], sheet_name: str
) -> int:
    from openpyxl import Workbook  # only when asked: it takes a moment to import
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheet: Any = book.create_sheet(sheet_name)

    def text_cells(texts: tuple[str, ...]) -> list[Any]:
        # Given a str, openpyxl writes "=..." as a formula and "#N/A" as an error; a cell
        # typed as a string holds the text as it is.
        cells = []
        for text in texts:
            # A control character no XML can hold (the services refuse them, but a record
            # stored before may have one) shows as U+FFFD instead of failing the export.
            cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("\ufffd", text))
            cell.data_type = "s"
            cells.append(cell)
        return cells

    count = 0
    sheet.append(text_cells(columns))
    for row in rows:
        sheet.append(text_cells(row))
        count += 1
    book.save(path)
    return count


def export_bytes(
    rows: Iterable[tuple[str, ...]], file_format: str, *, columns: tuple[str, ...], sheet: str
) -> bytes:
    """The file :func:`export` would write, as bytes (a download)."""
    if file_format == "csv":
        text = io.StringIO(newline="")
        writer = csv.writer(text, quoting=csv.QUOTE_ALL)
        writer.writerow(columns)
        writer.writerows([_csv_cell(cell) for cell in row] for row in rows)
        return text.getvalue().encode("utf-8-sig")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"export.{file_format}"
        export(iter(rows), path, file_format, columns=columns, sheet=sheet)
        return path.read_bytes()


class BankEntry(Protocol):
    """What a payment's line is made of (a secondary run's entry, as the service answers it)."""

    run_id: int
    person_id: str
    name: str
    paid_fen: int


def bank_row(entry: BankEntry, year: int) -> tuple[str, ...]:
    """A payment's line of the bank file: the identity number in full (the bank needs it),
    the amount in yuan with two decimals."""
    return (entry.person_id, entry.name, str(year), fen_to_yuan(entry.paid_fen), str(entry.run_id))

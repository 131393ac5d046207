"""A comparison exported for a clerk (doudi/cli/comparisons.py): every person on one line
in the clerk's words, as CSV that Excel opens and as xlsx, never a formula. The xlsx holds
every value unchanged as text; the CSV neutralises what a spreadsheet would evaluate, as
OWASP's CSV-injection guidance says."""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from doudi.cli.comparisons import COLUMNS, export, export_row
from doudi.datashare.v1 import datashare_pb2 as pb
from tests.support import with_check_digit

PERSON = with_check_digit("41132319800101001")


def entries() -> list[pb.ComparisonEntry]:
    gap = pb.ComparisonEntry(
        person_id=PERSON,
        gap_reason=pb.GAP_REASON_NOT_ENROLLED,
        agencies=[pb.AGENCY_CIVIL_AFFAIRS, pb.AGENCY_POVERTY_OFFICE],
        statuses=[pb.STATUS_DIBAO, pb.STATUS_REGISTERED_POOR],
        roster_name="=HYPERLINK(1)",
        household_id="H-7",
        registered_name="李秀英",
        registered_region="411323",
        duplicate=True,
    )
    setattr(gap, "class", pb.COMPARISON_CLASS_NOT_INSURED)
    insured = pb.ComparisonEntry(
        person_id=PERSON, agencies=[pb.AGENCY_POVERTY_OFFICE], roster_name="-张"
    )
    setattr(insured, "class", pb.COMPARISON_CLASS_INSURED)
    return [gap, insured]


# The gap's line as the roster and the register hold it: what the xlsx shows.
EXPECTED_GAP = [
    PERSON,
    "=HYPERLINK(1)",
    "李秀英",
    "未参保",
    "已登记, 本年未参保",
    "民政局、乡村振兴局",
    "低保、建档立卡贫困户",
    "H-7",
    "411323",
    "是",
]

# Text a spreadsheet would take for a formula (or an error value), for the xlsx.
HOSTILE = (
    "=1+1",
    "-张",
    "+8613800000000",
    "@SUM(A1)",
    "#N/A",
    "\t=1",
    "张三;=1+1",
    "=cmd|' /C calc'!A0",
    "'quoted",
    "H-7",
)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def test_csv_has_a_header_and_one_line_per_person_in_the_clerks_words(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    assert export(iter(export_row(e) for e in entries()), path, "csv") == 2
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), "Excel reads UTF-8 with its mark"
    lines = read_csv(path)
    assert lines[0] == list(COLUMNS)
    assert lines[1] == [PERSON, "'=HYPERLINK(1)", *EXPECTED_GAP[2:]]
    assert lines[2][1] == "'-张"
    assert lines[2][3:5] == ["已参保", ""]


def test_csv_wraps_every_cell_in_double_quotes(tmp_path: Path) -> None:
    """So that a separator inside a cell stays inside it (OWASP's first step)."""
    path = tmp_path / "gap.csv"
    export(iter([("张三,李四", 'say "hi"', "")]), path, "csv")
    text = path.read_text("utf-8-sig")
    assert text.splitlines()[0] == ",".join(f'"{name}"' for name in COLUMNS)
    assert text.splitlines()[1] == '"张三,李四","say ""hi""",""'


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # A cell that begins with what a spreadsheet evaluates gets a quote in front.
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+86 138", "'+86 138"),
        ("-张", "'-张"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\r=1", "'\r'=1"),
        ("\n张", "'\n张"),
        # So does each place where a spreadsheet that splits on , ; tab | or a line
        # break would start a new cell with one of them.
        ("张三;=1+1", "张三;'=1+1"),
        ("张三,+1", "张三,'+1"),
        ("张三\t-1", "张三\t'-1"),
        ("\t=1", "'\t'=1"),
        ("张三|@x", "张三|'@x"),
        ("张三\r\n=1", "张三\r\n'=1"),
        ("a;=1;-2", "a;'=1;'-2"),
        # Everything else is as it was.
        ("H-7", "H-7"),
        ("张三;李四", "张三;李四"),
        ("已登记, 本年未参保", "已登记, 本年未参保"),
        ("'=1", "'=1"),
        ("张=1", "张=1"),
        ("", ""),
    ],
)
def test_csv_neutralises_what_a_spreadsheet_would_evaluate(
    tmp_path: Path, text: str, shown: str
) -> None:
    path = tmp_path / "gap.csv"
    export(iter([(PERSON, text, "李秀英")]), path, "csv")
    assert read_csv(path)[1] == [PERSON, shown, "李秀英"]


def test_xlsx_holds_the_same_lines_with_identity_numbers_as_text(tmp_path: Path) -> None:
    path = tmp_path / "gap.xlsx"
    assert export(iter(export_row(e) for e in entries()), path, "xlsx") == 2
    sheet = load_workbook(path, read_only=True).active
    assert sheet is not None
    lines = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert lines[0] == list(COLUMNS)
    assert lines[1] == EXPECTED_GAP
    assert lines[2][1] == "-张"
    assert isinstance(lines[2][0], str), "an 18-digit number would lose its last digits"


def test_xlsx_writes_every_cell_as_text_never_a_formula(tmp_path: Path) -> None:
    path = tmp_path / "hostile.xlsx"
    assert export(iter([HOSTILE]), path, "xlsx") == 1
    sheet = load_workbook(path).active
    assert sheet is not None
    (cells,) = sheet.iter_rows(min_row=2)
    assert [cell.value for cell in cells] == list(HOSTILE)
    assert [cell.data_type for cell in cells] == ["s"] * len(HOSTILE)
    with zipfile.ZipFile(path) as book:
        xml = book.read("xl/worksheets/sheet1.xml").decode()
    assert not re.search(r"<f[ >]", xml), "no formula"
    types = re.findall(r'<c r="[A-Z]+\d+" t="([^"]*)"', xml)
    assert len(types) == len(COLUMNS) + len(HOSTILE)
    assert set(types) == {"inlineStr"}


def test_a_control_character_stored_before_it_was_refused_does_not_fail_the_xlsx(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.xlsx"
    assert export(iter([(PERSON, "周\x01丽", "H-1")]), path, "xlsx") == 1
    sheet = load_workbook(path).active
    assert sheet is not None
    values = [cell.value for cell in next(sheet.iter_rows(min_row=2))]
    assert values[:3] == [PERSON, "周\ufffd丽", "H-1"]


def test_an_unknown_format_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        export(iter([]), tmp_path / "x.pdf", "pdf")
    assert not (tmp_path / "x.pdf").exists()

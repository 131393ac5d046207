"""A comparison exported for a clerk (doudi/comparisons.py): every person on one line in
the clerk's words, as CSV that Excel opens and as xlsx, never a formula."""

from __future__ import annotations

import csv
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
        person_id=PERSON, agencies=[pb.AGENCY_POVERTY_OFFICE], roster_name="王建国"
    )
    setattr(insured, "class", pb.COMPARISON_CLASS_INSURED)
    return [gap, insured]


EXPECTED_GAP = [
    PERSON,
    "'=HYPERLINK(1)",
    "李秀英",
    "未参保",
    "已登记, 本年未参保",
    "民政局、乡村振兴局",
    "低保、建档立卡贫困户",
    "H-7",
    "411323",
    "是",
]


def test_csv_has_a_header_and_one_line_per_person_in_the_clerks_words(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    assert export(iter(export_row(e) for e in entries()), path, "csv") == 2
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), "Excel reads UTF-8 with its mark"
    with path.open(encoding="utf-8-sig", newline="") as file:
        lines = list(csv.reader(file))
    assert lines[0] == list(COLUMNS)
    assert lines[1] == EXPECTED_GAP
    assert lines[2][3:5] == ["已参保", ""]


def test_xlsx_holds_the_same_lines_with_identity_numbers_as_text(tmp_path: Path) -> None:
    path = tmp_path / "gap.xlsx"
    assert export(iter(export_row(e) for e in entries()), path, "xlsx") == 2
    sheet = load_workbook(path, read_only=True).active
    assert sheet is not None
    lines = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert lines[0] == list(COLUMNS)
    assert lines[1] == EXPECTED_GAP
    assert isinstance(lines[2][0], str), "an 18-digit number would lose its last digits"


def test_an_unknown_format_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        export(iter([]), tmp_path / "x.pdf", "pdf")
    assert not (tmp_path / "x.pdf").exists()

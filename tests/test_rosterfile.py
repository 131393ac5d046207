"""Reading an agency's roster file (doudi.cli.roster_file): CSV or Excel rows as typed lines.

Values that cannot be read at all (dates, statuses, identity numbers Excel stored
as numbers) are LineErrors with the line the clerk sees; everything else is
passed through for the datashare service to judge.
"""

from __future__ import annotations

import codecs
import random
import re
import time
import zipfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904

from doudi.cli import roster_file
from doudi.cli.roster_file import (
    LineError,
    RosterFile,
    RosterLine,
    read_roster,
    read_roster_batches,
)
from doudi.core.codes import STATUSES
from doudi.core.errors import InvalidInput
from tests import roster_corpus as corpus

ZHANG = "411323195003150014"
LI = "411323196208120024"
HEADER = "身份证号码,姓名,户编号,救助类别,认定日期,终止日期,业务编号"


def write_csv(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(tmp_path: Path, rows: list[list[object]], name: str = "roster.xlsx") -> Path:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    path = tmp_path / name
    workbook.save(path)
    return path


def one_row(tmp_path: Path, row: str) -> tuple[list[RosterLine], list[LineError]]:
    roster = read_roster(write_csv(tmp_path, f"{HEADER}\n{row}\n"))
    return roster.lines, roster.errors


# -- CSV ------------------------------------------------------------------------------------


def test_a_utf8_csv_with_bom_and_chinese_headers_gives_one_line_per_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "序号,身份证号码,姓名,户编号,救助类别,认定日期,终止日期,业务编号,备注\r\n"
        f"1,{ZHANG},张建国,H-001,低保,2024/3/1,,民政-2024-001,\r\n"
        f"2,{LI},李桂兰,H-002,特困供养人员,2024年3月1日,20251231,民政-2024-002,复核\r\n",
        encoding="utf-8-sig",
    )
    roster = read_roster(path)
    assert roster.encoding == "utf-8-sig"
    assert roster.errors == []
    assert roster.lines == [
        RosterLine(2, ZHANG, "张建国", "H-001", "dibao", date(2024, 3, 1), None, "民政-2024-001"),
        RosterLine(
            3,
            LI,
            "李桂兰",
            "H-002",
            "extreme_poverty",
            date(2024, 3, 1),
            date(2025, 12, 31),
            "民政-2024-002",
        ),
    ]


def test_utf8_without_bom_and_english_headers_in_any_case_and_spacing(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        " Person_ID ,NAME,household_id,Status,valid_from,reference\n"
        f"{ZHANG},张建国,H1,registered_poor,2016-01-01,扶贫-1\n",
    )
    roster = read_roster(path)
    assert roster.encoding == "utf-8"
    assert roster.lines == [
        RosterLine(2, ZHANG, "张建国", "H1", "registered_poor", date(2016, 1, 1), None, "扶贫-1")
    ]


def test_a_gbk_export_is_read_as_gb18030(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        f"{HEADER}\r\n{ZHANG},张建国,户1,建档立卡贫困户,2016-01-01,,扶贫办〔2016〕1号\r\n",
        encoding="gbk",
    )
    roster = read_roster(path)
    assert roster.encoding == "gb18030"
    assert [
        (line.name, line.household_id, line.status, line.reference) for line in roster.lines
    ] == [("张建国", "户1", "registered_poor", "扶贫办〔2016〕1号")]


def test_line_numbers_count_every_line_a_text_editor_shows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "\n"  # line 1: blank, so the header is line 2
        f"{HEADER}\n"
        f"{ZHANG},张建国,H1,低保,2024-01-01,,R1\n"
        ",,,,,,\n"  # line 4: empty cells only
        "\n"  # line 5
        f'{LI},"李\n桂兰",H2,低保,2024-01-01,,R2\n'  # lines 6-7: a quoted line break
        f"{ZHANG},张建国,H1,低保,2024-13-01,,R3\n",  # line 8
    )
    roster = read_roster(path)
    assert [line.line for line in roster.lines] == [3, 6]
    assert [(error.line, error.field) for error in roster.errors] == [(8, "valid_from")]


def test_rows_with_values_only_in_other_columns_are_skipped(tmp_path: Path) -> None:
    # A template numbers its rows (序号) ahead of the data.
    path = write_csv(
        tmp_path,
        f"序号,{HEADER}\n1,{ZHANG},张建国,H1,低保,2024-01-01,,R1\n2,,,,,,,\n3,  ,,,,,,\n",
    )
    roster = read_roster(path)
    assert [line.line for line in roster.lines] == [2]
    assert roster.errors == []


def test_blank_status_and_dates_are_passed_on_as_none_for_the_service_to_judge(
    tmp_path: Path,
) -> None:
    lines, errors = one_row(tmp_path, f"{ZHANG},张建国,H1, ,,,R1")
    assert errors == []
    assert lines == [RosterLine(2, ZHANG, "张建国", "H1", None, None, None, "R1")]


def test_valid_to_is_an_optional_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        f"身份证号,姓名,家庭编号,人员类别,开始日期,编号\n{ZHANG},张建国,H1,孤儿,2024-01-01,R1\n",
    )
    assert read_roster(path).lines == [
        RosterLine(2, ZHANG, "张建国", "H1", "orphan", date(2024, 1, 1), None, "R1")
    ]


# -- identity numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (f" {ZHANG} ", ZHANG),
        ("411323 19500315 0014", ZHANG),
        ("41132319500315001x", "41132319500315001X"),
        ("12345", "12345"),  # not validated here: the service checks every number in one place
        ("４１１３２３", "４１１３２３"),  # full-width digits too: the service says what is wrong
    ],
)
def test_identity_numbers_are_passed_through_as_tidied_text(
    tmp_path: Path, cell: str, expected: str
) -> None:
    lines, errors = one_row(tmp_path, f"{cell},张建国,H1,低保,2024-01-01,,R1")
    assert errors == []
    assert [line.person_id for line in lines] == [expected]


def test_an_identity_number_excel_shortened_to_scientific_notation_is_a_line_error(
    tmp_path: Path,
) -> None:
    lines, errors = one_row(tmp_path, "4.11323E+17,张建国,H1,低保,2024-01-01,,R1")
    assert lines == []
    assert [(error.line, error.field) for error in errors] == [(2, "person_id")]
    assert "'4.11323E+17'" in errors[0].reason
    assert "text" in errors[0].reason


# -- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell", ["2024-03-01", "2024/3/1", "2024/03/01", "20240301", "2024年3月1日"]
)
def test_the_four_date_forms_give_the_same_day(tmp_path: Path, cell: str) -> None:
    lines, errors = one_row(tmp_path, f"{ZHANG},张建国,H1,低保,{cell},{cell},R1")
    assert errors == []
    assert [(line.valid_from, line.valid_to) for line in lines] == [
        (date(2024, 3, 1), date(2024, 3, 1))
    ]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("2024-02-30", "'2024-02-30' is not a real calendar date"),
        ("20230229", "'20230229' is not a real calendar date"),
        ("2024年13月1日", "'2024年13月1日' is not a real calendar date"),
        ("2024-3-1", "'2024-3-1' is not a date written"),
        ("2024.03.01", "'2024.03.01' is not a date written"),
        ("03/01/2024", "'03/01/2024' is not a date written"),
        ("2024-03-01 08:00", "'2024-03-01 08:00' is not a date written"),
        ("2024-W09-5", "'2024-W09-5' is not a date written"),
        ("长期", "'长期' is not a date written"),
    ],
)
def test_a_date_in_another_form_or_impossible_is_a_line_error(
    tmp_path: Path, cell: str, reason: str
) -> None:
    lines, errors = one_row(tmp_path, f"{ZHANG},张建国,H1,低保,{cell},,R1")
    assert lines == []
    assert [(error.line, error.field) for error in errors] == [(2, "valid_from")]
    assert errors[0].reason.startswith(reason)


# -- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("低保", "dibao"),
        ("特困供养", "extreme_poverty"),
        ("特困供养人员", "extreme_poverty"),
        ("孤儿", "orphan"),
        ("低收入", "low_income"),
        ("低保边缘", "low_income"),
        ("支出型困难", "expenditure_hardship"),
        ("支出型重病患者", "expenditure_hardship"),
        ("事实无人抚养儿童", "unsupported_child"),
        ("边缘家庭", "marginal"),
        ("建档立卡贫困户", "registered_poor"),
        ("脱贫户", "poverty_exited"),
        ("易返贫致贫", "at_risk"),
        ("监测对象", "at_risk"),
        ("困难职工", "difficult_worker"),
        ("离休干部", "retired_cadre"),
        ("重度残疾", "severely_disabled"),
        ("优抚对象", "entitled_group"),
        ("DIBAO", "dibao"),
        (" at_risk ", "at_risk"),
    ],
)
def test_a_status_is_written_as_its_chinese_name_or_its_code(
    tmp_path: Path, name: str, code: str
) -> None:
    lines, errors = one_row(tmp_path, f"{ZHANG},张建国,H1,{name},2024-01-01,,R1")
    assert errors == []
    assert [line.status for line in lines] == [code]


def test_every_status_code_and_every_name_codes_py_shows_is_accepted(tmp_path: Path) -> None:
    written = [
        (text, code)
        for code, (label, _agency) in STATUSES.items()
        for text in (code, *label.split(" / "))
    ]
    rows = "\n".join(
        f"{ZHANG},张建国,H1,{text},2024-01-01,,R{i}" for i, (text, _) in enumerate(written)
    )
    roster = read_roster(write_csv(tmp_path, f"{HEADER}\n{rows}\n"))
    assert roster.errors == []
    assert [line.status for line in roster.lines] == [code for _, code in written]


@pytest.mark.parametrize("name", ["临时救助", "伤残军人", "poor", "低保户口"])
def test_an_unknown_status_is_a_line_error_quoting_it(tmp_path: Path, name: str) -> None:
    lines, errors = one_row(tmp_path, f"{ZHANG},张建国,H1,{name},2024-01-01,,R1")
    assert lines == []
    assert [(error.line, error.field) for error in errors] == [(2, "status")]
    assert f"'{name}'" in errors[0].reason


def test_each_bad_value_of_a_row_is_its_own_error_and_later_rows_still_read(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path,
        f"{HEADER}\n"
        "4.11323E+17,张建国,H1,临时救助,2024-02-30,2024/2/30,R1\n"
        f"{LI},李桂兰,H2,低保,2024-01-01,,R2\n",
    )
    roster = read_roster(path)
    assert [(error.line, error.field) for error in roster.errors] == [
        (2, "person_id"),
        (2, "status"),
        (2, "valid_from"),
        (2, "valid_to"),
    ]
    assert [line.line for line in roster.lines] == [3]


# -- Excel ----------------------------------------------------------------------------------


def test_an_xlsx_roster_reads_date_cells_and_refuses_identity_numbers_stored_as_numbers(
    tmp_path: Path,
) -> None:
    path = write_xlsx(
        tmp_path,
        [
            [],  # row 1 empty: the header is row 2
            ["身份证号码", "姓名", "户编号", "身份类别", "认定日期", "终止日期", "业务编号"],
            [ZHANG, "张建国", 4113230001, "低保", datetime(2024, 3, 1), None, "R1"],
            [4.1132319500315e17, "李桂兰", "H2", "低保", "2024/3/1", None, "R2"],
            [int(LI), "李桂兰", "H2", "低保", "2024/3/1", None, "R3"],
            [LI, "李桂兰", "H2", "孤儿", datetime(2024, 3, 1, 9, 30), 20241231, "R4"],
        ],
    )
    roster = read_roster(path)
    assert roster.encoding == "xlsx"
    assert roster.lines == [
        RosterLine(3, ZHANG, "张建国", "4113230001", "dibao", date(2024, 3, 1), None, "R1")
    ]
    assert [(error.line, error.field) for error in roster.errors] == [
        (4, "person_id"),
        (5, "person_id"),
        (6, "valid_from"),
    ]
    assert "format the column as text" in roster.errors[0].reason
    assert "time of day" in roster.errors[2].reason


def test_an_xlsx_household_number_excel_may_have_rounded_is_a_line_error(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path,
        [
            ["身份证号码", "姓名", "户主身份证号", "身份类别", "认定日期", "业务编号"],
            [ZHANG, "张建国", 4.1132319500315e17, "脱贫户", "2020-12-31", 1001],
        ],
    )
    roster = read_roster(path)
    assert roster.lines == []
    assert [(error.line, error.field) for error in roster.errors] == [(2, "household_id")]


def test_xlsx_rows_beyond_the_stated_dimensions_are_read(tmp_path: Path) -> None:
    # Some programs write a wrong <dimension> (A1); the rows are there all the same.
    path = write_xlsx(
        tmp_path,
        [
            ["身份证号码", "姓名", "户编号", "身份类别", "认定日期", "业务编号"],
            [ZHANG, "张建国", "H1", "低保", "2024-01-01", "R1"],
            [LI, "李桂兰", "H2", "低保", "2024-01-01", "R2"],
        ],
        name="source.xlsx",
    )
    broken = tmp_path / "roster.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1"', data)
            target.writestr(item, data)
    assert [line.person_id for line in read_roster(broken).lines] == [ZHANG, LI]


# -- files that are not rosters -------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("roster.csv", PNG, "is a PNG image, not CSV text"),
        ("roster.csv", b"\x00\x01\x02binary\xff\xfe garbage", "is not CSV text"),
        ("roster.csv", b"name,id\n\x1b[31mred\n", "is not CSV text"),
        ("roster.csv", b"", "is empty"),
        ("roster.csv", "姓名\n张".encode("utf-16"), "is UTF-16 text"),
        ("roster.xlsx", f"{HEADER}\n".encode(), "is not an Excel (.xlsx) workbook"),
        ("roster.xlsx", PNG, "is not an Excel (.xlsx) workbook: it is a PNG image"),
        ("roster.xlsx", b"PK\x03\x04 truncated", "is not a readable Excel (.xlsx) workbook"),
        ("roster.pdf", b"%PDF-1.7\n", "must be a CSV (.csv) or Excel (.xlsx) file, not .pdf"),
        ("roster.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "save it as .xlsx or CSV"),
        ("roster", f"{HEADER}\n".encode(), "must be a CSV (.csv) or Excel (.xlsx) file"),
    ],
)
def test_a_file_that_is_not_csv_or_excel_is_refused(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as raised:
        read_roster(path)
    assert raised.value.field == "file"
    assert reason in raised.value.message


def test_a_zip_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roster.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("roster.csv", f"{HEADER}\n")
    with pytest.raises(InvalidInput, match="is not a readable Excel"):
        read_roster(path)


def test_an_xlsx_named_csv_is_refused_saying_what_it_is(tmp_path: Path) -> None:
    workbook = write_xlsx(tmp_path, [["姓名"]])
    path = tmp_path / "roster.csv"
    path.write_bytes(workbook.read_bytes())
    with pytest.raises(InvalidInput, match=r"is a zip archive \(an \.xlsx workbook\?\)"):
        read_roster(path)


# -- header ---------------------------------------------------------------------------------


def test_a_missing_required_column_is_named_with_the_headers_accepted_for_it(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path, f"身份证号码,姓名,救助类别,认定日期\n{ZHANG},张建国,低保,2024-01-01\n"
    )
    with pytest.raises(InvalidInput) as raised:
        read_roster(path)
    message = raised.value.message
    assert raised.value.field == "file"
    assert message.startswith("missing column household_id, reference in the header")
    assert "household_id: household_id, 户编号, 家庭编号, 户主身份证号, 户主身份证号码" in message
    assert "reference: reference, 业务编号, 编号" in message


def test_a_title_row_above_the_header_is_taken_as_the_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"西峡县2024年低保对象花名册\n{HEADER}\n")
    with pytest.raises(
        InvalidInput, match=r"first non-empty row, line 1: 西峡县2024年低保对象花名册"
    ):
        read_roster(path)


def test_a_file_without_any_row_has_no_header(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="has no header row"):
        read_roster(write_csv(tmp_path, "\n,,,\n"))


def test_two_columns_for_one_field_are_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, f"{HEADER},身份证号\n")
    with pytest.raises(InvalidInput, match="columns '身份证号码', '身份证号' all give person_id"):
        read_roster(path)


def test_the_householders_number_is_the_household_only_without_a_household_number(
    tmp_path: Path,
) -> None:
    with_both = write_csv(
        tmp_path,
        f"户主身份证号,编号,{HEADER}\n{ZHANG},7,{LI},李桂兰,H2,低保,2024-01-01,,R1\n",
        name="both.csv",
    )
    assert [(line.household_id, line.reference) for line in read_roster(with_both).lines] == [
        ("H2", "R1")
    ]
    fallback_only = write_csv(
        tmp_path,
        f"身份证号码,姓名,户主身份证号,救助类别,认定日期,编号\n{LI},李桂兰,{ZHANG},低保,2024-01-01,7\n",
        name="fallback.csv",
    )
    assert [(line.household_id, line.reference) for line in read_roster(fallback_only).lines] == [
        (ZHANG, "7")
    ]


# -- a batch at a time ----------------------------------------------------------------------


def test_batches_hold_the_lines_and_errors_read_roster_gives_in_order(tmp_path: Path) -> None:
    rows = [f"{ZHANG},张建国,H1,低保,2024-01-01,,R{i}" for i in range(5)]
    rows[2] = f"{LI},李桂兰,H2,临时救助,2024-02-30,,R2"  # two errors on line 4
    path = write_csv(tmp_path, HEADER + "\n" + "\n".join(rows) + "\n", encoding="gb18030")
    batches = list(read_roster_batches(path, batch_size=2))
    assert [([line.line for line in b.lines], [e.line for e in b.errors]) for b in batches] == [
        ([2, 3], []),
        ([], [4, 4]),  # one row's errors stay together
        ([5, 6], []),
    ]
    assert {batch.encoding for batch in batches} == {"gb18030"}
    whole = read_roster(path)
    assert [line for batch in batches for line in batch.lines] == whole.lines
    assert [error for batch in batches for error in batch.errors] == whole.errors


def test_an_xlsx_roster_in_batches(tmp_path: Path) -> None:
    rows: list[list[object]] = [list(HEADER.split(","))]
    rows += ([ZHANG, "张建国", "H1", "低保", "2024-01-01", None, f"R{i}"] for i in range(3))
    batches = list(read_roster_batches(write_xlsx(tmp_path, rows), batch_size=2))
    assert [[line.line for line in batch.lines] for batch in batches] == [[2, 3], [4]]
    assert {batch.encoding for batch in batches} == {"xlsx"}


def test_a_roster_without_rows_is_one_empty_batch(tmp_path: Path) -> None:
    assert list(read_roster_batches(write_csv(tmp_path, f"{HEADER}\n"))) == [
        RosterFile("utf-8", [], [])
    ]


def test_a_bad_record_deep_in_the_file_is_raised_before_the_first_batch(tmp_path: Path) -> None:
    # Before: the first batch came, and the error only with the second, after rows were sent.
    big = "x" * 200_000  # more than a cell may hold
    text = f"{HEADER}\n{ZHANG},张建国,H1,低保,2024-01-01,,R1\n{LI},{big},H2,低保,2024-01-01,,R2\n"
    batches = read_roster_batches(write_csv(tmp_path, text), batch_size=1)
    with pytest.raises(InvalidInput, match="line 3: a value of more than 32,767 characters"):
        next(batches)


def test_the_format_and_header_are_checked_by_the_first_batch(tmp_path: Path) -> None:
    batches = read_roster_batches(write_csv(tmp_path, "姓名,身份证号码\n"))
    with pytest.raises(InvalidInput, match="missing column household_id"):
        next(batches)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        next(read_roster_batches(write_csv(tmp_path, f"{HEADER}\n"), batch_size=0))


# -- read strictly, within bounds -----------------------------------------------------------

ROWS = [f"{ZHANG},张建国,H1,低保,2024-01-01,,R{i}" for i in range(30)]


def test_a_quote_never_closed_is_refused_at_its_line_before_any_batch(tmp_path: Path) -> None:
    rows = ROWS[:]
    rows[3] = f'{ZHANG},"张建国,H1,低保,2024-01-01,,R3'
    batches = read_roster_batches(write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    with pytest.raises(
        InvalidInput, match=r"^file: line 5: a quote opened on this line is never closed$"
    ):
        next(batches)


def test_a_quote_closed_lines_later_is_refused_not_read_as_one_merged_name(tmp_path: Path) -> None:
    rows = ROWS[:]
    rows[3] = f'{ZHANG},"周丽,H1,低保,2024-01-01,,R3'
    rows[12] = f'{ZHANG},王五",H1,低保,2024-01-01,,R12'
    with pytest.raises(
        InvalidInput, match="line 5: a quote opened on this line is closed only on line 14"
    ):
        read_roster(write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    # A line break inside quotes, without a comma (Alt+Enter in a 备注 cell), is one value.
    path = write_csv(
        tmp_path,
        f'{HEADER},备注\n{ZHANG},张建国,H1,低保,2024-01-01,,R1,"复核\n待定"\n'
        f"{LI},李桂兰,H2,低保,2024-01-01,,R2,\n",
        name="note.csv",
    )
    assert [line.line for line in read_roster(path).lines] == [2, 4]


def test_a_stray_quote_after_a_closing_quote_is_refused_at_its_line(tmp_path: Path) -> None:
    rows = ROWS[:]
    rows[5] = f'{ZHANG},"张"建国,H1,低保,2024-01-01,,R5'
    with pytest.raises(InvalidInput, match="line 7: a stray quote"):
        read_roster(write_csv(tmp_path, "\n".join([HEADER, *rows]) + "\n"))


@pytest.mark.parametrize(("major", "minor"), [("utf-8", "gb18030"), ("gb18030", "utf-8")])
def test_a_line_in_another_encoding_is_an_error_at_that_line_not_garbled_text(
    tmp_path: Path, major: str, minor: str
) -> None:
    names = ["张建国", "李桂兰", "王秀英", "刘洋", "周丽"]
    records = [f"{HEADER}\n".encode(major)]
    records += [
        f"{ZHANG},{name},H{i},低保,2024-01-01,,R{i}\n".encode(major) for i, name in enumerate(names)
    ]
    records[5] = f"{LI},周丽,H4,低保,2024-01-01,,R4\n".encode(minor)  # line 6
    path = tmp_path / "roster.csv"
    path.write_bytes(b"".join(records))
    roster = read_roster(path)
    assert roster.encoding == major
    assert [line.name for line in roster.lines] == names[:4]
    assert [(error.line, error.field) for error in roster.errors] == [(6, "name"), (6, "status")]
    assert major.upper().replace("-", "") in roster.errors[0].reason.upper().replace("-", "")


def test_a_line_not_utf8_in_a_file_with_a_bom_is_an_error_at_that_line(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(
        codecs.BOM_UTF8
        + f"{HEADER}\n{ZHANG},张建国,H1,低保,2024-01-01,,R1\n".encode()
        + f"{LI},李桂兰,H2,低保,2024-01-01,,R2\n".encode("gb18030")
    )
    roster = read_roster(path)
    assert [line.line for line in roster.lines] == [2]
    assert [(error.line, error.field) for error in roster.errors] == [(3, "name"), (3, "status")]
    assert "does not decode as UTF-8" in roster.errors[0].reason


def test_invisible_and_control_characters_are_removed_from_values(tmp_path: Path) -> None:
    hidden = "\ufeff\u200b\u200d\u2060\u202e\u2028\t\r\x85\xad"
    path = write_csv(
        tmp_path,
        f'{HEADER}\n"\ufeff{ZHANG[:9]}\u200b{ZHANG[9:]}\t","周\u200b丽\r","\u2060H1\u202e",低保,2024-01-01,,"R\u20281{hidden}"\n',
    )
    roster = read_roster(path)
    assert roster.errors == []
    assert [
        (line.person_id, line.name, line.household_id, line.reference) for line in roster.lines
    ] == [(ZHANG, "周丽", "H1", "R1")]


def test_a_header_holding_an_invisible_character_is_named(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        HEADER.replace("姓名", "姓\u200b名") + f"\n{ZHANG},张建国,H1,低保,2024-01-01,,R1\n",
    )
    with pytest.raises(
        InvalidInput,
        match=r"line 1: the header '姓名' holds an invisible character \(U\+200B ZERO WIDTH SPACE\)",
    ):
        read_roster(path)


def test_a_value_longer_than_a_roster_value_may_be_is_an_error_of_its_line(tmp_path: Path) -> None:
    lines, errors = one_row(tmp_path, f"{ZHANG},{'张' * 5_000},H1,低保,2024-01-01,,R1")
    assert lines == []
    assert [(error.line, error.field) for error in errors] == [(2, "name")]
    assert "5,000 characters" in errors[0].reason
    assert len(errors[0].reason) < 200


def test_a_csv_beyond_the_column_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="line 2: 250 columns, more than the 200"):
        read_roster(
            write_csv(tmp_path, f"{HEADER}\n{ZHANG},张建国,H1,低保,2024-01-01,,R1{',' * 243}\n")
        )


def workbook(tmp_path: Path, parts: dict[str, bytes]) -> Path:
    path = tmp_path / "roster.xlsx"
    path.write_bytes(corpus.zip_bytes(parts))
    return path


def numbered(numbers: list[int]) -> list[tuple[int, list[str]]]:
    rows = [(1, HEADER.split(","))]
    return rows + [
        (n, [f"{ZHANG[:-2]}{i:02d}", f"人{i}", "H1", "低保", "2024-01-01", "", f"R{i}"])
        for i, n in enumerate(numbers)
    ]


def test_xlsx_rows_numbered_again_or_out_of_order_are_refused(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        corpus.workbook_parts(
            [("名单", corpus.sheet_xml(numbered([2, 3, 3, 2, 4, 5])), "visible")]
        ),
    )
    with pytest.raises(InvalidInput, match="its rows are out of order: row 3 comes after row 3"):
        next(read_roster_batches(path))


def test_xlsx_rows_numbered_beyond_excel_are_refused_at_once(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        corpus.workbook_parts([("名单", corpus.sheet_xml(numbered([2, 10**12])), "visible")]),
    )
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="row 1000000000000 lies beyond Excel's last row"):
        read_roster(path)
    assert time.perf_counter() - started < 2


def test_the_active_visible_sheet_is_read_not_a_hidden_first_one(tmp_path: Path) -> None:
    hidden = corpus.sheet_xml(
        [(1, HEADER.split(",")), (2, [LI, "旧名", "H9", "低保", "2020-01-01", "", "OLD"])]
    )
    parts = corpus.workbook_parts(
        [
            ("旧", hidden, "hidden"),
            ("名单", corpus.sheet_xml(numbered([2, 3])), "visible"),
            ("备用", hidden, "visible"),
        ],
        active=1,
    )
    assert [line.name for line in read_roster(workbook(tmp_path, parts)).lines] == ["人0", "人1"]


def sheet_parts() -> dict[str, bytes]:
    return corpus.workbook_parts([("名单", corpus.sheet_xml(numbered([2, 3])), "visible")])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (
            lambda data: corpus.patch_method(data, b"xl/worksheets/sheet1.xml", 8, flags=1),
            "is an encrypted",
        ),
        (
            lambda data: corpus.patch_method(data, b"xl/worksheets/sheet1.xml", 9),
            "compressed with method 9",
        ),
        (
            lambda data: data[:300] + bytes(b ^ 0xFF for b in data[300:330]) + data[330:],
            "is not a readable Excel",
        ),
    ],
)
def test_a_damaged_workbook_is_refused_in_one_line_not_a_traceback(
    tmp_path: Path, damage: Callable[[bytes], bytes], reason: str
) -> None:
    path = tmp_path / "roster.xlsx"
    path.write_bytes(damage(corpus.zip_bytes(sheet_parts())))
    with pytest.raises(InvalidInput, match=reason) as raised:
        read_roster(path)
    assert "\n" not in raised.value.message


def test_a_shared_string_index_out_of_range_is_refused(tmp_path: Path) -> None:
    shared: dict[str, int] = {}
    xml = corpus.sheet_xml(numbered([2, 3]), shared).replace(b"<v>8</v>", b"<v>99</v>", 1)
    parts = corpus.workbook_parts([("名单", xml, "visible")], shared=corpus.shared_xml(shared))
    with pytest.raises(InvalidInput, match="refers to shared string '99', but the workbook holds"):
        read_roster(workbook(tmp_path, parts))


@pytest.mark.parametrize(
    ("head", "repeated", "times", "tail"),
    [
        (b"", b"<row/>", 40_000_000, b""),  # 40 million empty rows
        (b'<row r="1">', b"<c/>", 5_000_000, b"</row>"),  # 5 million empty cells
    ],
)
def test_a_zip_bomb_is_refused_at_once(
    tmp_path: Path, head: bytes, repeated: bytes, times: int, tail: bytes
) -> None:
    start = f'<worksheet xmlns="{corpus.MAIN}"><sheetData>'.encode()
    path = tmp_path / "roster.xlsx"
    path.write_bytes(
        corpus.stream_zip(
            "xl/worksheets/sheet1.xml",
            start + head,
            repeated,
            times,
            tail + b"</sheetData></worksheet>",
        )
    )
    started = time.perf_counter()
    with pytest.raises(InvalidInput, match="is refused as a zip bomb"):
        read_roster(path)
    assert time.perf_counter() - started < 2


def test_an_xlsx_cell_of_two_million_characters_is_refused(tmp_path: Path) -> None:
    rows = numbered([2, 3])
    rows[1][1][1] = "".join(random.Random(1).choices("周丽张建国王秀英刘洋陈静", k=2_000_000))
    with pytest.raises(InvalidInput, match="cell B2 holds more than 32,767 characters"):
        read_roster(
            workbook(tmp_path, corpus.workbook_parts([("名单", corpus.sheet_xml(rows), "visible")]))
        )


def test_an_xlsx_date_in_a_custom_format_of_a_1904_workbook_is_a_date(tmp_path: Path) -> None:
    workbook_ = Workbook()
    sheet = workbook_.active
    assert sheet is not None
    sheet.append(HEADER.split(","))
    sheet.append([ZHANG, "张建国", "H1", "低保", datetime(2024, 3, 1), None, "R1"])
    sheet["E2"].number_format = 'yyyy"年"m"月"d"日"'
    workbook_.epoch = CALENDAR_MAC_1904
    path = tmp_path / "roster.xlsx"
    workbook_.save(path)
    assert [line.valid_from for line in read_roster(path).lines] == [date(2024, 3, 1)]


def test_too_many_records_are_refused_before_the_first_batch_also_when_cr_ends_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roster_file, "MAX_ROWS", 5)
    path = write_csv(tmp_path, "\r".join([HEADER, *ROWS[:6]]) + "\r")  # old Mac line ends
    with pytest.raises(InvalidInput, match="has more than 5 rows"):
        next(read_roster_batches(path, batch_size=1))

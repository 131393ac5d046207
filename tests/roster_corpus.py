"""A seeded corpus of malformed roster files (tests/test_roster_corpus.py), and its runner.

:func:`write_corpus` writes mutations of valid rosters (CSV: quotes never or late
closed, stray quotes, mixed encodings, control and NUL bytes, truncation, huge cells,
BOMs in odd places, invisible characters, repeated headers, CR/LF mixes...; xlsx:
damaged zips, bombs, odd row numbers, hidden sheets, missing parts, shared-string
errors...) with what reading each must give: refused or not (None: either), and the
lines that must come back as a RosterLine or a LineError when it is read, counted
from the bytes the generator wrote, independently of the reader.

``python -m tests.roster_corpus MANIFEST`` reads every file of a corpus, each in a
forked process of its own (its time and resident peak measured, 10 s at most), and
prints one JSON object per file.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import resource
import signal
import struct
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HEADER = ["身份证号码", "姓名", "户编号", "救助类别", "认定日期", "终止日期", "业务编号", "备注"]
NAMES = ["张建国", "李桂兰", "周丽", "王秀英", "刘洋", "陈静", "阿依古丽·买买提", "欧阳娜娜"]
STATUSES = ["低保", "特困供养人员", "孤儿", "dibao", "低收入", "脱贫户", "重病", "临时救助"]
DATES = ["2024-03-01", "2024/3/1", "20240301", "2024年3月1日", "2024-02-30", "", "03/01/2024"]
LIMIT_SECONDS = 10
NEWLINE = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Case:
    """One generated file: ``refused`` True/False/None (either), ``lines`` the data lines
    that must each be a RosterLine or a LineError when the file is read."""

    name: str
    refused: bool | None
    lines: list[int] | None


# -- valid rosters ------------------------------------------------------------------------


def person_id(rng: random.Random) -> str:
    return f"4113231{rng.randrange(950, 999)}0{rng.randrange(1, 10)}1{rng.randrange(1000, 9999)}{rng.choice('0123456789X')}"


def data_rows(rng: random.Random, count: int) -> list[list[str]]:
    return [
        [
            person_id(rng),
            rng.choice(NAMES),
            f"H-{rng.randrange(1000)}",
            rng.choice(STATUSES),
            rng.choice(DATES),
            rng.choice(["", "2025-12-31"]),
            f"民政-2024-{index}",
            rng.choice(["", "复核", "新增"]),
        ]
        for index in range(count)
    ]


def csv_field(value: str) -> str:
    if any(char in value for char in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


# A CSV file built from encoded records: the start line of each data record is counted
# from the bytes before it, the way a text editor counts (CRLF, CR and LF each end a line).
@dataclass
class CsvFile:
    records: list[bytes]  # the header first, each with its line break
    data: list[bool]  # whether each record is a data record that must be accounted for

    def build(self) -> tuple[bytes, list[int]]:
        out = io.BytesIO()
        lines = []
        line = 1
        for record, is_data in zip(self.records, self.data, strict=True):
            if is_data:
                lines.append(line)
            out.write(record)
            line += len(NEWLINE.findall(record))
        return out.getvalue(), lines


def csv_file(
    rng: random.Random, count: int, encoding: str = "utf-8", newline: str = "\r\n"
) -> tuple[CsvFile, list[list[str]]]:
    rows = data_rows(rng, count)
    records = [_row_record(row, encoding, newline) for row in [HEADER, *rows]]
    if encoding == "utf-8-sig":
        records[0] = b"\xef\xbb\xbf" + records[0]
    return CsvFile(records, [False] + [True] * count), rows


# -- CSV mutations: each returns (bytes, refused, lines) -------------------------------------

Mutation = tuple[bytes, bool | None, list[int] | None]


def read_ok(file: CsvFile) -> Mutation:
    """A file that must be read, every data record accounted for."""
    data, lines = file.build()
    return data, False, lines


def _row_record(row: list[str], encoding: str = "utf-8", newline: str = "\r\n") -> bytes:
    """One record; utf-8-sig gives no BOM here (csv_file puts it before the header)."""
    encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    return (",".join(map(csv_field, row)) + newline).encode(encoding)


def unclosed_quote(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    index = rng.randrange(len(rows))
    column = rng.randrange(1, 7)
    row = rows[index]
    text = ",".join(map(csv_field, row[:column])) + ',"' + ",".join(map(csv_field, row[column:]))
    file.records[index + 1] = (text + "\r\n").encode()
    return file.build()[0], True, None


def quote_closed_later(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(12, 40))
    first = rng.randrange(len(rows) - 10)
    last = first + rng.randrange(2, 10)
    opened = rows[first][:]
    opened[1] = '"' + opened[1]
    closed = rows[last][:]
    closed[1] = closed[1] + '"'
    file.records[first + 1] = (",".join(opened) + "\r\n").encode()
    file.records[last + 1] = (",".join(closed) + "\r\n").encode()
    return file.build()[0], True, None


def stray_quote(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    index = rng.randrange(len(rows))
    row = rows[index][:]
    row[1] = f'"{row[1]}"x'
    file.records[index + 1] = (",".join(row) + "\n").encode()
    return file.build()[0], True, None


def quote_inside_a_value(rng: random.Random) -> Mutation:
    # A quote inside an unquoted value is the value's (csv's reading): no line is lost.
    file, rows = csv_file(rng, rng.randrange(5, 40))
    index = rng.randrange(len(rows))
    row = rows[index][:]
    row[1] = row[1][:1] + '"' + row[1][1:]
    file.records[index + 1] = (",".join(row) + "\n").encode()
    return read_ok(file)


def mixed_encodings(rng: random.Random) -> Mutation:
    major, minor = rng.choice([("utf-8", "gb18030"), ("gb18030", "utf-8"), ("utf-8-sig", "gbk")])
    file, rows = csv_file(rng, rng.randrange(10, 60), encoding=major)
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 4)):
        file.records[index + 1] = _row_record(rows[index], minor)
    data, lines = file.build()
    return data, False, lines


def control_bytes(rng: random.Random) -> Mutation:
    data, _ = csv_file(rng, rng.randrange(5, 40))[0].build()
    at = rng.randrange(len(data))
    byte = bytes([rng.choice([*range(9), 11, 12, *range(14, 32), 127])])
    return data[:at] + byte + data[at:], True, None


def truncated(rng: random.Random) -> Mutation:
    file, _ = csv_file(rng, rng.randrange(5, 40))
    data, lines = file.build()
    cut = rng.randrange(len(file.records[0]) + 1, len(data))
    starts = [sum(map(len, file.records[:i])) for i in range(1, len(file.records))]
    kept = [line for line, start in zip(lines, starts, strict=True) if start < cut]
    return data[:cut], None, kept


def huge_cell(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 20))
    index = rng.randrange(len(rows))
    row = rows[index][:]
    size = rng.choice([300, 5_000, 40_000, 300_000])
    row[rng.choice([1, 2, 6, 7])] = "".join(rng.choices("周丽张建国x", k=size))
    file.records[index + 1] = _row_record(row)
    data, lines = file.build()
    return data, (size > 32_767), lines


def odd_boms(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    bom = "\ufeff".encode()
    where = rng.choice(["lines", "fields", "double"])
    if where == "double":
        file.records[0] = bom + bom + file.records[0]
        return file.build()[0], True, None  # the second BOM sits in the header's first name
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 3)):
        row = rows[index][:]
        if where == "lines":
            row[0] = "\ufeff" + row[0]
        else:
            column = rng.randrange(1, 7)
            row[column] = row[column] + "\ufeff"
        file.records[index + 1] = _row_record(row)
    return read_ok(file)


INVISIBLE = [
    "\ufeff",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\u202e",
    "\u2028",
    "\u2029",
    "\t",
    "\r",
    "\x85",
    "\xad",
]


def invisible_characters(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 2)):
        row = rows[index][:]
        for column in rng.sample([0, 1, 2, 6], k=2):
            at = rng.randrange(len(row[column]) + 1)
            row[column] = row[column][:at] + rng.choice(INVISIBLE) + row[column][at:]
        file.records[index + 1] = _row_record(row)
    return read_ok(file)


def repeated_header(rng: random.Random) -> Mutation:
    file, _rows = csv_file(rng, rng.randrange(5, 40))
    if rng.random() < 0.5:  # the header again as a row: a row of bad values
        at = rng.randrange(2, len(file.records))
        file.records.insert(at, file.records[0])
        file.data.insert(at, True)
        return read_ok(file)
    file.records[0] = (",".join([*HEADER, "姓名"]) + "\r\n").encode()  # two name columns
    return file.build()[0], True, None


def newline_mixes(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    for index, row in enumerate([HEADER, *rows]):
        file.records[index] = _row_record(row, newline=rng.choice(["\r\n", "\n", "\r"]))
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 5)):  # a line break in 备注
        row = rows[index][:]
        row[7] = "复核" + rng.choice(["\r\n", "\n", "\r"]) + "待定"
        file.records[index + 1] = _row_record(row, newline=rng.choice(["\r\n", "\n"]))
    return read_ok(file)


def nul_bytes(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    data, _ = file.build()
    if rng.random() < 0.5:  # UTF-16 saved as CSV: NULs everywhere
        return "\n".join(",".join(row) for row in [HEADER, *rows]).encode("utf-16-le"), True, None
    at = rng.randrange(len(data))
    return data[:at] + b"\x00" * rng.randrange(1, 5) + data[at:], True, None


def blank_lines(rng: random.Random) -> Mutation:
    file, _rows = csv_file(rng, rng.randrange(5, 40))
    for _ in range(rng.randrange(1, 10)):
        at = rng.randrange(1, len(file.records) + 1)
        file.records.insert(at, rng.choice([b"\r\n", b"\n", b",,,,,,,\r\n", b" , ,\r\n"]))
        file.data.insert(at, False)
    return read_ok(file)


def ragged_rows(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 3)):
        row = rows[index][: rng.randrange(1, 8)] if rng.random() < 0.7 else rows[index] + ["x"] * 5
        file.records[index + 1] = _row_record(row)
    if rng.random() < 0.2:  # far too many columns
        file.records[1] = _row_record(rows[0] + [""] * 300)
        return file.build()[0], True, None
    return read_ok(file)


def byte_flips(rng: random.Random) -> Mutation:
    encoding = rng.choice(["utf-8", "gb18030"])
    file, rows = csv_file(rng, rng.randrange(5, 40), encoding=encoding)
    for index in rng.sample(range(1, len(file.records)), k=max(1, len(rows) // 3)):
        record = bytearray(file.records[index])
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(record) - 2)
            if record[at] not in b',"\r\n':
                record[at] = rng.randrange(0x80, 0x100)
        file.records[index] = bytes(record)
    return read_ok(file)


def bad_values(rng: random.Random) -> Mutation:
    file, rows = csv_file(rng, rng.randrange(5, 40))
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 2)):
        row = rows[index][:]
        row[rng.choice([0, 3, 4, 5])] = rng.choice(
            ["4.11323E+17", "未知", "2024-13-45", "abc", "-1"]
        )
        file.records[index + 1] = _row_record(row)
    return read_ok(file)


def long_line(rng: random.Random) -> Mutation:
    file, _rows = csv_file(rng, 3)
    file.records[2] = b"x" * rng.randrange(1 << 20, 1 << 21) + b"\n"
    return file.build()[0], True, None


def not_a_roster(rng: random.Random) -> Mutation:
    choice = rng.randrange(4)
    if choice == 0:
        return b"", True, None
    if choice == 1:
        return b"%PDF-1.7\n" + rng.randbytes(200), True, None
    if choice == 2:
        return "西峡县花名册\n只有标题\n".encode(), True, None
    return rng.randbytes(rng.randrange(1, 3000)), True, None


def header_with_invisible(rng: random.Random) -> Mutation:
    file, _rows = csv_file(rng, rng.randrange(5, 20))
    header = HEADER[:]
    column = rng.randrange(7)
    header[column] = header[column][:1] + rng.choice(INVISIBLE[:8]) + header[column][1:]
    file.records[0] = _row_record(header)
    return file.build()[0], True, None


CSV_MUTATIONS: list[Callable[[random.Random], Mutation]] = [
    unclosed_quote,
    quote_closed_later,
    stray_quote,
    quote_inside_a_value,
    mixed_encodings,
    control_bytes,
    truncated,
    huge_cell,
    odd_boms,
    invisible_characters,
    repeated_header,
    newline_mixes,
    nul_bytes,
    blank_lines,
    ragged_rows,
    byte_flips,
    bad_values,
    not_a_roster,
    header_with_invisible,
]


# -- workbooks ------------------------------------------------------------------------------

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"


def esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def column_name(number: int) -> str:
    name = ""
    while number:
        number, rest = divmod(number - 1, 26)
        name = chr(65 + rest) + name
    return name


def sheet_xml(rows: list[tuple[int, list[str]]], shared: dict[str, int] | None = None) -> bytes:
    """A worksheet of text cells: inline strings, or shared strings when ``shared`` is given."""
    out = [
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{MAIN}"><sheetData>'
    ]
    for number, cells in rows:
        out.append(f'<row r="{number}">')
        for column, value in enumerate(cells, 1):
            if not value:
                continue
            ref = f"{column_name(column)}{number}"
            if shared is not None:
                index = shared.setdefault(value, len(shared))
                out.append(f'<c r="{ref}" t="s"><v>{index}</v></c>')
            else:
                out.append(f'<c r="{ref}" t="inlineStr"><is><t>{esc(value)}</t></is></c>')
        out.append("</row>")
    out.append("</sheetData></worksheet>")
    return "".join(out).encode()


def shared_xml(shared: dict[str, int]) -> bytes:
    items = "".join(f"<si><t>{esc(text)}</t></si>" for text in shared)
    return f'<sst xmlns="{MAIN}" count="{len(shared)}" uniqueCount="{len(shared)}">{items}</sst>'.encode()


def workbook_parts(
    sheets: list[tuple[str, bytes, str]], active: int = 0, shared: bytes | None = None
) -> dict[str, bytes]:
    """The parts of a workbook of ``sheets`` (name, XML, state)."""
    entries = "".join(
        f'<sheet name="{esc(name)}" sheetId="{i}" state="{state}" r:id="rId{i}"/>'
        for i, (name, _, state) in enumerate(sheets, 1)
    )
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{RELS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, len(sheets) + 1)
    )
    if shared is not None:
        rels += f'<Relationship Id="rIdS" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>'
    parts = {
        "[Content_Types].xml": (
            b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/>'
            b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            b"</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{PACKAGE_RELS}"><Relationship Id="rId1" '
            f'Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ).encode(),
        "xl/workbook.xml": (
            f'<workbook xmlns="{MAIN}" xmlns:r="{RELS}"><bookViews><workbookView activeTab="{active}"/>'
            f"</bookViews><sheets>{entries}</sheets></workbook>"
        ).encode(),
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{PACKAGE_RELS}">{rels}</Relationships>'.encode(),
    }
    for i, (_, xml, _) in enumerate(sheets, 1):
        parts[f"xl/worksheets/sheet{i}.xml"] = xml
    if shared is not None:
        parts["xl/sharedStrings.xml"] = shared
    return parts


def zip_bytes(parts: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def roster_sheet(rng: random.Random, count: int) -> tuple[list[tuple[int, list[str]]], list[int]]:
    rows = data_rows(rng, count)
    numbered = [(1, HEADER), *((i + 2, row) for i, row in enumerate(rows))]
    return numbered, [number for number, _ in numbered[1:]]


def valid_workbook(rng: random.Random) -> Mutation:
    rows, lines = roster_sheet(rng, rng.randrange(5, 40))
    if rng.random() < 0.5:
        shared: dict[str, int] = {}
        xml = sheet_xml(rows, shared)
        return (
            zip_bytes(workbook_parts([("名单", xml, "visible")], shared=shared_xml(shared))),
            False,
            lines,
        )
    return zip_bytes(workbook_parts([("名单", sheet_xml(rows), "visible")])), False, lines


def _workbook(
    rng: random.Random, rows: list[tuple[int, list[str]]] | None = None
) -> dict[str, bytes]:
    rows = rows or roster_sheet(rng, rng.randrange(5, 30))[0]
    return workbook_parts([("名单", sheet_xml(rows), "visible")])


def repeated_row_numbers(rng: random.Random) -> Mutation:
    rows, _ = roster_sheet(rng, 6)
    order = rng.choice([[2, 3, 3, 2, 4, 5], [2, 4, 3, 5, 6, 7], [2, 3, 4, 5, 6, 6]])
    renumbered = [
        rows[0],
        *((number, row) for number, (_, row) in zip(order, rows[1:], strict=True)),
    ]
    return zip_bytes(_workbook(rng, renumbered)), True, None


def far_row_number(rng: random.Random) -> Mutation:
    rows, _ = roster_sheet(rng, 3)
    rows[-1] = (rng.choice([10**12, 1_048_577, 2**40]), rows[-1][1])
    return zip_bytes(_workbook(rng, rows)), True, None


def hidden_first_sheet(rng: random.Random) -> Mutation:
    junk = sheet_xml([(1, ["序号", "备注"]), (2, ["1", "旧"])])
    rows, lines = roster_sheet(rng, rng.randrange(5, 30))
    state = rng.choice(["hidden", "veryHidden"])
    parts = workbook_parts(
        [("旧表", junk, state), ("名单", sheet_xml(rows), "visible")], active=rng.choice([0, 1])
    )
    return zip_bytes(parts), False, lines


def every_sheet_hidden(rng: random.Random) -> Mutation:
    rows, _ = roster_sheet(rng, 5)
    return zip_bytes(workbook_parts([("名单", sheet_xml(rows), "hidden")])), True, None


def patch_method(data: bytes, name: bytes, method: int, flags: int = 0) -> bytes:
    """Set the compression method (and flag bits) of ``name`` in both of its headers."""
    out = bytearray(data)
    for signature, method_at, flags_at, name_at in (
        (b"PK\x03\x04", 8, 6, 30),
        (b"PK\x01\x02", 10, 8, 46),
    ):
        start = 0
        while (start := out.find(signature, start)) >= 0:
            length = struct.unpack_from(
                "<H", out, start + (26 if signature == b"PK\x03\x04" else 28)
            )[0]
            if out[start + name_at : start + name_at + length] == name:
                struct.pack_into("<H", out, start + method_at, method)
                old = struct.unpack_from("<H", out, start + flags_at)[0]
                struct.pack_into("<H", out, start + flags_at, old | flags)
            start += 4
    return bytes(out)


def damaged_zip(rng: random.Random) -> Mutation:
    data = zip_bytes(_workbook(rng))
    sheet = b"xl/worksheets/sheet1.xml"
    kind = rng.choice(["encrypted", "deflate64", "bzip2", "corrupt", "truncated", "garbage"])
    if kind == "encrypted":
        return patch_method(data, sheet, zipfile.ZIP_DEFLATED, flags=1), True, None
    if kind == "deflate64":
        return patch_method(data, sheet, 9), True, None
    if kind == "bzip2":
        return zip_bytes(_workbook(rng), method=zipfile.ZIP_BZIP2), True, None
    if kind == "corrupt":
        at = (
            data.find(b"PK\x03\x04", data.find(sheet) - 40) + 30 + len(sheet) + rng.randrange(2, 40)
        )
        broken = bytearray(data)
        for offset in range(8):
            broken[at + offset] ^= 0xFF
        return bytes(broken), True, None
    if kind == "truncated":
        return data[: rng.randrange(10, len(data) - 10)], True, None
    return b"PK\x03\x04" + rng.randbytes(rng.randrange(100, 3000)), True, None


def shared_string_out_of_range(rng: random.Random) -> Mutation:
    rows, _ = roster_sheet(rng, rng.randrange(3, 10))
    shared: dict[str, int] = {}
    xml = sheet_xml(rows, shared)
    xml = xml.replace(b"<v>1</v>", f"<v>{len(shared) + rng.randrange(0, 99)}</v>".encode(), 1)
    if rng.random() < 0.3:
        xml = xml.replace(b"<v>2</v>", b"<v>-1</v>", 1)
    return (
        zip_bytes(workbook_parts([("名单", xml, "visible")], shared=shared_xml(shared))),
        True,
        None,
    )


def stream_zip(name: str, head: bytes, repeated: bytes, times: int, tail: bytes) -> bytes:
    """A zip of one workbook whose sheet ``name`` holds ``repeated`` ``times`` times,
    compressed as it is made (the sheet is never held whole)."""
    parts = _workbook(random.Random(0))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for part, data in parts.items():
            if part != name:
                archive.writestr(part, data)
        with archive.open(name, "w", force_zip64=True) as stream:
            stream.write(head)
            block = repeated * 10_000
            for _ in range(times // 10_000):
                stream.write(block)
            stream.write(tail)
    return out.getvalue()


def zip_bomb(rng: random.Random) -> Mutation:
    sheet = "xl/worksheets/sheet1.xml"
    head = f'<worksheet xmlns="{MAIN}"><sheetData>'.encode()
    tail = b"</sheetData></worksheet>"
    kind = rng.choice(["rows", "cells", "text"])
    if kind == "rows":  # millions of empty rows, no numbers
        return stream_zip(sheet, head, b"<row/>", 3_000_000, tail), True, None
    if kind == "cells":  # millions of empty cells in one row
        return (
            stream_zip(sheet, head + b'<row r="1">', b"<c/>", 3_000_000, b"</row>" + tail),
            True,
            None,
        )
    return (
        stream_zip(
            sheet,
            head + b'<row r="1"><c t="inlineStr"><is><t>',
            b"x",
            5_000_000,
            b"</t></is></c></row>" + tail,
        ),
        True,
        None,
    )


def huge_xlsx_cell(rng: random.Random) -> Mutation:
    rows, _ = roster_sheet(rng, 3)
    size = rng.choice([40_000, 2_000_000])
    rows[2] = (
        rows[2][0],
        [rows[2][1][0], "".join(rng.choices("周丽张建国王秀英刘洋陈静", k=size)), *rows[2][1][2:]],
    )
    return zip_bytes(_workbook(rng, rows)), True, None


def missing_part(rng: random.Random) -> Mutation:
    parts = _workbook(rng)
    gone = rng.choice(["xl/worksheets/sheet1.xml", "xl/workbook.xml", "xl/_rels/workbook.xml.rels"])
    del parts[gone]
    return zip_bytes(parts), True, None


def wrong_content_types(rng: random.Random) -> Mutation:
    rows, lines = roster_sheet(rng, rng.randrange(5, 20))
    parts = _workbook(rng, rows)
    if rng.random() < 0.5:
        del parts["[Content_Types].xml"]
    else:
        parts["[Content_Types].xml"] = (
            b"<Types><Default Extension='xml' ContentType='text/plain'/></Types>"
        )
    return zip_bytes(parts), False, lines


def broken_xml(rng: random.Random) -> Mutation:
    parts = _workbook(rng)
    sheet = parts["xl/worksheets/sheet1.xml"]
    kind = rng.choice(["cut", "dtd", "tag"])
    if kind == "cut":
        parts["xl/worksheets/sheet1.xml"] = sheet[: rng.randrange(60, len(sheet) - 5)]
    elif kind == "dtd":
        laughs = (
            '<!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        )
        parts["xl/worksheets/sheet1.xml"] = sheet.replace(
            b"<worksheet", laughs.encode() + b"<worksheet", 1
        )
    else:
        parts["xl/worksheets/sheet1.xml"] = sheet.replace(b"</row>", b"</rw>", 1)
    return zip_bytes(parts), True, None


def huge_dimension(rng: random.Random) -> Mutation:
    rows, lines = roster_sheet(rng, rng.randrange(5, 20))
    parts = _workbook(rng, rows)
    parts["xl/worksheets/sheet1.xml"] = parts["xl/worksheets/sheet1.xml"].replace(
        b"<sheetData>", b'<dimension ref="A1:XFD1048576"/><sheetData>', 1
    )
    return zip_bytes(parts), False, lines


def odd_cells(rng: random.Random) -> Mutation:
    parts = _workbook(rng)
    sheet = parts["xl/worksheets/sheet1.xml"]
    kind = rng.choice(["order", "row", "far", "column200", "type", "number", "ref"])
    replacement = {
        "order": (b'<c r="A2"', b'<c r="Z2"'),
        "row": (b'<c r="B3"', b'<c r="B9"'),
        "far": (b'<c r="G2"', b'<c r="XFE2"'),
        "column200": (b'<c r="G2"', b'<c r="ZZ2"'),
        "type": (b't="inlineStr"', b't="q"'),
        "number": (b'<c r="A2" t="inlineStr"><is><t>', b'<c r="A2"><v>'),
        "ref": (b'<c r="B2"', b'<c r="2B"'),
    }[kind]
    sheet = sheet.replace(*replacement, 1)
    if kind == "number":
        sheet = re.sub(rb"(<c r=\"A2\"><v>[^<]*)</t></is>", rb"\1x</v>", sheet, count=1)
    parts["xl/worksheets/sheet1.xml"] = sheet
    return zip_bytes(parts), True, None


def rows_without_numbers(rng: random.Random) -> Mutation:
    rows, lines = roster_sheet(rng, rng.randrange(5, 20))
    parts = _workbook(rng, rows)
    sheet = parts["xl/worksheets/sheet1.xml"]
    sheet = re.sub(rb'<row r="[0-9]+">', b"<row>", sheet)
    parts["xl/worksheets/sheet1.xml"] = re.sub(rb' r="[A-Z]+[0-9]+"', b"", sheet)
    return zip_bytes(parts), False, lines


def chart_sheet_active(rng: random.Random) -> Mutation:
    parts = _workbook(rng)
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"/worksheet", b"/chartsheet"
    )
    return zip_bytes(parts), True, None


def not_a_workbook(rng: random.Random) -> Mutation:
    choice = rng.randrange(3)
    if choice == 0:
        return zip_bytes({}), True, None
    if choice == 1:
        return zip_bytes({"roster.csv": ",".join(HEADER).encode()}), True, None
    return zip_bytes({"xl/workbook.xml": rng.randbytes(500)}), True, None


XLSX_MUTATIONS: list[Callable[[random.Random], Mutation]] = [
    valid_workbook,
    repeated_row_numbers,
    far_row_number,
    hidden_first_sheet,
    every_sheet_hidden,
    damaged_zip,
    shared_string_out_of_range,
    zip_bomb,
    huge_xlsx_cell,
    missing_part,
    wrong_content_types,
    broken_xml,
    huge_dimension,
    odd_cells,
    rows_without_numbers,
    chart_sheet_active,
    not_a_workbook,
]


def generate(
    seed: int = 20261203, csv_each: int = 17, xlsx_each: int = 3
) -> Iterator[tuple[str, Mutation]]:
    """(file name, mutation) for every file of the corpus: the same for the same seed."""
    rng = random.Random(seed)
    for mutations, suffix, each in (
        (CSV_MUTATIONS, "csv", csv_each),
        (XLSX_MUTATIONS, "xlsx", xlsx_each),
    ):
        for mutation in mutations:
            for number in range(each):
                yield (
                    f"{mutation.__name__}-{number}.{suffix}",
                    mutation(random.Random(rng.random())),
                )
    yield "long_line-0.csv", long_line(random.Random(rng.random()))


def write_corpus(folder: Path, seed: int = 20261203) -> list[Case]:
    cases = []
    for name, (data, refused, lines) in generate(seed):
        (folder / name).write_bytes(data)
        cases.append(Case(name, refused, lines))
    (folder / "manifest.json").write_text(json.dumps([asdict(case) for case in cases]))
    return cases


# -- the runner -----------------------------------------------------------------------------


def _read_one(path: Path) -> dict[str, object]:
    from doudi.cli.roster_file import read_roster
    from doudi.core.errors import InvalidInput

    try:
        roster = read_roster(path)
    except InvalidInput as error:
        return {"outcome": "refused", "message": error.message}
    except BaseException:
        return {"outcome": "crashed", "message": traceback.format_exc()}
    texts = [
        value
        for line in roster.lines
        for value in (line.person_id, line.name, line.household_id, line.reference)
    ]
    return {
        "outcome": "read",
        "lines": sorted(
            {line.line for line in roster.lines} | {error.line for error in roster.errors}
        ),
        "invisible": [text for text in texts if not text.isprintable() and text.strip()][:3],
        "longest": max(map(len, texts), default=0),
    }


def run(manifest: Path) -> None:
    """Read every file of the manifest in a forked child each: one JSON line per file."""
    import openpyxl  # noqa: F401

    import doudi.cli.roster_file  # noqa: F401 - imported once, before the forks

    for case in json.loads(manifest.read_text()):
        path = manifest.parent / case["name"]
        read_end, write_end = os.pipe()
        started = time.perf_counter()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            signal.alarm(LIMIT_SECONDS + 2)
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
            result = _read_one(path)
            with os.fdopen(write_end, "w") as out:
                out.write(json.dumps(result))
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            output = pipe.read()
        _, status, usage = os.wait4(child, 0)
        result = (
            json.loads(output) if output else {"outcome": "died", "message": f"status {status}"}
        )
        result.update(
            name=case["name"], seconds=time.perf_counter() - started, peak_mb=usage.ru_maxrss / 1024
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    run(Path(sys.argv[1]))

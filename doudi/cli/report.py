"""The bureau's monitoring report (docs/domain.md section 8): ``doudi report --region CODE
--year YYYY [--month M] [--json | --csv FILE | --xlsx FILE]``.

Every figure of a region's month and of its year to the month's end (no month: the
whole year), by category and visit type, as the assistance service's ``GetReport``
answers them (services/assistance/README.md, reports, defines each). The command calls
it with the platform's internal token (``DOUDI_INTERNAL_TOKEN``) at
``DOUDI_ASSISTANCE_ADDRESS`` (else where ``doudi run`` starts it). The table shows money
in yuan with two decimals and categories by their Chinese names; ``--json`` prints fen;
CSV and xlsx hold one line per figure, as the table does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from doudi.core.money import fen_to_yuan, format_yuan

if TYPE_CHECKING:  # gRPC is imported when the command calls the service, not for `doudi calc`
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub

COLUMNS: Final = ("指标", "类别", "类别名称", "就诊类型", "基金", "单位", "当月", "年初至今")
SHEET: Final = "监测报表"
FIGURE_NAMES: Final = {
    "monitored_people": "监测人数",
    "visits": "就诊人次",
    "total_fen": "医疗总费用",
    "fund_paid_fen": "基金支付",
    "personal_burden_fen": "个人负担",
    "eligible_burden_fen": "政策范围内个人负担",
    "reimbursement_ratio_bp": "综合报销比例",
    "clearing_fen": "应付医疗机构清算",
    "subsidised_enrolments": "资助参保人数",
    "subsidised_premium_fen": "资助参保保费",
    "warnings_raised": "预警发出",
    "warnings_certified": "预警认定",
    "warnings_dismissed": "预警排除",
    "warnings_overdue": "预警逾期未处理",
    "applications_accepted": "申请受理",
    "applications_decided": "申请办结",
    "applications_overdue": "申请逾期未办结",
    "decision_working_days": "办结工作日合计",
    "decision_working_days_average": "平均办结工作日",
    "secondary_people": "二次救助人数",
    "secondary_person_times": "二次救助人次",
    "secondary_paid_fen": "二次救助金额",
    "proactive_people": "主动救助人数",
    "proactive_person_times": "主动救助人次",
    "proactive_paid_fen": "主动救助金额",
}
VISIT_TYPE_NAMES: Final = {
    "": "合计",
    "inpatient": "住院",
    "outpatient_chronic": "门诊慢性病",
    "outpatient_major": "门诊特殊病",
    "outpatient_general": "普通门诊",
    "pharmacy": "定点药店",
}
UNIT_NAMES: Final = {"count": "", "fen": "元", "basis_points": "%", "hundredths": "工作日"}


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``doudi report`` under the command list ``commands`` of ``doudi``."""
    from doudi.cli import main as cli  # its argument types; loaded by now
    from doudi.cli.main import add_assistance_option  # loaded by now

    report = cli._command(
        commands,
        "report",
        "the bureau: a region's monitoring figures for a month and the year to date",
        "Print every monitoring figure of a region (docs/domain.md section 8): monitored "
        "people, their visits and costs, the reimbursement ratio, each fund's payments and "
        "the clearing owed to hospitals, subsidised enrolments, warnings, applications, "
        "secondary and proactive assistance; for the month and for the year to its end "
        "(no --month: the whole year), by category and visit type. The bureau's command: "
        "it calls the assistance service with the platform's token (DOUDI_INTERNAL_TOKEN). "
        "Exit 1 when the service cannot be reached or refuses, 2 on bad input.",
    )
    report.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="the 6-digit code"
    )
    report.add_argument(
        "--year", required=True, type=cli._year, metavar="YEAR", help="the calendar year"
    )
    report.add_argument("--month", type=_month, metavar="M", help="1 to 12 (default: none)")
    output = report.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print JSON (money in fen) instead of a table"
    )
    output.add_argument(
        "--csv", type=Path, metavar="FILE", help="write the figures as CSV (UTF-8, BOM)"
    )
    output.add_argument("--xlsx", type=Path, metavar="FILE", help="write the figures as xlsx")
    add_assistance_option(report)


def _month(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month from 1 to 12")
    return int(text)


def run(args: argparse.Namespace) -> int:
    """``doudi report``; its exit status."""
    from doudi.cli import main as cli
    from doudi.cli import rpc_errors

    for option, path in (("--csv", args.csv), ("--xlsx", args.xlsx)):
        if path is not None and not path.parent.is_dir():
            return cli._fail(f"{option}: {path.parent} is not a directory")
    return rpc_errors.call_assistance(
        args.assistance, lambda stub, metadata: _report(stub, metadata, args)
    )


def _report(stub: AssistanceServiceStub, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.cli import comparisons
    from doudi.cli import main as cli

    answer = stub.GetReport(
        pb.GetReportRequest(region=args.region, year=args.year, month=args.month or 0),
        metadata=metadata,
    )
    if args.json:
        cli.write_json(report_document(answer))
        return 0
    for file_format, path in (("csv", args.csv), ("xlsx", args.xlsx)):
        if path is not None:
            count = comparisons.export(
                (line(row) for row in answer.rows), path, file_format, columns=COLUMNS, sheet=SHEET
            )
            print(f"{path}: {count:,} figures of {args.region}, {_period(answer)}")
            return 0
    sys.stdout.write(report_text(answer))
    return 0


def report_document(answer: pb.GetReportResponse) -> dict[str, object]:
    """The report as JSON: money in fen, every row as the service answered it."""
    from doudi.common.enums import ASSISTANCE_VISIT_TYPES

    return {
        "region": answer.region,
        "year": answer.year,
        "month": answer.month or None,
        "as_of": _day(answer),
        "rows": [
            {
                "figure": row.figure,
                "category": row.category,
                "category_name": row.category_name,
                "visit_type": ASSISTANCE_VISIT_TYPES.optional_code(row.visit_type, "visit_type")
                or "",
                "fund": row.fund,
                "unit": row.unit,
                "month": row.month if answer.month else None,
                "year_to_date": row.year_to_date,
            }
            for row in answer.rows
        ],
    }


def line(row: pb.ReportRow, money: Callable[[int], str] = fen_to_yuan) -> tuple[str, ...]:
    """A figure's line of the CSV and the xlsx (and, with ``format_yuan``, the table):
    money in yuan."""
    from doudi.common.enums import ASSISTANCE_VISIT_TYPES

    visit_type = ASSISTANCE_VISIT_TYPES.optional_code(row.visit_type, "visit_type") or ""
    return (
        FIGURE_NAMES.get(row.figure, row.figure),
        row.category,
        row.category_name,
        VISIT_TYPE_NAMES[visit_type],
        row.fund,
        UNIT_NAMES.get(row.unit, row.unit),
        value_text(row.month, row.unit, money),
        value_text(row.year_to_date, row.unit, money),
    )


def value_text(value: int, unit: str, money: Callable[[int], str] = fen_to_yuan) -> str:
    """Fen as yuan with two decimals, basis points as a percentage and hundredths of a
    working day as days (each a hundredth of what is shown: two decimals); counts as they
    are."""
    if unit == "fen":
        return money(value)
    if unit in ("basis_points", "hundredths"):
        return fen_to_yuan(value)
    return str(value)


def report_text(answer: pb.GetReportResponse) -> str:
    from doudi.cli import columns

    lines = [f"{answer.region} {_period(answer)} (逾期按 {_day(answer)})\n"]
    header = [COLUMNS[0], *COLUMNS[2:6]]
    shown_rows = []
    for row in answer.rows:
        cells = line(row, format_yuan)
        month = cells[6] if answer.month else ""
        shown_rows.append([cells[0], cells[2], cells[3], cells[4], cells[5], month, cells[7]])
    texts = [[*header, "当月", "年初至今"], *shown_rows]
    widths = [max(columns.width(texts[i][c]) for i in range(len(texts))) for c in range(7)]
    for shown in texts:
        left = zip(shown[:5], widths[:5], strict=True)
        right = zip(shown[5:], widths[5:], strict=True)
        lines.append(
            "  ".join(columns.left(text, width) for text, width in left)
            + "  "
            + "  ".join(columns.right(text, width) for text, width in right)
            + "\n"
        )
    return "".join(lines)


def _period(answer: pb.GetReportResponse) -> str:
    if answer.month:
        return f"{answer.year}年{answer.month}月 (年初至{answer.month}月底)"
    return f"{answer.year}年全年"


def _day(answer: pb.GetReportResponse) -> str:
    return f"{answer.as_of.year:04d}-{answer.as_of.month:02d}-{answer.as_of.day:02d}"

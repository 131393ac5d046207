"""The bureau's side of 'everyone poor is insured': compare a region's rosters with the
register, export who is where as CSV or Excel, and enrol the gap (``doudi roster
compare``, ``doudi roster export``, ``doudi roster enrol``).

The work is the services'; this module calls them with the platform's internal token
(``DOUDI_INTERNAL_TOKEN``) and writes the clerk's file. An export holds identity
numbers in full (a case worker needs them): it is written only where the clerk says.

Names and household numbers come from the agencies' files, so no cell of an export may
become a spreadsheet formula (CSV or formula injection, after OWASP's "CSV Injection"):

- xlsx writes every cell as text (an inline string), never a formula, a number or an
  error value. The clerk sees each value exactly as the roster or the register holds
  it: ``=HYPERLINK(...)`` or ``-张`` shows as that text and is never evaluated, and an
  identity number keeps all 18 characters.
- CSV has no cell types, and a spreadsheet (Excel, WPS, LibreOffice) may evaluate a
  cell that begins with ``=``, ``+``, ``-``, ``@``, a tab, CR or LF (OWASP's list).
  Such a cell gets a single quote in front (``'=HYPERLINK(...)``, ``'-张``), and so does each place inside a cell where a
  spreadsheet that splits on another separator would start a new cell with one of
  them: after a comma, semicolon, tab, vertical bar, CR or LF (``张三;=1+1`` is written
  ``张三;'=1+1``). Every cell is wrapped in double quotes (a double quote inside is
  doubled), so a separator inside a cell stays inside it. The clerk sees the quote as
  part of those few cells; the xlsx export holds them unchanged, for a case worker who
  needs a name exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from doudi.common import exports
from doudi.common.enums import AGENCIES, COMPARISON_CLASSES, GAP_REASONS, STATUSES
from doudi.common.exports import FORMATS as FORMATS  # the commands check a file's suffix against it
from doudi.common.outbox import internal_metadata
from doudi.common.settings import ProcessSettings
from doudi.core.codes import STATUSES as STATUS_NAMES
from doudi.core.money import format_yuan
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc

PAGE = 1000
CLASS_NAMES = {
    "insured": "已参保",
    "not_insured": "未参保",
    "insured_elsewhere": "异地参保",
    "name_differs": "姓名不一致(待核)",
}
GAP_REASON_NAMES = {"not_registered": "未登记参保", "not_enrolled": "已登记, 本年未参保"}
AGENCY_NAMES = {
    "civil_affairs": "民政局",
    "poverty_office": "乡村振兴局",
    "trade_union": "工会",
    "veteran_cadre_bureau": "老干局",
    "disabled_persons_federation": "残联",
    "veterans_affairs": "退役军人事务局",
}
COLUMNS = (
    "身份证号",
    "名单姓名",
    "登记姓名",
    "比对结果",
    "未参保原因",
    "报送机构",
    "身份类别",
    "户编号",
    "参保地区",
    "多机构重复",
)


@dataclass(frozen=True, slots=True)
class Bureau:
    """Stubs of datashare and enrollment, called as the platform."""

    datashare: datashare_pb2_grpc.DatashareServiceStub
    enrollment: enrollment_pb2_grpc.EnrollmentServiceStub
    metadata: tuple[tuple[str, str], ...]

    @classmethod
    def connect(
        cls, datashare: grpc.Channel, enrollment: grpc.Channel, settings: ProcessSettings
    ) -> Bureau:
        return cls(
            datashare_pb2_grpc.DatashareServiceStub(datashare),
            enrollment_pb2_grpc.EnrollmentServiceStub(enrollment),
            internal_metadata(settings),
        )

    def compare(self, region: str, year: int) -> datashare_pb2.Comparison:
        answer: datashare_pb2.CompareRostersResponse = self.datashare.CompareRosters(
            datashare_pb2.CompareRostersRequest(region=region, year=year), metadata=self.metadata
        )
        return answer.comparison

    def comparison(self, comparison_id: int) -> datashare_pb2.Comparison:
        answer: datashare_pb2.GetComparisonResponse = self.datashare.GetComparison(
            datashare_pb2.GetComparisonRequest(comparison_id=comparison_id), metadata=self.metadata
        )
        return answer.comparison

    def entries(
        self, comparison_id: int, klass: str | None
    ) -> Iterator[datashare_pb2.ComparisonEntry]:
        """Every person of the comparison (of one class), in identity-number order."""
        token = ""
        while True:
            request = datashare_pb2.ListComparisonEntriesRequest(
                comparison_id=comparison_id, page_size=PAGE, page_token=token
            )
            setattr(request, "class", COMPARISON_CLASSES.value(klass))  # a keyword
            page = self.datashare.ListComparisonEntries(request, metadata=self.metadata)
            yield from page.entries
            token = page.next_page_token
            if not token:
                return

    def enrol_gap(self, comparison_id: int) -> enrollment_pb2.EnrolGapResponse:
        answer: enrollment_pb2.EnrolGapResponse = self.enrollment.EnrolGap(
            enrollment_pb2.EnrolGapRequest(comparison_id=comparison_id), metadata=self.metadata
        )
        return answer


def class_count(comparison: datashare_pb2.Comparison, klass: str | None) -> int:
    """How many persons of the comparison are of ``klass`` (None: all)."""
    if klass is None:
        return comparison.person_count
    count: int = getattr(comparison, f"{klass}_count")
    return count


def export_row(entry: datashare_pb2.ComparisonEntry) -> tuple[str, ...]:
    """A person's line of the export, in the clerk's words."""
    klass = COMPARISON_CLASSES.code(getattr(entry, "class"), "class")
    reason = GAP_REASONS.optional_code(entry.gap_reason, "gap_reason")
    agencies = [AGENCIES.code(value, "agencies") for value in entry.agencies]
    statuses = [STATUSES.code(value, "statuses") for value in entry.statuses]
    return (
        entry.person_id,
        entry.roster_name,
        entry.registered_name,
        CLASS_NAMES[klass],
        GAP_REASON_NAMES[reason] if reason else "",
        "、".join(AGENCY_NAMES[agency] for agency in agencies),
        "、".join(STATUS_NAMES[status][0] for status in statuses),
        entry.household_id,
        entry.registered_region,
        "是" if entry.duplicate else "",
    )


def export(
    rows: Iterator[tuple[str, ...]],
    path: Path,
    file_format: str,
    *,
    columns: tuple[str, ...] = COLUMNS,
    sheet: str = "比对结果",
) -> int:
    """:func:`doudi.common.exports.export`, a comparison's columns and sheet by default."""
    return exports.export(rows, path, file_format, columns=columns, sheet=sheet)


def comparison_text(comparison: datashare_pb2.Comparison) -> str:
    """What a comparison found, for the clerk's terminal."""
    return (
        f"comparison {comparison.comparison_id}: region {comparison.region}, "
        f"{comparison.year}, rosters {', '.join(map(str, comparison.submission_ids)) or 'none'}\n"
        f"  persons certified   {comparison.person_count:>9,}\n"
        f"  insured             {comparison.insured_count:>9,}\n"
        f"  not insured (gap)   {comparison.not_insured_count:>9,}\n"
        f"  insured elsewhere   {comparison.insured_elsewhere_count:>9,}\n"
        f"  name differs        {comparison.name_differs_count:>9,}\n"
        f"  on several rosters  {comparison.duplicate_count:>9,} (counted once)\n"
    )


def enrolment_text(answer: enrollment_pb2.EnrolGapResponse) -> str:
    """What enrolling a gap did, with the totals by category, in yuan."""
    lines = [
        f"enrolled {answer.enrolled_count:,} (of them {answer.registered_count:,} newly "
        f"registered); already enrolled {answer.already_enrolled_count:,}; no subsidised "
        f"status {answer.not_subsidised_count:,}",
    ]
    if answer.totals:
        lines.append(
            f"  {'category':<24} {'persons':>9} {'premiums':>14} {'assistance fund':>16} "
            f"{'persons paid':>14}"
        )
    for total in answer.totals:
        lines.append(
            f"  {total.category:<24} {total.person_count:>9,} {format_yuan(total.premium_fen):>14} "
            f"{format_yuan(total.assistance_fund_fen):>16} {format_yuan(total.person_fen):>14}"
        )
    return "\n".join(lines) + "\n"

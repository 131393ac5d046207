"""The dashboard: a region's monitoring figures for a year (and a month), drawn and tabled.

The figures are the assistance service's report (``GetReport``, the same as
``doudi report``), asked once for the year with each month's figures
(``monthly``). Each chart shows its numbers in a table beside it;
every figure downloads as CSV or xlsx.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from doudi.assistance.v1 import assistance_pb2
from doudi.common.exports import MEDIA_TYPES, export_bytes
from doudi.core.money import fen_to_yuan, format_percent
from gateway.console import formats, labels
from gateway.console.clients import ConsoleError, call
from gateway.console.i18n import _
from gateway.console.labels import N_
from gateway.console.pages.common import (
    Choice,
    checked_region,
    region_choices,
    year_of,
)
from gateway.console.render import Viewer, render, viewer

router = APIRouter()

MONTHS: Final = tuple(range(1, 13))
Rows = Sequence[assistance_pb2.ReportRow]

FIGURES: Final = {
    "monitored_people": N_("Monitored people"),
    "visits": N_("Visits"),
    "total_fen": N_("Total costs"),
    "fund_paid_fen": N_("Paid by the funds"),
    "personal_burden_fen": N_("Personal burden"),
    "eligible_burden_fen": N_("Personal burden within the policy's scope"),
    "reimbursement_ratio_bp": N_("Final reimbursement ratio"),
    "clearing_fen": N_("Clearing owed to hospitals"),
    "subsidised_enrolments": N_("Subsidised enrolments"),
    "subsidised_premium_fen": N_("Subsidised premiums"),
    "warnings_raised": N_("Warnings raised"),
    "warnings_certified": N_("Warnings certified"),
    "warnings_dismissed": N_("Warnings dismissed"),
    "warnings_overdue": N_("Warnings overdue"),
    "applications_accepted": N_("Applications accepted"),
    "applications_decided": N_("Applications decided"),
    "applications_overdue": N_("Applications overdue"),
    "decision_working_days": N_("Working days to decision (sum)"),
    "decision_working_days_average": N_("Working days to decision (average)"),
    "secondary_people": N_("Secondary assistance: people"),
    "secondary_person_times": N_("Secondary assistance: person-times"),
    "secondary_paid_fen": N_("Secondary assistance paid"),
    "proactive_people": N_("Proactive assistance: people"),
    "proactive_person_times": N_("Proactive assistance: person-times"),
    "proactive_paid_fen": N_("Proactive assistance paid"),
}
UNITS: Final = {"count": "", "fen": N_("yuan"), "basis_points": "%", "hundredths": N_("days")}


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart and the table of its numbers: a row per x label, a column per series."""

    key: str
    title: str
    kind: str
    """``bar``, ``stacked`` or ``line``."""
    unit: str
    """``yuan``, ``count``, ``percent`` or ``days``."""
    x: list[str]
    series: list[tuple[str, list[int]]]

    def cell(self, value: int) -> str:
        return _shown(value, self.unit)

    def data(self) -> dict[str, Any]:
        """What console.js draws: labels, and each series' values as numbers to plot."""
        return {
            "kind": self.kind,
            "unit": self.unit,
            "x": self.x,
            "series": [
                {"name": name, "data": [_plotted(value, self.unit) for value in values]}
                for name, values in self.series
            ],
        }


def _shown(value: int, unit: str) -> str:
    if unit == "yuan":
        return formats.yuan(value)
    if unit == "percent":
        return format_percent(value)
    if unit == "days":
        return formats.hundredths(value)
    return f"{value:,}"


def _plotted(value: int, unit: str) -> str:
    """A value as the chart plots it: yuan and days as decimal text, exact to the fen."""
    if unit == "yuan":
        return fen_to_yuan(value)
    if unit in ("percent", "days"):
        return formats.hundredths(value)
    return str(value)


Index = dict[tuple[str, str, int, str], assistance_pb2.ReportRow]
"""A report's rows by figure, category, visit type and fund."""


def _index(rows: Rows) -> Index:
    """The rows found by their keys at once (a page picks about 200 figures of a report of
    a few thousand rows)."""
    return {(row.figure, row.category, row.visit_type, row.fund): row for row in rows}


def _pick(
    index: Index,
    figure: str,
    *,
    category: str = "",
    visit_type: int = 0,
    fund: str = "",
    month: bool = True,
) -> int:
    row = index.get((figure, category, visit_type, fund))
    if row is None:
        return 0
    return row.month if month else row.year_to_date


async def _report(
    viewer_: Viewer, region: str, year: int, month: int, *, monthly: bool = False
) -> assistance_pb2.GetReportResponse:
    """The report of the region's year (with each month's when ``monthly``) or month."""
    clients = viewer_.clients
    return await call(
        clients.assistance.GetReport(
            assistance_pb2.GetReportRequest(region=region, year=year, month=month, monthly=monthly),
            metadata=viewer_.metadata,
            timeout=clients.timeout,
        )
    )


def charts(year_rows: Rows, monthly: Sequence[Rows], fund_names: dict[str, str]) -> list[Chart]:
    """The dashboard's charts from the year's report and each month's."""
    months = [_("Month %(month)d") % {"month": month} for month in MONTHS]
    year_index = _index(year_rows)
    month_indexes = [_index(rows) for rows in monthly]

    def per_month(figure: str, **keys: Any) -> list[int]:
        return [_pick(index, figure, **keys) for index in month_indexes]

    funds = sorted({row.fund for row in year_rows if row.figure == "fund_paid_fen" and row.fund})
    categories = sorted(
        {row.category for row in year_rows if row.figure == "reimbursement_ratio_bp"},
        key=lambda code: (code != "", code),
    )
    visit_types = sorted(
        {row.visit_type for row in year_rows if row.figure == "reimbursement_ratio_bp"}
    )

    def category_name(code: str) -> str:
        if not code:
            return _("Everyone")
        name = labels.STATUSES.get(code)
        return _(name) if name else code

    def visit_type_name(number: int) -> str:
        code = visit_type_code(number)
        return _(labels.VISIT_TYPES.get(code, code))

    def fund_name(code: str) -> str:
        name = labels.FUNDS.get(code)
        return _(name) if name else fund_names.get(code, code)

    return [
        Chart(
            "costs",
            _("Monthly payments by fund"),
            "stacked",
            "yuan",
            months,
            [(fund_name(fund), per_month("fund_paid_fen", fund=fund)) for fund in funds]
            + [(_("Personal burden"), per_month("personal_burden_fen"))],
        ),
        Chart(
            "ratio",
            _("Final reimbursement ratio by category and visit type (year)"),
            "bar",
            "percent",
            [category_name(code) for code in categories],
            [
                (
                    visit_type_name(visit_type),
                    [
                        _pick(
                            year_index,
                            "reimbursement_ratio_bp",
                            category=code,
                            visit_type=visit_type,
                            month=False,
                        )
                        for code in categories
                    ],
                )
                for visit_type in visit_types
            ],
        ),
        Chart(
            "warnings",
            _("Warnings raised, decided and overdue"),
            "bar",
            "count",
            months,
            [
                (_("Raised"), per_month("warnings_raised")),
                (
                    _("Decided"),
                    [
                        certified + dismissed
                        for certified, dismissed in zip(
                            per_month("warnings_certified"),
                            per_month("warnings_dismissed"),
                            strict=True,
                        )
                    ],
                ),
                (_("Overdue"), per_month("warnings_overdue")),
            ],
        ),
        Chart(
            "applications",
            _("Applications accepted, decided and overdue"),
            "bar",
            "count",
            months,
            [
                (_("Accepted"), per_month("applications_accepted")),
                (_("Decided"), per_month("applications_decided")),
                (_("Overdue"), per_month("applications_overdue")),
            ],
        ),
        Chart(
            "decision_days",
            _("Average working days to a decision"),
            "line",
            "days",
            months,
            [(_("Working days"), per_month("decision_working_days_average"))],
        ),
        Chart(
            "assistance",
            _("Secondary and proactive assistance paid"),
            "stacked",
            "yuan",
            months,
            [
                (_("Secondary assistance"), per_month("secondary_paid_fen")),
                (_("Proactive assistance"), per_month("proactive_paid_fen")),
            ],
        ),
    ]


def visit_type_code(number: int) -> str:
    """A report row's visit type as a code (``inpatient``); empty for every type together."""
    names = assistance_pb2.VisitType.DESCRIPTOR.values_by_number
    return (
        names[number].name.removeprefix("VISIT_TYPE_").lower() if number in names and number else ""
    )


def _month_of(request: Request) -> int:
    text = request.query_params.get("month", "")
    if not text:
        return 0
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise ConsoleError(422, _("The month must be 1 to 12."), {"month": text})
    return int(text)


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    seen = await viewer(request, "dashboard")
    regions = region_choices(request)
    region = _region_of(request, regions)
    year = year_of(request)
    month = _month_of(request)
    answer = await _report(seen, region, year, 0, monthly=True)
    monthly = [report.rows for report in answer.months]
    shown_index = _index(answer.rows if not month else answer.months[month - 1].rows)
    pack_funds = request.app.state.fund_names
    headline = [
        (_(FIGURES[figure]), _shown(_pick(shown_index, figure, month=bool(month)), unit))
        for figure, unit in (
            ("monitored_people", "count"),
            ("visits", "count"),
            ("total_fen", "yuan"),
            ("fund_paid_fen", "yuan"),
            ("personal_burden_fen", "yuan"),
            ("reimbursement_ratio_bp", "percent"),
            ("warnings_overdue", "count"),
            ("applications_overdue", "count"),
        )
    ]
    return render(
        request,
        "dashboard.html",
        {
            "regions": regions,
            "region": region,
            "year": year,
            "month": month,
            "headline": headline,
            "charts": charts(answer.rows, monthly, pack_funds),
            "as_of": formats.day(answer.as_of if not month else answer.months[month - 1].as_of),
        },
    )


def _region_of(request: Request, regions: Sequence[Choice]) -> str:
    return checked_region(
        request, request.query_params.get("region") or (regions[0].value if regions else "")
    )


@router.get("/dashboard/report.{file_format}")
async def download(request: Request, file_format: str) -> Response:
    seen = await viewer(request, "dashboard")
    if file_format not in MEDIA_TYPES:
        raise ConsoleError(404, _("No such page."))
    region = _region_of(request, region_choices(request))
    year = year_of(request)
    month = _month_of(request)
    answer = await _report(seen, region, year, month)
    columns = (
        _("Figure"),
        _("Category"),
        _("Visit type"),
        _("Fund"),
        _("Unit"),
        _("Month"),
        _("Year to date"),
    )
    rows = [
        (
            _(FIGURES.get(row.figure, row.figure)),
            row.category_name or row.category,
            _(labels.VISIT_TYPES.get(visit_type_code(row.visit_type), "")),
            row.fund,
            _(UNITS.get(row.unit, row.unit)) if UNITS.get(row.unit) else "",
            _exact(row.month, row.unit),
            _exact(row.year_to_date, row.unit),
        )
        for row in answer.rows
    ]
    body = await asyncio.to_thread(
        export_bytes, rows, file_format, columns=columns, sheet=_("Monitoring report")
    )
    name = f"report-{region}-{year}{f'-{month:02d}' if month else ''}.{file_format}"
    return Response(
        body,
        media_type=MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _exact(value: int, unit: str) -> str:
    """A figure in a file: yuan to the fen, percentages and days to two decimals."""
    if unit == "fen":
        return fen_to_yuan(value)
    if unit in ("basis_points", "hundredths"):
        return formats.hundredths(value)
    return str(value)

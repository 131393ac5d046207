"""Rosters: the agencies' submissions with what each did, and the comparisons of a region's
rosters with the enrolment register, with the gap list (the uninsured) and its export.

A clerk sees its agency's own submissions, and of a comparison its own persons only,
exactly as its agency's key does (the hub limits and audits the reads). The bureau's
case workers compare a region's rosters for a year.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from doudi.cli.comparisons import COLUMNS as GAP_COLUMNS
from doudi.cli.comparisons import export_row
from doudi.common.exports import MEDIA_TYPES, export_bytes
from doudi.datashare.v1 import datashare_pb2
from gateway.console import formats, labels
from gateway.console.clients import ConsoleError, call
from gateway.console.i18n import _
from gateway.console.labels import code_of
from gateway.console.pages.common import Id, checked_region, checked_year, no_region, region_choices
from gateway.console.render import PREFIX, SECURITY_HEADERS, acting, render, viewer

router = APIRouter()

PAGE_SIZE: Final = 50
ENTRY_PAGE: Final = 100
EXPORT_PAGE: Final = 1000


def _region(request: Request) -> str:
    return checked_region(request, request.query_params.get("region", ""))


def submission_view(submission: Any) -> dict[str, Any]:
    return {
        "id": submission.submission_id,
        "agency": code_of(submission, "agency", "AGENCY_"),
        "region": submission.region,
        "as_of": formats.day(submission.as_of),
        "submitted": formats.moment(submission.submit_time),
        "rows": submission.row_count,
        "accepted": submission.accepted_count,
        "rejected": submission.rejected_count,
        "asserted": submission.asserted_count,
        "changed": submission.changed_count,
        "revoked": submission.revoked_count,
        "unchanged": submission.unchanged_count,
        "state": code_of(submission, "state", "ROSTER_STATE_"),
    }


def comparison_view(comparison: Any) -> dict[str, Any]:
    return {
        "id": comparison.comparison_id,
        "region": comparison.region,
        "year": comparison.year,
        "compared": formats.moment(comparison.compare_time),
        "persons": comparison.person_count,
        "insured": comparison.insured_count,
        "not_insured": comparison.not_insured_count,
        "insured_elsewhere": comparison.insured_elsewhere_count,
        "name_differs": comparison.name_differs_count,
        "duplicates": comparison.duplicate_count,
        "submissions": list(comparison.submission_ids),
    }


@router.get("/rosters")
async def rosters(request: Request) -> Response:
    seen = await viewer(request, "rosters")
    region = _region(request)
    clients = seen.clients
    submissions, comparisons = await asyncio.gather(
        call(
            clients.datashare.ListRosterSubmissions(
                datashare_pb2.ListRosterSubmissionsRequest(region=region, page_size=PAGE_SIZE),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
        call(
            clients.datashare.ListComparisons(
                datashare_pb2.ListComparisonsRequest(region=region, page_size=PAGE_SIZE),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
    )
    return render(
        request,
        "rosters.html",
        {
            "region": region,
            "regions": region_choices(request),
            "submissions": [submission_view(s) for s in submissions.submissions],
            "comparisons": [comparison_view(c) for c in comparisons.comparisons],
            "states": labels.ROSTER_STATES,
            "this_year": formats.today().year,
        },
    )


@router.post("/rosters/compare")
async def compare(request: Request) -> Response:
    seen, form = await acting(request, "compare_rosters")
    region = checked_region(request, str(form.get("region", ""))) or no_region()
    year = checked_year(str(form.get("year", "")))
    clients = seen.clients
    answer = await call(
        clients.datashare.CompareRosters(
            datashare_pb2.CompareRostersRequest(region=region, year=year),
            metadata=seen.metadata,
            timeout=max(clients.timeout, 120.0),
        )
    )
    return RedirectResponse(
        f"{PREFIX}/rosters/comparisons/{answer.comparison.comparison_id}",
        303,
        headers=SECURITY_HEADERS,
    )


def _class(request: Request) -> str:
    klass = request.query_params.get("class", "not_insured")
    if klass not in labels.COMPARISON_CLASSES:
        raise ConsoleError(422, _("Unknown class."), {"class": klass})
    return klass


def _entries_request(
    comparison_id: Id, klass: str, purpose: str, page_size: int, token: str
) -> datashare_pb2.ListComparisonEntriesRequest:
    asked = datashare_pb2.ListComparisonEntriesRequest(
        comparison_id=comparison_id, purpose=purpose, page_size=page_size, page_token=token
    )
    # `class` is a Python keyword: the field is set by name.
    setattr(
        asked, "class", datashare_pb2.ComparisonClass.Value(f"COMPARISON_CLASS_{klass.upper()}")
    )
    return asked


@router.get("/rosters/comparisons/{comparison_id}")
async def comparison(request: Request, comparison_id: Id) -> Response:
    seen = await viewer(request, "rosters")
    klass = _class(request)
    token = request.query_params.get("page_token", "")[:200]
    clients = seen.clients
    found, page = await asyncio.gather(
        call(
            clients.datashare.GetComparison(
                datashare_pb2.GetComparisonRequest(comparison_id=comparison_id),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
        call(
            clients.datashare.ListComparisonEntries(
                _entries_request(
                    comparison_id, klass, "console: the comparison's list", ENTRY_PAGE, token
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
    )
    return render(
        request,
        "comparison.html",
        {
            "comparison": comparison_view(found.comparison),
            "classes": labels.COMPARISON_CLASSES,
            "gap_reasons": labels.GAP_REASONS,
            "klass": klass,
            "entries": [
                {
                    "person_id": entry.person_id,
                    "shown_id": seen.identity(entry.person_id),
                    "roster_name": entry.roster_name,
                    "registered_name": entry.registered_name,
                    "registered_region": entry.registered_region,
                    "household_id": entry.household_id,
                    "gap_reason": code_of(entry, "gap_reason", "GAP_REASON_"),
                    "duplicate": entry.duplicate,
                }
                for entry in page.entries
            ],
            "next_token": page.next_page_token,
        },
    )


@router.get("/rosters/comparisons/{comparison_id}/export.{file_format}")
async def export(request: Request, comparison_id: Id, file_format: str) -> Response:
    seen = await viewer(request, "rosters")
    if file_format not in MEDIA_TYPES:
        raise ConsoleError(404, _("No such page."))
    klass = _class(request)
    clients = seen.clients
    rows: list[tuple[str, ...]] = []
    token = ""
    while True:
        asked = _entries_request(
            comparison_id, klass, "console: the comparison's export", EXPORT_PAGE, token
        )
        page = await call(
            clients.datashare.ListComparisonEntries(
                asked, metadata=seen.metadata, timeout=clients.timeout
            )
        )
        # The identity number as the role may see it (masked for analysts, administrators
        # and clerks), in the file as on the page.
        rows.extend(
            (seen.identity(entry.person_id), *export_row(entry)[1:]) for entry in page.entries
        )
        token = page.next_page_token
        if not token:
            break
    body = await asyncio.to_thread(
        export_bytes, rows, file_format, columns=GAP_COLUMNS, sheet="比对结果"
    )
    return Response(
        body,
        media_type=MEDIA_TYPES[file_format],
        headers={
            "Content-Disposition": (
                f'attachment; filename="comparison-{comparison_id}-{klass}.{file_format}"'
            ),
            **SECURITY_HEADERS,
        },
    )

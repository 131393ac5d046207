"""Secondary assistance (二次救助): a case worker prepares a run for a region and a year (what
each recipient is owed, before anything is paid: the preview), a supervisor approves it
once, and the approved run's payments download as the bank file.

The assistance service computes and pays (never twice, also when two runs are approved
at the same time); the console shows the run, its entries and the figures of each.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from doudi.assistance.v1 import assistance_pb2
from doudi.common.exports import BANK_COLUMNS, BANK_SHEET, MEDIA_TYPES, bank_row, export_bytes
from doudi.common.protos import from_date
from gateway.console import formats
from gateway.console.clients import ConsoleError, call
from gateway.console.i18n import _
from gateway.console.pages.common import (
    Id,
    checked_region,
    checked_year,
    no_region,
    region_choices,
    year_of,
)
from gateway.console.render import PREFIX, SECURITY_HEADERS, Viewer, acting, render, viewer

router = APIRouter()

PAGE_SIZE: Final = 100
BANK_PAGE: Final = 1000


def run_view(run: Any) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "region": run.region,
        "year": run.year,
        "through": formats.day(run.through),
        "case_worker": run.case_worker,
        "created": formats.moment(run.create_time),
        "approver": run.approver,
        "approved": formats.moment(run.approve_time),
        "entries": run.entry_count,
        "payable": run.payable_count,
        "to_pay_fen": run.to_pay_fen,
        "flagged": run.flagged_count,
        "paid_count": run.paid_count,
        "paid_fen": run.paid_fen,
        "unjudged": list(run.unjudged_policies),
    }


@router.get("/secondary")
async def runs(request: Request) -> Response:
    seen = await viewer(request, "secondary")
    region = checked_region(request, request.query_params.get("region", ""))
    year = year_of(request) if request.query_params.get("year") else 0
    clients = seen.clients
    answer = await call(
        clients.assistance.ListSecondaryRuns(
            assistance_pb2.ListSecondaryRunsRequest(region=region, year=year, page_size=50),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return render(
        request,
        "secondary.html",
        {
            "runs": [run_view(run) for run in answer.runs],
            "regions": region_choices(request),
            "region": region,
            "year": year or "",
            "request_id": str(uuid.uuid4()),
            "this_year": formats.today().year,
            "today": formats.today().isoformat(),
            "errors": {},
        },
    )


@router.post("/secondary")
async def create(request: Request) -> Response:
    seen, form = await acting(request, "create_secondary_run")
    region = checked_region(request, str(form.get("region", ""))) or no_region()
    year = checked_year(str(form.get("year", "")))
    through_text = str(form.get("through", "")).strip()
    try:
        through = date.fromisoformat(through_text)
    except ValueError:
        raise ConsoleError(
            422, _("Not a date (YYYY-MM-DD)."), {"through": through_text[:20]}
        ) from None
    request_id = str(form.get("request_id", "")).strip()[:64] or str(uuid.uuid4())
    clients = seen.clients
    answer = await call(
        clients.assistance.CreateSecondaryRun(
            assistance_pb2.CreateSecondaryRunRequest(
                request_id=f"console:{request_id}",
                region=region,
                year=year,
                through=from_date(through),
                case_worker=seen.session.username,
            ),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return RedirectResponse(
        f"{PREFIX}/secondary/{answer.run.run_id}", 303, headers=SECURITY_HEADERS
    )


async def _run(seen: Viewer, run_id: Id) -> Any:
    clients = seen.clients
    answer = await call(
        clients.assistance.GetSecondaryRun(
            assistance_pb2.GetSecondaryRunRequest(run_id=run_id),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return answer.run


@router.get("/secondary/{run_id}")
async def run(request: Request, run_id: Id) -> Response:
    seen = await viewer(request, "secondary")
    clients = seen.clients
    token = request.query_params.get("page_token", "")[:200]
    found, page = await asyncio.gather(
        _run(seen, run_id),
        call(
            clients.assistance.ListSecondaryRunEntries(
                assistance_pb2.ListSecondaryRunEntriesRequest(
                    run_id=run_id, page_size=PAGE_SIZE, page_token=token
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
    )
    return render(
        request,
        "secondary_run.html",
        {
            "run": run_view(found),
            "entries": [
                {
                    "person_id": entry.person_id,
                    "shown_id": seen.identity(entry.person_id),
                    "name": entry.name,
                    "eligible_fen": entry.eligible_burden_fen,
                    "owed_fen": entry.owed_fen,
                    "paid_before_fen": entry.paid_before_fen,
                    "to_pay_fen": entry.to_pay_fen,
                    "paid_fen": entry.paid_fen,
                    "flagged": entry.flagged,
                    "reason": entry.reason,
                }
                for entry in page.entries
            ],
            "next_token": page.next_page_token,
        },
    )


@router.post("/secondary/{run_id}/approve")
async def approve(request: Request, run_id: Id) -> Response:
    seen, _form = await acting(request, "approve_secondary_run")
    clients = seen.clients
    await call(
        clients.assistance.ApproveSecondaryRun(
            assistance_pb2.ApproveSecondaryRunRequest(
                run_id=run_id, approver=seen.session.username
            ),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return RedirectResponse(f"{PREFIX}/secondary/{run_id}", 303, headers=SECURITY_HEADERS)


@router.get("/secondary/{run_id}/bank.{file_format}")
async def bank_file(request: Request, run_id: Id, file_format: str) -> Response:
    seen = await viewer(request, "download_bank_file")
    if file_format not in MEDIA_TYPES:
        raise ConsoleError(404, _("No such page."))
    found = await _run(seen, run_id)
    if not found.approver:
        raise ConsoleError(409, _("Approve the run before downloading its bank file."))
    clients = seen.clients
    rows: list[tuple[str, ...]] = []
    token = ""
    while True:
        asked = assistance_pb2.ListSecondaryRunEntriesRequest(
            run_id=run_id, paid_only=True, page_size=BANK_PAGE, page_token=token
        )
        page = await call(
            clients.assistance.ListSecondaryRunEntries(
                asked,
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        )
        rows.extend(bank_row(entry, found.year) for entry in page.entries)
        token = page.next_page_token
        if not token:
            break
    body = await asyncio.to_thread(
        export_bytes, rows, file_format, columns=BANK_COLUMNS, sheet=BANK_SHEET
    )
    return Response(
        body,
        media_type=MEDIA_TYPES[file_format],
        headers={
            "Content-Disposition": f'attachment; filename="secondary-{run_id}-bank.{file_format}"',
            **SECURITY_HEADERS,
        },
    )

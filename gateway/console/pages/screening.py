"""Proactive screening (主动救助): a case worker screens a region's year (visits settled
before a status was certified, bills paid outside the window), each finding an offer with
its figures; confirming an offer (the person contacted, the account known) pays it once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from doudi.assistance.v1 import assistance_pb2
from gateway.console import formats, labels
from gateway.console.clients import call
from gateway.console.labels import code_of
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
MAX_NOTE: Final = 200


def offer_view(offer: Any, seen: Viewer) -> dict[str, Any]:
    return {
        "id": offer.offer_id,
        "run_id": offer.run_id,
        "source": code_of(offer, "source", "SCREENING_SOURCE_"),
        "person_id": offer.person_id,
        "shown_id": seen.identity(offer.person_id),
        "name": offer.name,
        "settles_on": formats.day(offer.settles_on),
        "visit_type": code_of(offer, "visit_type", "VISIT_TYPE_"),
        "statuses": [
            labels.STATUSES.get(code, code)
            for code in (
                offer.DESCRIPTOR.fields_by_name["statuses"]
                .enum_type.values_by_number[number]
                .name.removeprefix("STATUS_")
                .lower()
                for number in offer.statuses
            )
        ],
        "self_pay_fen": offer.self_pay_fen,
        "owed_fen": offer.owed_fen,
        "paid_before_fen": offer.paid_before_fen,
        "offered_fen": offer.offered_fen,
        "explanation": offer.explanation,
        "state": code_of(offer, "state", "OFFER_STATE_"),
        "paid_fen": offer.paid_fen,
        "confirmed_by": offer.confirmed_by,
        "confirmed": formats.moment(offer.confirm_time),
        "note": offer.confirm_note,
    }


def run_view(run: Any) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "region": run.region,
        "year": run.year,
        "case_worker": run.case_worker,
        "created": formats.moment(run.create_time),
        "offers": run.offer_count,
        "offered_fen": run.offered_fen,
    }


@router.get("/screening")
async def runs(request: Request) -> Response:
    seen = await viewer(request, "screening")
    clients = seen.clients
    answer = await call(
        clients.assistance.ListScreeningRuns(
            assistance_pb2.ListScreeningRunsRequest(page_size=50),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return render(
        request,
        "screening.html",
        {
            "runs": [run_view(run) for run in answer.runs],
            "regions": region_choices(request),
            "request_id": str(uuid.uuid4()),
            "this_year": formats.today().year,
        },
    )


@router.post("/screening")
async def screen(request: Request) -> Response:
    seen, form = await acting(request, "run_screening")
    region = checked_region(request, str(form.get("region", ""))) or no_region()
    year = checked_year(str(form.get("year", "")))
    request_id = str(form.get("request_id", "")).strip()[:64] or str(uuid.uuid4())
    clients = seen.clients
    answer = await call(
        clients.assistance.RunScreening(
            assistance_pb2.RunScreeningRequest(
                request_id=f"console:{request_id}",
                region=region,
                year=year,
                case_worker=seen.session.username,
            ),
            metadata=seen.metadata,
            # Screening recomputes a region's settled visits: it takes longer than a read.
            timeout=max(clients.timeout, 120.0),
        )
    )
    return RedirectResponse(
        f"{PREFIX}/screening/{answer.run.run_id}", 303, headers=SECURITY_HEADERS
    )


@router.get("/screening/{run_id}")
async def run(request: Request, run_id: Id) -> Response:
    seen = await viewer(request, "screening")
    clients = seen.clients
    token = request.query_params.get("page_token", "")[:200]
    found, page = await asyncio.gather(
        call(
            clients.assistance.GetScreeningRun(
                assistance_pb2.GetScreeningRunRequest(run_id=run_id),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
        call(
            clients.assistance.ListScreeningOffers(
                assistance_pb2.ListScreeningOffersRequest(
                    run_id=run_id, page_size=PAGE_SIZE, page_token=token
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
    )
    return render(
        request,
        "screening_run.html",
        {
            "run": run_view(found.run),
            "offers": [offer_view(offer, seen) for offer in page.offers],
            "next_token": page.next_page_token,
            "year": year_of(request) if request.query_params.get("year") else found.run.year,
        },
    )


@router.get("/screening/offers/{offer_id}")
async def offer(request: Request, offer_id: Id) -> Response:
    seen = await viewer(request, "screening")
    clients = seen.clients
    answer = await call(
        clients.assistance.GetScreeningOffer(
            assistance_pb2.GetScreeningOfferRequest(offer_id=offer_id),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    try:
        details = json.dumps(json.loads(answer.offer.details_json), ensure_ascii=False, indent=2)
    except ValueError:
        details = answer.offer.details_json
    return render(
        request,
        "screening_offer.html",
        {"offer": offer_view(answer.offer, seen), "details": details},
    )


@router.post("/screening/offers/{offer_id}/confirm")
async def confirm(request: Request, offer_id: Id) -> Response:
    seen, form = await acting(request, "confirm_offer")
    note = str(form.get("note", "")).strip()[:MAX_NOTE]
    clients = seen.clients
    await call(
        clients.assistance.ConfirmScreeningOffer(
            assistance_pb2.ConfirmScreeningOfferRequest(
                offer_id=offer_id, case_worker=seen.session.username, note=note
            ),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return RedirectResponse(f"{PREFIX}/screening/offers/{offer_id}", 303, headers=SECURITY_HEADERS)

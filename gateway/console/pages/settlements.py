"""Settlements and clearing: settlements found by hospital, person and date, each with every
layer in yuan; and the clearing of a day per fund (what each fund owes the hospitals, net
of reversals), for one hospital or all of them.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from doudi.common.protos import from_date
from doudi.core.identity import resident_id_number
from doudi.settlement.v1 import settlement_pb2
from gateway.console import formats, labels
from gateway.console.clients import ConsoleError, call
from gateway.console.i18n import _
from gateway.console.labels import code_of
from gateway.console.pages.common import MAX_YEAR, MIN_YEAR
from gateway.console.references import PersonReferences
from gateway.console.render import PREFIX, SECURITY_HEADERS, Viewer, acting, render, viewer

router = APIRouter()

PAGE_SIZE: Final = 50
MAX_DAYS: Final = 366


def _day(text: str, name: str, default: date) -> date:
    if not text:
        return default
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ConsoleError(422, _("Not a date (YYYY-MM-DD)."), {name: text[:20]}) from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ConsoleError(
            422,
            _("The year must be from %(low)d to %(high)d.") % {"low": MIN_YEAR, "high": MAX_YEAR},
            {name: text[:20]},
        )
    return day


async def _hospitals(seen: Viewer) -> list[Any]:
    clients = seen.clients
    answer = await call(
        clients.settlement.ListHospitals(
            settlement_pb2.ListHospitalsRequest(page_size=1000),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return list(answer.hospitals)


def settlement_view(found: Any, seen: Viewer, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": found.settlement_id,
        "state": code_of(found, "state", "SETTLEMENT_STATE_"),
        "hospital": names.get(found.hospital_id, found.hospital_id),
        "person_id": found.person_id,
        "shown_id": seen.identity(found.person_id),
        "visit_type": code_of(found, "visit_type", "VISIT_TYPE_"),
        "day": formats.day(found.settles_on),
        "total_fen": found.total_fen,
        "layers": [(layer.layer, layer.fund, layer.paid_fen) for layer in found.layers],
        "fund_paid_fen": found.fund_paid_fen,
        "self_pay_fen": found.self_pay_fen,
        "created": formats.moment(found.create_time),
    }


@router.post("/settlements")
async def search(request: Request) -> Response:
    """The search form: the identity number typed in goes in the body, and the page's
    address holds it sealed (:mod:`gateway.console.references`)."""
    _seen, form = await acting(request, "settlements")
    query = {
        name: str(form.get(name, "")).strip()[:64]
        for name in ("hospital", "start", "end", "day")
        if str(form.get(name, "")).strip()
    }
    number = str(form.get("person_id", "")).strip()
    if number:
        try:
            query["person"] = request.app.state.references.seal(resident_id_number(number))
        except ValueError:  # not a valid identity number
            raise ConsoleError(
                422, _("Not a valid identity number."), {"person_id": number[:32]}
            ) from None
    return RedirectResponse(
        f"{PREFIX}/settlements?{urlencode(query)}", 303, headers=SECURITY_HEADERS
    )


@router.get("/settlements")
async def settlements(request: Request) -> Response:
    seen = await viewer(request, "settlements")
    query = request.query_params
    today = formats.today()
    end = _day(query.get("end", ""), "end", today)
    start_text = query.get("start", "")
    start = _day(start_text, "start", today) if start_text else end - timedelta(days=30)
    if start > end or (end - start).days > MAX_DAYS:
        raise ConsoleError(
            422, _("Choose at most a year, the start before the end."), {"start": str(start)}
        )
    hospital_id = query.get("hospital", "")[:64]
    person = query.get("person", "")
    person_id = ""
    if person:
        references: PersonReferences = request.app.state.references
        person_id = references.open(person) or ""
        if not person_id:
            raise ConsoleError(404, _("No such page."))
    clearing_day = _day(query.get("day", ""), "day", end)
    clients = seen.clients
    hospitals, found, clearing = await asyncio.gather(
        _hospitals(seen),
        call(
            clients.settlement.ListSettlements(
                settlement_pb2.ListSettlementsRequest(
                    hospital_id=hospital_id,
                    person_id=person_id,
                    start_date=from_date(start),
                    end_date=from_date(end),
                    page_size=PAGE_SIZE,
                    page_token=query.get("page_token", "")[:200],
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
        call(
            clients.settlement.GetDailyClearing(
                settlement_pb2.GetDailyClearingRequest(
                    hospital_id=hospital_id, date=from_date(clearing_day)
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        ),
    )
    names = {hospital.hospital_id: hospital.name for hospital in hospitals}
    fund_names: dict[str, str] = request.app.state.fund_names
    return render(
        request,
        "settlements.html",
        {
            "hospitals": hospitals,
            "filters": {
                "hospital": hospital_id,
                "person": person,
                "person_shown": seen.identity(person_id) if person_id else "",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "day": clearing_day.isoformat(),
            },
            "settlements": [settlement_view(item, seen, names) for item in found.settlements],
            "next_token": found.next_page_token,
            "clearing": [
                {
                    "fund": _(labels.FUNDS[fund.fund])
                    if fund.fund in labels.FUNDS
                    else fund_names.get(fund.fund, fund.fund),
                    "settled_fen": fund.settled_fen,
                    "reversed_fen": fund.reversed_fen,
                    "net_fen": fund.net_fen,
                    "records": fund.record_count,
                }
                for fund in clearing.funds
            ],
            "clearing_net_fen": clearing.net_fen,
            "fund_names": fund_names,
        },
    )

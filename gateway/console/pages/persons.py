"""A person's page and their household's: statuses, enrolments, the year's burden against the
warning lines, warnings, and for the bureau's staff settlements, applications and
assistance paid.

Opening a person's page asks why (a reason the audit keeps; links from a warning or
an application give theirs), and the datashare service records the view (who, whom,
when, why: ``RecordPersonView``) before anything is read. For an agency clerk the
hub refuses a person outside the agency's data (not on its roster, holding none of
its statuses, in none of its regions' warnings): 403, and the refusal is audited
too. Identity numbers show whole only to the roles that work cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import date
from typing import Any, Final

import grpc
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from doudi.assistance.v1 import assistance_pb2
from doudi.common.protos import from_date
from doudi.core.identity import resident_id_number
from doudi.core.money import fen_to_yuan
from doudi.core.packs import PackRegistry, monitoring_rules
from doudi.datashare.v1 import datashare_pb2
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2
from gateway.console import formats, labels
from gateway.console.clients import ConsoleError, call, failure
from gateway.console.i18n import _
from gateway.console.labels import N_, code_of
from gateway.console.pages.applications import view as application_view
from gateway.console.pages.common import year_of
from gateway.console.pages.screening import offer_view
from gateway.console.pages.settlements import settlement_view
from gateway.console.pages.warnings import view as warning_view
from gateway.console.references import PersonReferences
from gateway.console.render import SECURITY_HEADERS, Viewer, acting, person_url, render, viewer

router = APIRouter()

REASONS: Final = {
    "warning": N_("Following up a warning"),
    "application": N_("Handling an application"),
    "secondary": N_("Checking secondary assistance"),
    "screening": N_("Checking a screening offer"),
    "enquiry": N_("The person's own enquiry"),
    "other": N_("Other (say which)"),
}
MAX_REASON: Final = 200
HISTORY: Final = 100
"""The most settlements, applications, secondary entries and offers a person's page lists
of each (the newest; the lists' own pages hold the rest)."""
LINKED: Final = frozenset({"warning", "application", "secondary", "screening"})
"""The reasons a link gives (``warning:12``), each a kind of :data:`REASONS`."""


@router.get("/persons")
async def search_form(request: Request) -> Response:
    await viewer(request, "persons")
    return render(request, "person_search.html", {"error": ""})


@router.post("/persons")
async def search(request: Request) -> Response:
    """The number typed in goes in the body; the page's address holds it sealed."""
    _seen, form = await acting(request, "persons")
    number = str(form.get("person_id", "")).strip()
    try:
        person_id = resident_id_number(number)
    except ValueError:  # not a valid identity number
        return render(
            request,
            "person_search.html",
            {"error": _("Not a valid identity number.")},
            status_code=422,
        )
    return RedirectResponse(person_url(request, person_id), 303, headers=SECURITY_HEADERS)


def _opened(request: Request, reference: str) -> str:
    """The identity number a page's reference holds; 404 for anything else."""
    references: PersonReferences = request.app.state.references
    number = references.open(reference)
    if number is None:
        raise ConsoleError(404, _("No such page."))
    return number


def _reason(request: Request) -> str | None:
    """The reason given for opening the page, or None when none was given."""
    reason = request.query_params.get("reason", "").strip()
    if not reason:
        return None
    kind = request.query_params.get("reason_kind", "")
    detail = request.query_params.get("reason_text", "").strip()
    if reason == "form":  # the reason form: a kind, and words for "other"
        if kind not in REASONS:
            return None
        if kind == "other":
            return detail[:MAX_REASON] or None
        text = _(REASONS[kind])
        return f"{text}: {detail}"[:MAX_REASON] if detail else text
    # A link from a warning, an application, a run or an offer names it: in words.
    kind, _sep, number = reason.partition(":")
    if kind in LINKED and number.isdigit():
        return f"{_(REASONS[kind])} #{number}"
    return reason[:MAX_REASON]


@router.get("/persons/{reference}")
async def person(request: Request, reference: str) -> Response:
    seen = await viewer(request, "persons")
    number = _opened(request, reference)
    reason = _reason(request)
    if reason is None:
        return render(
            request,
            "person_reason.html",
            {"reference": reference, "shown_id": seen.identity(number), "reasons": REASONS},
        )
    clients = seen.clients
    await call(
        clients.datashare.RecordPersonView(
            datashare_pb2.RecordPersonViewRequest(
                username=seen.session.username, person_id=number, purpose=reason
            ),
            metadata=clients.metadata(None),
            timeout=clients.timeout,
        )
    )
    year = year_of(request)
    values = await _gather(request, seen, number, year, reason)
    values["burden_chart"] = {
        "kind": "bar",
        "unit": "yuan",
        "x": [_("Personal burden"), _("Household burden")],
        "series": [
            {
                "name": _("Burden"),
                "data": [
                    fen_to_yuan(values["burden"].personal_burden_fen),
                    fen_to_yuan(values["household_burden_fen"]),
                ],
            }
        ],
        "lines": [{"name": name, "value": fen_to_yuan(line)} for name, line in values["lines"]],
    }
    values.update(
        reference=reference,
        shown_id=seen.identity(number),
        year=year,
        reason=reason,
        identity=seen.identity,
    )
    return render(request, "person.html", values)


async def _optional(pending: Awaitable[Any]) -> Any:
    """A read that may find nothing (NOT_FOUND: None)."""
    try:
        return await pending
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise failure(error) from None


async def _gather(
    request: Request, seen: Viewer, person_id: str, year: int, reason: str
) -> dict[str, Any]:
    clients = seen.clients
    internal = clients.metadata(None)
    timeout = clients.timeout
    staff = not seen.session.is_clerk

    async def enrolment(of_year: int) -> Any:
        return await _optional(
            clients.enrollment.GetEnrolment(
                enrollment_pb2.GetEnrolmentRequest(person_id=person_id, year=of_year),
                metadata=internal,
                timeout=timeout,
            )
        )

    person_answer, statuses_answer, burden_answer, *enrolments = await asyncio.gather(
        _optional(
            clients.enrollment.GetPerson(
                enrollment_pb2.GetPersonRequest(person_id=person_id),
                metadata=internal,
                timeout=timeout,
            )
        ),
        call(
            clients.datashare.GetPersonStatuses(
                datashare_pb2.GetPersonStatusesRequest(
                    person_id=person_id, purpose=f"console: {reason}"[:200]
                ),
                metadata=seen.metadata,
                timeout=timeout,
            )
        ),
        call(
            clients.assistance.GetBurden(
                assistance_pb2.GetBurdenRequest(person_id=person_id, year=year),
                metadata=internal,
                timeout=timeout,
            )
        ),
        *(enrolment(of_year) for of_year in (year, year - 1)),
    )
    found = person_answer.person if person_answer is not None else None
    history = await _staff_history(seen, person_id, year) if staff else {}
    burden = burden_answer
    household_id = burden.household_id or (found.household_id if found else "")
    warnings = await _warnings(seen, household_id, year) if household_id else []
    return {
        "person": found,
        "statuses": [
            {
                "status": code_of(period, "status", "STATUS_"),
                "agency": code_of(period, "agency", "AGENCY_"),
                "valid_from": formats.day(period.valid_from),
                "valid_to": formats.day(period.valid_to),
            }
            for period in statuses_answer.periods
        ],
        "enrolments": [
            {
                "year": answer.enrolment.year,
                "scheme": code_of(answer.enrolment, "scheme", "SCHEME_"),
                "tier": code_of(answer.enrolment, "tier", "TIER_"),
                "premium_fen": answer.enrolment.premium_fen,
                "payer": code_of(answer.enrolment, "premium_payer", "PREMIUM_PAYER_"),
                "subsidy_fen": answer.enrolment.subsidy_fen,
            }
            for answer in enrolments
            if answer is not None
        ]
        if staff
        else [],
        "burden": burden.burden,
        "household_id": household_id,
        "household_burden_fen": burden.household_burden_fen,
        "members": list(burden.members),
        "warnings": warnings,
        "lines": _lines(request, found.region if found else "", year),
        "staff": staff,
        **history,
    }


async def _staff_history(seen: Viewer, person_id: str, year: int) -> dict[str, Any]:
    """What the bureau's staff see besides: the person's settlements of the year (every
    layer), their applications, and the assistance paid them (secondary runs, screening offers)."""
    clients = seen.clients
    internal = clients.metadata(None)
    timeout = clients.timeout
    settled, applied, secondary, offers, hospitals = await asyncio.gather(
        call(
            clients.settlement.ListSettlements(
                settlement_pb2.ListSettlementsRequest(
                    person_id=person_id,
                    start_date=from_date(date(year, 1, 1)),
                    end_date=from_date(date(year, 12, 31)),
                    page_size=HISTORY,
                ),
                metadata=internal,
                timeout=timeout,
            )
        ),
        call(
            clients.assistance.ListApplications(
                assistance_pb2.ListApplicationsRequest(person_id=person_id, page_size=HISTORY),
                metadata=internal,
                timeout=timeout,
            )
        ),
        call(
            clients.assistance.ListSecondaryRunEntries(
                assistance_pb2.ListSecondaryRunEntriesRequest(
                    person_id=person_id, page_size=HISTORY
                ),
                metadata=internal,
                timeout=timeout,
            )
        ),
        call(
            clients.assistance.ListScreeningOffers(
                assistance_pb2.ListScreeningOffersRequest(person_id=person_id, page_size=HISTORY),
                metadata=internal,
                timeout=timeout,
            )
        ),
        call(
            clients.settlement.ListHospitals(
                settlement_pb2.ListHospitalsRequest(page_size=1000),
                metadata=internal,
                timeout=timeout,
            )
        ),
    )
    names = {hospital.hospital_id: hospital.name for hospital in hospitals.hospitals}
    return {
        "settlements": [settlement_view(found, seen, names) for found in settled.settlements],
        "applications": [application_view(found, seen) for found in applied.applications],
        "secondary": [
            {"run_id": entry.run_id, "owed_fen": entry.owed_fen, "paid_fen": entry.paid_fen}
            for entry in secondary.entries
        ],
        "offers": [offer_view(offer, seen) for offer in offers.offers],
    }


async def _warnings(seen: Viewer, household_id: str, year: int) -> list[dict[str, Any]]:
    clients = seen.clients
    answer = await call(
        clients.assistance.ListWarnings(
            assistance_pb2.ListWarningsRequest(household_id=household_id, page_size=100),
            metadata=clients.metadata(None),
            timeout=clients.timeout,
        )
    )
    served = set(seen.session.regions)
    return [
        warning_view(warning)
        for warning in answer.warnings
        if not seen.session.is_clerk or not served or warning.region in served
    ]


def _lines(request: Request, region: str, year: int) -> list[tuple[str, int]]:
    """Each warning kind's line for a household's yearly burden, as the pack in force in
    the region at the year's end has it."""
    registry: PackRegistry = request.app.state.packs
    pack = registry.in_force(region, date(year, 12, 31)) if region else None
    rules = monitoring_rules(pack) if pack is not None else None
    if rules is None:
        return []
    return [
        (_(labels.WARNING_KINDS[kind]), rules.warning_line(kind))
        for kind in ("impoverishment", "return_to_poverty")
    ]

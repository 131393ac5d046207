"""Applications for assistance (依申请救助) at the window: accepted with the documents
received, those missing with the date to bring each (容缺受理) and the proofs a signed
commitment replaces (承诺制); 30 working days to decide, the days left shown and the
overdue in red; a missing document supplied; a decision with its reason.

The assistance service keeps the applications and counts the working days on the
Chinese calendar. The form carries a request id made when it was shown, so sending
it twice (a double click, a retry after a timeout) accepts one application.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from doudi.assistance.v1 import assistance_pb2
from doudi.common.protos import from_date
from doudi.core.errors import InvalidInput
from doudi.core.identity import resident_id_number
from doudi.core.money import yuan_to_fen
from gateway.console import formats, labels
from gateway.console.clients import ConsoleError, call
from gateway.console.i18n import _
from gateway.console.labels import code_of
from gateway.console.pages.common import Id, checked_region, form_date, region_choices
from gateway.console.render import PREFIX, SECURITY_HEADERS, Viewer, acting, is_htmx, render, viewer

router = APIRouter()

PAGE_SIZE: Final = 50
MISSING_ROWS: Final = 3
"""How many missing documents the form takes at once (more: supply the form again)."""
MAX_TEXT: Final = 200


def view(application: Any, seen: Viewer) -> dict[str, Any]:
    return {
        "id": application.application_id,
        "person_id": application.person_id,
        "shown_id": seen.identity(application.person_id),
        "household_id": application.household_id,
        "region": application.region,
        "kind": code_of(application, "kind", "APPLICATION_KIND_"),
        "state": code_of(application, "state", "APPLICATION_STATE_"),
        "accepted_on": formats.day(application.accepted_on),
        "deadline": formats.day(application.deadline),
        "provisional": application.deadline_provisional,
        "days_left": application.working_days_left,
        "overdue": application.overdue,
        "received": list(application.documents_received),
        "missing": [
            {
                "name": missing.name,
                "due_on": formats.day(missing.due_on),
                "supplied_on": formats.day(missing.supplied_on),
            }
            for missing in application.missing_documents
        ],
        "commitments": list(application.commitments),
        "case_worker": application.case_worker,
        "decided_on": formats.day(application.decided_on),
        "reason": application.decision_reason,
        "amount_fen": application.approved_amount_fen,
        "status_valid_from": formats.day(application.status_valid_from),
        "status_valid_to": formats.day(application.status_valid_to),
        "status_certified": application.status_certified,
    }


def _filters(request: Request) -> dict[str, Any]:
    query = request.query_params
    kind, state, region = query.get("kind", ""), query.get("state", ""), query.get("region", "")
    if kind and kind not in labels.APPLICATION_KINDS:
        raise ConsoleError(422, _("Unknown kind."), {"kind": kind})
    if state and state not in labels.APPLICATION_STATES:
        raise ConsoleError(422, _("Unknown state."), {"state": state})
    checked_region(request, region)
    return {
        "kind": kind,
        "state": state,
        "region": region,
        "overdue": query.get("overdue") == "1",
        "page_token": query.get("page_token", "")[:200],
    }


@router.get("/applications")
async def applications(request: Request) -> Response:
    seen = await viewer(request, "applications")
    filters = _filters(request)
    clients = seen.clients
    asked = assistance_pb2.ListApplicationsRequest(
        region=filters["region"],
        overdue_only=filters["overdue"],
        page_size=PAGE_SIZE,
        page_token=filters["page_token"],
    )
    if filters["state"]:
        asked.state = assistance_pb2.ApplicationState.Value(
            f"APPLICATION_STATE_{filters['state'].upper()}"
        )
    if filters["kind"]:
        asked.kind = assistance_pb2.ApplicationKind.Value(
            f"APPLICATION_KIND_{filters['kind'].upper()}"
        )
    answer = await call(
        clients.assistance.ListApplications(asked, metadata=seen.metadata, timeout=clients.timeout)
    )
    values = {
        "filters": filters,
        "applications": [view(application, seen) for application in answer.applications],
        "next_token": answer.next_page_token,
        "regions": region_choices(request),
    }
    template = "_applications_table.html" if is_htmx(request) else "applications.html"
    return render(request, template, values)


@router.get("/applications/new")
async def new_application(request: Request) -> Response:
    await viewer(request, "accept_application")
    return _form(request, {}, {})


def _form(
    request: Request, entered: dict[str, Any], errors: dict[str, str], status_code: int = 200
) -> Response:
    today = formats.today().isoformat()
    values = {
        "request_id": entered.get("request_id") or str(uuid.uuid4()),
        "person_id": entered.get("person_id", ""),
        "household_id": entered.get("household_id", ""),
        "region": entered.get("region", ""),
        "kind": entered.get("kind", "expenditure_hardship"),
        "accepted_on": entered.get("accepted_on", today),
        "received": entered.get("received", ""),
        "missing": entered.get("missing", [("", "")] * MISSING_ROWS),
        "commitments": entered.get("commitments", ""),
        "signed": entered.get("signed", False),
    }
    return render(
        request,
        "application_new.html",
        {"form": values, "errors": errors, "regions": region_choices(request)},
        status_code=status_code,
    )


def _lines(text: str) -> list[str]:
    return [line.strip()[:MAX_TEXT] for line in text.splitlines() if line.strip()]


def _entered(form: FormData) -> dict[str, Any]:
    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    return {
        "request_id": text("request_id")[:64],
        "person_id": text("person_id"),
        "household_id": text("household_id")[:64],
        "region": text("region"),
        "kind": text("kind"),
        "accepted_on": text("accepted_on"),
        "received": text("received"),
        "missing": [
            (text(f"missing_name_{row}"), text(f"missing_due_{row}")) for row in range(MISSING_ROWS)
        ],
        "commitments": text("commitments"),
        "signed": form.get("signed") == "1",
    }


@router.post("/applications")
async def accept(request: Request) -> Response:
    seen, form = await acting(request, "accept_application")
    entered = _entered(form)
    errors: dict[str, str] = {}
    person_id = ""
    try:
        person_id = resident_id_number(entered["person_id"])
    except ValueError:  # not a valid identity number
        errors["person_id"] = _("Not a valid identity number.")
    if not entered["household_id"]:
        errors["household_id"] = _("Required.")
    if entered["region"] not in {choice.value for choice in region_choices(request)}:
        errors["region"] = _("Choose a region.")
    if entered["kind"] not in labels.APPLICATION_KINDS:
        errors["kind"] = _("Choose what is applied for.")
    accepted_on = form_date(entered["accepted_on"], "accepted_on", errors)
    missing = []
    for row, (name, due) in enumerate(entered["missing"]):
        if not name and not due:
            continue
        if not name:
            errors[f"missing_name_{row}"] = _("Name the missing document.")
            continue
        due_on = form_date(due, f"missing_due_{row}", errors) if due else None
        if due_on is None:
            errors.setdefault(f"missing_due_{row}", _("Give the date to bring it by."))
            continue
        missing.append(
            assistance_pb2.MissingDocument(name=name[:MAX_TEXT], due_on=from_date(due_on))
        )
    commitments = _lines(entered["commitments"])
    if commitments and not entered["signed"]:
        errors["signed"] = _("The applicant must sign the commitment for the proofs it replaces.")
    if not _lines(entered["received"]) and not missing and not commitments:
        errors["received"] = _("List the documents received.")
    if not entered["request_id"]:
        entered["request_id"] = str(uuid.uuid4())
    if errors or accepted_on is None:
        return _form(request, entered, errors, status_code=422)
    clients = seen.clients
    try:
        answer = await call(
            clients.assistance.AcceptApplication(
                assistance_pb2.AcceptApplicationRequest(
                    request_id=f"console:{entered['request_id']}",
                    person_id=person_id,
                    household_id=entered["household_id"],
                    region=entered["region"],
                    kind=assistance_pb2.ApplicationKind.Value(
                        f"APPLICATION_KIND_{entered['kind'].upper()}"
                    ),
                    accepted_on=from_date(accepted_on),
                    documents_received=_lines(entered["received"]),
                    missing_documents=missing,
                    commitments=commitments,
                    case_worker=seen.session.username,
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        )
    except ConsoleError as refused:
        if refused.status not in (409, 422):
            raise
        return _form(
            request,
            entered,
            {"form": refused.message, **refused.fields},
            status_code=refused.status,
        )
    return RedirectResponse(
        f"{PREFIX}/applications/{answer.application.application_id}",
        303,
        headers=SECURITY_HEADERS,
    )


async def _get(seen: Viewer, application_id: Id) -> Any:
    clients = seen.clients
    answer = await call(
        clients.assistance.GetApplication(
            assistance_pb2.GetApplicationRequest(application_id=application_id),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return answer.application


@router.get("/applications/{application_id}")
async def application(request: Request, application_id: Id) -> Response:
    seen = await viewer(request, "applications")
    return _page(request, seen, await _get(seen, application_id), {})


def _page(
    request: Request, seen: Viewer, found: Any, errors: dict[str, str], status_code: int = 200
) -> Response:
    return render(
        request,
        "application.html",
        {
            "application": view(found, seen),
            "may_decide": seen.may("decide_application"),
            "today": formats.today().isoformat(),
            "errors": errors,
        },
        status_code=status_code,
    )


@router.post("/applications/{application_id}/supply")
async def supply(request: Request, application_id: Id) -> Response:
    seen, form = await acting(request, "accept_application")
    name = str(form.get("name", "")).strip()
    errors: dict[str, str] = {}
    supplied_on = form_date(str(form.get("supplied_on", "")), "supplied_on", errors)
    if errors or supplied_on is None or not name:
        return _page(
            request,
            seen,
            await _get(seen, application_id),
            errors or {"supplied_on": _("Required.")},
            422,
        )
    clients = seen.clients
    refused = await _act(
        request,
        seen,
        application_id,
        clients.assistance.SupplyDocument(
            assistance_pb2.SupplyDocumentRequest(
                application_id=application_id,
                name=name[:MAX_TEXT],
                supplied_on=from_date(supplied_on),
            ),
            metadata=seen.metadata,
            timeout=clients.timeout,
        ),
    )
    return refused or RedirectResponse(
        f"{PREFIX}/applications/{application_id}", 303, headers=SECURITY_HEADERS
    )


@router.post("/applications/{application_id}/decide")
async def decide(request: Request, application_id: Id) -> Response:
    seen, form = await acting(request, "decide_application")
    decision = str(form.get("decision", ""))
    reason = str(form.get("reason", "")).strip()
    amount = str(form.get("amount", "")).strip()
    errors: dict[str, str] = {}
    if decision not in ("approve", "refuse"):
        errors["decision"] = _("Choose to approve or to refuse.")
    if not reason:
        errors["reason"] = _("Give the reason (a refusal's is told to the applicant).")
    elif len(reason) > MAX_TEXT:
        errors["reason"] = _("At most 200 characters.")
    amount_fen = 0
    if amount:
        try:
            amount_fen = yuan_to_fen(amount)
        except InvalidInput:
            errors["amount"] = _("An amount in yuan, e.g. 1200.50.")
    if errors:
        return _page(request, seen, await _get(seen, application_id), errors, 422)
    clients = seen.clients
    response = await _act(
        request,
        seen,
        application_id,
        clients.assistance.DecideApplication(
            assistance_pb2.DecideApplicationRequest(
                application_id=application_id,
                decision=assistance_pb2.DECISION_APPROVE
                if decision == "approve"
                else assistance_pb2.DECISION_REFUSE,
                reason=reason,
                approved_amount_fen=amount_fen if decision == "approve" else 0,
                case_worker=seen.session.username,
            ),
            metadata=seen.metadata,
            timeout=clients.timeout,
        ),
    )
    return response or RedirectResponse(
        f"{PREFIX}/applications/{application_id}", 303, headers=SECURITY_HEADERS
    )


async def _act(
    request: Request, seen: Viewer, application_id: Id, pending: Awaitable[Any]
) -> Response | None:
    """Make the call; a refusal the user can act on comes back on the page."""
    try:
        await call(pending)
    except ConsoleError as refused:
        if refused.status not in (409, 422):
            raise
        return _page(
            request,
            seen,
            await _get(seen, application_id),
            {"form": refused.message, **refused.fields},
            refused.status,
        )
    return None

"""The warnings queue and one warning: filtered by kind, state, agency and overdue; an agency
clerk acknowledges and decides.

The bureau's staff read the warnings as the assistance service raised them, with
what the agencies did (its copy of their decisions). A clerk reads them at the
datashare hub, as the clerk's agency: only the regions the account serves, each
read audited; a warning of another region answers 403. Deciding goes to the hub
as the agency's own act (certifying records the agency's assertions for every
member, which settlement applies at the next settlement).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from google.protobuf.message import Message

from doudi.assistance.v1 import assistance_pb2
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2
from gateway.console import formats, labels
from gateway.console.clients import ConsoleError, call
from gateway.console.i18n import _
from gateway.console.labels import code_of
from gateway.console.pages.common import Id, checked_region, checked_year, form_date, region_choices
from gateway.console.render import PREFIX, SECURITY_HEADERS, Viewer, acting, is_htmx, render, viewer

router = APIRouter()

PAGE_SIZE: Final = 50
CERTIFIABLE: Final = {
    "civil_affairs": ("low_income", "expenditure_hardship"),
    "poverty_office": ("at_risk",),
}
"""The statuses a clerk may certify deciding a warning: its agency's of the hub's
certifiable ones."""


def _filters(request: Request) -> dict[str, Any]:
    query = request.query_params
    kind = query.get("kind", "")
    state = query.get("state", "")
    region = query.get("region", "")
    year = query.get("year", "")
    agency = query.get("agency", "")
    if kind and kind not in labels.WARNING_KINDS:
        raise ConsoleError(422, _("Unknown kind."), {"kind": kind})
    if state and state not in labels.WARNING_STATES:
        raise ConsoleError(422, _("Unknown state."), {"state": state})
    regions = region_choices(request)
    checked_region(request, region)
    session = request.state.session
    if not region and not (session is not None and session.is_clerk) and regions:
        # The bureau reads a region's warnings at a time (the assistance service's list
        # is by region); a clerk reads every region its account serves at once.
        region = regions[0].value
    if not year and not (session is not None and session.is_clerk):
        year = str(formats.today().year)
    if year:
        checked_year(year)
    if agency and agency not in CERTIFIABLE:
        raise ConsoleError(422, _("Unknown agency."), {"agency": agency})
    return {
        "kind": kind,
        "state": state,
        "region": region,
        "year": year,
        "agency": agency,
        "overdue": query.get("overdue") == "1",
        "page_token": query.get("page_token", "")[:200],
    }


def _kind_value(kind: str) -> int:
    return assistance_pb2.WarningKind.Value(f"WARNING_KIND_{kind.upper()}") if kind else 0


def _state_value(state: str) -> int:
    return assistance_pb2.WarningState.Value(f"WARNING_STATE_{state.upper()}") if state else 0


async def _list(seen: Viewer, filters: dict[str, Any]) -> tuple[list[Message], str]:
    clients = seen.clients
    arguments = {
        "region": filters["region"],
        "year": int(filters["year"] or 0),
        "kind": _kind_value(filters["kind"]),
        "state": _state_value(filters["state"]),
        "overdue_only": filters["overdue"],
        "page_size": PAGE_SIZE,
        "page_token": filters["page_token"],
    }
    if seen.session.is_clerk:
        hub = await call(
            clients.datashare.ListWarnings(
                datashare_pb2.ListWarningsRequest(
                    **arguments, purpose="console: the warnings queue"
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        )
        found: list[Message] = list(hub.warnings)
        next_token = hub.next_page_token
    else:
        answer = await call(
            clients.assistance.ListWarnings(
                assistance_pb2.ListWarningsRequest(**arguments),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        )
        found = list(answer.warnings)
        next_token = answer.next_page_token
    if filters["agency"]:
        wanted = filters["agency"]
        found = [warning for warning in found if wanted in _handlers(warning)]
    return found, next_token


def _handlers(warning: Any) -> set[str]:
    """The agencies that acknowledged or decided the warning."""
    decision = warning.decision
    found = {
        code_of(decision, "acknowledged_by", "AGENCY_"),
        code_of(decision, "decided_by", "AGENCY_"),
    }
    return found - {""}


def view(warning: Any) -> dict[str, Any]:
    """A warning as the templates show it (either service's message)."""
    decision = warning.decision
    return {
        "id": warning.warning_id,
        "kind": code_of(warning, "kind", "WARNING_KIND_"),
        "state": code_of(decision, "state", "WARNING_STATE_") or "raised",
        "household_id": warning.household_id,
        "region": warning.region,
        "year": warning.year,
        "burden_fen": warning.burden_fen,
        "threshold_fen": warning.threshold_fen,
        "members": list(warning.members),
        "raised_at": formats.moment(warning.raised_at),
        "due_on": formats.day(warning.due_on),
        "overdue": warning.overdue,
        "handled_by": sorted(_handlers(warning)),
        "decided_at": formats.moment(decision.decided_at),
        "reason": decision.reason,
        "certified_status": code_of(decision, "certified_status", "STATUS_"),
        "policy": warning.policy,
    }


@router.get("/warnings")
async def queue(request: Request) -> Response:
    seen = await viewer(request, "warnings")
    filters = _filters(request)
    found, next_token = await _list(seen, filters)
    values = {
        "filters": filters,
        "warnings": [view(warning) for warning in found],
        "next_token": next_token,
        "regions": region_choices(request),
        "agencies": list(CERTIFIABLE),
    }
    template = "_warnings_table.html" if is_htmx(request) else "warnings.html"
    return render(request, template, values)


async def _one(seen: Viewer, warning_id: Id) -> Any:
    clients = seen.clients
    if not seen.session.is_clerk:
        answer = await call(
            clients.assistance.GetWarning(
                assistance_pb2.GetWarningRequest(warning_id=warning_id),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        )
        return answer.warning
    try:
        hub = await call(
            clients.datashare.GetWarning(
                datashare_pb2.GetWarningRequest(
                    warning_id=warning_id, purpose="console: deciding a warning"
                ),
                metadata=seen.metadata,
                timeout=clients.timeout,
            )
        )
    except ConsoleError as refused:
        if refused.status != 404:
            raise
        # Another region's warning is not found at the hub for this agency: say 403 when
        # it exists (the platform's own read), 404 when there is none at all.
        exists = await _exists(seen, warning_id)
        if exists:
            raise ConsoleError(
                403, _("This warning is not one of your agency's regions.")
            ) from None
        raise
    return hub.warning


async def _exists(seen: Viewer, warning_id: Id) -> bool:
    clients = seen.clients
    try:
        await call(
            clients.assistance.GetWarning(
                assistance_pb2.GetWarningRequest(warning_id=warning_id),
                metadata=clients.metadata(None),
                timeout=clients.timeout,
            )
        )
    except ConsoleError as refused:
        if refused.status == 404:
            return False
        raise
    return True


@router.get("/warnings/{warning_id}")
async def one(request: Request, warning_id: Id) -> Response:
    seen = await viewer(request, "warnings")
    warning = await _one(seen, warning_id)
    return _page(request, seen, warning)


def _page(
    request: Request,
    seen: Viewer,
    warning: Any,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    agency = seen.session.agency
    return render(
        request,
        "warning.html",
        {
            "warning": view(warning),
            "may_decide": seen.may("decide_warning") and agency in CERTIFIABLE,
            "certifiable": CERTIFIABLE.get(agency, ()),
            "today": formats.today().isoformat(),
            "errors": errors or {},
            "identity": seen.identity,
        },
        status_code=status_code,
    )


@router.post("/warnings/{warning_id}/acknowledge")
async def acknowledge(request: Request, warning_id: Id) -> Response:
    seen, _form = await acting(request, "decide_warning")
    clients = seen.clients
    await call(
        clients.datashare.AcknowledgeWarning(
            datashare_pb2.AcknowledgeWarningRequest(warning_id=warning_id),
            metadata=seen.metadata,
            timeout=clients.timeout,
        )
    )
    return RedirectResponse(f"{PREFIX}/warnings/{warning_id}", 303, headers=SECURITY_HEADERS)


@router.post("/warnings/{warning_id}/decide")
async def decide(request: Request, warning_id: Id) -> Response:
    seen, form = await acting(request, "decide_warning")
    clients = seen.clients
    decision = str(form.get("decision", ""))
    request_message = datashare_pb2.DecideWarningRequest(warning_id=warning_id)
    errors: dict[str, str] = {}
    if decision == "certify":
        status = str(form.get("status", ""))
        if status not in CERTIFIABLE.get(seen.session.agency, ()):
            errors["status"] = _("Choose a status your agency certifies.")
        valid_from = _date(form.get("valid_from"), "valid_from", errors, required=True)
        valid_to = _date(form.get("valid_to"), "valid_to", errors, required=False)
        if not errors and valid_from is not None:
            request_message.certify.status = datashare_pb2.Status.Value(f"STATUS_{status.upper()}")
            request_message.certify.valid_from.CopyFrom(from_date(valid_from))
            if valid_to is not None:
                request_message.certify.valid_to.CopyFrom(from_date(valid_to))
    elif decision == "dismiss":
        reason = str(form.get("reason", "")).strip()
        if not reason:
            errors["reason"] = _("Say why the warning is dismissed.")
        elif len(reason) > 200:
            errors["reason"] = _("At most 200 characters.")
        else:
            request_message.dismiss.reason = reason
    else:
        errors["decision"] = _("Choose to certify or to dismiss.")
    if errors:
        warning = await _one(seen, warning_id)
        return _page(request, seen, warning, errors=errors, status_code=422)
    try:
        await call(
            clients.datashare.DecideWarning(
                request_message, metadata=seen.metadata, timeout=clients.timeout
            )
        )
    except ConsoleError as refused:
        if refused.status not in (409, 422):
            raise
        warning = await _one(seen, warning_id)
        return _page(
            request,
            seen,
            warning,
            errors={"decision": refused.message, **refused.fields},
            status_code=refused.status,
        )
    return RedirectResponse(f"{PREFIX}/warnings/{warning_id}", 303, headers=SECURITY_HEADERS)


def _date(value: Any, name: str, errors: dict[str, str], *, required: bool) -> date | None:
    text = str(value or "").strip()
    if not text:
        if required:
            errors[name] = _("Required.")
        return None
    return form_date(text, name, errors)

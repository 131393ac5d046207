"""Policy packs: each region's layers and rules with the source of every figure, and a form
that previews what a bill would pay under a pack (``doudi calc`` in the console).

The preview builds a calculation case (docs/case-format.md) from the form, one person
and one visit, and settles it with the engine in the gateway itself: it stores nothing
and calls no service.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from doudi.core.cases import read_case, result_document, settle_case
from doudi.core.codes import STATUSES
from doudi.core.describe import describe_pack
from doudi.core.errors import InvalidInput
from doudi.core.money import yuan_to_fen
from doudi.core.packs import PackRegistry
from gateway.console import labels
from gateway.console.clients import ConsoleError
from gateway.console.i18n import _
from gateway.console.labels import N_
from gateway.console.render import acting, render, viewer

router = APIRouter()

SCHEMES: Final = {"resident": N_("Residents' scheme"), "employee": N_("Employees' scheme")}
CLASSES: Final = {
    "A": N_("Class A (甲类)"),
    "B": N_("Class B (乙类)"),
    "C": N_("Class C (丙类, the patient pays)"),
}
SAMPLE_PERSON: Final = "411323195003150014"
"""The person of a preview: only their age counts (65 on the example's day), never stored."""


def _registry(request: Request) -> PackRegistry:
    registry: PackRegistry = request.app.state.packs
    return registry


@router.get("/packs")
async def packs(request: Request) -> Response:
    await viewer(request, "packs")
    return render(request, "packs.html", {"packs": list(_registry(request))})


def _pack(request: Request, pack_id: str) -> Any:
    pack = _registry(request).get(pack_id)
    if pack is None:
        raise ConsoleError(404, _("No such policy pack."))
    return pack


@router.get("/packs/{pack_id}")
async def pack(request: Request, pack_id: str) -> Response:
    await viewer(request, "packs")
    found = _pack(request, pack_id)
    return _page(request, found, _defaults(found), {}, None)


def _defaults(found: Any) -> dict[str, Any]:
    day = max(found.effective_from, date(found.effective_from.year, 6, 1))
    return {
        "scheme": "resident",
        "statuses": [],
        "type": "inpatient",
        "hospital_level": "2",
        "admitted": day.isoformat(),
        "discharged": (day.replace(day=10)).isoformat(),
        "out_of_area": False,
        "referred": False,
        "items": [("A", "10000.00"), ("B", ""), ("C", "")],
    }


def _page(
    request: Request,
    found: Any,
    entered: dict[str, Any],
    errors: dict[str, str],
    result: dict[str, Any] | None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "pack.html",
        {
            "pack": found,
            "description": describe_pack(found),
            "form": entered,
            "errors": errors,
            "result": result,
            "schemes": SCHEMES,
            "classes": CLASSES,
            "statuses": {code: labels.STATUSES.get(code, code) for code in STATUSES},
            "visit_types": {code: name for code, name in labels.VISIT_TYPES.items() if code},
        },
        status_code=status_code,
    )


@router.post("/packs/{pack_id}/preview")
async def preview(request: Request, pack_id: str) -> Response:
    _seen, form = await acting(request, "packs")
    found = _pack(request, pack_id)

    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip()[:32] if isinstance(value, str) else ""

    entered: dict[str, Any] = {
        "scheme": text("scheme"),
        "statuses": [value for value in form.getlist("statuses") if isinstance(value, str)],
        "type": text("type"),
        "hospital_level": text("hospital_level"),
        "admitted": text("admitted"),
        "discharged": text("discharged"),
        "out_of_area": form.get("out_of_area") == "1",
        "referred": form.get("referred") == "1",
        "items": [(text(f"class_{row}"), text(f"amount_{row}")) for row in range(3)],
    }
    errors: dict[str, str] = {}
    items = []
    for row, (klass, amount) in enumerate(entered["items"]):
        if not amount:
            continue
        if klass not in CLASSES:
            errors[f"class_{row}"] = _("Choose a class.")
            continue
        try:
            fen = yuan_to_fen(amount)
        except InvalidInput:
            errors[f"amount_{row}"] = _("An amount in yuan, e.g. 1200.50.")
            continue
        items.append({"code": f"item{row + 1}", "class": klass, "amount_fen": fen})
    if not items and not errors:
        errors["amount_0"] = _("Enter at least one amount.")
    if errors:
        return _page(request, found, entered, errors, None, 422)
    day = entered["discharged"]
    visits: list[dict[str, Any]] = [
        {
            "id": "preview",
            "type": entered["type"],
            "hospital_level": int(entered["hospital_level"])
            if entered["hospital_level"].isdigit()
            else entered["hospital_level"],
            "admitted": entered["admitted"] or day,
            "discharged": day,
            "out_of_area": entered["out_of_area"],
            "referred": entered["referred"],
            "items": items,
        }
    ]
    case = {
        "policy": found.id,
        "person": {
            "id": SAMPLE_PERSON,
            "scheme": entered["scheme"],
            "statuses": [
                {"code": code, "from": f"{day[:4]}-01-01", "to": None}
                for code in entered["statuses"]
            ],
        },
        "visits": visits,
    }
    if entered["type"] != "inpatient":
        visit = visits[0]
        visit.pop("admitted")
        visit["date"] = visit.pop("discharged")
    try:
        settled = read_case(json.dumps(case), _registry(request))
        document = result_document(settled, settle_case(settled, explain=False))
    except InvalidInput as error:
        field = error.field.rsplit(".", 1)[-1]
        errors[field if field in entered else "form"] = str(error)
        return _page(request, found, entered, errors, None, 422)
    return _page(request, found, entered, {}, document["visits"][0])

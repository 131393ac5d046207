"""The gateway's endpoints: each reads its input, makes one call, answers JSON.

Every ``/v1`` view authenticates the hospital (:data:`CurrentHospital`) and
forwards its API key, so the settlement service scopes every read and write to
that hospital. Errors are raised, never answered here: :mod:`gateway.problems`
turns them into problem+json.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from doudi.common.protos import from_date
from doudi.settlement.v1 import settlement_pb2
from gateway.convert import clearing_json, settlement_json, settlement_page_json
from gateway.deps import BillDep, CurrentHospital, IdempotencyKey, UpstreamDep
from gateway.reading import JSON_MEDIA_TYPE
from gateway.schemas import (
    ClearingRead,
    HealthRead,
    ProblemRead,
    SettlementCreate,
    SettlementPage,
    SettlementRead,
)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route may answer (problem+json)."""
    return {status: {"model": ProblemRead} for status in statuses}


BILL_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {"$ref": f"#/components/schemas/{SettlementCreate.__name__}"}
            }
        },
    }
}
BODY_PROBLEMS = problems(400, 413, 415, 422)
BusinessDay = Annotated[
    datetime.date,
    Query(alias="date", description="The business day (Asia/Shanghai), YYYY-MM-DD."),
]
SettlementId = Annotated[str, Path(description="The id the platform gave the settlement.")]

router = APIRouter(prefix="/v1", responses=problems(401, 500, 503))
health_router = APIRouter()


@router.post(
    "/settlements/preview",
    response_model=SettlementRead,
    responses=BODY_PROBLEMS,
    openapi_extra=BILL_BODY,
    summary="Pre-calculate a settlement (预结算); nothing is stored",
)
async def preview_settlement(
    hospital: CurrentHospital, bill: BillDep, upstream: UpstreamDep
) -> JSONResponse:
    answer = await upstream.ask(
        upstream.settlement.PreviewSettlement,
        settlement_pb2.PreviewSettlementRequest(person_id=bill.person_id, visit=bill.visit),
        hospital,
    )
    return JSONResponse(settlement_json(answer.settlement))


@router.post(
    "/settlements",
    status_code=201,
    response_model=SettlementRead,
    responses={**BODY_PROBLEMS, **problems(409)},
    openapi_extra=BILL_BODY,
    summary="Settle a visit (一站式结算), once per Idempotency-Key",
)
async def settle(
    hospital: CurrentHospital, key: IdempotencyKey, bill: BillDep, upstream: UpstreamDep
) -> JSONResponse:
    answer = await upstream.ask(
        upstream.settlement.Settle,
        settlement_pb2.SettleRequest(request_id=key, person_id=bill.person_id, visit=bill.visit),
        hospital,
    )
    headers = {"Location": f"/v1/settlements/{answer.settlement.settlement_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(settlement_json(answer.settlement), status_code=201, headers=headers)


@router.get(
    "/settlements/{settlement_id}",
    response_model=SettlementRead,
    responses=problems(404, 422),
    summary="One of the hospital's settlements",
)
async def get_settlement(
    hospital: CurrentHospital, settlement_id: SettlementId, upstream: UpstreamDep
) -> JSONResponse:
    answer = await upstream.ask(
        upstream.settlement.GetSettlement,
        settlement_pb2.GetSettlementRequest(settlement_id=settlement_id),
        hospital,
    )
    return JSONResponse(settlement_json(answer.settlement))


@router.post(
    "/settlements/{settlement_id}/reversal",
    response_model=SettlementRead,
    responses=problems(400, 404, 409, 422),
    summary="Reverse a settlement (冲正 / 退费); asking again answers the same reversal",
)
async def reverse_settlement(
    hospital: CurrentHospital,
    settlement_id: SettlementId,
    key: IdempotencyKey,
    upstream: UpstreamDep,
) -> JSONResponse:
    answer = await upstream.ask(
        upstream.settlement.ReverseSettlement,
        settlement_pb2.ReverseSettlementRequest(settlement_id=settlement_id, request_id=key),
        hospital,
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(settlement_json(answer.settlement), headers=headers)


@router.get(
    "/settlements",
    response_model=SettlementPage,
    responses=problems(422),
    summary="The hospital's settlements made on a business day, oldest first",
)
async def list_settlements(
    hospital: CurrentHospital,
    day: BusinessDay,
    upstream: UpstreamDep,
    page_size: Annotated[int, Query(ge=1, le=1000, description="Default 100.")] = 100,
    page_token: Annotated[str, Query(description="The previous page's next_page_token.")] = "",
) -> JSONResponse:
    when = from_date(day)
    answer = await upstream.ask(
        upstream.settlement.ListSettlements,
        settlement_pb2.ListSettlementsRequest(
            start_date=when, end_date=when, page_size=page_size, page_token=page_token
        ),
        hospital,
    )
    return JSONResponse(settlement_page_json(answer))


@router.get(
    "/clearing",
    response_model=ClearingRead,
    responses=problems(422),
    summary="What each fund owes the hospital for a business day (清算 / 对账)",
)
async def daily_clearing(
    hospital: CurrentHospital, day: BusinessDay, upstream: UpstreamDep
) -> JSONResponse:
    answer = await upstream.ask(
        upstream.settlement.GetDailyClearing,
        settlement_pb2.GetDailyClearingRequest(date=from_date(day)),
        hospital,
    )
    return JSONResponse(clearing_json(answer))


@health_router.get(
    "/healthz",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "A service is not serving."}},
    summary="Whether every service answers SERVING (no API key needed)",
)
async def health(upstream: UpstreamDep) -> JSONResponse:
    services = await upstream.health()
    ok = all(state == "SERVING" for state in services.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "services": services},
        status_code=200 if ok else 503,
    )

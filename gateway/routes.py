"""The gateway's endpoints: each reads its input, makes one call, answers JSON.

Every ``/v1`` view authenticates the hospital (:func:`current_hospital`) and
forwards its API key, so the settlement service scopes every read and write to
that hospital. Errors are raised, never answered here: :mod:`gateway.problems`
turns them into problem+json.

The two views that take a bill (settle, preview) are the hot path. They are
:class:`RequestRoute` routes (``bill_router``): each takes the ``Request`` alone,
reads the hospital, the bill and the key itself and returns its response, and
FastAPI's request handler (dependencies, parameters, response model) is not run
at all; that took about a quarter of the gateway's CPU per settlement. Their
body and header are documented through ``openapi_extra``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from starlette.types import Receive, Scope, Send

from doudi.common.protos import from_date
from doudi.core.dates import parse_date
from doudi.settlement.v1 import settlement_pb2
from gateway.convert import JSONAnswer, clearing_json, settlement_json, settlement_page_json
from gateway.deps import (
    IDEMPOTENCY_KEY_PARAMETER,
    CurrentHospital,
    current_hospital,
    idempotency_key,
    request_bill,
    upstream_of,
)
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
KEY_HEADER = {"parameters": [IDEMPOTENCY_KEY_PARAMETER]}
BODY_PROBLEMS = problems(400, 413, 415, 422)
BusinessDay = Annotated[
    datetime.date,
    # YYYY-MM-DD and nothing else: pydantic alone would read 0 as 1970-01-01.
    BeforeValidator(parse_date),
    Query(alias="date", description="The business day (Asia/Shanghai), YYYY-MM-DD."),
]
SettlementId = Annotated[str, Path(description="The id the platform gave the settlement.")]


class RequestRoute(APIRoute):
    """A route whose endpoint takes the ``Request`` alone and returns the ``Response``.

    The endpoint is the whole request handler: none of FastAPI's per-request work is
    done (dependencies, parameters, body, response model, the exit stacks of
    dependencies with ``yield``), and what it raises goes to the application's
    exception handlers as from any view. FastAPI still documents the route from its
    decorator: summary, ``responses``, ``openapi_extra``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        dependant = self.dependant
        if dependant.request_param_name is None or any(
            (
                dependant.dependencies,
                dependant.path_params,
                dependant.query_params,
                dependant.header_params,
                dependant.cookie_params,
                dependant.body_params,
            )
        ):
            # Anything else the endpoint declared would silently never be given to it.
            raise TypeError(f"{path}: the endpoint must take the Request and nothing else")
        handler = self.get_route_handler()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)

        # What the route serves from the application's own router (gateway.app puts it
        # there). A router that included it would serve FastAPI's wrapping of
        # get_route_handler instead: the same answers, a little slower.
        self.app = app

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


router = APIRouter(prefix="/v1", responses=problems(401, 500, 503))
bill_router = APIRouter(prefix="/v1", responses=problems(401, 500, 503), route_class=RequestRoute)
"""The hot path: views that read a bill."""
health_router = APIRouter()


@bill_router.post(
    "/settlements",
    status_code=201,
    response_model=SettlementRead,
    responses={**BODY_PROBLEMS, **problems(409)},
    openapi_extra={**KEY_HEADER, **BILL_BODY},
    summary="Settle a visit (一站式结算), once per Idempotency-Key",
)
async def settle(request: Request) -> JSONAnswer:
    hospital = await current_hospital(request)
    bill = await request_bill(request, hospital)
    # The key after the body: errors come in the order hospitals have always seen them
    # (the API key, then the bill, then the idempotency key).
    key = idempotency_key(request)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.Settle,
        settlement_pb2.SettleRequest(request_id=key, person_id=bill.person_id, visit=bill.visit),
        hospital,
    )
    headers = {"Location": f"/v1/settlements/{answer.settlement.settlement_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONAnswer(settlement_json(answer.settlement), status_code=201, headers=headers)


@bill_router.post(
    "/settlements/preview",
    response_model=SettlementRead,
    responses=BODY_PROBLEMS,
    openapi_extra=BILL_BODY,
    summary="Pre-calculate a settlement (预结算); nothing is stored",
)
async def preview_settlement(request: Request) -> JSONAnswer:
    hospital = await current_hospital(request)
    bill = await request_bill(request, hospital)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.PreviewSettlement,
        settlement_pb2.PreviewSettlementRequest(person_id=bill.person_id, visit=bill.visit),
        hospital,
    )
    return JSONAnswer(settlement_json(answer.settlement))


@router.get(
    "/settlements/{settlement_id}",
    response_model=SettlementRead,
    responses=problems(400, 404),
    summary="One of the hospital's settlements",
)
async def get_settlement(
    request: Request, hospital: CurrentHospital, settlement_id: SettlementId
) -> JSONAnswer:
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.GetSettlement,
        settlement_pb2.GetSettlementRequest(settlement_id=settlement_id),
        hospital,
    )
    return JSONAnswer(settlement_json(answer.settlement))


@router.post(
    "/settlements/{settlement_id}/reversal",
    response_model=SettlementRead,
    responses=problems(400, 404, 409, 422),
    openapi_extra=KEY_HEADER,
    summary="Reverse a settlement (冲正 / 退费); asking again answers the same reversal",
)
async def reverse_settlement(
    request: Request, hospital: CurrentHospital, settlement_id: SettlementId
) -> JSONAnswer:
    key = idempotency_key(request)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.ReverseSettlement,
        settlement_pb2.ReverseSettlementRequest(settlement_id=settlement_id, request_id=key),
        hospital,
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONAnswer(settlement_json(answer.settlement), headers=headers)


@router.get(
    "/settlements",
    response_model=SettlementPage,
    responses=problems(400),
    summary="The hospital's settlements made on a business day, oldest first",
)
async def list_settlements(
    request: Request,
    hospital: CurrentHospital,
    day: BusinessDay,
    page_size: Annotated[int, Query(ge=1, le=1000, description="Default 100.")] = 100,
    page_token: Annotated[str, Query(description="The previous page's next_page_token.")] = "",
) -> JSONAnswer:
    when = from_date(day)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.ListSettlements,
        settlement_pb2.ListSettlementsRequest(
            start_date=when, end_date=when, page_size=page_size, page_token=page_token
        ),
        hospital,
    )
    return JSONAnswer(settlement_page_json(answer))


@router.get(
    "/clearing",
    response_model=ClearingRead,
    responses=problems(400),
    summary="What each fund owes the hospital for a business day (清算 / 对账)",
)
async def daily_clearing(
    request: Request, hospital: CurrentHospital, day: BusinessDay
) -> JSONAnswer:
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.GetDailyClearing,
        settlement_pb2.GetDailyClearingRequest(date=from_date(day)),
        hospital,
    )
    return JSONAnswer(clearing_json(answer))


@health_router.get(
    "/healthz",
    response_model=HealthRead,
    responses={503: {"model": HealthRead, "description": "A service is not serving."}},
    summary="Whether every service answers SERVING (no API key needed)",
)
async def health(request: Request) -> JSONAnswer:
    services = await upstream_of(request).health()
    ok = all(state == "SERVING" for state in services.values())
    return JSONAnswer(
        {"status": "ok" if ok else "unavailable", "services": services},
        status_code=200 if ok else 503,
    )

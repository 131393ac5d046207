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
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any, Final, cast

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from starlette.types import Receive, Scope, Send

from doudi.common.protos import from_date
from doudi.core.dates import parse_date
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.settlement.v1 import settlement_pb2
from gateway.convert import (
    JSONAnswer,
    admission_json,
    clearing_json,
    eligibility_json,
    settlement_json,
    settlement_page_json,
)
from gateway.deps import (
    IDEMPOTENCY_KEY_PARAMETER,
    CurrentHospital,
    current_hospital,
    idempotency_key,
    request_bill,
    upstream_of,
)
from gateway.problems import invalid_path, not_ready, path_fields
from gateway.reading import JSON_MEDIA_TYPE, read_admission, read_json
from gateway.schemas import (
    AdmissionCreate,
    AdmissionRead,
    ClearingRead,
    EligibilityRead,
    HealthRead,
    LivenessRead,
    ProblemRead,
    ReadinessRead,
    SettlementCreate,
    SettlementPage,
    SettlementRead,
)

PROBLEMS: Final = {
    400: "Malformed: the body is not JSON (or has duplicate keys, or is not UTF-8), or the "
    "`Idempotency-Key` is missing, empty or over 128 characters.",
    401: "No API key, or not a hospital's key the platform knows (`WWW-Authenticate: Bearer`).",
    404: "No such settlement, or another hospital's.",
    409: "A conflict with what is stored; `Retry-After` when the same key is still being answered.",
    413: "The body is over `DOUDI_MAX_BODY_BYTES` (1 MiB by default).",
    415: "The body is not `application/json`.",
    422: "Input that breaks a rule; `errors` names each field at fault.",
    500: "Anything unexpected; the detail says nothing of the internals (the log has them).",
    503: "A service did not answer in time, or is restarting; retry after `Retry-After` seconds.",
}
"""What each error status means, for the OpenAPI document; a route may say more."""


RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}
PROBLEM_HEADERS: Final[dict[int, dict[str, Any]]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`: the scheme the key goes in.",
            "schema": {"type": "string"},
        }
    },
    409: RETRY_AFTER,
    503: RETRY_AFTER,
}
REPLAYED: Final = {
    "Idempotent-Replayed": {
        "description": "`true` when the answer is that of an earlier request with the same "
        "`Idempotency-Key`; absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def problems(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route may answer (problem+json); ``described``
    gives a status the route's own description."""
    own = described or {}
    return {
        status: {
            "model": ProblemRead,
            "description": own.get(status, PROBLEMS[status]),
            **({"headers": PROBLEM_HEADERS[status]} if status in PROBLEM_HEADERS else {}),
        }
        for status in statuses
    }


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
BILL_PROBLEMS = {
    400: "Malformed JSON (or duplicate keys, or not UTF-8).",
    422: "A bill that breaks a rule, naming the field (`errors`); a person the platform does "
    "not insure, or not enrolled for the visit's year (`person_id`); no policy pack in force "
    "on the visit's day.",
}
BAD_SETTLEMENT_ID = "A `settlement_id` of more than 36 characters (no id is)."
BODY_PROBLEMS = problems(400, 413, 415, 422, described=BILL_PROBLEMS)
SETTLEMENT_LINKS: Final = {
    operation: {
        "operationId": operation,
        "parameters": {"settlement_id": "$response.body#/id"},
        "description": f"The settlement's `id` is the `settlement_id` of {path}.",
    }
    for operation, path in (
        ("get_settlement", "GET /v1/settlements/{settlement_id}"),
        ("reverse_settlement", "POST /v1/settlements/{settlement_id}/reversal"),
    )
}
"""Where a settlement's id goes next (OpenAPI links of the settlement's answer)."""
BusinessDay = Annotated[
    datetime.date,
    # YYYY-MM-DD and nothing else: pydantic alone would read 0 as 1970-01-01.
    BeforeValidator(parse_date),
    Query(alias="date", description="The business day (Asia/Shanghai), YYYY-MM-DD."),
]
SettlementId = Annotated[
    str,
    Path(
        description="The `id` the platform gave the settlement: the `id` of the answer of "
        "POST /v1/settlements, and the end of its `Location` header."
    ),
]


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


def operation_id(route: APIRoute) -> str:
    """The OpenAPI operation id: the view's name (settle, get_settlement, ...)."""
    return route.name


router = APIRouter(
    prefix="/v1", responses=problems(401, 500, 503), generate_unique_id_function=operation_id
)
bill_router = APIRouter(
    prefix="/v1",
    responses=problems(401, 500, 503),
    route_class=RequestRoute,
    generate_unique_id_function=operation_id,
)
"""The hot path: views that read a bill."""
TAGS: Final = [
    {
        "name": "settlements",
        "description": "Settling bills at the window (一站式结算), "
        "previewing, reading and reversing settlements (冲正).",
    },
    {
        "name": "clearing",
        "description": "What each fund owes the hospital for a day (清算 / 对账).",
    },
    {
        "name": "admissions",
        "description": "The admission desk (入院登记): a patient's eligibility on a day "
        "(scheme, statuses, no deposit and why, certificates, what is left of each yearly "
        "cap), registering, reading and cancelling admissions.",
    },
    {"name": "health", "description": "Whether the platform is serving."},
]
"""The OpenAPI document's groups of operations, in the order the pages show them."""
health_router = APIRouter(generate_unique_id_function=operation_id)


@bill_router.post(
    "/settlements",
    tags=["settlements"],
    status_code=201,
    response_model=SettlementRead,
    responses={
        201: {
            "description": "Settled: the settlement, with `Location: /v1/settlements/{id}`; "
            "a retry with the same key and bill answers the same settlement with "
            "`Idempotent-Replayed: true`.",
            "headers": {
                "Location": {
                    "description": "/v1/settlements/{id}: where the settlement is read.",
                    "schema": {"type": "string"},
                },
                **REPLAYED,
            },
            "links": SETTLEMENT_LINKS,
        },
        **BODY_PROBLEMS,
        **problems(
            400,
            409,
            422,
            503,
            described={
                400: f"{BILL_PROBLEMS[400]} The `Idempotency-Key` missing, empty, over 128 "
                "characters or with a control character.",
                409: "The visit already has a standing settlement (`visit-already-settled`: "
                "reverse it first); the admission named was discharged by a standing "
                "settlement (`admission-already-settled`, with its `settlement_id`) or "
                "cancelled (`admission-cancelled`); the same key is still being settled "
                "(`request-in-flight`, `Retry-After`).",
                422: f"{BILL_PROBLEMS[422]} The key already used for another bill "
                "(`idempotency-key-reused`). An `admission_id` that is not the hospital's, "
                "is another person's, or a visit not admitted on its day.",
                503: f"{PROBLEMS[503]} If the settlement may have been made all the same, "
                "the detail says its outcome is unknown: send the same request again with the "
                "same `Idempotency-Key`, which never settles twice.",
            },
        ),
    },
    openapi_extra={**KEY_HEADER, **BILL_BODY},
    summary="Settle a visit (一站式结算), once per Idempotency-Key",
)
async def settle(request: Request) -> JSONAnswer:
    """Settle a discharged patient's bill at the window: every insurance and assistance
    layer of the policy pack in force pays its part, in order, and the patient pays the
    remainder (`self_pay_fen`). The settlement is stored, counted in the person's yearly
    accumulators and in the hospital's clearing for the day.

    The body is the person's identity number and the visit: its items with their
    catalogue class and amount in fen, its dates (admitted and discharged for a stay, the
    date otherwise) and diagnoses. The hospital's level is its registered one.

    With `pay_from_personal_account` (an employee who agrees), the employee's personal
    account (职工个人账户) pays the self-pay as far as its balance goes
    (`personal_account_paid_fen`); the patient pays the rest in cash (`cash_pay_fen`). A
    resident, or an employee without an account, pays it all in cash.

    `Idempotency-Key` is required: sending the same bill again with the same key answers
    the same settlement (201, `Idempotent-Replayed: true`) and never pays twice. A visit
    is settled once: to settle it again, reverse its settlement first.

    A stay registered at admission (POST /v1/admissions) is settled against it with
    `admission_id`: the settlement discharges the admission, and a reversal reopens it. A
    settlement without one is settled as ever."""
    hospital = await current_hospital(request)
    bill = await request_bill(request, hospital)
    # The key after the body: errors come in the order hospitals have always seen them
    # (the API key, then the bill, then the idempotency key).
    key = idempotency_key(request)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.Settle,
        settlement_pb2.SettleRequest(
            request_id=key,
            person_id=bill.person_id,
            visit=bill.visit,
            pay_from_personal_account=bill.pay_from_personal_account,
            admission_id=bill.admission_id,
        ),
        hospital,
    )
    headers = {"Location": f"/v1/settlements/{answer.settlement.settlement_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONAnswer(settlement_json(answer.settlement), status_code=201, headers=headers)


@bill_router.post(
    "/settlements/preview",
    tags=["settlements"],
    response_model=SettlementRead,
    openapi_extra=BILL_BODY,
    responses={
        200: {
            "description": "The settlement that would be made: `state` `preview`, "
            "`id` and `settled_at` null."
        },
        **BODY_PROBLEMS,
    },
    summary="Pre-calculate a settlement (预结算); nothing is stored",
)
async def preview_settlement(request: Request) -> JSONAnswer:
    """What settling this bill now would pay, layer by layer, on the person's stored
    coverage, statuses and yearly accumulators: the same body and the same answer as
    POST /v1/settlements, but nothing is stored, so it needs no `Idempotency-Key` and may
    be asked any number of times."""
    hospital = await current_hospital(request)
    bill = await request_bill(request, hospital)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.PreviewSettlement,
        settlement_pb2.PreviewSettlementRequest(
            person_id=bill.person_id,
            visit=bill.visit,
            pay_from_personal_account=bill.pay_from_personal_account,
        ),
        hospital,
    )
    return JSONAnswer(settlement_json(answer.settlement))


@router.get(
    "/settlements/{settlement_id}",
    tags=["settlements"],
    response_model=SettlementRead,
    responses={
        200: {"description": "The settlement, `settled` or `reversed`."},
        **problems(400, 404, described={400: BAD_SETTLEMENT_ID}),
    },
    summary="One of the hospital's settlements",
)
async def get_settlement(
    request: Request, hospital: CurrentHospital, settlement_id: SettlementId
) -> JSONAnswer:
    """One settlement the calling hospital made, as it was answered, with `state`
    `reversed` and `reversed_at` once it is reversed. Another hospital's settlement is
    not found (404), as an unknown one."""
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.GetSettlement,
        settlement_pb2.GetSettlementRequest(settlement_id=settlement_id),
        hospital,
    )
    return JSONAnswer(settlement_json(answer.settlement))


@router.post(
    "/settlements/{settlement_id}/reversal",
    tags=["settlements"],
    response_model=SettlementRead,
    responses={
        200: {
            "description": "Reversed: the settlement, `state` `reversed`; asked again with "
            "the same key, the same answer with `Idempotent-Replayed: true`.",
            "headers": REPLAYED,
        },
        **problems(
            400,
            404,
            409,
            422,
            described={
                400: f"{BAD_SETTLEMENT_ID} The `Idempotency-Key` missing, empty, over 128 "
                "characters or with a control character.",
                409: "The settlement was already reversed under another key "
                "(`already-reversed`, with `settlement_id`, `reversal_idempotency_key` and "
                "`reversed_at`); the same key is still being answered (`request-in-flight`, "
                "`Retry-After`).",
                422: "The key already used for another request (`idempotency-key-reused`).",
            },
        ),
    },
    openapi_extra=KEY_HEADER,
    summary="Reverse a settlement (冲正 / 退费); asking again answers the same reversal",
)
async def reverse_settlement(
    request: Request, hospital: CurrentHospital, settlement_id: SettlementId
) -> JSONAnswer:
    """Reverse one of the hospital's settlements, as when the patient is refunded or the
    bill was wrong: its amounts leave the person's yearly accumulators, and the funds'
    totals for the day of the reversal go back (`reversed_fen` in the clearing). The
    visit may then be settled again.

    `Idempotency-Key` is required: asking again with the same key answers the same
    reversal."""
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
    tags=["settlements"],
    response_model=SettlementPage,
    responses={
        200: {"description": "One page of the day's settlements, oldest first."},
        **problems(400, described={400: "A bad `date`, `page_size` or `page_token`."}),
    },
    summary="The hospital's settlements made on a business day, oldest first",
)
async def list_settlements(
    request: Request,
    hospital: CurrentHospital,
    day: BusinessDay,
    page_size: Annotated[int, Query(ge=1, le=1000, description="Default 100.")] = 100,
    page_token: Annotated[str, Query(description="The previous page's next_page_token.")] = "",
) -> JSONAnswer:
    """The settlements the calling hospital made on a business day (Asia/Shanghai), by
    the time they were made, reversed ones included, a page at a time: pass the answer's
    `next_page_token` as `page_token` until it is empty."""
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
    tags=["clearing"],
    response_model=ClearingRead,
    responses={
        200: {"description": "Per fund, the day's settled and reversed amounts and the net."},
        **problems(400, described={400: "A bad `date`."}),
    },
    summary="What each fund owes the hospital for a business day (清算 / 对账)",
)
async def daily_clearing(
    request: Request, hospital: CurrentHospital, day: BusinessDay
) -> JSONAnswer:
    """For reconciliation with each fund: what every fund that paid on the calling
    hospital's settlements of a business day (Asia/Shanghai) owes it, net of the
    reversals made that day. `net_fen` is the sum of the funds' `net_fen`."""
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.GetDailyClearing,
        settlement_pb2.GetDailyClearingRequest(date=from_date(day)),
        hospital,
    )
    return JSONAnswer(clearing_json(answer))


# --- the admission desk (入院登记) ---------------------------------------------------------

ADMISSION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {"$ref": f"#/components/schemas/{AdmissionCreate.__name__}"}
            }
        },
    }
}
BAD_ADMISSION_ID = "An `admission_id` of more than 36 characters (no id is)."
ADMISSION_LINKS: Final = {
    operation: {
        "operationId": operation,
        "parameters": {"admission_id": "$response.body#/id"},
        "description": f"The admission's `id` is the `admission_id` of {path}.",
    }
    for operation, path in (
        ("get_admission", "GET /v1/admissions/{admission_id}"),
        ("cancel_admission", "POST /v1/admissions/{admission_id}/cancellation"),
    )
}
PersonId = Annotated[
    str, Path(description="The patient's resident identity number (公民身份号码), 18 characters.")
]
AdmissionDay = Annotated[
    datetime.date,
    BeforeValidator(parse_date),
    Query(
        alias="date",
        description="The day of admission asked about, YYYY-MM-DD: it picks the policy pack, "
        "the year and what is in force.",
    ),
]
Referred = Annotated[
    bool,
    Query(
        description="The hospital holds a primary-care referral slip (基层首诊转诊) for the stay."
    ),
]
AdmissionId = Annotated[
    str,
    Path(
        description="The `id` the platform gave the admission: the `id` of the answer of "
        "POST /v1/admissions, and the end of its `Location` header."
    ),
]


@router.get(
    "/persons/{person_id}/eligibility",
    tags=["admissions"],
    response_model=EligibilityRead,
    responses={
        200: {"description": "What the admission desk needs to know of the patient that day."},
        **problems(
            400,
            404,
            409,
            422,
            described={
                400: "A malformed `person_id` (its check digit, its address code), `date` or "
                "`referred`.",
                404: "A person the platform does not insure (`person-not-found`).",
                409: "The hospital is a pharmacy (`not-a-hospital`): it admits no patient.",
                422: "No policy pack in force for the person's region on `date` "
                "(`no-policy-in-force`).",
            },
        ),
    },
    summary="A patient's eligibility at admission (入院资格): cover, no deposit, caps left",
)
async def get_eligibility(
    request: Request,
    hospital: CurrentHospital,
    person_id: PersonId,
    day: AdmissionDay,
    referred: Referred = False,
) -> JSONAnswer:
    """What the calling hospital's admission desk needs to know of a patient admitted on
    `date`: the person's region and the policy pack in force; the enrolment of the year
    (scheme, employment, tier; `enrolled` false when there is none: an answer, not an
    error); the statuses in force that day with the agency that certified each; whether the
    patient pays no deposit and why (Xixia's poverty window for the registered poor; a
    medical-assistance recipient referred through primary care and treated in the home
    region); the outpatient certificates and the registrations for care elsewhere valid
    that day; and, layer by layer, each yearly cap with what this year's settlements used
    and what is left, in fen (Tianjin's carried-over outpatient quota included).

    The stay is taken at the calling hospital: its level and region, out of area when its
    region is not the person's; `referred` says the hospital holds a referral slip (a
    registration valid that day for the hospital's region counts too). Every answer is
    recorded as a read of the person (the bureau's audit)."""
    try:
        resident = read_resident_id(person_id, "person_id")
    except InvalidInput as error:
        raise invalid_path("person_id", error) from None
    upstream = upstream_of(request)
    with path_fields("person_id"):
        answer = await upstream.ask(
            upstream.settlement.GetEligibility,
            settlement_pb2.GetEligibilityRequest(
                person_id=resident.number, date=from_date(day), referred=referred
            ),
            hospital,
        )
    return JSONAnswer(eligibility_json(answer.eligibility))


@router.post(
    "/admissions",
    tags=["admissions"],
    status_code=201,
    response_model=AdmissionRead,
    responses={
        201: {
            "description": "Admitted: the admission with the eligibility of its day, with "
            "`Location: /v1/admissions/{id}`; a retry with the same key and body answers the "
            "same admission with `Idempotent-Replayed: true`.",
            "headers": {
                "Location": {
                    "description": "/v1/admissions/{id}: where the admission is read.",
                    "schema": {"type": "string"},
                },
                **REPLAYED,
            },
            "links": ADMISSION_LINKS,
        },
        **problems(
            400,
            409,
            413,
            415,
            422,
            503,
            described={
                400: "Malformed JSON (or duplicate keys, or not UTF-8); the "
                "`Idempotency-Key` missing, empty, over 128 characters or with a control "
                "character.",
                409: "The hospital is a pharmacy (`not-a-hospital`); the same key is still "
                "being answered (`request-in-flight`, `Retry-After`).",
                422: "A field that breaks a rule (`admitted` not a date, or after today); a "
                "person the platform does not insure, or not enrolled for the year "
                "(`person_id`); no policy pack in force on the day; the key already used for "
                "another admission (`idempotency-key-reused`).",
                503: f"{PROBLEMS[503]} If the admission may have been made all the same, the "
                "detail says its outcome is unknown: send the same request again with the "
                "same `Idempotency-Key`.",
            },
        ),
    },
    openapi_extra={**KEY_HEADER, **ADMISSION_BODY},
    summary="Register an admission (入院登记), once per Idempotency-Key",
)
async def admit(request: Request, hospital: CurrentHospital) -> JSONAnswer:
    """Register a patient's admission at the calling hospital on `admitted` (not after
    today), with the eligibility answer of that day: whether the patient pays no deposit
    and why, counted as referred, out of area, the policy pack. The stay is later settled
    against it (`admission_id` of POST /v1/settlements), which discharges it.

    `Idempotency-Key` is required: the same body again with the same key answers the same
    admission (201, `Idempotent-Replayed: true`). Recorded as a read of the person."""
    settings = request.app.state.settings
    asked = read_admission(await read_json(request, settings.max_body_bytes))
    key = idempotency_key(request)
    upstream = upstream_of(request)
    answer = await upstream.ask(
        upstream.settlement.Admit,
        settlement_pb2.AdmitRequest(
            request_id=key,
            person_id=asked.person_id,
            admitted=from_date(asked.admitted),
            referred=asked.referred,
        ),
        hospital,
    )
    headers = {"Location": f"/v1/admissions/{answer.admission.admission_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONAnswer(admission_json(answer.admission), status_code=201, headers=headers)


@router.get(
    "/admissions/{admission_id}",
    tags=["admissions"],
    response_model=AdmissionRead,
    responses={
        200: {"description": "The admission: `admitted`, `discharged` or `cancelled`."},
        **problems(
            400,
            404,
            described={400: BAD_ADMISSION_ID, 404: "No such admission, or another hospital's."},
        ),
    },
    summary="One of the hospital's admissions",
)
async def get_admission(
    request: Request, hospital: CurrentHospital, admission_id: AdmissionId
) -> JSONAnswer:
    """One admission the calling hospital registered, with `state` `discharged` and the
    `settlement_id` once a stay is settled against it. Another hospital's admission is not
    found (404), as an unknown one. Recorded as a read of the person."""
    upstream = upstream_of(request)
    with path_fields("admission_id"):
        answer = await upstream.ask(
            upstream.settlement.GetAdmission,
            settlement_pb2.GetAdmissionRequest(admission_id=admission_id),
            hospital,
        )
    return JSONAnswer(admission_json(answer.admission))


@router.post(
    "/admissions/{admission_id}/cancellation",
    tags=["admissions"],
    response_model=AdmissionRead,
    responses={
        200: {
            "description": "Cancelled: the admission, `state` `cancelled`; asked again, the "
            "same answer."
        },
        **problems(
            400,
            404,
            409,
            described={
                400: BAD_ADMISSION_ID,
                404: "No such admission, or another hospital's.",
                409: "A standing settlement discharged it (`admission-already-settled`, with "
                "its `settlement_id`): reverse the settlement first.",
            },
        ),
    },
    summary="Cancel an admission not settled; asking again answers the same",
)
async def cancel_admission(
    request: Request, hospital: CurrentHospital, admission_id: AdmissionId
) -> JSONAnswer:
    """Cancel one of the hospital's admissions, as when the patient was not admitted after
    all: no stay can then be settled against it. An admission a standing settlement
    discharged is not cancelled (409): reverse the settlement first, which reopens it.
    Cancelling a cancelled admission answers it again."""
    upstream = upstream_of(request)
    with path_fields("admission_id"):
        answer = await upstream.ask(
            upstream.settlement.CancelAdmission,
            settlement_pb2.CancelAdmissionRequest(admission_id=admission_id),
            hospital,
        )
    return JSONAnswer(admission_json(answer.admission))


@health_router.get(
    "/healthz",
    tags=["health"],
    response_model=HealthRead,
    responses={
        200: {"description": "Every service is serving."},
        503: {"model": HealthRead, "description": "A service is not serving."},
    },
    summary="Whether every service answers SERVING (no API key needed)",
)
async def health(request: Request) -> JSONAnswer:
    """The standard gRPC health check of the four services (enrollment, datashare,
    settlement, assistance), asked at once, each waited for `DOUDI_HEALTH_TIMEOUT_SECONDS`:
    200 only if all are `SERVING`, else 503 with each one's state. For load balancers and
    probes: no API key, and concurrent checks share one round."""
    services = await upstream_of(request).health()
    ok = all(state == "SERVING" for state in services.values())
    return JSONAnswer(
        {"status": "ok" if ok else "unavailable", "services": services},
        status_code=200 if ok else 503,
    )


@health_router.get(
    "/readyz",
    tags=["health"],
    response_model=ReadinessRead,
    responses={
        200: {"description": "The settlement service is serving: this gateway can settle."},
        **problems(
            503,
            described={
                503: "The settlement service is not serving (or did not answer in time): "
                "send hospitals to another gateway."
            },
        ),
    },
    summary="Whether this gateway can settle: the settlement service is SERVING (no key)",
)
async def readiness(request: Request) -> JSONAnswer:
    """The readiness probe of a gateway process: the standard gRPC health check of the
    settlement service alone, which every hospital's call needs, waited for
    `DOUDI_HEALTH_TIMEOUT_SECONDS`. The other services are not asked: a hospital settles
    while assistance, enrollment or datashare is down (`/healthz` reports them all). 200
    when it is `SERVING`, else 503 problem+json (`not-ready`). No API key; concurrent
    checks share one round."""
    state = (await upstream_of(request).health(("settlement",)))["settlement"]
    if state != "SERVING":
        raise not_ready(state)
    return JSONAnswer({"status": "ok", "settlement": state})


@health_router.get(
    "/livez",
    tags=["health"],
    response_model=LivenessRead,
    responses={200: {"description": "The process answers."}},
    summary="Whether this gateway process is alive (asks no service; no key)",
)
async def liveness() -> JSONAnswer:
    """The liveness probe of a gateway process: 200 whenever the process answers HTTP,
    whatever the services behind it, so that a service that is down never gets the
    gateways restarted (`/readyz` takes a gateway out of the load balancer instead)."""
    return JSONAnswer({"status": "ok"})

"""The examples of the OpenAPI document: a request for every operation that succeeds
against the demo data ``doudi run`` loads, the answer it gets, and the errors each
operation answers.

The requests are made for a business day, the day the gateway started on the
bureau's calendar (:func:`business_day`), because ``doudi run`` enrols the demo
persons for the year it starts in: the demo hospital (``demo-xixia-2``) settles
the worked example's stay (``examples/xixia-inpatient-level2.case.json``: 50,000
yuan, all class A, for the registered-poor demo person), discharged that day,
as README's request does, with the same visit number and key: they carry the
day, so the examples succeed every day on the same database. The answers are built by
:mod:`gateway.convert` from settlement messages, as real answers are, and the
errors by :mod:`gateway.problems`; ``tests/test_gateway_docs.py`` sends every
request to the platform and checks the settlement's figures.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

import grpc

from doudi.cli import demo
from doudi.common.enums import SETTLEMENT_AGENCIES, SETTLEMENT_SCHEMES, SETTLEMENT_STATUSES
from doudi.common.errors import DecodedStatus, FieldViolation
from doudi.common.protos import from_date, to_timestamp
from doudi.common.visits import VISIT_TYPES
from doudi.core.errors import InvalidInput
from doudi.settlement.v1 import settlement_pb2
from gateway.convert import admission_json, clearing_json, eligibility_json, settlement_json
from gateway.problems import (
    FieldError,
    Problem,
    from_rpc_status,
    internal_error,
    invalid_header,
    invalid_input,
    invalid_path,
    not_ready,
    outcome_unknown,
    unauthenticated,
    unavailable,
)

BUREAU_ZONE: Final = ZoneInfo("Asia/Shanghai")
"""The bureau's calendar, as the settlement service's default ``DOUDI_TIMEZONE``."""

HOSPITAL: Final = demo.HOSPITALS[0]  # level 2, Xixia County: API key demo-xixia-2
PERSON: Final = demo.REGISTERED_POOR.person_id
SETTLEMENT_ID: Final = "676090f6-680f-4de3-8663-90e3962f20ec"
"""What a settlement's id looks like; the platform gives each its own (a UUID)."""

# The worked example as the Xixia pack settles it for a registered-poor resident at a
# level-2 hospital (doudi calc examples/xixia-inpatient-level2.case.json).
_TOTAL_FEN: Final = 5_000_000
_LAYERS: Final = (
    ("basic", "390100", 3_960_000),
    ("critical_illness", "390200", 0),
    ("supplementary_critical_illness", "supplementary", 280_000),
    ("insurance_assistance", "assistance_project", 448_000),
    ("medical_assistance", "610100", 218_400),
)
_FUND_PAID_FEN: Final = sum(paid for _, _, paid in _LAYERS)


@dataclass(frozen=True)
class Example:
    """One named example (an OpenAPI Example Object)."""

    summary: str
    value: Any

    def as_openapi(self) -> dict[str, Any]:
        return {"summary": self.summary, "value": self.value}


@dataclass(frozen=True)
class OperationExamples:
    """An operation's request (parameters by name, the body) and its answers by status."""

    parameters: Mapping[str, Example] = field(default_factory=dict)
    body: Example | None = None
    responses: Mapping[int, Mapping[str, Example]] = field(default_factory=dict)


def business_day(now: datetime.datetime | None = None) -> datetime.date:
    """Today on the bureau's calendar."""
    return (now or datetime.datetime.now(datetime.UTC)).astimezone(BUREAU_ZONE).date()


def bill(day: datetime.date) -> dict[str, Any]:
    """The worked example's stay of the registered-poor demo person, admitted and
    discharged on ``day``: the README's request, so that either answers the other's
    settlement."""
    return {
        "person_id": PERSON,
        "visit": {
            "id": f"ZY-{day.isoformat()}",
            "type": "inpatient",
            "admitted": day.isoformat(),
            "discharged": day.isoformat(),
            "out_of_area": False,
            "referred": False,
            "items": [{"code": "X01", "class": "A", "amount_fen": _TOTAL_FEN}],
        },
    }


def settlement(day: datetime.date, state: str) -> dict[str, Any]:
    """The answer to :func:`bill`, as ``settled``, ``reversed`` or ``preview``."""
    message = settlement_pb2.Settlement(
        hospital_id=HOSPITAL.hospital_id,
        person_id=PERSON,
        visit_id=bill(day)["visit"]["id"],
        visit_type=VISIT_TYPES.value("inpatient"),
        settles_on=from_date(day),
        policy="xixia-2017",
        total_fen=_TOTAL_FEN,
        in_scope_fen=_TOTAL_FEN,
        layers=[
            settlement_pb2.LayerPayment(layer=layer, fund=fund, paid_fen=paid)
            for layer, fund, paid in _LAYERS
        ],
        fund_paid_fen=_FUND_PAID_FEN,
        self_pay_fen=_TOTAL_FEN - _FUND_PAID_FEN,
    )
    if state != "preview":
        settled = datetime.datetime.combine(day, datetime.time(10, 30), BUREAU_ZONE)
        message.settlement_id = SETTLEMENT_ID
        message.state = settlement_pb2.SETTLEMENT_STATE_SETTLED
        message.create_time.CopyFrom(to_timestamp(settled))
    if state == "reversed":
        message.state = settlement_pb2.SETTLEMENT_STATE_REVERSED
        reversed_at = datetime.datetime.combine(day, datetime.time(11, 5), BUREAU_ZONE)
        message.reverse_time.CopyFrom(to_timestamp(reversed_at))
    return settlement_json(message)


def clearing(day: datetime.date) -> dict[str, Any]:
    """The demo hospital's clearing for ``day`` after :func:`bill` was settled."""
    paid = sorted((fund, fen) for _, fund, fen in _LAYERS if fen)
    return clearing_json(
        settlement_pb2.GetDailyClearingResponse(
            hospital_id=HOSPITAL.hospital_id,
            date=from_date(day),
            funds=[
                settlement_pb2.FundClearing(
                    fund=fund, settled_fen=fen, reversed_fen=0, net_fen=fen, record_count=1
                )
                for fund, fen in paid
            ],
            net_fen=_FUND_PAID_FEN,
        )
    )


ADMISSION_ID: Final = "3f6c1d2e-8b7a-4c59-9e0d-2a1b4c6d8e10"
"""What an admission's id looks like; the platform gives each its own (a UUID)."""
_POVERTY_WINDOW: Final = (
    "poverty_window",
    "扶贫窗口: 贫困患者住院免费登记, 治疗期间不交押金, 出院时结清自付费用",
)
# The Xixia pack's layers and yearly caps (fen), nothing used yet: the registered-poor demo
# person's answer at the demo hospital before the worked example's stay is settled.
_CAPS: Final = (
    ("basic", "城乡居民基本医疗保险", (("yearly", 15_000_000),)),
    ("critical_illness", "城乡居民大病保险", (("yearly", 40_000_000),)),
    ("supplementary_critical_illness", "大病补充保险", ()),
    (
        "insurance_assistance",
        "医疗保险救助工程",
        (("chronic_yearly", 200_000), ("major_yearly", 1_200_000)),
    ),
    ("medical_assistance", "民政医疗救助", (("yearly", 10_000_000),)),
)


def eligibility(day: datetime.date) -> dict[str, Any]:
    """The registered-poor demo person's eligibility at the demo hospital on ``day``."""
    rule, reason = _POVERTY_WINDOW
    return eligibility_json(
        settlement_pb2.Eligibility(
            person_id=PERSON,
            date=from_date(day),
            hospital_id=HOSPITAL.hospital_id,
            region=HOSPITAL.region,
            policy="xixia-2017",
            enrolled=True,
            enrolment=settlement_pb2.Enrolment(
                year=day.year, scheme=SETTLEMENT_SCHEMES.value("resident")
            ),
            statuses=[
                settlement_pb2.StatusPeriod(
                    status=SETTLEMENT_STATUSES.value("registered_poor"),
                    valid_from=from_date(demo.REGISTERED_POOR_SINCE),
                    agency=SETTLEMENT_AGENCIES.value("poverty_office"),
                )
            ],
            no_deposit=True,
            no_deposit_rule=rule,
            no_deposit_reason=reason,
            layers=[
                settlement_pb2.LayerCaps(
                    layer=layer,
                    name=name,
                    eligible=True,
                    caps=[
                        settlement_pb2.YearlyCap(cap=cap, limit_fen=fen, left_fen=fen)
                        for cap, fen in caps
                    ],
                )
                for layer, name, caps in _CAPS
            ],
        )
    )


def admission_body(day: datetime.date) -> dict[str, Any]:
    """The registered-poor demo person admitted at the demo hospital on ``day``."""
    return {"person_id": PERSON, "admitted": day.isoformat(), "referred": False}


def admission(day: datetime.date, state: str) -> dict[str, Any]:
    """The answer to :func:`admission_body`, ``admitted`` or ``cancelled``."""
    rule, reason = _POVERTY_WINDOW
    message = settlement_pb2.Admission(
        admission_id=ADMISSION_ID,
        hospital_id=HOSPITAL.hospital_id,
        person_id=PERSON,
        admitted=from_date(day),
        no_deposit=True,
        no_deposit_rule=rule,
        no_deposit_reason=reason,
        policy="xixia-2017",
        state=settlement_pb2.ADMISSION_STATE_CANCELLED
        if state == "cancelled"
        else settlement_pb2.ADMISSION_STATE_ADMITTED,
    )
    registered = datetime.datetime.combine(day, datetime.time(9, 15), BUREAU_ZONE)
    message.create_time.CopyFrom(to_timestamp(registered))
    return admission_json(message)


def _problem(summary: str, problem: Problem) -> Example:
    body: dict[str, Any] = json.loads(bytes(problem.response().body))
    return Example(summary, body)


def _refused(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    field_name: str = "",
    field_detail: str = "",
    metadata: Mapping[str, str] | None = None,
    in_path: tuple[str, ...] = (),
) -> Problem:
    """What the gateway answers when the settlement service refuses a call so (the
    service's field names, as ``request_id`` for the Idempotency-Key, and its ErrorInfo's
    metadata; ``in_path``: the route's path parameters)."""
    violations = (FieldViolation(field_name, field_detail or message),) if field_name else ()
    return from_rpc_status(
        DecodedStatus(code, message, reason, violations, dict(metadata or {}), from_service=True),
        in_path,
    )


_MISSING_KEY = _problem("No Idempotency-Key", invalid_header("Idempotency-Key", "Field required"))
_KEY_REUSED = _problem(
    "The Idempotency-Key of another request",
    _refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency key was used for a different request",
        "request_id",
    ),
)
_IN_FLIGHT = _problem(
    "The same key is still being answered (Retry-After: 1)",
    _refused(
        grpc.StatusCode.ABORTED,
        "REQUEST_IN_FLIGHT",
        "a request with this idempotency key is still being settled; retry later",
        "request_id",
    ),
)
_REVERSED_AT = "2026-08-10T03:20:00+00:00"
_ALREADY_REVERSED = _problem(
    "Reversed already, under another key",
    _refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        "ALREADY_REVERSED",
        f"settlement {SETTLEMENT_ID} was already reversed at {_REVERSED_AT} by the request "
        f"with idempotency key 'undo-{SETTLEMENT_ID}'",
        metadata={
            "settlement_id": SETTLEMENT_ID,
            "reversal_request_id": f"undo-{SETTLEMENT_ID}",
            "reverse_time": _REVERSED_AT,
        },
    ),
)
_NOT_A_DAY = "Value error, expected a date as YYYY-MM-DD, got '0'"
_BAD_DAY = _problem(
    "Not a date as YYYY-MM-DD",
    Problem(
        400,
        "INVALID_PARAMETER",
        f"date: {_NOT_A_DAY}",
        "Invalid parameter",
        (FieldError("date", _NOT_A_DAY, in_body=False),),
    ),
)
_BODY_ERRORS: Final[dict[int, dict[str, Example]]] = {
    400: {
        "malformed": _problem(
            "Not JSON",
            Problem(
                400,
                "MALFORMED_JSON",
                "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes",
                "Malformed JSON",
            ),
        )
    },
    413: {
        "too_large": _problem(
            "Over DOUDI_MAX_BODY_BYTES",
            Problem(413, "PAYLOAD_TOO_LARGE", "the body is larger than 1048576 bytes"),
        )
    },
    415: {
        "not_json": _problem(
            "Not application/json",
            Problem(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json"),
        )
    },
    422: {
        "invalid_field": _problem(
            "A field that breaks a rule",
            invalid_input(
                InvalidInput("visit.items[0].amount_fen", "must not be negative, got -1")
            ),
        ),
        "unknown_person": _problem(
            "A person the platform does not insure",
            _refused(
                grpc.StatusCode.NOT_FOUND,
                "PERSON_NOT_FOUND",
                "no person 110101********4477",
                "person_id",
            ),
        ),
        "not_enrolled": _problem(
            "A person not enrolled for the visit's year",
            _refused(
                grpc.StatusCode.NOT_FOUND,
                "NOT_ENROLLED",
                "person 411323********0014 is not enrolled for 2015",
                "person_id",
            ),
        ),
        "no_policy": _problem(
            "No policy pack in force for the person's region on the visit's day",
            _refused(
                grpc.StatusCode.FAILED_PRECONDITION,
                "NO_POLICY_IN_FORCE",
                "no policy pack of region '411323' is in force on 2015-08-10",
                "visit.discharged",
            ),
        ),
    },
}
_COMMON_ERRORS: Final[dict[int, dict[str, Example]]] = {
    401: {
        "unknown_key": _problem(
            "No API key, or one the platform does not know", unauthenticated("unknown API key")
        )
    },
    500: {"internal": _problem("Anything unexpected (the log has it)", internal_error())},
    503: {
        "unavailable": _problem("A service did not answer in time (Retry-After: 1)", unavailable())
    },
}
_OUTCOME_UNKNOWN: Final = {
    "outcome_unknown": _problem(
        "Sent, but not confirmed: send it again with the same key (Retry-After: 1)",
        outcome_unknown(),
    ),
}
_NOT_FOUND: Final = {
    "not_found": _problem(
        "An unknown settlement, or another hospital's",
        _refused(
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
            f"no settlement '{SETTLEMENT_ID}'",
            "settlement_id",
        ),
    )
}

_BAD_ID: Final = {
    "bad_id": _problem(
        "Longer than any settlement id",
        _refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            "settlement_id: required",
            "settlement_id",
            "required",
        ),
    )
}


def operation_examples(day: datetime.date) -> dict[str, OperationExamples]:
    """Every operation's examples, by operation id, for requests made on ``day``."""
    bill_example = Example(f"The worked example's stay, discharged on {day.isoformat()}", bill(day))
    settled = settlement(day, "settled")
    settlement_id = Example(
        "The id POST /v1/settlements answered (its Location header)", SETTLEMENT_ID
    )
    on_day = Example("The business day", day.isoformat())
    return {
        "settle": OperationExamples(
            parameters={
                "Idempotency-Key": Example("A key of the hospital's own", f"demo-{day.isoformat()}")
            },
            body=bill_example,
            responses={
                201: {"settled": Example("Settled", settled)},
                400: {**_BODY_ERRORS[400], "no_key": _MISSING_KEY},
                409: {
                    "visit_settled": _problem(
                        "The visit already has a standing settlement",
                        _refused(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            "VISIT_ALREADY_SETTLED",
                            f"visit '{bill(day)['visit']['id']}' already has a standing "
                            f"settlement {SETTLEMENT_ID}; reverse it before settling the "
                            "visit again",
                            "visit.id",
                        ),
                    ),
                    "in_flight": _IN_FLIGHT,
                },
                413: _BODY_ERRORS[413],
                415: _BODY_ERRORS[415],
                422: {**_BODY_ERRORS[422], "key_reused": _KEY_REUSED},
                **_COMMON_ERRORS,
                503: {**_COMMON_ERRORS[503], **_OUTCOME_UNKNOWN},
            },
        ),
        "preview_settlement": OperationExamples(
            body=Example(
                f"The worked example's stay, discharged on {day.isoformat()}, the patient "
                "agreeing that a personal account pays (a resident has none: "
                "personal_account_paid_fen 0, all in cash)",
                {**bill(day), "pay_from_personal_account": True},
            ),
            responses={
                200: {"preview": Example("Pre-calculated", settlement(day, "preview"))},
                **{status: _BODY_ERRORS[status] for status in (400, 413, 415, 422)},
                **_COMMON_ERRORS,
            },
        ),
        "get_settlement": OperationExamples(
            parameters={"settlement_id": settlement_id},
            responses={
                200: {"settled": Example("A settlement", settled)},
                400: _BAD_ID,
                404: _NOT_FOUND,
                **_COMMON_ERRORS,
            },
        ),
        "reverse_settlement": OperationExamples(
            parameters={
                "settlement_id": settlement_id,
                "Idempotency-Key": Example("A key of the hospital's own", f"undo-{SETTLEMENT_ID}"),
            },
            responses={
                200: {"reversed": Example("Reversed", settlement(day, "reversed"))},
                400: {**_BAD_ID, "no_key": _MISSING_KEY},
                404: _NOT_FOUND,
                409: {"already_reversed": _ALREADY_REVERSED, "in_flight": _IN_FLIGHT},
                422: {"key_reused": _KEY_REUSED},
                **_COMMON_ERRORS,
                503: {**_COMMON_ERRORS[503], **_OUTCOME_UNKNOWN},
            },
        ),
        "list_settlements": OperationExamples(
            parameters={
                "date": on_day,
                "page_size": Example("At most this many settlements", 100),
                "page_token": Example("The first page", ""),
            },
            responses={
                200: {
                    "one_page": Example(
                        "The day's settlements", {"settlements": [settled], "next_page_token": ""}
                    )
                },
                400: {"bad_date": _BAD_DAY},
                **_COMMON_ERRORS,
            },
        ),
        "daily_clearing": OperationExamples(
            parameters={"date": on_day},
            responses={
                200: {"cleared": Example("After the example's settlement", clearing(day))},
                400: {"bad_date": _BAD_DAY},
                **_COMMON_ERRORS,
            },
        ),
        **_admission_examples(day),
        "readiness": OperationExamples(
            responses={
                200: {
                    "ok": Example("Settlement serving", {"status": "ok", "settlement": "SERVING"})
                },
                503: {
                    "not_ready": _problem(
                        "The settlement service down (Retry-After: 1)", not_ready("UNAVAILABLE")
                    )
                },
            },
        ),
        "liveness": OperationExamples(
            responses={200: {"ok": Example("The process answers", {"status": "ok"})}},
        ),
        "health": OperationExamples(
            responses={
                200: {
                    "ok": Example(
                        "Every service serving",
                        {"status": "ok", "services": dict.fromkeys(_SERVICES, "SERVING")},
                    )
                },
                503: {
                    "unavailable": Example(
                        "A service down",
                        {
                            "status": "unavailable",
                            "services": {
                                **dict.fromkeys(_SERVICES, "SERVING"),
                                "assistance": "UNAVAILABLE",
                            },
                        },
                    )
                },
            },
        ),
    }


_SERVICES: Final = ("enrollment", "datashare", "settlement", "assistance")

_UNKNOWN_PERSON: Final = _refused(
    grpc.StatusCode.NOT_FOUND, "PERSON_NOT_FOUND", "no person 110101********4477", "person_id"
)
_PHARMACY: Final = _problem(
    "The hospital is a pharmacy",
    _refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_A_HOSPITAL",
        "demo-pharmacy is a pharmacy: it admits no patient",
    ),
)
_ADMISSION_NOT_FOUND: Final = {
    "not_found": _problem(
        "An unknown admission, or another hospital's",
        _refused(
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
            f"no admission '{ADMISSION_ID}'",
            "admission_id",
            in_path=("admission_id",),
        ),
    )
}
_BAD_ADMISSION_ID: Final = {
    "bad_id": _problem(
        "Longer than any admission id",
        invalid_path(
            "admission_id",
            InvalidInput("admission_id", "required: an admission's id, at most 36 characters"),
        ),
    )
}


def _admission_examples(day: datetime.date) -> dict[str, OperationExamples]:
    """The admission desk's operations' examples, for requests made on ``day``."""
    admission_id = Example(
        "The id POST /v1/admissions answered (its Location header)", ADMISSION_ID
    )
    no_policy = _refused(
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_POLICY_IN_FORCE",
        "no policy pack of region '411323' is in force on 2015-08-10",
        "date",
    )
    bad_person = invalid_path(
        "person_id", InvalidInput("person_id", "check digit should be 4, got 3")
    )
    return {
        "get_eligibility": OperationExamples(
            parameters={
                "person_id": Example("The registered-poor demo person", PERSON),
                "date": Example("The day of admission", day.isoformat()),
                "referred": Example("No referral slip", False),
            },
            responses={
                200: {
                    "poverty_window": Example("No deposit: the poverty window", eligibility(day))
                },
                400: {
                    "bad_date": _BAD_DAY,
                    "bad_person": _problem("A wrong check digit", bad_person),
                },
                404: {
                    "unknown_person": _problem(
                        "A person the platform does not insure",
                        _refused(
                            grpc.StatusCode.NOT_FOUND,
                            "PERSON_NOT_FOUND",
                            "no person 110101********4477",
                            "person_id",
                            in_path=("person_id",),
                        ),
                    )
                },
                409: {"pharmacy": _PHARMACY},
                422: {"no_policy": _problem("No policy pack in force on the day", no_policy)},
                **_COMMON_ERRORS,
            },
        ),
        "admit": OperationExamples(
            parameters={
                "Idempotency-Key": Example(
                    "A key of the hospital's own", f"admit-{day.isoformat()}"
                )
            },
            body=Example(f"The demo person admitted on {day.isoformat()}", admission_body(day)),
            responses={
                201: {"admitted": Example("Admitted, no deposit", admission(day, "admitted"))},
                400: {**_BODY_ERRORS[400], "no_key": _MISSING_KEY},
                409: {"pharmacy": _PHARMACY, "in_flight": _IN_FLIGHT},
                413: _BODY_ERRORS[413],
                415: _BODY_ERRORS[415],
                422: {
                    "invalid_field": _problem(
                        "A day after today",
                        invalid_input(InvalidInput("admitted", "2999-01-01 is after today")),
                    ),
                    "unknown_person": _problem(
                        "A person the platform does not insure", _UNKNOWN_PERSON
                    ),
                    "key_reused": _KEY_REUSED,
                },
                **_COMMON_ERRORS,
                503: {**_COMMON_ERRORS[503], **_OUTCOME_UNKNOWN},
            },
        ),
        "get_admission": OperationExamples(
            parameters={"admission_id": admission_id},
            responses={
                200: {"admitted": Example("An admission", admission(day, "admitted"))},
                400: _BAD_ADMISSION_ID,
                404: _ADMISSION_NOT_FOUND,
                **_COMMON_ERRORS,
            },
        ),
        "cancel_admission": OperationExamples(
            parameters={"admission_id": admission_id},
            responses={
                200: {"cancelled": Example("Cancelled", admission(day, "cancelled"))},
                400: _BAD_ADMISSION_ID,
                404: _ADMISSION_NOT_FOUND,
                409: {
                    "settled": _problem(
                        "Discharged by a standing settlement",
                        _refused(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            "ADMISSION_ALREADY_SETTLED",
                            f"admission {ADMISSION_ID} was discharged by settlement "
                            f"{SETTLEMENT_ID}; reverse that settlement first",
                            "admission_id",
                            metadata={"settlement_id": SETTLEMENT_ID},
                            in_path=("admission_id",),
                        ),
                    )
                },
                **_COMMON_ERRORS,
            },
        ),
    }

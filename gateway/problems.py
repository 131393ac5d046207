"""Every error the gateway answers, as ``application/problem+json`` (RFC 9457).

One mapping for the whole gateway: a :class:`Problem` raised by the gateway
itself, an :class:`InvalidInput` from reading a visit, a failed call to the
settlement service (``google.rpc.Status`` with ErrorInfo and BadRequest,
read by :func:`doudi.common.errors.decode_status`), FastAPI's own parameter
validation and Starlette's HTTP errors all come out in the same shape:

    {"type": "urn:doudi:problem:invalid-argument", "title": "Invalid input",
     "status": 422, "detail": "visit.items[0].amount_fen: must not be negative, got -1",
     "errors": [{"field": "visit.items[0].amount_fen",
                 "pointer": "#/visit/items/0/amount_fen",
                 "detail": "must not be negative, got -1"}]}

``type`` is ``urn:doudi:problem:`` and the stable reason code in kebab case;
``pointer`` (a JSON pointer into the request body, RFC 6901, as a URI
fragment) is given for body fields only.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from doudi.common.errors import DecodedStatus, decode_status
from doudi.core.errors import InvalidInput

log = logging.getLogger("doudi.gateway")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:doudi:problem:"
INVALID_ARGUMENT = "INVALID_ARGUMENT"

# The settlement service's field names that are not in the request body, as the HTTP
# client knows them (a header, a path or a query parameter).
_OUTSIDE_BODY = {
    "request_id": "Idempotency-Key",
    "settlement_id": "settlement_id",
    "start_date": "date",
    "end_date": "date",
    "date": "date",
    "page_size": "page_size",
    "page_token": "page_token",
    "hospital_id": "hospital_id",
}
# The ErrorInfo metadata a problem carries as extension members, by the names the HTTP
# client knows (the first reversal of a settlement reversed again under another key).
_METADATA_MEMBERS = {
    "settlement_id": "settlement_id",
    "reversal_request_id": "reversal_idempotency_key",
    "reverse_time": "reversed_at",
}
_SEGMENT = re.compile(r"\[(\d+)\]|([^.\[\]]+)")
_RETRY_AFTER = {"Retry-After": "1"}


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    detail: str
    in_body: bool = True

    def as_json(self) -> dict[str, str]:
        entry = {"field": self.field, "detail": self.detail}
        if self.in_body:
            entry["pointer"] = json_pointer(self.field)
        return entry


@dataclass(eq=False)
class Problem(Exception):
    """An error answer: the HTTP status, a stable reason, a human ``detail``."""

    status: int
    reason: str
    detail: str
    title: str = ""
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    members: Mapping[str, str] = field(default_factory=dict)
    """Extension members (RFC 9457 section 3.2), such as the id a conflict is about."""

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "type": TYPE_PREFIX + self.reason.lower().replace("_", "-"),
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            **self.members,
        }
        if self.errors:
            body["errors"] = [error.as_json() for error in self.errors]
        return JSONResponse(
            body, status_code=self.status, headers=dict(self.headers), media_type=PROBLEM_JSON
        )


def json_pointer(field_path: str) -> str:
    """``visit.items[0].amount_fen`` as the URI fragment ``#/visit/items/0/amount_fen``."""
    parts = (match.group(1) or match.group(2) for match in _SEGMENT.finditer(field_path))
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return "#" + "".join("/" + quote(part, safe="!$&'()*+,;=:@~") for part in escaped)


def invalid_input(error: InvalidInput) -> Problem:
    """A visit or body that breaks a rule: 422 naming the field."""
    errors = (FieldError(error.field, error.message),) if error.field else ()
    return Problem(422, INVALID_ARGUMENT, str(error), "Invalid input", errors)


def unauthenticated(detail: str) -> Problem:
    return Problem(
        401, "UNAUTHENTICATED", detail, "Unauthenticated", headers={"WWW-Authenticate": "Bearer"}
    )


def invalid_header(name: str, detail: str) -> Problem:
    """A missing or malformed header: 400 naming it, as for FastAPI's own header checks."""
    errors = (FieldError(name, detail, in_body=False),)
    return Problem(400, "INVALID_HEADER", f"{name}: {detail}", "Invalid header", errors)


def _field_errors(status: DecodedStatus, in_path: Collection[str] = ()) -> tuple[FieldError, ...]:
    errors = []
    for violation in status.violations:
        outside = violation.field if violation.field in in_path else None
        outside = outside or _OUTSIDE_BODY.get(violation.field)
        if outside is None:
            errors.append(FieldError(violation.field, violation.description))
        else:
            errors.append(FieldError(outside, violation.description, in_body=False))
    return tuple(errors)


def from_rpc_status(status: DecodedStatus, in_path: Collection[str] = ()) -> Problem:
    """What the HTTP client is told when the settlement service refused a call; ``in_path``:
    the fields the route takes from its path (a person's id in the URL: unknown, 404)."""
    code, reason, message = status.code, status.reason, status.message
    errors = _field_errors(status, in_path)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        if errors and not any(error.in_body for error in errors):
            # A header, path or query parameter the service refused: a malformed request.
            return Problem(400, reason, message, "Bad request", errors)
        return Problem(422, reason, message, "Invalid input", errors)
    if code == grpc.StatusCode.NOT_FOUND:
        if any(error.field == "person_id" and error.in_body for error in errors):
            # The bill names a person the platform does not insure: bad input, not a bad URL.
            return Problem(422, reason, message, "Unknown person", errors)
        return Problem(404, reason, message, "Not found", errors)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        if reason in ("IDEMPOTENCY_KEY_REUSED", "NO_POLICY_IN_FORCE"):
            return Problem(422, reason, message, "Unprocessable request", errors)
        members = {
            _METADATA_MEMBERS[key]: value
            for key, value in status.metadata.items()
            if key in _METADATA_MEMBERS
        }
        return Problem(409, reason, message, "Conflict", errors, members=members)
    if code == grpc.StatusCode.ABORTED:
        return Problem(409, reason, message, "Conflict", errors, _RETRY_AFTER)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return Problem(409, reason, message, "Conflict", errors)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return unauthenticated("the API key is not (or no longer) valid")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return Problem(403, reason, message, "Forbidden")
    if upstream_failed(status):
        # The message may name internal addresses: it goes to the log only.
        log.warning("settlement call failed: %s %s", code.name, message)
        return unavailable()
    log.error("settlement call failed: %s %s %s", code.name, reason, message)
    if code == grpc.StatusCode.DATA_LOSS and reason == "STORED_AMOUNT_OUT_OF_RANGE":
        # A stored record the service cannot answer: say which, so the bureau can mend it
        # (the service's own message, naming the record; gRPC's own DATA_LOSS says nothing).
        return Problem(500, reason, message, "Stored data out of range")
    return internal_error()


@contextlib.contextmanager
def path_fields(*names: str) -> Iterator[None]:
    """Around a call whose request carries the route's path parameters ``names``: the
    service's refusal naming one is about the URL (400 when malformed, 404 when unknown),
    not about a body. UNAUTHENTICATED goes on to the handler, which forgets the key."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise
        raise from_rpc_status(decode_status(error), names) from error


def invalid_path(name: str, error: InvalidInput) -> Problem:
    """A malformed path parameter: 400 naming it."""
    errors = (FieldError(name, error.message, in_body=False),)
    return Problem(400, "INVALID_PARAMETER", str(error), "Invalid parameter", errors)


# A call that did not get the service's answer: the gateway gave up waiting, or the
# connection broke (the process died) or the channel closed on the way.
_GAVE_UP = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_BROKE = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED)


def upstream_failed(status: DecodedStatus) -> bool:
    """Whether the call failed for want of the settlement service (503), not because the
    service answered so: UNAVAILABLE or DEADLINE_EXCEEDED, or a broken call that no
    service ended (no ``ErrorInfo``: a service's own INTERNAL stays a 500)."""
    return status.code in _GAVE_UP or (status.code in _BROKE and not status.from_service)


def unavailable() -> Problem:
    """The settlement service did not answer a read: nothing changed; retry later."""
    return Problem(
        503,
        "UNAVAILABLE",
        "the platform did not answer in time; retry later",
        "Service unavailable",
        headers=_RETRY_AFTER,
    )


def not_ready(settlement: str) -> Problem:
    """``/readyz``: the settlement service, which every hospital's call needs, is not
    serving (``settlement``: its health as the gateway got it)."""
    return Problem(
        503,
        "NOT_READY",
        f"this gateway cannot settle: the settlement service is {settlement}",
        "Not ready",
        headers=_RETRY_AFTER,
    )


def outcome_unknown() -> Problem:
    """The gateway gave up on a settlement or reversal that may still have been made."""
    return Problem(
        503,
        "OUTCOME_UNKNOWN",
        "the platform did not confirm the request in time, and it may still have been made: "
        "send it again with the same Idempotency-Key, which answers its one outcome",
        "Outcome unknown",
        headers=_RETRY_AFTER,
    )


def internal_error() -> Problem:
    return Problem(500, "INTERNAL", "internal error; the platform has logged it", "Internal error")


def _validation_problem(error: RequestValidationError) -> Problem:
    """FastAPI's own checks of path, query and header parameters: a missing or malformed
    one is a malformed request, 400, naming it."""
    errors = []
    in_headers = False
    for entry in error.errors():
        location = list(entry.get("loc", ()))
        in_headers = in_headers or location[:1] == ["header"]
        name = ".".join(str(part) for part in location[1:]) or "request"
        errors.append(FieldError(name, str(entry.get("msg", "invalid")), in_body=False))
    detail = "; ".join(f"{error.field}: {error.detail}" for error in errors)
    if in_headers:
        return Problem(400, "INVALID_HEADER", detail, "Invalid header", errors)
    return Problem(400, "INVALID_PARAMETER", detail, "Invalid parameter", errors)


def _problem(
    request: Request, error: Exception, on_unauthenticated: Callable[[Request], None]
) -> Problem:
    if isinstance(error, Problem):
        return error
    if isinstance(error, InvalidInput):
        return invalid_input(error)
    if isinstance(error, grpc.aio.AioRpcError):
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            on_unauthenticated(request)
        return from_rpc_status(decode_status(error))
    if isinstance(error, RequestValidationError):
        return _validation_problem(error)
    if isinstance(error, StarletteHTTPException):
        status = HTTPStatus(error.status_code)
        detail = error.detail if isinstance(error.detail, str) else status.phrase
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Starlette names the methods of the first route of the path only.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return Problem(error.status_code, status.name, detail, headers=headers)
    # Starlette re-raises the error after this answer; the server logs its traceback.
    return internal_error()


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the path the request matched (the first route that matched it, as
    the router chose), from every route of that path."""
    routes = request.app.router.routes
    path = next(
        (route.path for route in routes if route.matches(request.scope)[0] != Match.NONE), None
    )
    methods = (getattr(route, "methods", None) or () for route in routes if route.path == path)
    return sorted({method for route_methods in methods for method in route_methods})


def install(app: FastAPI, on_unauthenticated: Callable[[Request], None]) -> None:
    """Answer every error of ``app`` as problem+json, and log it in one line.
    ``on_unauthenticated`` hears of requests whose key the settlement service refused."""

    async def answer(request: Request, error: Exception) -> JSONResponse:
        problem = _problem(request, error, on_unauthenticated)
        log.info("%s %s %d %s", request.method, request.url.path, problem.status, problem.reason)
        return problem.response()

    for kind in (
        Problem,
        InvalidInput,
        grpc.aio.AioRpcError,
        RequestValidationError,
        StarletteHTTPException,
        Exception,
    ):
        app.add_exception_handler(kind, answer)

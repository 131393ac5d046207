"""What every view reads from a request: the calling hospital, the bill, the idempotency key.

Plain functions of the ``Request``, not a tree of FastAPI dependencies: solving a
chain of dependencies (the bearer scheme, the hospital, the body, the settings,
the channels, the header) took a fifth of the gateway's CPU per settlement. The
settle and preview views call them directly; the other views take
:data:`CurrentHospital`, one flat dependency. What FastAPI can no longer see is
declared for the OpenAPI document here (:data:`IDEMPOTENCY_KEY_PARAMETER`,
:data:`BEARER_SCHEME`) and added by the routes and :mod:`gateway.docs`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, Request

from gateway.problems import invalid_header, unauthenticated
from gateway.reading import Bill, read_bill, read_json
from gateway.settings import Settings
from gateway.upstream import CallingHospital, Upstream

MAX_API_KEY_LENGTH = 512
MAX_IDEMPOTENCY_KEY_LENGTH = 128  # as the settlement service's request_id
IDEMPOTENCY_KEY = "Idempotency-Key"

BEARER_SCHEME_NAME: Final = "HTTPBearer"
BEARER_SCHEME: Final[dict[str, Any]] = {
    "type": "http",
    "scheme": "bearer",
    "description": "The hospital's API key, as issued when the bureau registered the hospital.",
}
"""``components.securitySchemes`` of the OpenAPI document; every ``/v1`` operation needs it."""

_IDEMPOTENCY_KEY_DESCRIPTION = (
    "Required: a key of the hospital's own for this request. Sending the same request again "
    "with the same key answers the first answer and never settles twice; the same key with "
    "another request is refused (422)."
)
IDEMPOTENCY_KEY_PARAMETER: Final[dict[str, Any]] = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": True,
    "description": _IDEMPOTENCY_KEY_DESCRIPTION,
    "schema": {
        "type": "string",
        "title": IDEMPOTENCY_KEY,
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
        "pattern": r"^[^\x00-\x1f\x7f-\xa0\xad]+$",  # printable, as header values go
        "description": _IDEMPOTENCY_KEY_DESCRIPTION,
    },
}
"""The OpenAPI parameter of the views that call :func:`idempotency_key`."""


def upstream_of(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream


async def current_hospital(request: Request) -> CallingHospital:
    """The hospital whose API key came as ``Authorization: Bearer <key>``; 401 without a
    known one."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if not key or scheme.lower() != "bearer":
        raise unauthenticated("send the hospital's API key as `Authorization: Bearer <key>`")
    # gRPC metadata is printable ASCII; no key the platform issues is anything else.
    if len(key) > MAX_API_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise unauthenticated("unknown API key")
    hospital = await upstream_of(request).hospitals.resolve(key)
    if hospital is None:
        raise unauthenticated("unknown API key")
    return hospital


CurrentHospital = Annotated[CallingHospital, Depends(current_hospital)]


async def request_bill(request: Request, hospital: CallingHospital) -> Bill:
    """The request body: a person and a visit, read for the calling hospital."""
    settings: Settings = request.app.state.settings
    return read_bill(await read_json(request, settings.max_body_bytes), hospital.level)


def idempotency_key(request: Request) -> str:
    """The request's ``Idempotency-Key``: 400 when it is missing, empty, too long or holds a
    control character."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        raise invalid_header(IDEMPOTENCY_KEY, "Field required")
    if not key:
        raise invalid_header(IDEMPOTENCY_KEY, "String should have at least 1 character")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise invalid_header(
            IDEMPOTENCY_KEY,
            f"String should have at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
        )
    if not key.isprintable():
        raise invalid_header(IDEMPOTENCY_KEY, "must not contain control characters")
    return key

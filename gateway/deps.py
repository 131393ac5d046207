"""The gateway's FastAPI dependencies, as named ``Annotated`` aliases for the views."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.problems import unauthenticated
from gateway.reading import Bill, read_bill, read_json
from gateway.settings import Settings
from gateway.upstream import CallingHospital, Upstream

MAX_API_KEY_LENGTH = 512
MAX_IDEMPOTENCY_KEY_LENGTH = 128  # as the settlement service's request_id

_bearer = HTTPBearer(
    auto_error=False,
    description="The hospital's API key, as issued when the bureau registered the hospital.",
)


async def get_upstream(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


UpstreamDep = Annotated[Upstream, Depends(get_upstream)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def current_hospital(
    upstream: UpstreamDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> CallingHospital:
    """The hospital whose API key came with the request; 401 without a known one."""
    if credentials is None:
        raise unauthenticated("send the hospital's API key as `Authorization: Bearer <key>`")
    key = credentials.credentials
    # gRPC metadata is printable ASCII; no key the platform issues is anything else.
    if len(key) > MAX_API_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise unauthenticated("unknown API key")
    hospital = await upstream.hospitals.resolve(key)
    if hospital is None:
        raise unauthenticated("unknown API key")
    return hospital


CurrentHospital = Annotated[CallingHospital, Depends(current_hospital)]


async def bill(request: Request, hospital: CurrentHospital, settings: SettingsDep) -> Bill:
    """The request body: a person and a visit, read for the calling hospital."""
    return read_bill(await read_json(request, settings.max_body_bytes), hospital.level)


BillDep = Annotated[Bill, Depends(bill)]


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Required: a key of the hospital's own for this request. Sending the same "
        "request again with the same key answers the first answer and never settles twice; "
        "the same key with another request is refused (422).",
    ),
]
"""The request's idempotency key; missing, empty or too long answers 400."""

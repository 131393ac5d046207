"""The datashare service's gRPC server: ``python -m services.datashare``.

Callers are the platform (the internal token) and the agencies (their own API
keys, ``DOUDI_AGENCY_KEYS``); hospitals are not callers of this service.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi.common.grpc_server import (
    Authenticator,
    Caller,
    Registrar,
    ServiceSpec,
    Setup,
    chain,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.protos import EnumCodes, from_date, optional_date, to_date, to_timestamp
from doudi.core.statuses import ASSERT, REVOKE, EffectivePeriod
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.datashare import service
from services.datashare.settings import DEFAULT_PORT, Settings

SPEC = ServiceSpec(
    name="datashare",
    service_name="doudi.datashare.v1.DatashareService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)

STATUSES = EnumCodes(datashare_pb2.Status, "STATUS_")
AGENCIES = EnumCodes(datashare_pb2.Agency, "AGENCY_")
KINDS = EnumCodes(datashare_pb2.AssertionKind, "ASSERTION_KIND_")


class DatashareServicer(datashare_pb2_grpc.DatashareServiceServicer):
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    async def AssertStatus(
        self,
        request: datashare_pb2.AssertStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.AssertStatusResponse:
        assertion = await self._record(ASSERT, request, request.household_id)
        return datashare_pb2.AssertStatusResponse(assertion=_assertion(assertion))

    async def RevokeStatus(
        self,
        request: datashare_pb2.RevokeStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RevokeStatusResponse:
        assertion = await self._record(REVOKE, request, None)
        return datashare_pb2.RevokeStatusResponse(assertion=_assertion(assertion))

    async def _record(
        self,
        kind: str,
        request: datashare_pb2.AssertStatusRequest | datashare_pb2.RevokeStatusRequest,
        household_id: str | None,
    ) -> service.Assertion:
        agency = require("agency").id
        return await asyncio.to_thread(
            service.record_status,
            self.engine,
            kind=kind,
            agency=agency,
            person_id=request.person_id,
            household_id=household_id,
            status=STATUSES.code(request.status, "status"),
            valid_from=to_date(request.valid_from, "valid_from"),
            valid_to=optional_date(request, "valid_to", "valid_to"),
            reference=request.reference,
        )

    async def GetPersonStatuses(
        self,
        request: datashare_pb2.GetPersonStatusesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetPersonStatusesResponse:
        reader = _reading_agency(require("internal", "agency"))
        periods = await asyncio.to_thread(
            service.person_statuses,
            self.engine,
            agency=reader,
            person_id=request.person_id,
            on_date=optional_date(request, "on_date", "on_date"),
            purpose=request.purpose,
        )
        return datashare_pb2.GetPersonStatusesResponse(periods=[_period(p) for p in periods])

    async def ListStatusAssertions(
        self,
        request: datashare_pb2.ListStatusAssertionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListStatusAssertionsResponse:
        reader = _reading_agency(require("internal", "agency"))
        page = await asyncio.to_thread(
            service.list_assertions,
            self.engine,
            agency=reader,
            person_id=request.person_id,
            purpose=request.purpose,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListStatusAssertionsResponse(
            assertions=[_assertion(a) for a in page.items], next_page_token=page.next_page_token
        )

    async def ListAuditEvents(
        self,
        request: datashare_pb2.ListAuditEventsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListAuditEventsResponse:
        require("internal")
        page = await asyncio.to_thread(
            service.list_audit_events,
            self.engine,
            person_id=request.person_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListAuditEventsResponse(
            events=[_event(e) for e in page.items], next_page_token=page.next_page_token
        )


def _reading_agency(caller: Caller) -> str | None:
    """The agency whose reads are limited and audited; None for the platform."""
    return caller.id if caller.kind == "agency" else None


def _assertion(assertion: service.Assertion) -> datashare_pb2.StatusAssertion:
    message = datashare_pb2.StatusAssertion(
        assertion_id=assertion.assertion_id,
        kind=KINDS.value(assertion.kind),
        person_id=assertion.person_id,
        household_id=assertion.household_id or "",
        status=STATUSES.value(assertion.status),
        agency=AGENCIES.value(assertion.agency),
        valid_from=from_date(assertion.valid_from),
        reference=assertion.reference,
        record_time=to_timestamp(assertion.recorded_at),
    )
    if assertion.valid_to is not None:
        message.valid_to.CopyFrom(from_date(assertion.valid_to))
    return message


def _period(period: EffectivePeriod) -> datashare_pb2.StatusPeriod:
    message = datashare_pb2.StatusPeriod(
        status=STATUSES.value(period.status),
        valid_from=from_date(period.valid_from),
        agency=AGENCIES.value(period.agency),
    )
    if period.valid_to is not None:
        message.valid_to.CopyFrom(from_date(period.valid_to))
    return message


def _event(event: service.AuditEvent) -> datashare_pb2.AuditEvent:
    return datashare_pb2.AuditEvent(
        event_id=event.event_id,
        caller=event.caller,
        method=event.method,
        person_id=event.person_id,
        purpose=event.purpose,
        event_time=to_timestamp(event.event_time),
    )


def agency_authenticator(keys: Mapping[str, str]) -> Authenticator:
    """Accepts an agency's API key as the caller ``agency/<code>``.

    Keys are looked up by their SHA-256 digest, so the time a lookup takes says
    nothing about how much of a key a guess got right.
    """
    by_digest = {_digest(key): agency for key, agency in keys.items()}

    async def authenticate(token: str) -> Caller | None:
        agency = by_digest.get(_digest(token))
        return None if agency is None else Caller("agency", agency)

    return authenticate


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, _stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        servicer = DatashareServicer(engine)

        def register(server: grpc.aio.Server) -> None:
            datashare_pb2_grpc.add_DatashareServiceServicer_to_server(servicer, server)

        return register, chain(
            internal_authenticator(settings), agency_authenticator(settings.agency_keys)
        )

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))

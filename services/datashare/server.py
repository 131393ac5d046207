"""The datashare service's gRPC server: ``python -m services.datashare``.

Callers are the platform (the internal token) and the agencies (their own API
keys, ``DOUDI_AGENCY_KEYS``); hospitals are not callers of this service.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi.common import outbox
from doudi.common.enums import STATUSES
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
from doudi.common.outbox import Sender
from doudi.common.protos import optional_date, to_date
from doudi.core.errors import InvalidInput
from doudi.core.packs import PackRegistry
from doudi.core.statuses import ASSERT, REVOKE
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.datashare import rosters, service
from services.datashare.delivery import status_sender
from services.datashare.messages import (
    assertion_message,
    event_message,
    period_message,
    roster_row,
    submission_message,
)
from services.datashare.settings import DEFAULT_PORT, Settings

SPEC = ServiceSpec(
    name="datashare",
    service_name="doudi.datashare.v1.DatashareService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class DatashareServicer(datashare_pb2_grpc.DatashareServiceServicer):
    def __init__(
        self, engine: sqlalchemy.Engine, delivery: Sender, regions: frozenset[str]
    ) -> None:
        self.engine = engine
        self.delivery = delivery
        self.regions = regions

    async def AssertStatus(
        self,
        request: datashare_pb2.AssertStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.AssertStatusResponse:
        assertion = await self._record(ASSERT, request, request.household_id)
        return datashare_pb2.AssertStatusResponse(assertion=assertion_message(assertion))

    async def RevokeStatus(
        self,
        request: datashare_pb2.RevokeStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RevokeStatusResponse:
        assertion = await self._record(REVOKE, request, None)
        return datashare_pb2.RevokeStatusResponse(assertion=assertion_message(assertion))

    async def _record(
        self,
        kind: str,
        request: datashare_pb2.AssertStatusRequest | datashare_pb2.RevokeStatusRequest,
        household_id: str | None,
    ) -> service.Assertion:
        agency = require("agency").id
        assertion = await asyncio.to_thread(
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
        # Also on a repeated request: a send that failed the first time goes now.
        await self.delivery.send_now(assertion.person_id)
        return assertion

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
        return datashare_pb2.GetPersonStatusesResponse(periods=[period_message(p) for p in periods])

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
            assertions=[assertion_message(a) for a in page.items],
            next_page_token=page.next_page_token,
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
            events=[event_message(e) for e in page.items], next_page_token=page.next_page_token
        )

    # --- rosters ----------------------------------------------------------------------

    async def SubmitRoster(
        self,
        request_iterator: AsyncIterator[datashare_pb2.SubmitRosterRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.SubmitRosterResponse:
        agency = require("agency").id
        receiving: rosters.Receiving | None = None
        rejections: list[rosters.Rejection] = []
        try:
            async for message in request_iterator:
                if receiving is None:
                    if not message.HasField("header"):
                        raise InvalidInput("header", "the first message must carry the header")
                    region = message.header.region
                    as_of = to_date(message.header.as_of, "header.as_of")
                    rosters.check_region(region, self.regions)
                    receiving = await asyncio.to_thread(
                        rosters.begin, self.engine, agency=agency, region=region, as_of=as_of
                    )
                elif message.HasField("header"):
                    raise InvalidInput("header", "only the first message carries the header")
                rows = [roster_row(row) for row in message.rows]
                rejections += await asyncio.to_thread(
                    rosters.add_rows, self.engine, receiving, rows
                )
            if receiving is None:
                raise InvalidInput("header", "required: the stream carried no message")
            submission, replayed = await asyncio.to_thread(rosters.finish, self.engine, receiving)
        except BaseException:
            if receiving is not None:
                await asyncio.shield(
                    asyncio.to_thread(rosters.abandon, self.engine, receiving.submission_id)
                )
            raise
        # The first batch of changed persons reaches settlement before the agency is
        # answered; the retry loop sends the rest (and these, if settlement is down).
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.delivery.send_queued()
        return datashare_pb2.SubmitRosterResponse(
            submission=submission_message(submission),
            rejections=[
                datashare_pb2.RowRejection(line=r.line, field=r.field, reason=r.reason)
                for r in sorted(rejections, key=lambda rejection: rejection.line)
            ],
            replayed=replayed,
        )

    async def GetRosterSubmission(
        self,
        request: datashare_pb2.GetRosterSubmissionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetRosterSubmissionResponse:
        reader = _reading_agency(require("internal", "agency"))
        submission = await asyncio.to_thread(
            rosters.get, self.engine, submission_id=request.submission_id, agency=reader
        )
        return datashare_pb2.GetRosterSubmissionResponse(submission=submission_message(submission))

    async def ListRosterSubmissions(
        self,
        request: datashare_pb2.ListRosterSubmissionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListRosterSubmissionsResponse:
        reader = _reading_agency(require("internal", "agency"))
        page, token = await asyncio.to_thread(
            rosters.list_submissions,
            self.engine,
            agency=reader,
            region=request.region,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListRosterSubmissionsResponse(
            submissions=[submission_message(submission) for submission in page],
            next_page_token=token,
        )


def _reading_agency(caller: Caller) -> str | None:
    """The agency whose reads are limited and audited; None for the platform."""
    return caller.id if caller.kind == "agency" else None


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
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        delivery = outbox.start(stack, settings, functools.partial(status_sender, engine))
        registry = await asyncio.to_thread(PackRegistry.load)
        servicer = DatashareServicer(engine, delivery, registry.regions)

        def register(server: grpc.aio.Server) -> None:
            datashare_pb2_grpc.add_DatashareServiceServicer_to_server(servicer, server)

        return register, chain(
            internal_authenticator(settings), agency_authenticator(settings.agency_keys)
        )

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))

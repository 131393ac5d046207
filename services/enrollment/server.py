"""The enrollment service's gRPC server: ``python -m services.enrollment``.

The servicer translates messages to the dataclasses of ``service`` and back,
and runs the database work in a thread: ``create_*`` in a write transaction,
the rest on a plain connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi.common import outbox
from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.enums import EMPLOYMENTS, PREMIUM_PAYERS, SCHEMES, TIERS
from doudi.common.grpc_server import (
    Authenticator,
    Registrar,
    ServiceSpec,
    Setup,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.outbox import Sender
from doudi.common.protos import to_date
from doudi.core.packs import PackRegistry
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from services.enrollment import service
from services.enrollment.delivery import coverage_sender, register_sender
from services.enrollment.messages import enrolment_message, person_message
from services.enrollment.settings import DEFAULT_PORT, Settings

SPEC = ServiceSpec(
    name="enrollment",
    service_name="doudi.enrollment.v1.EnrollmentService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class EnrollmentServicer(enrollment_pb2_grpc.EnrollmentServiceServicer):
    def __init__(
        self, engine: sqlalchemy.Engine, regions: frozenset[str], senders: tuple[Sender, ...]
    ) -> None:
        self.engine = engine
        self.regions = regions
        self.senders = senders

    async def _send_now(self, person_id: str) -> None:
        """Send the person's coverage to every service that keeps a copy, before answering."""
        await asyncio.gather(*(sender.send_now([person_id]) for sender in self.senders))

    async def CreatePerson(
        self,
        request: enrollment_pb2.CreatePersonRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.CreatePersonResponse:
        require("internal")
        given = request.person
        person = service.NewPerson(
            person_id=given.person_id,
            name=given.name,
            household_id=given.household_id,
            region=given.region,
        )
        stored = await write_in_thread(
            self.engine, service.create_person, person=person, regions=self.regions
        )
        # Also on a repeated request: a send that failed the first time goes now.
        await self._send_now(stored.person_id)
        return enrollment_pb2.CreatePersonResponse(person=person_message(stored))

    async def GetPerson(
        self,
        request: enrollment_pb2.GetPersonRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.GetPersonResponse:
        require("internal")
        person = await read_in_thread(self.engine, service.get_person, person_id=request.person_id)
        return enrollment_pb2.GetPersonResponse(person=person_message(person))

    async def ListPersons(
        self,
        request: enrollment_pb2.ListPersonsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.ListPersonsResponse:
        require("internal")
        page = await read_in_thread(
            self.engine,
            service.list_persons,
            region=request.region,
            size=request.page_size,
            page_token=request.page_token,
        )
        return enrollment_pb2.ListPersonsResponse(
            persons=[person_message(person) for person in page.persons],
            next_page_token=page.next_page_token,
        )

    async def CreateEnrolment(
        self,
        request: enrollment_pb2.CreateEnrolmentRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.CreateEnrolmentResponse:
        require("internal")
        given = request.enrolment
        enrolment = service.Enrolment(
            person_id=given.person_id,
            year=given.year,
            scheme=SCHEMES.code(given.scheme, "enrolment.scheme"),
            employment=EMPLOYMENTS.optional_code(given.employment, "enrolment.employment"),
            tier=TIERS.optional_code(given.tier, "enrolment.tier"),
            premium_fen=given.premium_fen,
            premium_payer=PREMIUM_PAYERS.code(given.premium_payer, "enrolment.premium_payer"),
        )
        stored = await write_in_thread(self.engine, service.create_enrolment, enrolment=enrolment)
        await self._send_now(stored.person_id)
        return enrollment_pb2.CreateEnrolmentResponse(enrolment=enrolment_message(stored))

    async def GetEnrolment(
        self,
        request: enrollment_pb2.GetEnrolmentRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.GetEnrolmentResponse:
        require("internal")
        enrolment = await read_in_thread(
            self.engine, service.get_enrolment, person_id=request.person_id, year=request.year
        )
        return enrollment_pb2.GetEnrolmentResponse(enrolment=enrolment_message(enrolment))

    async def GetCoverage(
        self,
        request: enrollment_pb2.GetCoverageRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.GetCoverageResponse:
        require("internal")
        day = to_date(request.date, "date")
        coverage = await read_in_thread(
            self.engine, service.get_coverage, person_id=request.person_id, day=day
        )
        return enrollment_pb2.GetCoverageResponse(
            person=person_message(coverage.person),
            enrolment=enrolment_message(coverage.enrolment),
        )


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        registry = await asyncio.to_thread(PackRegistry.load)
        senders = (
            outbox.start(
                stack,
                settings.settlement_address,
                functools.partial(coverage_sender, engine, settings),
            ),
            outbox.start(
                stack,
                settings.datashare_address,
                functools.partial(register_sender, engine, settings),
            ),
        )
        servicer = EnrollmentServicer(engine, registry.regions, senders)

        def register(server: grpc.aio.Server) -> None:
            enrollment_pb2_grpc.add_EnrollmentServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))

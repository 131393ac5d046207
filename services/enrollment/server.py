"""The enrollment service's gRPC server: ``python -m services.enrollment``.

The servicer translates messages to the dataclasses of ``service`` and back,
and runs the database work in a thread: ``create_*`` in a write transaction,
the rest on a plain connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.grpc_server import (
    Authenticator,
    Registrar,
    ServiceSpec,
    Setup,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.protos import EnumCodes, from_date, to_date
from doudi.core.packs import PackRegistry
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from services.enrollment import service
from services.enrollment.settings import DEFAULT_PORT, Settings

SPEC = ServiceSpec(
    name="enrollment",
    service_name="doudi.enrollment.v1.EnrollmentService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)

SCHEMES = EnumCodes(enrollment_pb2.Scheme, "SCHEME_")
EMPLOYMENTS = EnumCodes(enrollment_pb2.Employment, "EMPLOYMENT_")
TIERS = EnumCodes(enrollment_pb2.Tier, "TIER_")
PREMIUM_PAYERS = EnumCodes(enrollment_pb2.PremiumPayer, "PREMIUM_PAYER_")


class EnrollmentServicer(enrollment_pb2_grpc.EnrollmentServiceServicer):
    def __init__(self, engine: sqlalchemy.Engine, regions: frozenset[str]) -> None:
        self.engine = engine
        self.regions = regions

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


def person_message(person: service.Person) -> enrollment_pb2.Person:
    return enrollment_pb2.Person(
        person_id=person.person_id,
        name=person.name,
        birth_date=from_date(person.birth_date),
        sex=person.sex,
        household_id=person.household_id,
        region=person.region,
    )


def enrolment_message(enrolment: service.Enrolment) -> enrollment_pb2.Enrolment:
    return enrollment_pb2.Enrolment(
        person_id=enrolment.person_id,
        year=enrolment.year,
        scheme=SCHEMES.value(enrolment.scheme),
        employment=EMPLOYMENTS.value(enrolment.employment),
        tier=TIERS.value(enrolment.tier),
        premium_fen=enrolment.premium_fen,
        premium_payer=PREMIUM_PAYERS.value(enrolment.premium_payer),
    )


def known_regions(registry: PackRegistry) -> frozenset[str]:
    """The regions a person may belong to: those with a policy pack."""
    return frozenset(pack.region_code for pack in registry)


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, _stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        registry = await asyncio.to_thread(PackRegistry.load)
        servicer = EnrollmentServicer(engine, known_regions(registry))

        def register(server: grpc.aio.Server) -> None:
            enrollment_pb2_grpc.add_EnrollmentServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))

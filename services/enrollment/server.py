"""The enrollment service's gRPC server: ``python -m services.enrollment``.

The servicer translates messages to the dataclasses of ``service`` and back,
and runs the database work in a thread: ``create_*`` in a write transaction,
the rest on a plain connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import sqlalchemy

from doudi.common import outbox
from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.enums import (
    CERTIFICATE_APPLICATION_STATES,
    CERTIFICATE_KINDS,
    EMPLOYMENTS,
    PREMIUM_PAYERS,
    REGISTRATION_KINDS,
    SCHEMES,
    STATUSES,
    TIERS,
)
from doudi.common.errors import FailedPrecondition, NotFound
from doudi.common.grpc_server import (
    Authenticator,
    Registrar,
    ServiceSpec,
    Setup,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.outbox import Sender, internal_metadata
from doudi.common.protos import optional_date, to_date
from doudi.core.dates import check_year
from doudi.core.errors import InvalidInput
from doudi.core.monitoring import BUREAU_TIMEZONE
from doudi.core.packs import PackRegistry
from doudi.core.policy import Pack
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from services.enrollment import certificates, registrations, service, subsidised
from services.enrollment.delivery import coverage_sender, household_sender, register_sender
from services.enrollment.messages import (
    application_message,
    batch_message,
    certificate_message,
    enrolment_message,
    person_message,
    registration_message,
    total_message,
)
from services.enrollment.settings import DEFAULT_PORT, Settings

GAP_PAGE = 1000  # persons of the gap read and enrolled at a time

SPEC = ServiceSpec(
    name="enrollment",
    service_name="doudi.enrollment.v1.EnrollmentService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class EnrollmentServicer(enrollment_pb2_grpc.EnrollmentServiceServicer):
    def __init__(
        self,
        engine: sqlalchemy.Engine,
        registry: PackRegistry,
        senders: tuple[Sender, ...],
        hub: Hub,
        time_zone: ZoneInfo = BUREAU_TIMEZONE,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.regions = registry.regions
        self.senders = senders
        self.hub = hub
        self.time_zone = time_zone

    async def _send_now(self, person_id: str) -> None:
        """Send the person's coverage to every service that keeps a copy, before answering."""
        await asyncio.gather(*(sender.send_now([person_id]) for sender in self.senders))

    async def _send_to_settlement(self, person_ids: list[str]) -> None:
        """Send the persons' coverage to settlement alone (their certificates or
        registrations changed, which only settlement keeps), before answering: the first
        batch now, the rest by the background loop at once."""
        for sender in self.senders:
            if sender.subscriber == outbox.SETTLEMENT and person_ids:
                await sender.send_now(person_ids[: outbox.BATCH])
                sender.wake()

    def _today(self) -> date:
        """The bureau's today (``DOUDI_TIME_ZONE``)."""
        return datetime.now(self.time_zone).date()

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

    async def EnrolGap(
        self,
        request: enrollment_pb2.EnrolGapRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.EnrolGapResponse:
        require("internal")
        if request.comparison_id < 1:
            raise InvalidInput("comparison_id", "required: a datashare comparison's id")
        comparison = await self.hub.comparison(request.comparison_id)
        pack = self._pack(comparison.region, comparison.year)
        choose = subsidised.Chooser(pack)
        outcome = subsidised.Outcome()
        async for gap in self.hub.gap(request.comparison_id):
            await write_in_thread(
                self.engine,
                subsidised.enrol_page,
                gap=gap,
                region=comparison.region,
                year=comparison.year,
                choose=choose,
                outcome=outcome,
            )
        # The first batch reaches settlement and the hub before the answer; the background
        # loops send the rest at once.
        first = outcome.enrolled_persons[: outbox.BATCH]
        await asyncio.gather(*(sender.send_now(first) for sender in self.senders))
        for sender in self.senders:
            sender.wake()
        return enrollment_pb2.EnrolGapResponse(
            enrolled_count=outcome.enrolled,
            registered_count=outcome.registered,
            already_enrolled_count=outcome.already_enrolled,
            not_subsidised_count=outcome.not_subsidised,
            totals=[total_message(total) for total in outcome.total_rows(pack)],
        )

    async def GetSubsidySummary(
        self,
        request: enrollment_pb2.GetSubsidySummaryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.GetSubsidySummaryResponse:
        require("internal")
        if request.region not in self.regions:
            raise InvalidInput("region", f"unknown region {request.region!r}")
        pack = self._pack(request.region, request.year)
        totals = await read_in_thread(
            self.engine, subsidised.summary, region=request.region, year=request.year, pack=pack
        )
        return enrollment_pb2.GetSubsidySummaryResponse(
            totals=[total_message(total) for total in totals]
        )

    # --- outpatient certificates and registrations ---

    async def ApplyForCertificate(
        self,
        request: enrollment_pb2.ApplyForCertificateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.ApplyForCertificateResponse:
        require("internal")
        application = certificates.NewApplication(
            request_id=request.request_id,
            person_id=request.person_id,
            kind=CERTIFICATE_KINDS.code(request.kind, "kind"),
            diagnoses=tuple(request.diagnoses),
            applied_on=to_date(request.applied_on, "applied_on"),
            health_centre=request.health_centre,
        )
        stored = await write_in_thread(
            self.engine,
            certificates.apply,
            application=application,
            packs=self.registry,
            today=self._today(),
        )
        return enrollment_pb2.ApplyForCertificateResponse(application=application_message(stored))

    async def DecideCertificateBatch(
        self,
        request: enrollment_pb2.DecideCertificateBatchRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.DecideCertificateBatchResponse:
        require("internal")
        decided_on = optional_date(request, "decided_on", "decided_on")
        batch, replayed, persons = await write_in_thread(
            self.engine,
            certificates.decide_batch,
            region=request.region,
            month=request.month,
            decided_on=decided_on,
            rejections=[(r.application_id, r.reason) for r in request.rejections],
            packs=self.registry,
            today=self._today(),
        )
        await self._send_to_settlement(persons)
        return enrollment_pb2.DecideCertificateBatchResponse(
            batch=batch_message(batch), replayed=replayed
        )

    async def ListCertificates(
        self,
        request: enrollment_pb2.ListCertificatesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.ListCertificatesResponse:
        require("internal")
        found = await read_in_thread(
            self.engine,
            certificates.list_certificates,
            person_id=request.person_id,
            packs=self.registry,
        )
        return enrollment_pb2.ListCertificatesResponse(
            certificates=[certificate_message(certificate) for certificate in found]
        )

    async def ListCertificateApplications(
        self,
        request: enrollment_pb2.ListCertificateApplicationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.ListCertificateApplicationsResponse:
        require("internal")
        if request.region not in self.regions:
            raise InvalidInput("region", f"unknown region {request.region!r}")
        state = (
            CERTIFICATE_APPLICATION_STATES.code(request.state, "state") if request.state else None
        )
        found, token = await read_in_thread(
            self.engine,
            certificates.list_applications,
            region=request.region,
            state=state,
            month=request.month,
            size=request.page_size,
            page_token=request.page_token,
        )
        return enrollment_pb2.ListCertificateApplicationsResponse(
            applications=[application_message(application) for application in found],
            next_page_token=token,
        )

    async def RecordRegistration(
        self,
        request: enrollment_pb2.RecordRegistrationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.RecordRegistrationResponse:
        require("internal")
        registration = registrations.NewRegistration(
            request_id=request.request_id,
            person_id=request.person_id,
            kind=REGISTRATION_KINDS.code(request.kind, "kind"),
            region=request.region,
            valid_from=to_date(request.valid_from, "valid_from"),
            valid_to=optional_date(request, "valid_to", "valid_to"),
        )
        stored = await write_in_thread(self.engine, registrations.record, registration=registration)
        # Also on a repeated request: a send that failed the first time goes now.
        await self._send_to_settlement([stored.person_id])
        return enrollment_pb2.RecordRegistrationResponse(registration=registration_message(stored))

    async def EndRegistration(
        self,
        request: enrollment_pb2.EndRegistrationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.EndRegistrationResponse:
        require("internal")
        stored = await write_in_thread(
            self.engine,
            registrations.end,
            registration_id=request.registration_id,
            valid_to=optional_date(request, "valid_to", "valid_to"),
            cancel=request.cancel,
        )
        await self._send_to_settlement([stored.person_id])
        return enrollment_pb2.EndRegistrationResponse(registration=registration_message(stored))

    async def ListRegistrations(
        self,
        request: enrollment_pb2.ListRegistrationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> enrollment_pb2.ListRegistrationsResponse:
        require("internal")
        found = await read_in_thread(
            self.engine, registrations.list_registrations, person_id=request.person_id
        )
        return enrollment_pb2.ListRegistrationsResponse(
            registrations=[registration_message(registration) for registration in found]
        )

    def _pack(self, region: str, year: int) -> Pack:
        """The region's policy pack in force at the start of ``year``."""
        check_year(year, "year")
        pack = self.registry.in_force(region, date(year, 1, 1))
        if pack is None:
            raise FailedPrecondition(f"no policy pack of {region} is in force in {year}")
        return pack


class Hub:
    """What enrollment reads from the datashare hub: a comparison and its gap."""

    def __init__(self, stub: datashare_pb2_grpc.DatashareServiceStub, settings: Settings) -> None:
        self._stub = stub
        self._metadata = internal_metadata(settings)
        self._timeout = settings.peer_timeout_seconds

    async def comparison(self, comparison_id: int) -> datashare_pb2.Comparison:
        answer: datashare_pb2.GetComparisonResponse = await self._call(
            self._stub.GetComparison,
            datashare_pb2.GetComparisonRequest(comparison_id=comparison_id),
        )
        return answer.comparison

    async def gap(self, comparison_id: int) -> AsyncIterator[list[subsidised.GapPerson]]:
        """The comparison's persons not insured, a page at a time."""
        token = ""
        while True:
            request = datashare_pb2.ListComparisonEntriesRequest(
                comparison_id=comparison_id, page_size=GAP_PAGE, page_token=token
            )
            setattr(request, "class", datashare_pb2.COMPARISON_CLASS_NOT_INSURED)  # a keyword
            page = await self._call(self._stub.ListComparisonEntries, request)
            yield [
                subsidised.GapPerson(
                    person_id=entry.person_id,
                    name=entry.roster_name,
                    household_id=entry.household_id,
                    statuses=tuple(STATUSES.code(s, "statuses") for s in entry.statuses),
                )
                for entry in page.entries
            ]
            token = page.next_page_token
            if not token:
                return

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(error.details() or "not found", field="comparison_id") from None
            raise FailedPrecondition(
                f"the datashare hub did not answer ({error.code().name}: {error.details()})"
            ) from None


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        registry = await asyncio.to_thread(PackRegistry.load)
        settlement = outbox.open_channel(stack, settings.settlement_address, settings)
        datashare = outbox.open_channel(stack, settings.datashare_address, settings)
        assistance = outbox.open_channel(stack, settings.assistance_address, settings)
        senders = (
            outbox.start(stack, coverage_sender(engine, settings, settlement)),
            outbox.start(stack, register_sender(engine, settings, datashare)),
            outbox.start(stack, household_sender(engine, settings, assistance)),
        )
        try:
            time_zone = ZoneInfo(settings.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SystemExit(f"DOUDI_TIME_ZONE {settings.time_zone!r}: not a time zone") from None
        servicer = EnrollmentServicer(
            engine,
            registry,
            senders,
            Hub(datashare_pb2_grpc.DatashareServiceStub(datashare), settings),
            time_zone,
        )

        def register(server: grpc.aio.Server) -> None:
            enrollment_pb2_grpc.add_EnrollmentServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    run_service(SPEC, Settings, setup)

"""Sending persons' coverage (name, household, region and enrolments) to the services that
keep a copy.

The settlement service settles on its copy, in the transaction that settles;
the datashare hub compares the agencies' rosters with its copy; the assistance
service adds a household's burdens together on its copy. Registering a person
or an enrolment queues the person in ``coverage_deliveries`` for all three;
the service sends before it answers, a batch per call, and retries what
fails: see :mod:`doudi.common.outbox`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
import sqlalchemy

from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common.db import read_in_thread
from doudi.common.outbox import (
    ASSISTANCE,
    DATASHARE,
    SETTLEMENT,
    Sender,
    Versions,
    internal_metadata,
)
from doudi.common.settings import SenderSettings
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.enrollment import service
from services.enrollment.messages import (
    assistance_enrolment_message,
    settlement_certificate_message,
    settlement_enrolment_message,
    settlement_registration_message,
)
from services.enrollment.service import PersonCoverage
from services.enrollment.tables import coverage_deliveries

log = logging.getLogger("doudi.enrollment.delivery")


def coverage_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, settlement: grpc.aio.Channel
) -> Sender:
    """To settlement: each person's region, enrolments, certificates and registrations."""
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement)
    metadata = internal_metadata(settings)

    async def record(persons: list[PersonCoverage]) -> list[int]:
        answer = await stub.RecordPersonCoverage(
            settlement_pb2.RecordPersonCoverageRequest(
                persons=[
                    settlement_pb2.PersonCoverage(
                        person_id=person.person_id,
                        version=person.version,
                        region=person.region,
                        enrolments=[settlement_enrolment_message(e) for e in person.enrolments],
                        certificates=[
                            settlement_certificate_message(c) for c in person.certificates
                        ],
                        registrations=[
                            settlement_registration_message(r) for r in person.registrations
                        ],
                    )
                    for person in persons
                ]
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        return list(answer.versions)

    return _sender(engine, settings, SETTLEMENT, record)


def register_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, datashare: grpc.aio.Channel
) -> Sender:
    """To the datashare hub: each person's name, region and enrolled years."""
    stub = datashare_pb2_grpc.DatashareServiceStub(datashare)
    metadata = internal_metadata(settings)

    async def record(persons: list[PersonCoverage]) -> list[int]:
        answer = await stub.RecordRegister(
            datashare_pb2.RecordRegisterRequest(
                persons=[
                    datashare_pb2.RegisteredPerson(
                        person_id=person.person_id,
                        version=person.version,
                        name=person.name,
                        region=person.region,
                        years=[enrolment.year for enrolment in person.enrolments],
                    )
                    for person in persons
                ]
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        return list(answer.versions)

    return _sender(engine, settings, DATASHARE, record)


def household_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, assistance: grpc.aio.Channel
) -> Sender:
    """To assistance: each person's name, household, region, enrolled years and enrolments
    (the reports count the subsidised ones)."""
    stub = assistance_pb2_grpc.AssistanceServiceStub(assistance)
    metadata = internal_metadata(settings)

    async def record(persons: list[PersonCoverage]) -> list[int]:
        answer = await stub.RecordPersons(
            assistance_pb2.RecordPersonsRequest(
                persons=[
                    assistance_pb2.InsuredPerson(
                        person_id=person.person_id,
                        version=person.version,
                        name=person.name,
                        household_id=person.household_id,
                        region=person.region,
                        years=[enrolment.year for enrolment in person.enrolments],
                        enrolments=[
                            assistance_enrolment_message(enrolment, enrolled_at)
                            for enrolment, enrolled_at in zip(
                                person.enrolments, person.enrolled_at, strict=True
                            )
                        ],
                    )
                    for person in persons
                ]
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        return list(answer.versions)

    return _sender(engine, settings, ASSISTANCE, record)


def _sender(
    engine: sqlalchemy.Engine,
    settings: SenderSettings,
    subscriber: str,
    record: Callable[[list[PersonCoverage]], Awaitable[list[int]]],
) -> Sender:
    async def send(person_ids: list[str]) -> Versions:
        persons = await read_in_thread(engine, service.coverage_to_deliver, person_ids=person_ids)
        if not persons:
            return []
        versions = await record(persons)
        return [(p.person_id, v) for p, v in zip(persons, versions, strict=True)]

    return Sender(
        "coverage",
        send,
        engine=engine,
        table=coverage_deliveries,
        subscriber=subscriber,
        retry_seconds=settings.delivery_retry_seconds,
        log=log,
    )

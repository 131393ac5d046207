"""Certifying expenditure_hardship through the hub when an application is approved
(docs/domain.md section 7): the status reaches settlement like any other.

The approval queues the person in ``assertion_deliveries`` (doudi.common.outbox) in its
transaction. Before the case worker is answered, and again every few seconds until the
hub takes it, the sender asserts each of the person's approved statuses with the
platform's token, naming civil affairs (the status's owner) as the agency it acts for;
each assertion's reference is its application's, so the hub records it once however
often it is sent.
"""

from __future__ import annotations

import logging

import grpc
import sqlalchemy

from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.outbox import DATASHARE, Sender, Versions, internal_metadata
from doudi.common.protos import from_date
from doudi.core.statuses import certifier
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.assistance import applications
from services.assistance.settings import Settings
from services.assistance.tables import assertion_deliveries

log = logging.getLogger("doudi.assistance.certifying")

ACTING_FOR = "doudi-acting-for"
"""The hub's call metadata naming the agency the platform asserts for."""


def certification_sender(
    engine: sqlalchemy.Engine, settings: Settings, datashare: grpc.aio.Channel
) -> Sender:
    stub = datashare_pb2_grpc.DatashareServiceStub(datashare)
    agency = certifier(applications.EXPENDITURE_HARDSHIP)
    metadata = (*internal_metadata(settings), (ACTING_FOR, agency))

    async def send(person_ids: list[str]) -> Versions:
        pending = await read_in_thread(engine, applications.certifications, person_ids=person_ids)
        recorded: list[tuple[int, int]] = []
        versions: dict[str, int] = {}
        for certification in pending:
            answer = await stub.AssertStatus(
                datashare_pb2.AssertStatusRequest(
                    person_id=certification.person_id,
                    household_id=certification.household_id,
                    status=datashare_pb2.STATUS_EXPENDITURE_HARDSHIP,
                    valid_from=from_date(certification.valid_from),
                    valid_to=from_date(certification.valid_to),
                    reference=certification.reference,
                ),
                metadata=metadata,
                timeout=settings.peer_timeout_seconds,
            )
            recorded.append((certification.application_id, answer.assertion.assertion_id))
            versions[certification.person_id] = certification.application_id
        if recorded:
            await write_in_thread(engine, applications.record_certified, recorded=recorded)
        return list(versions.items())

    return Sender(
        "expenditure_hardship statuses",
        send,
        engine=engine,
        table=assertion_deliveries,
        subscriber=DATASHARE,
        retry_seconds=settings.delivery_retry_seconds,
        log=log,
    )

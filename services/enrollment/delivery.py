"""Sending each person's region and enrolments to the settlement service.

The settlement service keeps a copy and reads it in the transaction that
settles. Registering a person or an enrolment queues the person in
``coverage_deliveries``; the service sends the person's coverage before it
answers, and retries what fails: see :mod:`doudi.common.outbox`.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import sqlalchemy

from doudi.common.outbox import Sender, internal_metadata
from doudi.common.settings import SenderSettings
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.enrollment import service
from services.enrollment.messages import enrolment_message

log = logging.getLogger("doudi.enrollment.delivery")


def coverage_sender(
    engine: sqlalchemy.Engine,
    settlement: grpc.aio.Channel,
    settings: SenderSettings,
) -> Sender:
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement)
    metadata = internal_metadata(settings)

    async def send(person_id: str) -> None:
        coverage = await asyncio.to_thread(service.coverage_to_deliver, engine, person_id=person_id)
        if coverage is None:
            return
        answer = await stub.RecordPersonCoverage(
            settlement_pb2.RecordPersonCoverageRequest(
                person_id=person_id,
                version=coverage.version,
                region=coverage.region,
                enrolments=[enrolment_message(enrolment) for enrolment in coverage.enrolments],
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        await asyncio.to_thread(
            service.delivered, engine, person_id=person_id, version=answer.version
        )

    def pending(limit: int) -> list[str]:
        return service.pending_deliveries(engine, limit=limit)

    return Sender("coverage", send, pending, retry_seconds=settings.delivery_retry_seconds, log=log)

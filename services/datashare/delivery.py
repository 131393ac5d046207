"""Sending each person's statuses to the settlement service (instant identity, 即时认定).

The settlement service keeps a copy of every person's statuses and reads it in
the transaction that settles. Recording an assertion or revocation queues the
person in ``status_deliveries``; the hub sends the person's periods (computed
from the whole history; the latest record's id is the version) before it
answers the agency, and retries what fails: see :mod:`doudi.common.outbox`.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import sqlalchemy

from doudi.common.outbox import Sender, internal_metadata
from doudi.common.settings import SenderSettings
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.datashare import service
from services.datashare.messages import period_message

log = logging.getLogger("doudi.datashare.delivery")


def status_sender(
    engine: sqlalchemy.Engine, settlement: grpc.aio.Channel, settings: SenderSettings
) -> Sender:
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement)
    metadata = internal_metadata(settings)
    timeout = settings.peer_timeout_seconds

    async def send(person_id: str) -> None:
        statuses = await asyncio.to_thread(service.statuses_to_deliver, engine, person_id=person_id)
        if statuses is None:
            return
        answer = await stub.RecordPersonStatuses(
            settlement_pb2.RecordPersonStatusesRequest(
                person_id=person_id,
                version=statuses.version,
                periods=[period_message(period) for period in statuses.periods],
            ),
            metadata=metadata,
            timeout=timeout,
        )
        await asyncio.to_thread(
            service.delivered, engine, person_id=person_id, version=answer.version
        )

    def pending(limit: int) -> list[str]:
        return service.pending_deliveries(engine, limit=limit)

    return Sender("statuses", send, pending, retry_seconds=settings.delivery_retry_seconds, log=log)

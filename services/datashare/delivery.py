"""Sending persons' statuses to the settlement service (instant identity, 即时认定).

The settlement service keeps a copy of every person's statuses and reads it in
the transaction that settles. Recording an assertion or a revocation queues the
person in ``status_deliveries``; a roster queues itself in ``roster_deliveries``,
standing for every person it changed. The hub sends their periods
(computed from the whole history; the latest record's id is the version)
before it answers the agency, a batch per call, and retries what fails: see
:mod:`doudi.common.outbox`.
"""

from __future__ import annotations

import logging

import grpc
import sqlalchemy

from doudi.common.db import read_in_thread
from doudi.common.outbox import SETTLEMENT, Sender, Sets, Versions, internal_metadata
from doudi.common.settings import SenderSettings
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.datashare import rosters, service
from services.datashare.messages import settlement_period_message
from services.datashare.tables import roster_deliveries, status_deliveries

log = logging.getLogger("doudi.datashare.delivery")


def status_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, settlement: grpc.aio.Channel
) -> Sender:
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement)
    metadata = internal_metadata(settings)

    async def send(person_ids: list[str]) -> Versions:
        persons = await read_in_thread(engine, service.statuses_to_deliver, person_ids=person_ids)
        if not persons:
            return []
        answer = await stub.RecordPersonStatuses(
            settlement_pb2.RecordPersonStatusesRequest(
                persons=[
                    settlement_pb2.PersonStatuses(
                        person_id=person.person_id,
                        version=person.version,
                        periods=[settlement_period_message(period) for period in person.periods],
                    )
                    for person in persons
                ]
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        return [
            (person.person_id, version)
            for person, version in zip(persons, answer.versions, strict=True)
        ]

    return Sender(
        "statuses",
        send,
        engine=engine,
        table=status_deliveries,
        sets=Sets(roster_deliveries, rosters.changed_persons),
        subscriber=SETTLEMENT,
        retry_seconds=settings.delivery_retry_seconds,
        log=log,
    )

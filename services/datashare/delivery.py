"""Sending persons' statuses to the services that keep a copy (instant identity, 即时认定).

The settlement service keeps a copy of every person's statuses and reads it in
the transaction that settles; the assistance service keeps one to know who held
which status in a year (docs/domain.md section 7). Recording an assertion or a
revocation queues the person in ``status_deliveries`` for both; a roster queues
itself in ``roster_deliveries``, standing for every person it changed. The hub
sends their periods (computed from the whole history; the latest record's id is
the version) before it answers the agency, a batch per call, to each subscriber
at once, and retries what fails: see :mod:`doudi.common.outbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc
import sqlalchemy

from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common import outbox
from doudi.common.db import read_in_thread
from doudi.common.outbox import ASSISTANCE, SETTLEMENT, Sender, Sets, Versions, internal_metadata
from doudi.common.settings import SenderSettings
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.datashare import rosters, service
from services.datashare.messages import assistance_period_message, settlement_period_message
from services.datashare.service import PersonStatuses
from services.datashare.tables import roster_deliveries, status_deliveries

log = logging.getLogger("doudi.datashare.delivery")


class Deliveries:
    """The senders of the persons' statuses, one per subscriber, used as one: each call
    goes to every subscriber at once."""

    def __init__(self, senders: Sequence[Sender]) -> None:
        self.senders = tuple(senders)

    async def send_now(self, person_ids: Sequence[str]) -> bool:
        """:meth:`Sender.send_now` to every subscriber; whether all were sent."""
        sent = await asyncio.gather(*(sender.send_now(person_ids) for sender in self.senders))
        return all(sent)

    async def send_set_start(self, set_id: int, persons: list[str], after: str | None) -> None:
        """:meth:`Sender.send_set_start` to every subscriber."""
        await asyncio.gather(
            *(sender.send_set_start(set_id, persons, after) for sender in self.senders)
        )

    def wake(self) -> None:
        for sender in self.senders:
            sender.wake()


def start_deliveries(
    stack: contextlib.AsyncExitStack,
    engine: sqlalchemy.Engine,
    settings: SenderSettings,
    assistance: grpc.aio.Channel,
) -> Deliveries:
    """Open the channel to settlement and run a sender to it and to assistance (on the
    service's one channel there) until the service stops."""
    settlement = outbox.open_channel(stack, settings.settlement_address, settings)
    return Deliveries(
        (
            outbox.start(stack, status_sender(engine, settings, settlement)),
            outbox.start(stack, assistance_status_sender(engine, settings, assistance)),
        )
    )


def status_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, settlement: grpc.aio.Channel
) -> Sender:
    """To settlement: each person's status periods."""
    stub = settlement_pb2_grpc.SettlementServiceStub(settlement)
    metadata = internal_metadata(settings)

    async def record(persons: list[PersonStatuses]) -> Sequence[int]:
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
        return answer.versions

    return _sender(engine, settings, SETTLEMENT, record)


def assistance_status_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, assistance: grpc.aio.Channel
) -> Sender:
    """To assistance: each person's status periods, with the agency that certified each."""
    stub = assistance_pb2_grpc.AssistanceServiceStub(assistance)
    metadata = internal_metadata(settings)

    async def record(persons: list[PersonStatuses]) -> Sequence[int]:
        answer = await stub.RecordPersonStatuses(
            assistance_pb2.RecordPersonStatusesRequest(
                persons=[
                    assistance_pb2.PersonStatuses(
                        person_id=person.person_id,
                        version=person.version,
                        periods=[assistance_period_message(period) for period in person.periods],
                    )
                    for person in persons
                ]
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        return answer.versions

    return _sender(engine, settings, ASSISTANCE, record)


def _sender(
    engine: sqlalchemy.Engine,
    settings: SenderSettings,
    subscriber: str,
    record: Callable[[list[PersonStatuses]], Awaitable[Sequence[int]]],
) -> Sender:
    async def send(person_ids: list[str]) -> Versions:
        persons = await read_in_thread(engine, service.statuses_to_deliver, person_ids=person_ids)
        if not persons:
            return []
        versions = await record(persons)
        return [
            (person.person_id, version) for person, version in zip(persons, versions, strict=True)
        ]

    return Sender(
        "statuses",
        send,
        engine=engine,
        table=status_deliveries,
        sets=Sets(roster_deliveries, rosters.changed_persons),
        subscriber=subscriber,
        retry_seconds=settings.delivery_retry_seconds,
        log=log,
    )

"""Sending each person's statuses to the settlement service (instant identity, 即时认定).

The settlement service keeps a copy of every person's statuses and reads it in
the transaction that settles, instead of asking the hub on every settlement.
The copy stays exact this way:

1. Recording an assertion or revocation also queues the person in the
   ``status_deliveries`` outbox, in the same transaction.
2. Before it answers the agency, the hub sends the person's statuses (every
   period, computed from the whole history, and the latest record's id as the
   version) to the settlement service, then removes the queued row. So a
   status asserted a moment ago applies to the next settlement.
3. If the settlement service cannot be reached, the agency is still answered
   (its record is safe) and a background loop sends whatever is queued every
   ``retry_seconds`` until it gets through. The settlement service keeps the
   highest version it was sent, so repeats and crossed sends change nothing.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
import sqlalchemy

from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.datashare import service
from services.datashare.messages import period_message

log = logging.getLogger("doudi.datashare.delivery")

BATCH = 500  # persons sent per round of the background loop


class StatusDelivery:
    def __init__(
        self,
        engine: sqlalchemy.Engine,
        settlement: grpc.aio.Channel,
        *,
        token: str,
        timeout: float,
        retry_seconds: float,
    ) -> None:
        self._engine = engine
        self._settlement = settlement_pb2_grpc.SettlementServiceStub(settlement)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._retry_seconds = retry_seconds

    async def deliver(self, person_id: str) -> None:
        """Send the person's statuses now; raises grpc.aio.AioRpcError if that fails (the
        person stays queued)."""
        statuses = await asyncio.to_thread(
            service.statuses_to_deliver, self._engine, person_id=person_id
        )
        if statuses is None:
            return
        answer = await self._settlement.RecordPersonStatuses(
            settlement_pb2.RecordPersonStatusesRequest(
                person_id=person_id,
                version=statuses.version,
                periods=[period_message(period) for period in statuses.periods],
            ),
            metadata=self._metadata,
            timeout=self._timeout,
        )
        await asyncio.to_thread(
            service.delivered, self._engine, person_id=person_id, version=answer.version
        )

    async def deliver_now(self, person_id: str) -> bool:
        """Send the person's statuses before the agency is answered; on failure log it and
        leave the person queued for :meth:`run` (the record itself is safe)."""
        try:
            await self.deliver(person_id)
        except grpc.aio.AioRpcError as error:
            log.warning(
                "statuses of person %s not yet sent to the settlement service (%s: %s); "
                "retrying every %g s",
                person_id,  # masked by the log formatter
                error.code().name,
                error.details(),
                self._retry_seconds,
            )
            return False
        return True

    async def send_queued(self) -> int:
        """One round: send every queued person (up to a batch); answers how many went.
        Stops at the first failure: the settlement service is likely down."""
        queued = await asyncio.to_thread(service.pending_deliveries, self._engine, limit=BATCH)
        sent = 0
        for person_id in queued:
            await self.deliver(person_id)
            sent += 1
        return sent

    async def run(self) -> None:
        """Send what is queued (left by a failed send, or by a migration) until cancelled."""
        failing = False
        while True:
            try:
                sent = await self.send_queued()
                if failing:
                    log.info("statuses reach the settlement service again")
                    failing = False
                if sent == BATCH:
                    continue  # more are waiting
            except grpc.aio.AioRpcError as error:
                if not failing:
                    log.warning(
                        "cannot send statuses to the settlement service (%s: %s); retrying "
                        "every %g s",
                        error.code().name,
                        error.details(),
                        self._retry_seconds,
                    )
                failing = True
            except sqlalchemy.exc.DBAPIError as error:
                log.warning("cannot read the queued status deliveries: %s", error)
            await asyncio.sleep(self._retry_seconds)

"""Settlement to assistance: every settlement and every reversal, as an event, never lost,
applied once (issue 18, item 1).

1. A settlement (a reversal) writes one row in ``event_outbox`` in its own transaction
   (service.py): the row's id, never reused, is the event's id. A settlement that
   committed therefore has its event queued, whatever happens to the process next.
2. After the commit the servicer wakes :class:`EventSender`; nothing is sent on the
   hospital's request path. In the background the sender takes the queued events in
   id order, up to :data:`MAX_EVENTS`, reads the settlements they name, sends them in
   one ``RecordSettlementEvents`` call and deletes the rows assistance acknowledged;
   then it looks again, until nothing is queued. Under load the events that commit
   while one call is on its way go together in the next: a settlement costs the
   service a share of a call, not a call.
3. When assistance cannot be reached the rows stay queued and the sender tries again
   every ``delivery_retry_seconds`` (at once after the next settlement's wake-up).
   An event assistance refuses (INVALID_ARGUMENT: a bug on one side) is logged as an
   error and stays queued too, the others going on: it is never dropped.
   Assistance records each event once (by its id, and by settlement and kind), so an
   event sent twice (its acknowledgement lost, or sent by two processes) changes
   nothing there.

Several settlement processes share one database (``doudi run --settlement-processes N``,
replicas): on PostgreSQL one of them sends at a time (a transaction-scoped advisory
lock held for the round), so the events go out in order and once; the others see the
lock taken and look again shortly after. On SQLite they do not coordinate: a batch may go
twice, which changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import grpc
import sqlalchemy
from sqlalchemy import delete, func, select

from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common import metrics
from doudi.common.db import write_transaction
from doudi.common.enums import ASSISTANCE_STATUSES, ASSISTANCE_VISIT_TYPES, SETTLEMENT_EVENT_KINDS
from doudi.common.outbox import ASSISTANCE, Loop, deliver_each_accepted, internal_metadata
from doudi.common.protos import from_date
from doudi.common.settings import PeerSettings
from services.settlement.tables import event_outbox, settlements

log = logging.getLogger("doudi.settlement.delivery")

MAX_EVENTS = 5000
"""The most events one call to assistance carries: the most it takes (assistance.proto's
``RecordSettlementEvents``). A backlog goes in calls this big, each one transaction
there (the bigger, the cheaper an event: docs/performance.md)."""
BUSY_PAUSE_SECONDS = 0.25
"""How long a process waits when another one is sending before it looks again (the one
sending looks again itself until nothing is queued, so this bounds only a rare race)."""
GATHER_SECONDS = 0.25
"""The shortest round after one that carried fewer than :data:`MAX_EVENTS`: a round
quicker than this waits the rest before the next, so that a call carries what settled
meanwhile rather than a settlement or two, for up to a quarter of a second of lag. At
0.05 s, calls of a few dozen events cost assistance and its database about half again as
much CPU per settlement (docs/performance.md, issue 20); at 0.5 s no less than at 0.25. A
longer round (a busy machine, a larger call) gathered enough while it ran: waiting more
would add to every event's lag and to the next call's size, which lengthens the next
round in turn."""
# The key of the PostgreSQL advisory lock the settlement processes send under (any
# constant the service's database uses for nothing else).
_SENDING_LOCK = 0x5E771E_0E
_QUEUED = (
    select(
        event_outbox.c.event_id,
        event_outbox.c.kind,
        settlements.c.settlement_id,
        settlements.c.person_id,
        settlements.c.region,
        settlements.c.visit_type,
        settlements.c.visit["admitted"].as_string().label("admitted"),
        settlements.c.settles_on,
        settlements.c.total_fen,
        settlements.c.in_scope_fen,
        settlements.c.class_c_fen,
        settlements.c.over_limit_fen,
        settlements.c.pre_self_pay_fen,
        settlements.c.layers,
        settlements.c.self_pay_fen,
        settlements.c.statuses,
        settlements.c.policy,
    )
    .join(settlements, settlements.c.settlement_id == event_outbox.c.settlement_id)
    .order_by(event_outbox.c.event_id)
    .limit(MAX_EVENTS)
)
_TAKE_LOCK = select(func.pg_try_advisory_xact_lock(_SENDING_LOCK))


def event_message(row: Any) -> assistance_pb2.SettlementEvent:
    """A queued event as assistance receives it: the settlement's own figures, for a
    reversal too (it takes them away), dated by the visit's discharge (or visit) date."""
    message = assistance_pb2.SettlementEvent(
        event_id=row.event_id,
        kind=SETTLEMENT_EVENT_KINDS.value(row.kind),
        settlement_id=row.settlement_id,
        person_id=row.person_id,
        region=row.region,
        visit_type=ASSISTANCE_VISIT_TYPES.value(row.visit_type),
        settled_on=from_date(row.settles_on),
        total_fen=row.total_fen,
        in_scope_fen=row.in_scope_fen,
        out_of_scope_fen=row.class_c_fen + row.over_limit_fen + row.pre_self_pay_fen,
        payments=[
            assistance_pb2.FundPayment(layer=layer, fund=fund, paid_fen=int(paid))
            for layer, fund, paid in row.layers
            if paid
        ],
        self_pay_fen=row.self_pay_fen,
        statuses=[ASSISTANCE_STATUSES.value(code) for code in row.statuses],
        policy=row.policy,
    )
    if row.admitted is not None:
        message.admitted.CopyFrom(from_date(date.fromisoformat(row.admitted)))
    return message


class _Round:
    """One round's hold on the outbox: the queued events read, and on PostgreSQL the
    transaction that holds the sending lock until the delivered rows are deleted."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self._engine = engine
        self._connection: sqlalchemy.Connection | None = None
        self.events: list[assistance_pb2.SettlementEvent] = []

    def take(self) -> bool:
        """Read the first queued events; False when another process is sending."""
        if self._engine.dialect.name != "postgresql":
            with self._engine.connect() as connection:
                self.events = [event_message(row) for row in connection.execute(_QUEUED)]
            return True
        connection = self._connection = self._engine.connect()
        connection.begin()
        if not connection.execute(_TAKE_LOCK).scalar_one():
            return False
        self.events = [event_message(row) for row in connection.execute(_QUEUED)]
        return True

    def finish(self, delivered: Sequence[int]) -> None:
        """Delete the delivered events' rows and let go of the outbox."""
        try:
            if not delivered:
                return
            forget = delete(event_outbox).where(event_outbox.c.event_id.in_(delivered))
            if self._connection is None:
                with write_transaction(self._engine) as connection:
                    connection.execute(forget)
            else:
                self._connection.execute(forget)
                self._connection.commit()
        finally:
            self.close()

    @property
    def holding(self) -> bool:
        """Whether a transaction is still open (PostgreSQL, until :meth:`finish`)."""
        return self._connection is not None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()  # rolls back what was not committed
            self._connection = None


class EventSender(Loop):
    """Sends the queued settlement events to the assistance service (see the module)."""

    def __init__(
        self,
        engine: sqlalchemy.Engine,
        settings: PeerSettings,
        assistance: grpc.aio.Channel,
    ) -> None:
        super().__init__(
            "settlement events",
            subscriber=ASSISTANCE,
            retry_seconds=settings.delivery_retry_seconds,
            log=log,
        )
        self._engine = engine
        self._stub = assistance_pb2_grpc.AssistanceServiceStub(assistance)
        self._metadata = internal_metadata(settings)
        self._timeout = settings.peer_timeout_seconds

    def backlogs(self) -> list[tuple[str, metrics.Backlog]]:
        return [(event_outbox.name, metrics.table_backlog(self._engine, event_outbox, None))]

    async def send_queued(self) -> bool:
        """One round: the first queued events sent and forgotten; answers whether any were
        delivered (then the loop looks again at once)."""
        started = time.monotonic()
        hold = _Round(self._engine)
        try:
            if not await asyncio.to_thread(hold.take):
                await asyncio.sleep(BUSY_PAUSE_SECONDS)
                return True
            done: list[int] = []

            async def record(events: list[assistance_pb2.SettlementEvent]) -> None:
                await self._stub.RecordSettlementEvents(
                    assistance_pb2.RecordSettlementEventsRequest(events=events),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
                done.extend(event.event_id for event in events)

            kept: list[int] = []

            def refused(event: assistance_pb2.SettlementEvent, error: grpc.aio.AioRpcError) -> None:
                self._log.error(
                    "the assistance service refused event %d (%s settlement %s): %s: %s; "
                    "it stays queued and is sent again every %g s",
                    event.event_id,
                    SETTLEMENT_EVENT_KINDS.code(event.kind, "kind"),
                    event.settlement_id,
                    error.code().name,
                    error.details(),
                    self._retry_seconds,
                )
                kept.append(event.event_id)

            if hold.events:
                await deliver_each_accepted(record, hold.events, refused)
            await asyncio.to_thread(hold.finish, done)
            if kept or not done:
                return False  # after a refusal, the next retry rather than at once
            if len(hold.events) < MAX_EVENTS:
                await asyncio.sleep(GATHER_SECONDS - (time.monotonic() - started))
            return True
        finally:
            # Only a round that ended early has a transaction left: the others do not wait
            # for a database thread's turn (up to a tenth of a second under load) for nothing.
            if hold.holding:
                await asyncio.to_thread(hold.close)

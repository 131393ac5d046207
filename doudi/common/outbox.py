"""Keeping another service's copy of what a service owns exact: send now, retry what fails.

The settlement service settles on its own database alone. What it needs of a
person that other services own (enrollment: the person's region and
enrolments; datashare: the statuses the agencies certified) is sent to it,
person by person, by the owner:

1. The owner's write also queues the person in its outbox table, in the same
   transaction, with a version that only grows.
2. Before it answers its caller, the owner sends the person's current state
   (:meth:`Sender.send_now`), and on success removes the queued row. So a
   change answered a moment ago applies to the next settlement.
3. If the send fails, the caller is still answered (the owner's record is
   safe) and :meth:`Sender.run` sends whatever is queued every
   ``retry_seconds`` until it gets through. The receiver keeps the highest
   version it was sent, so repeats and crossed sends change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import grpc
import sqlalchemy
from sqlalchemy import BigInteger, Column, DateTime, PrimaryKeyConstraint, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from doudi.common import grpc_client
from doudi.common.db import read_connection, write_transaction
from doudi.common.settings import SenderSettings

BATCH = 500  # persons sent per round of the background loop
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
SETTLEMENT = "settlement"  # the subscriber: the service that keeps the copies


# --- the outbox table -------------------------------------------------------------------


def outbox_table(metadata: sqlalchemy.MetaData, name: str) -> sqlalchemy.Table:
    """A table of persons whose state a subscriber has not received yet; ``version`` is
    the state it must reach. Each owner's migrations create its own."""
    return sqlalchemy.Table(
        name,
        metadata,
        Column("subscriber", String(32), nullable=False),
        Column("person_id", String(18), nullable=False),
        Column("version", BigInteger, nullable=False),
        Column("queued_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("subscriber", "person_id", name=f"pk_{name}"),
    )


def newer_version_upsert(table: sqlalchemy.Table, key: list[str], dialect: Any) -> Any:
    """INSERT, or UPDATE every other column when the row's ``version`` is lower: a change
    that commits or arrives late never overwrites a later one."""
    insert = dialect.insert(table)
    return insert.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={
            column.name: insert.excluded[column.name]
            for column in table.columns
            if column.name not in key
        },
        where=table.c.version < insert.excluded.version,
    )


_QUEUES: dict[tuple[str, str], Any] = {}


def queue(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    person_id: str,
    version: int,
    now: datetime,
) -> None:
    """Queue the person for the settlement service, in the caller's transaction."""
    queue_many(connection, table, [(person_id, version)], now)


def queue_many(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    versions: Iterable[tuple[str, int]],
    now: datetime,
) -> None:
    """Queue each (person, version) for the settlement service, in the caller's transaction."""
    dialect = connection.dialect.name
    statement = _QUEUES.get((table.name, dialect))
    if statement is None:
        module = postgresql if dialect == "postgresql" else sqlite
        statement = _QUEUES[(table.name, dialect)] = newer_version_upsert(
            table, ["subscriber", "person_id"], module
        )
    parameters = [
        {"subscriber": SETTLEMENT, "person_id": person_id, "version": version, "queued_at": now}
        for person_id, version in versions
    ]
    if parameters:
        connection.execute(statement, parameters)


def pending(engine: sqlalchemy.Engine, table: sqlalchemy.Table, limit: int) -> list[str]:
    """Persons the settlement service has not received yet, oldest first."""
    with read_connection(engine) as connection:
        return list(
            connection.execute(
                select(table.c.person_id)
                .where(table.c.subscriber == SETTLEMENT)
                .order_by(table.c.queued_at)
                .limit(limit)
            ).scalars()
        )


def delivered(
    engine: sqlalchemy.Engine, table: sqlalchemy.Table, person_id: str, version: int
) -> None:
    """The settlement service holds the person's state up to ``version``: forget the queued
    row, unless a later change was queued meanwhile."""
    with write_transaction(engine) as connection:
        connection.execute(
            delete(table).where(
                table.c.subscriber == SETTLEMENT,
                table.c.person_id == person_id,
                table.c.version <= version,
            )
        )


# --- sending ----------------------------------------------------------------------------


def internal_metadata(settings: SenderSettings) -> tuple[tuple[str, str], ...]:
    """The call metadata that authenticates a send as the platform."""
    return (("authorization", f"Bearer {settings.internal_token.get_secret_value()}"),)


class Sender:
    """Sends one kind of per-person state (``what``) to the settlement service.

    ``send(person_id)`` reads the person's state, sends it and removes the
    queued row; ``pending(limit)`` answers the queued persons, oldest first.
    """

    def __init__(
        self,
        what: str,
        send: Callable[[str], Awaitable[None]],
        pending: Callable[[int], list[str]],
        *,
        retry_seconds: float,
        log: logging.Logger,
    ) -> None:
        self.what = what
        self._send = send
        self._pending = pending
        self._retry_seconds = retry_seconds
        self._log = log

    async def send_now(self, person_id: str) -> None:
        """Send before the caller is answered; on failure log it and leave the person
        queued for :meth:`run`."""
        try:
            await self._send(person_id)
        except grpc.aio.AioRpcError as error:
            self._log.warning(
                "%s of person %s not yet sent to the settlement service (%s: %s); "
                "retrying every %g s",
                self.what,
                person_id,  # masked by the log formatter
                error.code().name,
                error.details(),
                self._retry_seconds,
            )

    async def send_queued(self) -> int:
        """One round: send the queued persons (up to a batch) and answer how many went.
        Stops at the first UNAVAILABLE: the settlement service is likely down. A
        person it refuses stays queued, with an error in the log, and the rest go on."""
        queued = await asyncio.to_thread(self._pending, BATCH)
        sent = 0
        for person_id in queued:
            try:
                await self._send(person_id)
                sent += 1
            except grpc.aio.AioRpcError as error:
                if error.code() in _UNREACHABLE:
                    raise
                self._log.error(
                    "the settlement service refused the %s of person %s (%s: %s)",
                    self.what,
                    person_id,  # masked by the log formatter
                    error.code().name,
                    error.details(),
                )
        return sent

    async def run(self) -> None:
        """Send what is queued (left by a failed send, or by a migration) until cancelled."""
        failing = False
        while True:
            try:
                sent = await self.send_queued()
                if failing:
                    self._log.info("%s reach the settlement service again", self.what)
                    failing = False
                if sent == BATCH:
                    continue  # more may be waiting
            except grpc.aio.AioRpcError as error:
                if not failing:
                    self._log.warning(
                        "cannot send %s to the settlement service (%s: %s); retrying every %g s",
                        self.what,
                        error.code().name,
                        error.details(),
                        self._retry_seconds,
                    )
                failing = True
            except sqlalchemy.exc.DBAPIError as error:
                self._log.warning("cannot read the queued %s: %s", self.what, error)
            await asyncio.sleep(self._retry_seconds)


def start(
    stack: contextlib.AsyncExitStack,
    settings: SenderSettings,
    make: Callable[[grpc.aio.Channel, SenderSettings], Sender],
) -> Sender:
    """Open the channel to the settlement service, make the service's sender with it, and
    run the sender's retry loop until the service stops."""
    channel = grpc_client.channel(settings.settlement_address)
    stack.push_async_callback(channel.close)
    sender = make(channel, settings)
    loop = asyncio.create_task(sender.run(), name=f"sending {sender.what}")
    stack.callback(loop.cancel)
    return sender

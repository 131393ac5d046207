"""Keeping another service's copy of what a service owns exact: send now, retry what fails.

A service answers from its own database alone. What it needs of a person that
other services own is sent to it, in batches of persons, by the owner:

* enrollment sends each person's region and enrolments to settlement (which
  settles on them) and to datashare (which compares the agencies' rosters with
  them);
* datashare sends each person's statuses, as the agencies certified them, to
  settlement.

1. The owner's write also queues the person in its outbox table, for each
   subscriber, in the same transaction, with a version that only grows.
2. Before it answers its caller, the owner sends the persons' current state
   (:meth:`Sender.send_now`), and on success removes the queued rows. So a
   change answered a moment ago applies to the next settlement.
3. If the send fails, the caller is still answered (the owner's record is
   safe) and :meth:`Sender.run` sends whatever is queued, a batch at a time,
   every ``retry_seconds`` (at once after :meth:`Sender.wake`) until it gets
   through. The receiver keeps the highest version it was sent, so repeats and
   crossed sends change nothing.

A change of many persons at once (a roster of a million) queues one row naming
the set instead of a row per person (:func:`queue_set`): the owner says which
persons a set holds (:class:`Sets`), and the sender walks each set a batch at a
time, remembering how far it got. The
background loop takes turns between the persons queued one by one and the sets,
so that a large roster does not hold back a single change behind it.

Settlement sends each settlement and reversal to assistance the same way, but as events
rather than per-person state (services/settlement/delivery.py): its own loop
(:class:`Loop`, the retry and wake-up of :meth:`Sender.run`) takes them from an outbox
of events in the order they were queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import grpc
import sqlalchemy
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    PrimaryKeyConstraint,
    String,
    delete,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from doudi.common import grpc_client, metrics, request_ids
from doudi.common.db import read_connection, write_transaction
from doudi.common.protos import EnumCodes, optional_date, to_date
from doudi.common.settings import ProcessSettings
from doudi.common.tls import TlsSettings
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.statuses import EffectivePeriod

BATCH = 500  # persons per send: one call to the subscriber
MAX_BATCH = 1000  # the most persons a subscriber takes in one call
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

# The subscribers: the services that keep copies.
SETTLEMENT = "settlement"
DATASHARE = "datashare"
ASSISTANCE = "assistance"

Versions = list[tuple[str, int]]
"""(person, version) pairs: what a subscriber now holds of each person sent."""


# --- the outbox table -------------------------------------------------------------------


def outbox_table(
    metadata: sqlalchemy.MetaData, name: str, key: str = "person_id", key_length: int = 18
) -> sqlalchemy.Table:
    """A table of persons whose state a subscriber has not received yet; ``version`` is
    the state it must reach. Each owner's migrations create its own. Another kind of
    record than a person (a warning) is queued the same way under its own ``key``, a
    string (the functions below read the table's key, whatever its name)."""
    return sqlalchemy.Table(
        name,
        metadata,
        Column("subscriber", String(32), nullable=False),
        Column(key, String(key_length), nullable=False),
        Column("version", BigInteger, nullable=False),
        Column("queued_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("subscriber", key, name=f"pk_{name}"),
    )


def _key(table: sqlalchemy.Table) -> sqlalchemy.Column[Any]:
    """An outbox table's key column after ``subscriber``: ``person_id``, or another."""
    return list(table.primary_key.columns)[1]


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


T = TypeVar("T")


def received_batch(persons: Sequence[T]) -> Iterator[tuple[str, T]]:
    """The subscriber's side: the persons of a batch an owner sent, each with its field
    path (``persons[3]``); InvalidInput for an empty or too large batch."""
    if not persons:
        raise InvalidInput("persons", "required: at least one person")
    if len(persons) > MAX_BATCH:
        raise InvalidInput("persons", f"at most {MAX_BATCH} persons per call")
    for index, person in enumerate(persons):
        yield f"persons[{index}]", person


def received_person(person_id: str, version: int, where: str) -> str:
    """A sent person's validated identity number; InvalidInput unless its version is set."""
    number = read_resident_id(person_id, f"{where}.person_id").number
    if version < 1:
        raise InvalidInput(f"{where}.version", "required: the sender's version of the person")
    return number


def received_period(
    period: Any, where: str, statuses: EnumCodes, agencies: EnumCodes
) -> EffectivePeriod:
    """The subscriber's side: a status period the hub sent (in the subscriber's own
    ``StatusPeriod``, with the hub's numbers), checked; InvalidInput names the field."""
    valid_from = to_date(period.valid_from, f"{where}.valid_from")
    valid_to = optional_date(period, "valid_to", f"{where}.valid_to")
    if valid_to is not None and valid_to < valid_from:
        raise InvalidInput(f"{where}.valid_to", "is before valid_from")
    return EffectivePeriod(
        status=statuses.code(period.status, f"{where}.status"),
        valid_from=valid_from,
        valid_to=valid_to,
        agency=agencies.code(period.agency, f"{where}.agency"),
    )


def stored_periods(periods: Iterable[EffectivePeriod]) -> list[list[str | None]]:
    """Status periods as a subscriber stores them: ``[[status, valid_from, valid_to or
    None, agency], ...]`` in ISO dates."""
    return [
        [
            period.status,
            period.valid_from.isoformat(),
            None if period.valid_to is None else period.valid_to.isoformat(),
            period.agency,
        ]
        for period in periods
    ]


_STORE_NEWER: dict[tuple[str, str], Any] = {}


def store_newer(
    connection: sqlalchemy.Connection, table: sqlalchemy.Table, rows: list[dict[str, Any]]
) -> list[int]:
    """The subscriber's side: store each person's row (keyed by ``person_id``) unless a
    later version is stored already (an owner may resend, and two sends may cross); answer
    the version now stored of each, in order."""
    key = (table.name, connection.dialect.name)
    statement = _STORE_NEWER.get(key)
    if statement is None:
        statement = _STORE_NEWER[key] = newer_version_upsert(
            table, ["person_id"], dialect_module(connection)
        )
    connection.execute(statement, rows)
    # Not dict(result): a CursorResult has keys(), which dict() would take for a mapping's.
    stored = {
        row.person_id: row.version
        for row in connection.execute(
            select(table.c.person_id, table.c.version).where(
                table.c.person_id.in_({row["person_id"] for row in rows})
            )
        )
    }
    return [int(stored[row["person_id"]]) for row in rows]


def dialect_module(connection: sqlalchemy.Connection) -> Any:
    """The SQLAlchemy dialect module with ``insert ... on conflict`` for the connection."""
    return postgresql if connection.dialect.name == "postgresql" else sqlite


_QUEUES: dict[tuple[str, str], Any] = {}


def queue_many(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    versions: Iterable[tuple[str, int]],
    now: datetime,
    subscribers: Collection[str],
) -> None:
    """Queue each (person, version) for each subscriber, in the caller's transaction."""
    dialect = connection.dialect.name
    key = _key(table).name
    statement = _QUEUES.get((table.name, dialect))
    if statement is None:
        statement = _QUEUES[(table.name, dialect)] = newer_version_upsert(
            table, ["subscriber", key], dialect_module(connection)
        )
    parameters = [
        {"subscriber": subscriber, key: person_id, "version": version, "queued_at": now}
        for person_id, version in versions
        for subscriber in subscribers
    ]
    if parameters:
        connection.execute(statement, parameters)


def outbox_sets_table(metadata: sqlalchemy.MetaData, name: str) -> sqlalchemy.Table:
    """A table of sets of persons a subscriber has not received yet (see :class:`Sets`):
    ``after`` is how far the walk of the set got, a position the owner's
    :data:`SetPersons` gives ("" before the first batch)."""
    return sqlalchemy.Table(
        name,
        metadata,
        Column("subscriber", String(32), nullable=False),
        Column("set_id", BigInteger, nullable=False),
        Column("after", String(32), nullable=False),
        Column("queued_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("subscriber", "set_id", name=f"pk_{name}"),
    )


def queue_set(
    connection: sqlalchemy.Connection,
    table: sqlalchemy.Table,
    set_id: int,
    now: datetime,
    subscribers: Collection[str],
) -> None:
    """Queue every person of a set for each subscriber, in the caller's transaction."""
    connection.execute(
        sqlalchemy.insert(table),
        [
            {"subscriber": subscriber, "set_id": set_id, "after": "", "queued_at": now}
            for subscriber in subscribers
        ],
    )


SetPersons = Callable[[sqlalchemy.Connection, int, str, int], tuple[list[str], str | None]]
"""``(connection, set_id, after, limit)``: the set's next persons from position ``after``
("": its start), a batch of about ``limit``, and the position after them (None: the set
ends with them). A person may come in two batches: the receiver keeps the newest."""


@dataclass(frozen=True, slots=True)
class Sets:
    """The owner's sets of persons: the table queuing them, and who is in each."""

    table: sqlalchemy.Table
    persons: SetPersons


def next_of_sets(
    engine: sqlalchemy.Engine, sets: Sets, subscriber: str, limit: int
) -> tuple[int, list[str], str | None] | None:
    """The first queued set with persons left to send, its next persons and the position
    after them; None when no set is queued (a set found walked to its end is forgotten on
    the way)."""
    table = sets.table
    while True:
        with read_connection(engine) as connection:
            queued = connection.execute(
                select(table.c.set_id, table.c.after)
                .where(table.c.subscriber == subscriber)
                .order_by(table.c.set_id)
                .limit(1)
            ).one_or_none()
            if queued is None:
                return None
            persons, position = sets.persons(connection, queued.set_id, queued.after, limit)
        if persons:
            return int(queued.set_id), persons, position
        set_walked(engine, table, subscriber, queued.set_id, None)


def set_walked(
    engine: sqlalchemy.Engine,
    table: sqlalchemy.Table,
    subscriber: str,
    set_id: int,
    after: str | None,
    *,
    walked_from: str | None = None,
) -> None:
    """The set's persons up to position ``after`` reached the subscriber (None: all of
    them); with ``walked_from``, only if the walk still stands there (a walk taken further
    meanwhile is left as it is)."""
    where = (table.c.subscriber == subscriber) & (table.c.set_id == set_id)
    if walked_from is not None:
        where &= table.c.after == walked_from
    with write_transaction(engine) as connection:
        if after is None:
            connection.execute(delete(table).where(where))
        else:
            connection.execute(sqlalchemy.update(table).where(where).values(after=after))


def pending(
    engine: sqlalchemy.Engine,
    table: sqlalchemy.Table,
    subscriber: str,
    *,
    after: str,
    limit: int,
) -> list[str]:
    """Persons the subscriber has not received yet, in identity-number order from ``after``
    (the primary key's order: a full outbox is walked, never sorted)."""
    key = _key(table)
    with read_connection(engine) as connection:
        return list(
            connection.execute(
                select(key)
                .where(table.c.subscriber == subscriber, key > after)
                .order_by(key)
                .limit(limit)
            ).scalars()
        )


def delivered(
    engine: sqlalchemy.Engine, table: sqlalchemy.Table, subscriber: str, versions: Versions
) -> None:
    """The subscriber holds each person's state up to its version: forget the queued rows,
    unless a later change was queued meanwhile. One read finds the batch's queued rows
    (often none: the persons of a set were never queued one by one); one statement
    deletes those, each at the version read, so that a change queued since stays."""
    if not versions:
        return
    stored = dict(versions)
    key = _key(table)
    with read_connection(engine) as connection:
        queued = connection.execute(
            select(key, table.c.version).where(table.c.subscriber == subscriber, key.in_(stored))
        ).all()
    done = [(person_id, version) for person_id, version in queued if version <= stored[person_id]]
    if not done:
        return
    with write_transaction(engine) as connection:
        connection.execute(
            delete(table).where(
                table.c.subscriber == subscriber,
                # The persons alone first: SQLite finds rows by a key's columns, not by
                # (person, version) pairs (which read the whole outbox at every batch).
                key.in_([person_id for person_id, _ in done]),
                sqlalchemy.tuple_(key, table.c.version).in_(done),
            )
        )


# --- sending ----------------------------------------------------------------------------


def internal_metadata(settings: ProcessSettings) -> tuple[tuple[str, str], ...]:
    """The call metadata that authenticates a send as the platform."""
    return (("authorization", f"Bearer {settings.internal_token.get_secret_value()}"),)


Send = Callable[[list[str]], Awaitable[Versions]]
"""Reads the persons' state, sends it in one call and answers what the subscriber holds."""


class Loop:
    """A background loop that sends what an owner has queued for one subscriber (``what``,
    to ``subscriber``), a round (:meth:`send_queued`) at a time: at once after
    :meth:`wake`, every ``retry_seconds`` otherwise, and again straight away while a
    round says more is waiting."""

    def __init__(
        self, what: str, *, subscriber: str, retry_seconds: float, log: logging.Logger
    ) -> None:
        self.what = what
        self.subscriber = subscriber
        self._retry_seconds = retry_seconds
        self._log = log
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Have the background loop send what is queued now, not after its pause."""
        self._wake.set()

    async def send_queued(self) -> bool:
        """One round; answer whether more may be waiting. Raises at UNAVAILABLE: the
        subscriber is likely down."""
        raise NotImplementedError

    def backlogs(self) -> list[tuple[str, metrics.Backlog]]:
        """Each outbox table the loop sends from, by name, with how to read its backlog for
        the subscriber (reported at each scrape of the metrics: :func:`start`)."""
        return []

    async def run(self) -> None:
        """Send what is queued (left by a failed send, by a large change such as a roster,
        or by a migration) until cancelled."""
        failing = False
        while True:
            # Cleared before the round, not after it: a change queued while the round is on
            # its way wakes the next one at once instead of after the pause.
            self._wake.clear()
            # No request is served here: each round's calls and log lines carry an id of
            # their own (and, when the process traces, each call starts a trace).
            request_ids.bind(request_ids.new())
            try:
                more = await self.send_queued()
                if failing:
                    self._log.info("%s reach the %s service again", self.what, self.subscriber)
                    failing = False
                if more:
                    continue
            except grpc.aio.AioRpcError as error:
                if not failing:
                    self._log.warning(
                        "cannot send %s to the %s service (%s: %s); retrying every %g s",
                        self.what,
                        self.subscriber,
                        error.code().name,
                        error.details(),
                        self._retry_seconds,
                    )
                failing = True
            except sqlalchemy.exc.DBAPIError as error:
                self._log.warning("cannot read the queued %s: %s", self.what, error)
            except Exception:
                # A bug must not end the loop for good: what stays queued is tried again.
                self._log.exception("sending %s to the %s failed", self.what, self.subscriber)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._retry_seconds)


async def deliver_each_accepted(
    deliver: Callable[[list[T]], Awaitable[None]],
    items: list[T],
    refused: Callable[[T, grpc.aio.AioRpcError], None],
) -> None:
    """Deliver the batch; if the subscriber refuses it, one by one to find what it refuses
    (``refused`` is told of each), the rest delivered. Raises at UNAVAILABLE."""
    try:
        await deliver(items)
        return
    except grpc.aio.AioRpcError as error:
        if error.code() in _UNREACHABLE or len(items) == 1:
            raise
    for item in items:
        try:
            await deliver([item])
        except grpc.aio.AioRpcError as error:
            if error.code() in _UNREACHABLE:
                raise
            refused(item, error)


class Sender(Loop):
    """Sends one kind of per-person state (``what``) from the owner's outbox ``table``
    (and its ``sets``, if it queues any) to one subscriber, ``send`` doing one call for a
    batch of persons."""

    def __init__(
        self,
        what: str,
        send: Send,
        *,
        engine: sqlalchemy.Engine,
        table: sqlalchemy.Table,
        subscriber: str,
        retry_seconds: float,
        log: logging.Logger,
        sets: Sets | None = None,
    ) -> None:
        super().__init__(what, subscriber=subscriber, retry_seconds=retry_seconds, log=log)
        self._send = send
        self._engine = engine
        self._table = table
        self._sets = sets
        self._after = ""  # where the background loop's walk of the outbox stands

    async def send_now(self, person_ids: Sequence[str]) -> bool:
        """Send before the caller is answered; on failure log it and leave the persons
        queued for :meth:`run`. Answers whether all were sent."""
        for start in range(0, len(person_ids), BATCH):
            batch = list(person_ids[start : start + BATCH])
            try:
                await self._deliver(batch)
            except grpc.aio.AioRpcError as error:
                self._log.warning(
                    "%s of %d persons (the first %s) not yet sent to the %s service "
                    "(%s: %s); retrying every %g s",
                    self.what,
                    len(batch),
                    batch[0],  # masked by the log formatter
                    self.subscriber,
                    error.code().name,
                    error.details(),
                    self._retry_seconds,
                )
                self.wake()
                return False
        return True

    async def send_set_start(self, set_id: int, persons: list[str], after: str | None) -> None:
        """Send a set's first batch (its persons up to position ``after``, None: the whole
        set) before the caller is answered, as :meth:`send_now`; once they are delivered
        the background walk of the set starts after them, so that they are not sent
        twice (a small set is then done)."""
        if await self.send_now(persons) and self._sets is not None:
            await asyncio.to_thread(
                set_walked,
                self._engine,
                self._sets.table,
                self.subscriber,
                set_id,
                after,
                walked_from="",
            )

    async def send_queued(self) -> bool:
        """One round: send the next batch of persons queued one by one, then the next
        batch of the first queued set; answer whether more may be waiting. Raises at
        UNAVAILABLE: the subscriber is likely down. A person it refuses is not sent
        again, with an error in the log, and the rest go on."""
        queued = await asyncio.to_thread(
            pending, self._engine, self._table, self.subscriber, after=self._after, limit=BATCH
        )
        self._after = queued[-1] if len(queued) == BATCH else ""
        await self._deliver_each_accepted(queued)
        if self._sets is None:
            return bool(self._after)
        walk = await asyncio.to_thread(
            next_of_sets, self._engine, self._sets, self.subscriber, BATCH
        )
        if walk is None:
            return bool(self._after)
        set_id, persons, position = walk
        await self._deliver_each_accepted(persons)
        await asyncio.to_thread(
            set_walked, self._engine, self._sets.table, self.subscriber, set_id, position
        )
        return True

    def backlogs(self) -> list[tuple[str, metrics.Backlog]]:
        tables = [self._table] if self._sets is None else [self._table, self._sets.table]
        return [
            (table.name, metrics.table_backlog(self._engine, table, self.subscriber))
            for table in tables
        ]

    async def _deliver_each_accepted(self, person_ids: list[str]) -> None:
        await deliver_each_accepted(self._deliver, person_ids, self._refused)

    def _refused(self, person_id: str, error: grpc.aio.AioRpcError) -> None:
        self._log.error(
            "the %s service refused the %s of person %s (%s: %s)",
            self.subscriber,
            self.what,
            person_id,  # masked by the log formatter
            error.code().name,
            error.details(),
        )

    async def _deliver(self, person_ids: list[str]) -> None:
        if person_ids:
            versions = await self._send(person_ids)
            await asyncio.to_thread(delivered, self._engine, self._table, self.subscriber, versions)


def open_channel(
    stack: contextlib.AsyncExitStack, address: str, tls: TlsSettings
) -> grpc.aio.Channel:
    """A channel to another service, closed when the service stops."""
    channel = grpc_client.channel(address, tls)
    stack.push_async_callback(channel.close)
    return channel


LoopT = TypeVar("LoopT", bound=Loop)


def start(stack: contextlib.AsyncExitStack, sender: LoopT) -> LoopT:
    """Run the sender's background loop until the service stops; report its backlog in the
    metrics."""
    loop = asyncio.create_task(sender.run(), name=f"sending {sender.what} to {sender.subscriber}")
    stack.callback(loop.cancel)
    for table, backlog in sender.backlogs():
        metrics.watch_outbox(table, sender.subscriber, backlog)
    return sender

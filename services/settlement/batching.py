"""Group commit: the settlements one process is asked for at the same time, settled in one
transaction.

Each ``Settle`` call queues its checked command with :meth:`SettlementBatcher.settle` and
waits. One task per process takes what is queued, up to :data:`MAX_BATCH`, and settles it
in a database thread (:func:`settle_all`): one transaction, one thread hand-off, one commit
and, on PostgreSQL, two statements for the whole batch (``service.settle_batch``), instead
of each of these per settlement. While a batch is on its way the next calls queue, so the
busier the process, the larger its batches; a call that finds the process idle is settled
at once, alone, by the same statements as before (``service.settle``). Each caller is
answered only after its batch committed: nothing is acknowledged that is not durable.

What a batch keeps of the per-settlement path:

* a command the engine refuses is refused alone; the others settle;
* a retry of a stored key, or a visit already standing, is answered as before
  (``service.replay``);
* two settlements of one person in a batch settle one after the other on the same
  accumulators, under the person's one lock, so yearly caps hold;
* a settlement an employee's personal account pays, or one settled against an
  admission, is settled alone after the batch (``service.settle_batch`` answers None for
  it): the account is locked, or the admission checked and discharged, in its own
  transaction;
* if a statement of the batch fails (a unique constraint broken by another process's
  commit meanwhile, or anything else), the batch rolls back and each command is settled
  alone, in a transaction of its own, as before batching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

import sqlalchemy

from doudi.common.db import read_connection, write_transaction
from services.settlement import service
from services.settlement.service import Outcome, SettleCommand, Settled

log = logging.getLogger("doudi.settlement.batching")

MAX_BATCH = 64
"""The most settlements one transaction carries: the batch's statements bind one JSON value
per table, and a caller waits for the whole batch."""


class SettlementBatcher:
    """Queues a process's settlements and settles them in batches (see the module)."""

    def __init__(
        self,
        engine: sqlalchemy.Engine,
        *,
        day: Callable[[datetime], date],
        settled: Callable[[], None],
    ) -> None:
        self._engine = engine
        self._day = day
        self._settled = settled
        self._waiting: list[tuple[SettleCommand, asyncio.Future[Settled]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def settle(self, command: SettleCommand) -> Settled:
        """The command settled (or answered again, ``replayed``) once its batch committed;
        raises what its refusal is."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Settled] = loop.create_future()
        self._waiting.append((command, future))
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        return await future

    async def _work(self) -> None:
        """Settle what is queued, a batch at a time, until nothing is."""
        try:
            while self._waiting:
                taken = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                # A call cancelled before its batch began (its client gone) is not settled.
                taken = [(command, future) for command, future in taken if not future.done()]
                if taken:
                    await self._settle(taken)
        finally:
            self._worker = None

    async def _settle(self, taken: list[tuple[SettleCommand, asyncio.Future[Settled]]]) -> None:
        now = datetime.now(UTC)
        commands = [command for command, _ in taken]
        try:
            outcomes = await asyncio.to_thread(
                settle_all, self._engine, commands, now, self._day(now)
            )
        except Exception as error:  # the database lost: every caller answers it
            for _, future in taken:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), outcome in zip(taken, outcomes, strict=True):
            if future.done():  # its call was cancelled meanwhile: a retry replays it
                continue
            if isinstance(outcome, Settled):
                future.set_result(outcome)
            else:
                future.set_exception(outcome)
        if any(isinstance(outcome, Settled) and not outcome.replayed for outcome in outcomes):
            self._settled()


def settle_all(
    engine: sqlalchemy.Engine, commands: Sequence[SettleCommand], now: datetime, day: date
) -> list[Settled | Exception]:
    """Settle a batch in one transaction (``service.settle_batch``); if it fails, each
    command alone (:func:`settle_alone`). Answers each command's outcome, in order; raises
    only when the database connection was lost (every caller answers UNAVAILABLE)."""
    outcomes: list[Outcome] = [None] * len(commands)
    if len(commands) > 1:
        try:
            with write_transaction(engine) as connection:
                outcomes = service.settle_batch(
                    connection=connection, commands=commands, now=now, day=day
                )
        except sqlalchemy.exc.DBAPIError as error:
            if error.connection_invalidated:
                raise
            # A key or visit stored by another process meanwhile (a unique constraint,
            # or a deadlock on one), or text the database refuses: one by one.
            log.info(
                "a batch of %d settlements failed (%s); settling each alone",
                len(commands),
                error.orig,
            )
        except Exception:
            log.exception("a batch of %d settlements failed; settling each alone", len(commands))
    return [
        settle_alone(engine, command, now, day) if outcome is None else outcome
        for command, outcome in zip(commands, outcomes, strict=True)
    ]


def settle_alone(
    engine: sqlalchemy.Engine, command: SettleCommand, now: datetime, day: date
) -> Settled | Exception:
    """One settlement in a transaction of its own, as before batching: ``service.settle``,
    and when it breaks a unique constraint, ``service.replay``. Answers the error to raise
    to the caller rather than raising it."""
    try:
        try:
            with write_transaction(engine) as connection:
                record = service.settle(connection=connection, command=command, now=now, day=day)
            return Settled(record, replayed=False)
        except sqlalchemy.exc.IntegrityError:
            # Another process settled with the same key, or the visit already stands.
            with read_connection(engine) as connection:
                return Settled(service.replay(connection=connection, command=command), True)
    except Exception as error:
        return error

"""The outbox's background loop (doudi.common.outbox.Loop): when its rounds run."""

from __future__ import annotations

import asyncio
import logging

from doudi.common.outbox import Loop

RETRY_SECONDS = 30.0


class _Rounds(Loop):
    """A loop whose first round sees a change queued while it is on its way (the owner
    wakes the loop mid-round, as a settlement committing then does)."""

    def __init__(self) -> None:
        super().__init__(
            "changes",
            subscriber="assistance",
            retry_seconds=RETRY_SECONDS,
            log=logging.getLogger("test.outbox"),
        )
        self.rounds = 0
        self.second = asyncio.Event()

    async def send_queued(self) -> bool:
        self.rounds += 1
        if self.rounds == 1:
            await asyncio.sleep(0)
            self.wake()  # queued after this round read the queue
        else:
            self.second.set()
        return False


def test_a_change_queued_during_a_round_is_sent_at_once_not_after_the_pause() -> None:
    async def scenario() -> int:
        loop = _Rounds()
        task = asyncio.create_task(loop.run())
        try:
            await asyncio.wait_for(loop.second.wait(), 5.0)
        finally:
            task.cancel()
        return loop.rounds

    assert asyncio.run(scenario()) == 2

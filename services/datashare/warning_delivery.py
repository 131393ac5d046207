"""Sending what the agencies did with warnings back to the assistance service, which
raised them: each act queues the warning in ``warning_decision_deliveries`` in its
transaction; the hub sends the decision (in assistance's own ``WarningDecision``, same
field numbers) before it answers the agency, and retries what fails
(:mod:`doudi.common.outbox`). Assistance keeps the hub's newest version.
"""

from __future__ import annotations

import logging

import grpc
import sqlalchemy

from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common import warnings as common_warnings
from doudi.common.db import read_in_thread
from doudi.common.outbox import ASSISTANCE, Sender, Versions, internal_metadata
from doudi.common.settings import SenderSettings
from services.datashare import warnings
from services.datashare.tables import warning_decision_deliveries

log = logging.getLogger("doudi.datashare.warnings")


def decision_sender(
    engine: sqlalchemy.Engine, settings: SenderSettings, assistance: grpc.aio.Channel
) -> Sender:
    stub = assistance_pb2_grpc.AssistanceServiceStub(assistance)
    metadata = internal_metadata(settings)

    async def send(keys: list[str]) -> Versions:
        found = await read_in_thread(
            engine, warnings.decisions_to_deliver, warning_ids=[int(key) for key in keys]
        )
        if not found:
            return []
        answer = await stub.RecordWarningDecisions(
            assistance_pb2.RecordWarningDecisionsRequest(
                decisions=[
                    common_warnings.decision_message(common_warnings.ASSISTANCE, w.decision)
                    for w in found
                ]
            ),
            metadata=metadata,
            timeout=settings.peer_timeout_seconds,
        )
        return [
            (str(warning.warning_id), version)
            for warning, version in zip(found, answer.versions, strict=True)
        ]

    return Sender(
        "warning decisions",
        send,
        engine=engine,
        table=warning_decision_deliveries,
        subscriber=ASSISTANCE,
        retry_seconds=settings.delivery_retry_seconds,
        log=log,
    )

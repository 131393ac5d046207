"""Delivery of the warnings assistance raises to the datashare hub (the agencies decide
there): each warning raised is queued in ``warning_deliveries`` in the transaction that
raised it, and the platform's outbox sender (:mod:`doudi.common.outbox`) sends it in the
hub's own ``Warning`` message (same field numbers as assistance's), retrying while the
hub is down; the hub keeps the newest version, so a repeat changes nothing.
"""

from __future__ import annotations

import logging

import grpc
import sqlalchemy

from doudi.common import warnings as common_warnings
from doudi.common.db import read_in_thread
from doudi.common.outbox import DATASHARE, Sender, Versions, internal_metadata
from doudi.common.settings import PeerSettings
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.assistance import warnings
from services.assistance.tables import warning_deliveries

log = logging.getLogger("doudi.assistance.warnings")


def warning_sender(
    engine: sqlalchemy.Engine, settings: PeerSettings, datashare: grpc.aio.Channel
) -> Sender:
    stub = datashare_pb2_grpc.DatashareServiceStub(datashare)
    metadata = internal_metadata(settings)

    async def send(keys: list[str]) -> Versions:
        found = await read_in_thread(
            engine, warnings.by_ids, warning_ids=[int(key) for key in keys]
        )
        if not found:
            return []
        answer = await stub.RecordWarnings(
            datashare_pb2.RecordWarningsRequest(
                warnings=[
                    common_warnings.warning_message(common_warnings.HUB, warning, None)
                    for warning in found
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
        "warnings",
        send,
        engine=engine,
        table=warning_deliveries,
        subscriber=DATASHARE,
        retry_seconds=settings.delivery_retry_seconds,
        log=log,
    )

"""Screening's call to the settlement service (``ScreenSettlements``): the persons a run
screens, a thousand a call, and their findings in assistance's terms
(:class:`services.assistance.screening.Finding`).

The call is made before the run's transaction and holds none open; when settlement cannot
be reached the run stores nothing and the case worker is told to try again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from doudi.common.errors import Unavailable
from doudi.common.protos import EnumCodes, to_date
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.assistance import screening

VISIT_TYPES = EnumCodes(settlement_pb2.VisitType, "VISIT_TYPE_")
STATUSES = EnumCodes(settlement_pb2.Status, "STATUS_")


async def findings(
    stub: settlement_pb2_grpc.SettlementServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
    person_ids: Sequence[str],
    year: int,
    timeout: float,
) -> list[screening.Finding]:
    """The settlement service's findings on the persons' settled visits of ``year``."""
    found: list[screening.Finding] = []
    for start in range(0, len(person_ids), screening.MAX_SCREENED):
        chunk = person_ids[start : start + screening.MAX_SCREENED]
        try:
            answer = await stub.ScreenSettlements(
                settlement_pb2.ScreenSettlementsRequest(person_ids=chunk, year=year),
                metadata=metadata,
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise Unavailable(
                "the settlement service could not recompute the settled visits "
                f"({error.code().name}: {error.details()}); nothing was stored, run it again",
                reason="SETTLEMENT_UNAVAILABLE",
            ) from None
        found.extend(finding(message) for message in answer.findings)
    return found


def finding(message: Any) -> screening.Finding:
    """A ``ScreeningFinding`` in assistance's terms."""
    where = "findings"
    return screening.settlement_finding(
        settlement_id=message.settlement_id,
        person_id=message.person_id,
        region=message.region,
        visit_type=VISIT_TYPES.code(message.visit_type, f"{where}.visit_type"),
        settled_on=to_date(message.settles_on, f"{where}.settles_on"),
        policy=message.policy,
        statuses_applied=[
            STATUSES.code(status, f"{where}.statuses_applied")
            for status in message.statuses_applied
        ],
        statuses_now=[
            STATUSES.code(status, f"{where}.statuses_now") for status in message.statuses_now
        ],
        settled_layers=[(p.layer, p.fund, p.paid_fen) for p in message.settled_layers],
        recomputed_layers=[(p.layer, p.fund, p.paid_fen) for p in message.recomputed_layers],
        settled_self_pay_fen=message.settled_self_pay_fen,
        recomputed_self_pay_fen=message.recomputed_self_pay_fen,
        difference_fen=message.difference_fen,
    )

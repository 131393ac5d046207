"""What the settlement service asks another service: the insured person in a year.

Enrollment answers the person and their enrolment for the year. The statuses
certified by the agencies are not asked for: the datashare hub sends each
person's statuses to this service (RecordPersonStatuses) before it answers the
agency that changed them, and the settlement reads them in its own transaction,
so a status asserted a moment ago applies to the next bill (instant identity,
即时认定) without a call per settlement.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Any

import grpc

from doudi.common.errors import NotFound, ServiceError, Unavailable, decode_status
from doudi.common.protos import EnumCodes, from_date
from doudi.core.identity import ResidentId
from doudi.core.model import Person
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc

SCHEMES = EnumCodes(enrollment_pb2.Scheme, "SCHEME_")
EMPLOYMENTS = EnumCodes(enrollment_pb2.Employment, "EMPLOYMENT_")
TIERS = EnumCodes(enrollment_pb2.Tier, "TIER_")


@dataclass(frozen=True, slots=True)
class InsuredPerson:
    person: Person
    region: str


class Peers:
    """The client of enrollment, authenticated as the platform.

    Coverage (the person and their enrolment for a year) is cached for
    ``coverage_ttl`` seconds once found: enrollment records neither change once
    made (a different CreatePerson or CreateEnrolment is refused), so a cached
    answer is the answer, and the TTL only bounds how long a correction made
    outside the API would take to show. A person not found is never cached, so
    one enrolled a moment ago settles at once.
    """

    def __init__(
        self,
        enrollment: grpc.aio.Channel,
        *,
        token: str,
        timeout: float,
        coverage_ttl: float,
        coverage_entries: int = 100_000,
    ) -> None:
        self._enrollment = enrollment_pb2_grpc.EnrollmentServiceStub(enrollment)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._coverage_ttl = coverage_ttl
        self._coverage_entries = coverage_entries
        self._coverage: OrderedDict[tuple[str, int], tuple[float, Any]] = OrderedDict()

    async def insured_person(self, resident_id: ResidentId, day: date) -> InsuredPerson:
        """The person as the engine needs them in ``day``'s year: scheme and tier (their
        statuses are read with the ledger, in the settlement's transaction)."""
        key = (resident_id.number, day.year)
        cached = self._coverage.get(key)
        if cached is not None and cached[0] > time.monotonic():
            coverage = cached[1]
        else:
            try:
                coverage = await self._enrollment.GetCoverage(
                    enrollment_pb2.GetCoverageRequest(
                        person_id=resident_id.number, date=from_date(day)
                    ),
                    metadata=self._metadata,
                    timeout=self._timeout,
                    wait_for_ready=True,
                )
            except grpc.aio.AioRpcError as error:
                raise _peer_error(error) from None
            self._remember(key, coverage)
        enrolment = coverage.enrolment
        person = Person(
            resident_id=resident_id,
            scheme=SCHEMES.code(enrolment.scheme, "scheme"),
            employment=EMPLOYMENTS.optional_code(enrolment.employment, "employment"),
            tier=TIERS.optional_code(enrolment.tier, "tier"),
        )
        return InsuredPerson(person, coverage.person.region)

    def _remember(self, key: tuple[str, int], coverage: Any) -> None:
        self._coverage[key] = (time.monotonic() + self._coverage_ttl, coverage)
        self._coverage.move_to_end(key)
        while len(self._coverage) > self._coverage_entries:
            self._coverage.popitem(last=False)


def _peer_error(error: grpc.aio.AioRpcError) -> ServiceError:
    status = decode_status(error)
    if status.code == grpc.StatusCode.NOT_FOUND:
        return NotFound(status.message, reason=status.reason, field="person_id")
    if status.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"a service the settlement needs did not answer: {status.message}")
    return ServiceError(f"a service the settlement needs failed: {status.code.name}")

"""What the settlement service asks the other services: the insured person on a day.

Enrollment answers the person and their enrolment for the year; datashare
the statuses certified by the agencies. Both are asked at once, on every
settlement, so a status asserted a moment ago applies to the next bill
(instant identity, 即时认定).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Any

import grpc

from doudi.common.errors import NotFound, ServiceError, Unavailable, decode_status
from doudi.common.protos import EnumCodes, from_date, optional_date, to_date
from doudi.core.identity import ResidentId
from doudi.core.model import Person, StatusPeriod
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc

SCHEMES = EnumCodes(enrollment_pb2.Scheme, "SCHEME_")
EMPLOYMENTS = EnumCodes(enrollment_pb2.Employment, "EMPLOYMENT_")
TIERS = EnumCodes(enrollment_pb2.Tier, "TIER_")
STATUSES = EnumCodes(datashare_pb2.Status, "STATUS_")


@dataclass(frozen=True, slots=True)
class InsuredPerson:
    person: Person
    region: str


class Peers:
    """Clients of enrollment and datashare, authenticated as the platform.

    Coverage (the person and their enrolment for a year) is cached for
    ``coverage_ttl`` seconds once found: enrollment records neither change once
    made (a different CreatePerson or CreateEnrolment is refused), so a cached
    answer is the answer, and the TTL only bounds how long a correction made
    outside the API would take to show. A person not found is never cached, so
    one enrolled a moment ago settles at once. Statuses are never cached: a
    status asserted a moment ago applies to the next settlement.
    """

    def __init__(
        self,
        enrollment: grpc.aio.Channel,
        datashare: grpc.aio.Channel,
        *,
        token: str,
        timeout: float,
        coverage_ttl: float,
        coverage_entries: int = 100_000,
    ) -> None:
        self._enrollment = enrollment_pb2_grpc.EnrollmentServiceStub(enrollment)
        self._datashare = datashare_pb2_grpc.DatashareServiceStub(datashare)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._coverage_ttl = coverage_ttl
        self._coverage_entries = coverage_entries
        self._coverage: OrderedDict[tuple[str, int], tuple[float, Any]] = OrderedDict()

    async def insured_person(self, resident_id: ResidentId, day: date) -> InsuredPerson:
        """The person as the engine needs them on ``day``: scheme, tier and statuses."""
        when = from_date(day)
        key = (resident_id.number, day.year)
        cached = self._coverage.get(key)
        coverage_call = (
            None
            if cached is not None and cached[0] > time.monotonic()
            else self._enrollment.GetCoverage(
                enrollment_pb2.GetCoverageRequest(person_id=resident_id.number, date=when),
                metadata=self._metadata,
                timeout=self._timeout,
                wait_for_ready=True,
            )
        )
        statuses_call = self._datashare.GetPersonStatuses(
            datashare_pb2.GetPersonStatusesRequest(person_id=resident_id.number, on_date=when),
            metadata=self._metadata,
            timeout=self._timeout,
            wait_for_ready=True,
        )
        try:
            if coverage_call is None:
                assert cached is not None
                coverage, statuses = cached[1], await statuses_call
            else:
                coverage, statuses = await asyncio.gather(coverage_call, statuses_call)
                self._remember(key, coverage)
        except grpc.aio.AioRpcError as error:
            raise _peer_error(error) from None
        enrolment = coverage.enrolment
        periods = tuple(
            StatusPeriod(
                code=STATUSES.code(period.status, "status"),
                start=to_date(period.valid_from, "valid_from"),
                end=optional_date(period, "valid_to", "valid_to"),
            )
            for period in statuses.periods
        )
        person = Person(
            resident_id=resident_id,
            scheme=SCHEMES.code(enrolment.scheme, "scheme"),
            employment=EMPLOYMENTS.optional_code(enrolment.employment, "employment"),
            tier=TIERS.optional_code(enrolment.tier, "tier"),
            statuses=periods,
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

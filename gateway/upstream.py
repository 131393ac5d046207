"""The services behind the gateway: one gRPC channel each, opened once per process.

Only the settlement service is called on the hospital path; the others are
asked for their health (``/healthz``; ``/readyz`` asks the settlement service's alone). Hospitals are resolved from their API key by the
settlement service (``GetHospital`` with the key forwarded) and remembered
for ``hospital_cache_seconds``, so a settlement costs one gRPC call.

A call the settlement service does not answer (it is down past the timeout, its
process died with the call in flight, the gateway stops with the call still
waiting) answers 503: ``unavailable`` for a read, ``outcome-unknown`` for a
request with an idempotency key (``request_id``: a settlement, a reversal),
which may still have been made (:func:`settlement_failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

import grpc
from google.protobuf.message import Message

from doudi.common import grpc_client
from doudi.common.errors import decode_status
from doudi.common.grpc_client import serving_status_async
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from gateway.problems import outcome_unknown, unavailable, upstream_failed
from gateway.settings import Settings

log = logging.getLogger("doudi.gateway")

SERVICES: Final = ("enrollment", "datashare", "settlement", "assistance")
Metadata = tuple[tuple[str, str], ...]
RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT")


# GetHospital's answers to a key that is no hospital's: an unknown key (UNAUTHENTICATED),
# or the platform's internal token (the service asks an internal caller which hospital it
# means, INVALID_ARGUMENT): the public edge answers both alike, 401.
_NOT_A_HOSPITAL: Final = frozenset(
    {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT}
)


@contextlib.contextmanager
def settlement_failures(*, may_commit: bool) -> Iterator[None]:
    """Around a call to the settlement service: when it fails for want of the service (see
    :func:`gateway.problems.upstream_failed`) and ``may_commit`` (the request writes, with
    an idempotency key), raise the ``outcome-unknown`` problem; a read's failure goes on to
    the problem mapping (``unavailable``). A request still waiting when the gateway stops
    is cancelled (uvicorn, at the end of the shutdown grace): it answers the same 503
    instead of uvicorn's 500 text/plain."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        if may_commit and upstream_failed(decode_status(error)):
            log.warning(
                "settlement call failed, its outcome unknown: %s %s",
                error.code().name,
                error.details(),
            )
            raise outcome_unknown() from error
        raise
    except asyncio.CancelledError:
        # Nothing else cancels a request's task: the gateway is stopping.
        log.warning("stopping: a call to the settlement service was still waiting")
        raise (outcome_unknown() if may_commit else unavailable()) from None


@dataclass(frozen=True, slots=True)
class CallingHospital:
    """The hospital an API key belongs to, and the metadata that authenticates it upstream."""

    hospital_id: str
    name: str
    region: str
    level: int
    """1, 2 or 3; 0 for a pharmacy."""
    metadata: Metadata


class HospitalKeys:
    """Hospitals by API key, asked of the settlement service and cached by the key's digest.

    Unknown keys are not cached: a hospital registered a moment ago can call at once.
    """

    def __init__(
        self, stub: settlement_pb2_grpc.SettlementServiceAsyncStub, *, ttl: float, timeout: float
    ) -> None:
        self._stub = stub
        self._ttl = ttl
        self._timeout = timeout
        self._cache: dict[bytes, tuple[CallingHospital, float]] = {}

    async def resolve(self, api_key: str) -> CallingHospital | None:
        """The key's hospital, or None when the settlement service does not know the key."""
        digest = hashlib.sha256(api_key.encode()).digest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        metadata = (("authorization", f"Bearer {api_key}"),)
        try:
            with settlement_failures(may_commit=False):
                answer = await self._stub.GetHospital(
                    settlement_pb2.GetHospitalRequest(),
                    metadata=metadata,
                    timeout=self._timeout,
                    wait_for_ready=True,  # as Upstream.ask
                )
        except grpc.aio.AioRpcError as error:
            if error.code() in _NOT_A_HOSPITAL:
                self._cache.pop(digest, None)
                return None
            raise
        found = answer.hospital
        hospital = CallingHospital(
            found.hospital_id, found.name, found.region, found.level, metadata
        )
        if len(self._cache) > 10_000:  # only expired entries of long-gone keys can pile up
            self._cache = {key: entry for key, entry in self._cache.items() if entry[1] > now}
        self._cache[digest] = (hospital, now + self._ttl)
        return hospital

    def forget(self, api_key: str) -> None:
        """Stop trusting a cached key (the settlement service has just refused it)."""
        self._cache.pop(hashlib.sha256(api_key.encode()).digest(), None)


class Upstream:
    """The gateway's channels and clients; made and closed inside the running event loop."""

    def __init__(self, settings: Settings) -> None:
        addresses = {
            "enrollment": settings.enrollment_address,
            "datashare": settings.datashare_address,
            "settlement": settings.settlement_address,
            "assistance": settings.assistance_address,
        }
        self.channels = {name: grpc_client.channel(addresses[name], settings) for name in SERVICES}
        self.settlement = settlement_pb2_grpc.SettlementServiceStub(self.channels["settlement"])
        self.timeout = settings.upstream_timeout_seconds
        self.health_timeout = settings.health_timeout_seconds
        self._health_rounds: dict[tuple[str, ...], asyncio.Future[dict[str, str]]] = {}
        self.hospitals = HospitalKeys(
            self.settlement, ttl=settings.hospital_cache_seconds, timeout=self.timeout
        )

    async def ask(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[RequestT, ResponseT],
        request: RequestT,
        hospital: CallingHospital,
    ) -> ResponseT:
        """One call to the settlement service as ``hospital`` (its key forwarded).

        It waits (up to the timeout) for a settlement service that is restarting or not
        yet connected, rather than failing at once: a hospital's request then succeeds a
        moment late instead of answering 503. A request with an idempotency key that
        fails so answers ``outcome-unknown`` (:func:`settlement_failures`)."""
        with settlement_failures(may_commit="request_id" in request.DESCRIPTOR.fields_by_name):
            return await method(
                request, metadata=hospital.metadata, timeout=self.timeout, wait_for_ready=True
            )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def health(self, names: tuple[str, ...] = SERVICES) -> dict[str, str]:
        """Each of the services ``names``' answer to the standard health check, asked at
        once: ``SERVING``, ``NOT_SERVING``..., or ``UNAVAILABLE`` when one does not answer.

        Requests that arrive while a round of checks of the same services is under way
        share its answer, so probes however frequent never ask the services more than one
        round at a time."""
        running = self._health_rounds.get(names)
        if running is None or running.done():
            running = asyncio.ensure_future(self._check_health(names))
            self._health_rounds[names] = running
        # shield: a client that disconnects must not cancel the round the others await
        return await asyncio.shield(running)

    async def _check_health(self, names: tuple[str, ...]) -> dict[str, str]:
        states = await asyncio.gather(
            *(serving_status_async(self.channels[name], self.health_timeout) for name in names)
        )
        return dict(zip(names, states, strict=True))

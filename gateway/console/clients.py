"""The services as the console calls them: the gateway's channels, the platform's token, and
the account of the person at the keyboard.

Every call carries the internal token and ``doudi-console-user: <username>``. The
datashare service serves a call so marked as the account's: an agency clerk's as
the clerk's agency (only its regions' warnings, its own rosters and statuses,
audited as the agency's reads), a staff member's as the platform's. The other
services take the internal token; what each role may ask of them is decided
here in the gateway (:mod:`gateway.console.roles`).

A failed call becomes a :class:`ConsoleError` that the console shows as a page or
beside the form that caused it (:func:`failure`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import grpc

from doudi.assistance.v1 import assistance_pb2_grpc
from doudi.common.errors import decode_status
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from doudi.enrollment.v1 import enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2_grpc
from gateway.problems import upstream_failed
from gateway.settings import Settings
from gateway.upstream import Upstream

CONSOLE_USER: Final = "doudi-console-user"
"""The call metadata naming the console account a call is made for."""

T = TypeVar("T")

# What a refusal of a service means for the page: its HTTP status.
_STATUS: Final = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


@dataclass
class ConsoleError(Exception):
    """A page that cannot be shown, or an action refused: the HTTP status, what to say, and
    the fields at fault (a form shows each beside its field)."""

    status: int
    message: str
    fields: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def failure(error: grpc.aio.AioRpcError) -> ConsoleError:
    """A failed call as the console shows it: a service's refusal with its message and the
    fields it named; a service that did not answer as 503."""
    status = decode_status(error)
    if upstream_failed(status):
        return ConsoleError(503, "unavailable", reason="UNAVAILABLE")
    fields = {violation.field: violation.description for violation in status.violations}
    return ConsoleError(
        _STATUS.get(status.code, 502),
        status.message,
        fields,
        reason=status.reason,
        metadata=dict(status.metadata),
    )


async def call(pending: Awaitable[T]) -> T:
    """Await one call (a stub's answer as it is made), its failure as a
    :class:`ConsoleError`."""
    try:
        return await pending
    except grpc.aio.AioRpcError as error:
        raise failure(error) from None


@dataclass(frozen=True, slots=True)
class Account:
    """What the console checks of an account on every request: it may still sign in."""

    disabled: bool
    password_changed_at: float
    """Unix seconds; a session begun before it has ended."""


class Clients:
    """The four services' stubs on the gateway's channels, and the accounts it has read."""

    def __init__(self, upstream: Upstream, settings: Settings) -> None:
        channels = upstream.channels
        self.enrollment = enrollment_pb2_grpc.EnrollmentServiceStub(channels["enrollment"])
        self.datashare = datashare_pb2_grpc.DatashareServiceStub(channels["datashare"])
        self.settlement = settlement_pb2_grpc.SettlementServiceStub(channels["settlement"])
        self.assistance = assistance_pb2_grpc.AssistanceServiceStub(channels["assistance"])
        self.timeout = settings.upstream_timeout_seconds
        self._token = f"Bearer {settings.internal_token.get_secret_value()}"
        self._account_ttl = settings.console_account_cache_seconds
        self._accounts: dict[str, tuple[Account, float]] = {}
        self._lock = asyncio.Lock()

    def metadata(self, username: str | None) -> tuple[tuple[str, str], ...]:
        """The platform's token, and the account the call is made for."""
        if username is None:
            return (("authorization", self._token),)
        return (("authorization", self._token), (CONSOLE_USER, username))

    async def account(self, username: str) -> Account | None:
        """The account as the datashare service has it (cached a short while); None when it
        is gone."""
        now = time.monotonic()
        cached = self._accounts.get(username)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            answer = await self.datashare.GetConsoleUser(
                datashare_pb2.GetConsoleUserRequest(username=username),
                metadata=self.metadata(None),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                self._accounts.pop(username, None)
                return None
            raise failure(error) from None
        user = answer.user
        account = Account(
            disabled=user.disabled,
            password_changed_at=float(user.password_changed_at.seconds),
        )
        if len(self._accounts) > 10_000:
            self._accounts = {key: entry for key, entry in self._accounts.items() if entry[1] > now}
        self._accounts[username] = (account, now + self._account_ttl)
        return account

    def forget(self, username: str) -> None:
        self._accounts.pop(username, None)

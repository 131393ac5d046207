"""The errors a service raises, and the one mapping of every error to a ``google.rpc.Status``.

Service code raises these (and :class:`doudi.core.errors.InvalidInput`); the
gRPC interceptor turns them into statuses with ``ErrorInfo`` and, where a field
is to blame, ``BadRequest`` field violations. The gateway reads the same
details back (:func:`decode_status`) to answer problem+json.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from doudi.core.errors import InvalidInput
from doudi.core.identity import mask

ERROR_DOMAIN = "doudi"


class ServiceError(Exception):
    """A request the service refuses; ``reason`` is a stable UPPER_SNAKE_CASE code,
    ``metadata`` what a program may need besides (``ErrorInfo.metadata``)."""

    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.field = field
        self.metadata = dict(metadata or {})


class NotFound(ServiceError):
    """The thing asked for, or one the request names (``field``), does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


def person_not_found(number: str, field: str) -> NotFound:
    """No person with this identity number is registered (masked in the message)."""
    return NotFound(f"no person {mask(number)}", reason="PERSON_NOT_FOUND", field=field)


def not_enrolled(number: str, year: int) -> NotFound:
    """The person is registered but not enrolled for ``year``."""
    return NotFound(
        f"person {mask(number)} is not enrolled for {year}",
        reason="NOT_ENROLLED",
        field="person_id",
    )


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(ServiceError):
    """Another request holds what this one needs; retrying later may succeed."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class DataLoss(ServiceError):
    """A stored value the service cannot answer (out of every bound it enforces): the
    bureau must correct the record; nothing the caller sends again helps."""

    code = grpc.StatusCode.DATA_LOSS
    default_reason = "DATA_LOSS"


class Unavailable(ServiceError):
    """A service this one depends on did not answer."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


MAX_MESSAGE_BYTES = 1000
"""An error's message and field violation are cut to this many bytes of UTF-8: they may
quote what the caller sent, and a status goes back in the call's trailers (the message
percent-encoded, up to three times as long, and again in the details), which clients
refuse beyond 8 KiB (RESOURCE_EXHAUSTED, and the error lost)."""


def _clip(text: str) -> str:
    encoded = text.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return text
    return encoded[: MAX_MESSAGE_BYTES - 3].decode(errors="ignore") + "…"


def to_rpc_status(error: ServiceError | InvalidInput) -> grpc.Status:
    """The status a gRPC server ends the call with (``context.abort_with_status``)."""
    metadata: dict[str, str] = {}
    if isinstance(error, InvalidInput):
        code, message, reason, field = (
            grpc.StatusCode.INVALID_ARGUMENT,
            str(error),
            "INVALID_ARGUMENT",
            error.field,
        )
        description = error.message
    else:
        code, message, reason, field = error.code, error.message, error.reason, error.field
        description = error.message
        metadata = error.metadata
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    ]
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=_clip(field), description=_clip(description)
        )
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    status = status_pb2.Status(code=code.value[0], message=_clip(message), details=details)
    return rpc_status.to_status(status)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class DecodedStatus:
    """What a client learns from a failed call: the code, message, reason, field violations
    and the ErrorInfo's metadata."""

    code: grpc.StatusCode
    message: str
    reason: str
    violations: tuple[FieldViolation, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)
    from_service: bool = False
    """Whether a Doudi service ended the call (its ``ErrorInfo`` came back), rather than
    gRPC itself: a deadline, a connection that broke, a channel closed."""


def decode_status(error: grpc.aio.AioRpcError) -> DecodedStatus:
    """Read a failed call's ``google.rpc.Status`` details (ErrorInfo, BadRequest)."""
    code = error.code()
    message = error.details() or ""
    reason = code.name
    from_service = False
    violations: list[FieldViolation] = []
    metadata: dict[str, str] = {}
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason = info.reason
                metadata.update(info.metadata)
                from_service = info.domain == ERROR_DOMAIN
            elif detail.Unpack(bad):
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                )
    return DecodedStatus(
        code, message, reason, tuple(violations), metadata=metadata, from_service=from_service
    )


__all__ = [
    "Aborted",
    "AlreadyExists",
    "DataLoss",
    "DecodedStatus",
    "FailedPrecondition",
    "FieldViolation",
    "NotFound",
    "PermissionDenied",
    "ServiceError",
    "Unauthenticated",
    "Unavailable",
    "decode_status",
    "to_rpc_status",
]

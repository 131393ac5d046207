"""A failed call to a service, in a sentence for the clerk: the one place where the roster
commands turn a gRPC status into words, never its code's name (``NOT_FOUND: no
comparison 99`` is "comparison 99 does not exist").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

import grpc

from doudi.common.errors import DecodedStatus
from doudi.common.logs import mask_identity_numbers

if TYPE_CHECKING:
    from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
    from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub

Metadata = tuple[tuple[str, str], ...]
"""A call's metadata (the platform's token)."""
Stub = TypeVar("Stub")

_NO_SUCH: Final = re.compile(r"no (?P<thing>.+)")


def said(status: DecodedStatus) -> str:
    """The service's message with every field violation it does not already name."""
    text = status.message
    for violation in status.violations:
        if violation.description not in text:
            text += f"; {violation.field}: {violation.description}"
    return text


_C = grpc.StatusCode
_WORDS: Final = {
    _C.UNAVAILABLE: "{service} could not be reached (is it running, and is that its address?)",
    _C.DEADLINE_EXCEEDED: "{service} did not answer in time",
    _C.UNAUTHENTICATED: "{service} did not accept the key: {text}",
    _C.PERMISSION_DENIED: "{service} refused {what}: {text}",
    _C.NOT_FOUND: "not found: {text}",
    _C.INVALID_ARGUMENT: "{service} refused {what} as invalid: {text}",
    _C.OUT_OF_RANGE: "{service} refused {what} as invalid: {text}",
    _C.FAILED_PRECONDITION: "{service} cannot do that now: {text}",
    _C.ALREADY_EXISTS: "{service} already holds something else under that name: {text}",
    _C.ABORTED: "{service} gave up {what} part way ({text}); try again",
    _C.RESOURCE_EXHAUSTED: "{service} is overloaded or {what} is too large ({text}); "
    "try again later",
    _C.UNIMPLEMENTED: "{address} does not answer as {name}: is that the right address?",
    _C.CANCELLED: "{what} to {service} was cancelled",
}
_FAILED: Final = "{service} failed on {what}: {text}"  # INTERNAL, UNKNOWN, DATA_LOSS


def sentence(status: DecodedStatus, name: str, address: str, what: str = "the request") -> str:
    """What went wrong sending ``what`` to the service ``name`` ("the datashare hub") at
    ``address``, identity numbers masked."""
    match = _NO_SUCH.fullmatch(status.message)
    if status.code == _C.NOT_FOUND and match:
        return mask_identity_numbers(f"{match['thing']} does not exist")
    words = _WORDS.get(status.code, _FAILED)
    text = said(status) or "no reason given"
    return mask_identity_numbers(
        words.format(
            service=f"{name} at {address}", name=name, address=address, what=what, text=text
        )
    )


def call_assistance(
    address: str | None, action: Callable[[AssistanceServiceStub, Metadata], int]
) -> int:
    """Run a bureau command's calls on the assistance service (``address``, else
    ``DOUDI_ASSISTANCE_ADDRESS``) with the platform's token: ``action`` gets the stub and
    the metadata and answers the exit status. A refusal is a sentence on stderr and exit
    2 for bad input (INVALID_ARGUMENT), 1 for any other."""
    from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub

    return call_service("assistance", AssistanceServiceStub, address, action)


def call_datashare(
    address: str | None, action: Callable[[DatashareServiceStub, Metadata], int]
) -> int:
    """:func:`call_assistance` for the datashare hub (``DOUDI_DATASHARE_ADDRESS``)."""
    from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub

    return call_service("datashare", DatashareServiceStub, address, action)


def call_service(
    service: str,
    stub: Callable[[grpc.Channel], Stub],
    address: str | None,
    action: Callable[[Stub, Metadata], int],
) -> int:
    """Run a bureau command's calls on ``service`` (``address``, else
    ``DOUDI_<SERVICE>_ADDRESS``, else where ``doudi run`` starts it) with the platform's
    token; a refusal as :func:`call_assistance` says."""
    from doudi.cli import main as cli
    from doudi.cli import roster_client
    from doudi.common import grpc_client
    from doudi.common.errors import decode_status
    from doudi.common.outbox import internal_metadata
    from doudi.common.settings import ProcessSettings

    address = address or roster_client.default_address(service)
    try:
        settings = ProcessSettings()
    except ValueError as error:
        return cli._fail(str(error))
    metadata = internal_metadata(settings)
    name = "the datashare hub" if service == "datashare" else f"the {service} service"
    with grpc_client.sync_channel(address, settings) as channel:
        try:
            return action(stub(channel), metadata)
        except grpc.RpcError as error:
            status = decode_status(error)  # type: ignore[arg-type]
            bad_input = status.code == grpc.StatusCode.INVALID_ARGUMENT
            return cli._fail(
                sentence(status, name, address),
                cli.EXIT_BAD_INPUT if bad_input else cli.EXIT_REFUSED,
            )

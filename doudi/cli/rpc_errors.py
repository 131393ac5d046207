"""A failed call to a service, in a sentence for the clerk: the one place where the roster
commands turn a gRPC status into words, never its code's name (``NOT_FOUND: no
comparison 99`` is "comparison 99 does not exist").
"""

from __future__ import annotations

import re
from typing import Final

import grpc

from doudi.common.errors import DecodedStatus
from doudi.common.logs import mask_identity_numbers

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

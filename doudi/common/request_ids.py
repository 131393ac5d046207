"""One request id from the gateway through every service it reaches.

The gateway takes a caller's ``X-Request-Id`` when it is sane (:func:`sane`: at most
:data:`MAX_LENGTH` characters of letters, digits and ``-._:``) or makes one
(:func:`new`), answers it in the response's ``X-Request-Id`` and sends it as the
gRPC metadata ``x-request-id`` on every call it makes for the request; a service
takes the one a call brings (or makes one) and every call it makes to a peer while
serving it carries it on (doudi.common.tracing.ObservedChannel). A background
delivery (doudi.common.outbox) makes one per round. While bound (:func:`bind`), the id
stands in every log line as ``request_id`` (doudi.common.logs).
"""

from __future__ import annotations

import contextvars
import os
import re
from typing import Final

import structlog

HEADER: Final = "x-request-id"
"""The HTTP header (``X-Request-Id``, case-insensitive) and the gRPC metadata key."""
MAX_LENGTH: Final = 128
_SANE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "doudi_request_id", default=None
)


def sane(value: str | None) -> bool:
    """Whether a caller's id may be taken as it is: bounded, and nothing a log line or a
    header could be misled by."""
    return value is not None and _SANE.fullmatch(value) is not None


def new() -> str:
    """A fresh id: 32 hexadecimal digits, random (uuid4's cost without its object)."""
    return os.urandom(16).hex()


def taken(value: str | None) -> str:
    """``value`` if it is sane, else a fresh id."""
    return value if value is not None and sane(value) else new()


def bind(request_id: str) -> None:
    """Make ``request_id`` the current one: in the current context (the task serving the
    request or call, and what it starts) and in every log line made there."""
    _current.set(request_id)
    structlog.contextvars.bind_contextvars(request_id=request_id)


def current() -> str | None:
    """The id of the request being served, if any."""
    return _current.get()

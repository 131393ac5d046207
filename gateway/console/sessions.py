"""The console's sessions: signed cookies that expire, and the CSRF token of each.

A session is a cookie the gateway signs with ``DOUDI_CONSOLE_SECRET``
(itsdangerous, HMAC-SHA256 with a timestamp): who logged in, their role, agency
and regions as the datashare service answered at login, the session's CSRF
token and when it began. Nothing is kept on the server, so any gateway process
of a deployment serves any request. A session expires when it was not used for
``DOUDI_CONSOLE_IDLE_MINUTES`` (the signature's timestamp, renewed as it is
used) and at the latest ``DOUDI_CONSOLE_SESSION_HOURS`` after its login.

Every form and every htmx request that changes something carries the CSRF
token (a hidden field ``csrf_token``, or the header ``X-CSRF-Token``); the
console refuses a change whose token is missing or is not the session's
(:func:`csrf_matches`). Before login the same holds for the login form, with a
token in a cookie of its own (double submit), so that no other site can log a
browser in under its own account.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, Final

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE: Final = "doudi_console"
LOGIN_COOKIE: Final = "doudi_console_login"
"""The CSRF token of the login form, before there is a session."""
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
RENEW_AFTER_SECONDS: Final = 60
"""A session's cookie is signed again (its idle time restarted) at most once a minute."""


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    display_name: str
    role: str
    """``case_worker``, ``analyst``, ``supervisor``, ``administrator`` or ``agency_clerk``."""
    agency: str
    """The clerk's agency; empty for the bureau's staff."""
    regions: tuple[str, ...]
    """The regions a clerk serves (empty: every region)."""
    csrf: str
    started: int
    """When the user logged in (Unix seconds)."""

    @classmethod
    def begin(
        cls,
        username: str,
        display_name: str,
        role: str,
        agency: str,
        regions: tuple[str, ...],
    ) -> Session:
        return cls(
            username,
            display_name,
            role,
            agency,
            regions,
            secrets.token_urlsafe(32),
            int(time.time()),
        )

    @property
    def is_clerk(self) -> bool:
        return self.role == "agency_clerk"


class SessionCodec:
    """Signs sessions into cookie values and reads them back, refusing expired ones."""

    def __init__(self, secret: str, *, idle_seconds: float, max_seconds: float) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="doudi-console-session")
        self._login = URLSafeTimedSerializer(secret, salt="doudi-console-login")
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds

    def dumps(self, session: Session) -> str:
        return self._sessions.dumps(asdict(session))

    def loads(self, value: str) -> tuple[Session, float] | None:
        """The session and how many seconds ago its cookie was signed; None when the value
        is not a session this gateway signed, or it has expired."""
        try:
            data, signed = self._sessions.loads(
                value, max_age=math.ceil(self.idle_seconds), return_timestamp=True
            )
            session = _session(data)
        except (BadSignature, TypeError, ValueError, KeyError):
            return None
        now = time.time()
        if now - session.started > self.max_seconds:
            return None
        return session, max(0.0, now - signed.timestamp())

    def login_token(self) -> tuple[str, str]:
        """A fresh CSRF token for the login form and the cookie value that holds it."""
        token = secrets.token_urlsafe(32)
        return token, self._login.dumps(token)

    def login_token_of(self, value: str | None) -> str | None:
        """The login form's token a cookie holds (valid for an hour), or None."""
        if not value:
            return None
        try:
            token = self._login.loads(value, max_age=3600)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None


def _session(data: Any) -> Session:
    if not isinstance(data, dict):
        raise TypeError("not a session")
    return Session(
        username=str(data["username"]),
        display_name=str(data["display_name"]),
        role=str(data["role"]),
        agency=str(data["agency"]),
        regions=tuple(str(region) for region in data["regions"]),
        csrf=str(data["csrf"]),
        started=int(data["started"]),
    )


def csrf_matches(expected: str | None, sent: str | None) -> bool:
    """Whether the token sent is the expected one (compared in constant time)."""
    if not expected or not sent:
        return False
    return secrets.compare_digest(expected.encode(), sent.encode())

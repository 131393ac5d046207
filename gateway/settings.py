"""The gateway's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

import secrets
from typing import Self

from pydantic import Field, SecretStr, model_validator

from doudi.common.settings import ProcessSettings

DEFAULT_PORT = 8000

# Known to everyone who reads this file: accepted only with DOUDI_ENVIRONMENT=local.
LOCAL_CONSOLE_SECRET = "doudi-local-console-secret-not-for-production"
MIN_CONSOLE_SECRET_LENGTH = 32


class Settings(ProcessSettings):
    required_in_production = (
        *ProcessSettings.required_in_production,
        "settlement_address",
        "enrollment_address",
        "datashare_address",
        "assistance_address",
        "console_secret",
    )

    settlement_address: str = "127.0.0.1:50053"
    """Where the settlement service answers: every /v1 call goes there."""
    enrollment_address: str = "127.0.0.1:50051"
    datashare_address: str = "127.0.0.1:50052"
    assistance_address: str = "127.0.0.1:50054"
    """The other services: asked by ``/healthz``, and by the console for what it shows."""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """A request body above this size answers 413 before more of it is read."""
    upstream_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one call to the settlement service may take before the gateway answers 503."""
    health_timeout_seconds: float = Field(default=1.0, gt=0)
    """How long ``/healthz`` waits for each service's health check."""
    hospital_cache_seconds: float = Field(default=60.0, ge=0)
    """How long a hospital resolved from its API key is remembered; a revoked key stops
    working within this time (and at once wherever the settlement service refuses it)."""
    access_log: bool = False
    """One log line per HTTP request (method, route template, status, time and the request
    id: gateway.observe). Off by default: a line costs a noticeable share of a simple
    request's time, every error answered is logged anyway, and every call that reaches a
    service is logged there with the calling hospital and the same request id."""

    # --- the case workers' console (/console, gateway/console) ---
    console_secret: SecretStr = SecretStr(LOCAL_CONSOLE_SECRET)
    """The key that signs the console's session cookies (every gateway process of a
    deployment the same); 32 or more characters outside DOUDI_ENVIRONMENT=local. Changing
    it ends every session."""
    console_idle_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    """A console session unused this long has expired: the next page asks to log in again."""
    console_session_hours: float = Field(default=12.0, gt=0, le=7 * 24)
    """The longest a console session lasts however busy, from its login (a working day)."""
    console_secure_cookies: bool | None = None
    """Send the session cookie only over HTTPS; unset: outside DOUDI_ENVIRONMENT=local."""
    console_account_cache_seconds: float = Field(default=30.0, ge=0)
    """How long the console trusts what it read of an account (disabled, password reset)
    before it asks the datashare service again: a disabled account's session ends within
    this time."""

    @model_validator(mode="after")
    def _console_secret_outside_local(self) -> Self:
        if self.environment != "local":
            secret = self.console_secret.get_secret_value()
            if (
                secrets.compare_digest(secret, LOCAL_CONSOLE_SECRET)
                or len(secret) < MIN_CONSOLE_SECRET_LENGTH
            ):
                raise ValueError(
                    f"DOUDI_CONSOLE_SECRET must be set to a secret of {MIN_CONSOLE_SECRET_LENGTH} "
                    "or more characters outside DOUDI_ENVIRONMENT=local"
                )
        return self

    @property
    def secure_cookies(self) -> bool:
        if self.console_secure_cookies is None:
            return self.environment != "local"
        return self.console_secure_cookies

    @property
    def listen_port(self) -> int:
        """The port to bind: ``DOUDI_PORT``, 8000 when unset, any free port for 0."""
        return DEFAULT_PORT if self.port is None else self.port

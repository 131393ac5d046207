"""The gateway's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from pydantic import Field

from doudi.common.settings import ProcessSettings

DEFAULT_PORT = 8000


class Settings(ProcessSettings):
    settlement_address: str = "127.0.0.1:50053"
    """Where the settlement service answers: every /v1 call goes there."""
    enrollment_address: str = "127.0.0.1:50051"
    datashare_address: str = "127.0.0.1:50052"
    assistance_address: str = "127.0.0.1:50054"
    """The other services, asked only by ``/healthz``."""
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
    """One log line per HTTP request (uvicorn's access log). Off by default: it costs about
    a third of a simple request's time, every error answered is logged anyway, and every
    call that reaches a service is logged there with the calling hospital."""

    @property
    def listen_port(self) -> int:
        """The port to bind: ``DOUDI_PORT``, 8000 when unset, any free port for 0."""
        return DEFAULT_PORT if self.port is None else self.port

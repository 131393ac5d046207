"""The one settings pattern: each process reads its own ``DOUDI_*`` environment.

Every service and the gateway has a ``Settings`` class derived from
:class:`ProcessSettings`; a deployment gives each process its own environment
(one Kubernetes Deployment each, or ``doudi run`` on one machine), so the
names are flat: ``DOUDI_PORT``, ``DOUDI_DATABASE_URL``,
``DOUDI_SETTLEMENT_ADDRESS``... Outside ``DOUDI_ENVIRONMENT=local`` the
development secrets are refused at start-up.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Known to everyone who reads this file: accepted only with DOUDI_ENVIRONMENT=local.
LOCAL_INTERNAL_TOKEN = "doudi-local-internal-token"
# The demo API keys (`doudi run`'s hospitals and agencies) all begin with this, and are
# refused outside DOUDI_ENVIRONMENT=local.
DEMO_KEY_PREFIX = "demo-"


class ProcessSettings(BaseSettings):
    """What every Doudi process reads."""

    # hide_input_in_errors: a refused value may be a secret (a token, an agency key).
    model_config = SettingsConfigDict(
        env_prefix="DOUDI_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["local", "production"] = "local"
    """``production`` refuses the development secrets below."""
    data_dir: Path = Path("var")
    """Where the embedded default keeps its SQLite files and logs."""
    host: str = "127.0.0.1"
    """The address to listen on; ``0.0.0.0`` in a container."""
    port: int | None = None
    """The port to listen on; unset means the service's default, 0 any free port."""
    port_file: Path | None = None
    """If set, the port actually bound is written here once serving (tests, ``doudi run``)."""
    internal_token: SecretStr = SecretStr(LOCAL_INTERNAL_TOKEN)
    """The bearer token the platform's own services present to each other."""
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 5.0
    """How long in-flight calls may finish after SIGTERM before they are cancelled."""

    @model_validator(mode="after")
    def _no_development_secrets_outside_local(self) -> Self:
        if self.environment != "local":
            token = self.internal_token.get_secret_value()
            if secrets.compare_digest(token, LOCAL_INTERNAL_TOKEN) or len(token) < 24:
                raise ValueError(
                    "DOUDI_INTERNAL_TOKEN must be set to a secret of 24 or more characters "
                    "outside DOUDI_ENVIRONMENT=local"
                )
        return self


class ServiceSettings(ProcessSettings):
    """What every gRPC service reads besides: its own database."""

    database_url: str = ""
    """Any SQLAlchemy URL; empty means the SQLite file ``<data_dir>/<service>.db``."""

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"


class PeerSettings(ServiceSettings):
    """What a service that sends what it owns to other services reads besides (settlement
    sends its settlements to assistance; see doudi.common.outbox)."""

    assistance_address: str = "127.0.0.1:50054"
    """Where the assistance service answers (it watches the burden: docs/domain.md
    section 7)."""
    peer_timeout_seconds: float = 5.0
    """How long one send (a batch of persons or events) to another service may take."""
    delivery_retry_seconds: float = 2.0
    """How often what could not be sent is sent again."""


class SenderSettings(PeerSettings):
    """What a service that sends per-person state to other services reads besides
    (enrollment and datashare; see doudi.common.outbox)."""

    settlement_address: str = "127.0.0.1:50053"
    """Where the settlement service answers."""

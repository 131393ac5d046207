"""The one settings pattern: each process reads its own ``DOUDI_*`` environment.

Every service and the gateway has a ``Settings`` class derived from
:class:`ProcessSettings`; a deployment gives each process its own environment
(one Kubernetes Deployment each, or ``doudi run`` on one machine), so the
names are flat: ``DOUDI_PORT``, ``DOUDI_DATABASE_URL``,
``DOUDI_SETTLEMENT_ADDRESS``... With ``DOUDI_ENVIRONMENT=production`` the
development secrets are refused at start-up, and every setting a deployment must choose
(each peer's address, the database, the secrets, TLS or plaintext) must be set
explicitly: start-up fails naming every one left out (:func:`required_in_production`).
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from pathlib import Path
from typing import ClassVar, Literal, Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from doudi.common.observability import ObservabilitySettings
from doudi.common.tls import TlsSettings

# Known to everyone who reads this file: accepted only with DOUDI_ENVIRONMENT=local.
LOCAL_INTERNAL_TOKEN = "doudi-local-internal-token"


class ProcessSettings(TlsSettings, ObservabilitySettings):
    """What every Doudi process reads (and TLS: doudi.common.tls; logs, metrics and traces:
    doudi.common.observability)."""

    serves_grpc: ClassVar[bool] = False
    """A gRPC service (which must serve TLS in production) rather than a client of them."""
    required_in_production: ClassVar[tuple[str, ...]] = ("internal_token",)
    """The settings a production deployment must set explicitly (each subclass adds its
    own): a default there would be a development value or a guess."""

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
    """The bearer token the platform's own services present to each other (and accept)."""
    accepted_internal_token_digests: list[str] = Field(default_factory=list)
    """During a rotation of the internal token: the SHA-256 digests (hex) of other tokens
    accepted besides DOUDI_INTERNAL_TOKEN (JSON list); never the tokens themselves."""
    grpc_plaintext: bool = False
    """Production without TLS files: set true to say that gRPC runs in plaintext on
    purpose (a service mesh encrypts between the pods)."""
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 5.0
    """How long in-flight calls may finish after SIGTERM before they are cancelled."""

    @model_validator(mode="after")
    def _no_development_secrets_outside_local(self) -> Self:
        for digest in self.accepted_internal_token_digests:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(
                    "DOUDI_ACCEPTED_INTERNAL_TOKEN_DIGESTS holds SHA-256 digests: 64 lower-case "
                    "hex digits each (`doudi admin token digest`)"
                )
        if self.environment != "local":
            missing = [
                f"DOUDI_{name.upper()}"
                for name in self.required_in_production
                if name not in self.model_fields_set
            ]
            if self.serves_grpc and not self.serves_tls:
                tls = "DOUDI_TLS_CERT_FILE and DOUDI_TLS_KEY_FILE"
            elif not self.serves_grpc and not self.connects_with_tls:
                tls = "DOUDI_TLS_CA_FILE"
            else:
                tls = ""
            if tls and "grpc_plaintext" not in self.model_fields_set:
                missing.append(f"{tls} (or DOUDI_GRPC_PLAINTEXT=true)")
            if missing:
                raise ValueError(
                    f"DOUDI_ENVIRONMENT={self.environment} needs these set explicitly: "
                    + ", ".join(missing)
                )
            token = self.internal_token.get_secret_value()
            if secrets.compare_digest(token, LOCAL_INTERNAL_TOKEN) or len(token) < 24:
                raise ValueError(
                    "DOUDI_INTERNAL_TOKEN must be set to a secret of 24 or more characters "
                    "outside DOUDI_ENVIRONMENT=local"
                )
        return self

    @property
    def internal_token_digests(self) -> tuple[bytes, ...]:
        """The digests of every internal token accepted: DOUDI_INTERNAL_TOKEN's first."""
        own = hashlib.sha256(self.internal_token.get_secret_value().encode()).digest()
        return (own, *(bytes.fromhex(digest) for digest in self.accepted_internal_token_digests))


class ServiceSettings(ProcessSettings):
    """What every gRPC service reads besides: its own database."""

    serves_grpc = True
    required_in_production = (*ProcessSettings.required_in_production, "database_url")

    database_url: str = ""
    """Any SQLAlchemy URL; empty means the SQLite file ``<data_dir>/<service>.db``."""
    migrate_on_start: bool = True
    """Bring the database to this release's head at start-up. False where a release's
    migrations run once before its processes start (``python -m services.<name> migrate``:
    Kubernetes' migration Jobs, compose's ``migrate`` service): start-up then only checks
    that the database is there, and stops if it is behind."""
    health_port: int | None = Field(default=None, ge=0, le=65535)
    """A second port, plaintext, that serves the standard health check and nothing else
    (Kubernetes' gRPC probes, which cannot speak TLS); unset: none."""

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"


class PeerSettings(ServiceSettings):
    """What a service that sends what it owns to other services reads besides (settlement
    sends its settlements to assistance; see doudi.common.outbox)."""

    required_in_production = (*ServiceSettings.required_in_production, "assistance_address")

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

    required_in_production = (*PeerSettings.required_in_production, "settlement_address")

    settlement_address: str = "127.0.0.1:50053"
    """Where the settlement service answers."""


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def read_settings(settings_class: type[SettingsT], command: str) -> SettingsT:
    """A process's settings from its environment; if they are refused, a line per refusal
    on stderr naming the setting (never a value: it may be a secret), ``command: error:``
    first, and exit status 2 before anything starts, not a traceback."""
    try:
        return settings_class()
    except ValidationError as error:
        for problem in error.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in problem["loc"])
            name = f"DOUDI_{where.upper()}: " if where else ""
            message = str(problem["msg"]).removeprefix("Value error, ")
            print(f"{command}: error: {name}{message}", file=sys.stderr)
        raise SystemExit(2) from None

"""TLS on the platform's gRPC connections, by setting: certificate files, read once.

Every process (and the ``doudi`` command) reads the same four settings:

- ``DOUDI_TLS_CERT_FILE`` and ``DOUDI_TLS_KEY_FILE``: the process's certificate chain and
  private key (PEM). A service serves TLS with them; as a client it presents them when
  the peer asks for a client certificate (mutual TLS).
- ``DOUDI_TLS_CA_FILE``: the certificate authorities (PEM) a client trusts for the peers'
  certificates, and a server for its clients' certificates.
- ``DOUDI_TLS_CLIENT_AUTH``: ``none`` (default) or ``require``: a server that requires a
  client certificate signed by ``DOUDI_TLS_CA_FILE`` (mutual TLS: the datashare hub for
  its agencies, or every service inside the cluster).

A client uses TLS when any of the files is set, or ``DOUDI_TLS=true`` (an agency's
``doudi`` command against the hub's public address, trusting the system's authorities).
A server started with TLS refuses plaintext connections: gRPC cannot serve both on one
port.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal, Self

import grpc
from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TlsSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOUDI_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    tls: bool | None = None
    """Connect with TLS (unset: when a TLS file below is set)."""
    tls_cert_file: Path | None = None
    """The certificate chain (PEM) a service serves, and presents as a client."""
    tls_key_file: Path | None = None
    """Its private key (PEM)."""
    tls_ca_file: Path | None = None
    """The authorities (PEM) trusted for peers' certificates; unset: the system's."""
    tls_client_auth: Literal["none", "require"] = "none"
    """``require``: a service accepts only clients with a certificate of DOUDI_TLS_CA_FILE."""

    @model_validator(mode="after")
    def _files_agree(self) -> Self:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("DOUDI_TLS_CERT_FILE and DOUDI_TLS_KEY_FILE are set together")
        if self.tls_client_auth == "require" and (
            self.tls_ca_file is None or self.tls_cert_file is None
        ):
            raise ValueError(
                "DOUDI_TLS_CLIENT_AUTH=require needs DOUDI_TLS_CA_FILE (the clients' "
                "authority) and the service's own DOUDI_TLS_CERT_FILE and DOUDI_TLS_KEY_FILE"
            )
        for name, path in (
            ("DOUDI_TLS_CERT_FILE", self.tls_cert_file),
            ("DOUDI_TLS_KEY_FILE", self.tls_key_file),
            ("DOUDI_TLS_CA_FILE", self.tls_ca_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no file {path}")
        return self

    @property
    def serves_tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def connects_with_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return any(path is not None for path in (self.tls_cert_file, self.tls_ca_file))

    @cached_property
    def _pem(self) -> dict[str, bytes | None]:
        def read(path: Path | None) -> bytes | None:
            return None if path is None else path.read_bytes()

        return {
            "cert": read(self.tls_cert_file),
            "key": read(self.tls_key_file),
            "ca": read(self.tls_ca_file),
        }

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """The credentials a service serves with; None: plaintext."""
        if not self.serves_tls:
            return None
        pem = self._pem
        key, cert = pem["key"], pem["cert"]
        assert key is not None
        assert cert is not None
        require = self.tls_client_auth == "require"
        return grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=pem["ca"] if require else None,
            require_client_auth=require,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """The credentials a client connects with; None: plaintext."""
        if not self.connects_with_tls:
            return None
        pem = self._pem
        return grpc.ssl_channel_credentials(
            root_certificates=pem["ca"], private_key=pem["key"], certificate_chain=pem["cert"]
        )

"""What every process reads to be observed, and the one call that sets it up.

* ``DOUDI_LOG_FORMAT``: ``json`` (one JSON object a line) or ``text``; unset: ``json``
  with ``DOUDI_ENVIRONMENT=production``, ``text`` otherwise (doudi.common.logs).
* ``DOUDI_METRICS_PORT``: serve Prometheus metrics at ``http://<DOUDI_HOST>:<port>/metrics``;
  unset or empty: no metrics server (doudi.common.metrics).
* ``DOUDI_OTLP_ENDPOINT``: send traces to this OTLP/gRPC collector
  (``http://collector:4317``); ``DOUDI_TRACE_FILE``: write each finished span to this
  file as a JSON line (tests). Neither: no span is made (doudi.common.tracing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOUDI_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    log_format: Literal["text", "json"] | None = None
    """``json``: one JSON object a log line; ``text``: a line to read. Unset: ``json``
    with DOUDI_ENVIRONMENT=production, ``text`` otherwise."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve Prometheus metrics on this port (at ``/metrics``, on DOUDI_HOST); unset or
    empty: no metrics server."""
    otlp_endpoint: str = ""
    """An OTLP/gRPC collector to send traces to (``http://collector:4317``); the standard
    OTEL_EXPORTER_OTLP_* variables say the rest (headers, certificate, compression).
    Empty: no traces."""
    trace_file: Path | None = None
    """Write each finished span to this file as a JSON line (tests, a look on one machine)."""

    @field_validator("metrics_port", "trace_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    def log_format_in(self, environment: str) -> Literal["text", "json"]:
        """DOUDI_LOG_FORMAT, else ``json`` in production and ``text`` elsewhere."""
        if self.log_format is not None:
            return self.log_format
        return "json" if environment == "production" else "text"


class Observed(Protocol):
    """What :func:`start` reads of a process's settings (doudi.common.settings.ProcessSettings)."""

    @property
    def environment(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def log_level(self) -> str: ...
    @property
    def metrics_port(self) -> int | None: ...
    @property
    def otlp_endpoint(self) -> str: ...
    @property
    def trace_file(self) -> Path | None: ...
    def log_format_in(self, environment: str) -> Literal["text", "json"]: ...


def start(settings: Observed, process: str) -> None:
    """Set up the process's logs, tracing and metrics server (``process``: ``gateway``,
    ``settlement``...). A port that cannot be bound fails start-up."""
    # Imported here, not above: every process's settings derive from this module, the
    # ``doudi`` command's too, which needs neither Prometheus nor OpenTelemetry.
    from doudi.common import metrics, tracing
    from doudi.common.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format_in(settings.environment))
    tracing.configure(
        service=process, otlp_endpoint=settings.otlp_endpoint, trace_file=settings.trace_file
    )
    metrics.serve(settings.host, settings.metrics_port)

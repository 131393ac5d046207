"""The enrollment service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from doudi.common.settings import ServiceSettings

DEFAULT_PORT = 50051


class Settings(ServiceSettings):
    pass

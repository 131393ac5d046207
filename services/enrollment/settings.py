"""The enrollment service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from doudi.common.settings import SenderSettings

DEFAULT_PORT = 50051


class Settings(SenderSettings):
    pass

"""The enrollment service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from doudi.common.settings import SenderSettings

DEFAULT_PORT = 50051


class Settings(SenderSettings):
    required_in_production = (*SenderSettings.required_in_production, "datashare_address")

    datashare_address: str = "127.0.0.1:50052"
    """Where the datashare hub answers: it keeps a copy of the register to compare the
    agencies' rosters with."""
    time_zone: str = "Asia/Shanghai"
    """The bureau's time zone (``DOUDI_TIME_ZONE``): what "today" is for an application's
    date and a monthly batch of certificates."""

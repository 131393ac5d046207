"""The assistance service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from doudi.common.settings import SenderSettings

DEFAULT_PORT = 50054


class Settings(SenderSettings):
    # --- dual early warning: assistance sends the warnings it raises to the hub ---
    datashare_address: str = "127.0.0.1:50052"
    """Where the datashare hub answers (``DOUDI_DATASHARE_ADDRESS``): the agencies decide
    the warnings there."""

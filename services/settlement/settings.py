"""The settlement service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from pathlib import Path

from doudi.common.settings import PeerSettings

DEFAULT_PORT = 50053


class Settings(PeerSettings):
    """Besides its own: where assistance answers, to which it sends each settlement and
    reversal (services/settlement/delivery.py), and how long it waits and retries."""

    timezone: str = "Asia/Shanghai"
    """The bureau's time zone: it decides which business day a settlement is cleared on."""
    packs_dir: Path | None = None
    """Extra policy packs (YAML) beside the shipped ones."""
    hospital_cache_seconds: float = 60.0
    """How long a hospital's registration (and API key) is cached; a revoked key stops
    working within this time."""

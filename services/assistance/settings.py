"""The assistance service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from pathlib import Path

from doudi.common.settings import PeerSettings, ServiceSettings

DEFAULT_PORT = 50054


class Settings(PeerSettings):
    # Its peers are the hub and settlement (it is the assistance service itself).
    required_in_production = (
        *ServiceSettings.required_in_production,
        "datashare_address",
        "settlement_address",
    )

    datashare_address: str = "127.0.0.1:50052"
    """Where the datashare hub answers (``DOUDI_DATASHARE_ADDRESS``): assistance sends it
    the warnings it raises, which the agencies decide there, and the statuses approved
    applications certify."""
    settlement_address: str = "127.0.0.1:50053"
    """Where the settlement service answers (``DOUDI_SETTLEMENT_ADDRESS``): a screening run
    asks it to recompute settled visits under the statuses held now."""
    # --- applications (services/assistance/applications.py) ---
    working_calendar_file: Path | None = None
    """The bureau's holiday table (``DOUDI_WORKING_CALENDAR_FILE``, JSON or YAML in the
    shape of :meth:`doudi.core.workdays.WorkingCalendar.from_table`): the years the State
    Council published after ``chinesecalendar``'s release, or corrections. Unset:
    ``chinesecalendar`` alone. A file that cannot be read stops the start."""
    time_zone: str = "Asia/Shanghai"
    """The bureau's time zone (``DOUDI_TIME_ZONE``): what "today" is for deadlines and
    overdue warnings."""

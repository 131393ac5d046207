"""The assistance service's settings (``DOUDI_*``; see doudi.common.settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from doudi.common.settings import ServiceSettings

DEFAULT_PORT = 50054


class Settings(ServiceSettings):
    # --- applications (services/assistance/applications.py) ---
    working_calendar_file: Path | None = None
    """The bureau's holiday table (``DOUDI_WORKING_CALENDAR_FILE``, JSON or YAML in the
    shape of :meth:`doudi.core.workdays.WorkingCalendar.from_table`): the years the State
    Council published after ``chinesecalendar``'s release, or corrections. Unset:
    ``chinesecalendar`` alone. A file that cannot be read stops the start."""
    time_zone: str = "Asia/Shanghai"
    """The bureau's time zone (``DOUDI_TIME_ZONE``): what "today" is for deadlines."""
    datashare_address: str = "127.0.0.1:50052"
    """Where the hub answers: approving expenditure_hardship certifies it there."""
    peer_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long one call to the hub may take."""
    delivery_retry_seconds: float = Field(default=2.0, gt=0)
    """How often a status the hub did not take is sent again."""

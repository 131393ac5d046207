"""What several pages read from a request: the region and year asked, paging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import Request

from gateway.console import formats
from gateway.console.clients import ConsoleError
from gateway.console.i18n import _

MIN_YEAR: Final = 2000
MAX_YEAR: Final = 2100


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


def region_choices(request: Request) -> list[Choice]:
    """The regions the platform has policy packs of, by code, with their names; for a clerk
    serving some regions only, those."""
    names: dict[str, str] = request.app.state.region_names
    session = request.state.session
    served = set(session.regions) if session is not None and session.regions else None
    return [
        Choice(code, f"{names[code]} ({code})")
        for code in sorted(names)
        if served is None or code in served
    ]


def year_of(request: Request, name: str = "year") -> int:
    """The year asked (``?year=``), else the bureau's current year."""
    text = request.query_params.get(name, "")
    if not text:
        return formats.today().year
    if not text.isdigit() or not MIN_YEAR <= int(text) <= MAX_YEAR:
        raise ConsoleError(
            422,
            _("The year must be from %(low)d to %(high)d.") % {"low": MIN_YEAR, "high": MAX_YEAR},
            {name: text},
        )
    return int(text)

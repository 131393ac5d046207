"""What several pages read from a request: the region and year asked, paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Final

from fastapi import Path, Request

from gateway.console import formats
from gateway.console.clients import ConsoleError
from gateway.console.i18n import _

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""A record's id in an address: a positive int64, as the services' ids are (anything else
answers 422, never reaches a service)."""

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
    return checked_year(text, name) if text else formats.today().year


def checked_year(text: str, name: str = "year") -> int:
    """A year typed in a form or an address; 422 unless it is one from MIN_YEAR to
    MAX_YEAR."""
    text = text.strip()
    if not text.isdigit() or not MIN_YEAR <= int(text) <= MAX_YEAR:
        raise ConsoleError(
            422,
            _("The year must be from %(low)d to %(high)d.") % {"low": MIN_YEAR, "high": MAX_YEAR},
            {name: text[:8]},
        )
    return int(text)


def checked_region(request: Request, region: str) -> str:
    """A region typed or chosen (empty stays empty); 422 unless it is one the platform has
    packs of and the user serves."""
    if region and region not in {choice.value for choice in region_choices(request)}:
        raise ConsoleError(
            422, _("Unknown region %(region)s.") % {"region": region[:8]}, {"region": region[:8]}
        )
    return region


def form_date(text: str, name: str, errors: dict[str, str]) -> date | None:
    """A date typed in a form (``YYYY-MM-DD``); None, with the field's error in ``errors``,
    when it is not one."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        errors[name] = _("Not a date (YYYY-MM-DD).")
        return None


def no_region() -> str:
    """A form's region left empty: 422."""
    raise ConsoleError(422, _("Choose a region."), {"region": ""})

"""The console's views, one module per menu entry; :data:`ROUTERS` is what the console
mounts."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.console.pages import (
    applications,
    auth,
    dashboard,
    packs,
    persons,
    rosters,
    screening,
    secondary,
    settlements,
    warnings,
)

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    dashboard.router,
    warnings.router,
    persons.router,
    applications.router,
    secondary.router,
    screening.router,
    rosters.router,
    settlements.router,
    packs.router,
)

"""Who may do what in the console: the roles and their permissions, in one table.

The bureau's staff: case workers (applications at the window, warnings followed,
secondary and screening runs prepared, offers confirmed), analysts (the figures),
supervisors (what case workers do, and approving secondary runs with their bank
files), administrators (accounts and policy packs). Agency clerks (civil affairs,
the poverty office, the trade union) see their agency's warnings, rosters and
persons only, and decide warnings; the datashare service limits what they read
exactly as it limits their agency's key (the console calls it as the clerk's
account, :mod:`gateway.console.clients`).
"""

from __future__ import annotations

from typing import Final

ROLES: Final = ("case_worker", "analyst", "supervisor", "administrator", "agency_clerk")
STAFF: Final = frozenset(ROLES) - {"agency_clerk"}

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    # pages
    "dashboard": STAFF,
    "warnings": frozenset(ROLES),
    "persons": frozenset(ROLES),
    "applications": frozenset({"case_worker", "supervisor", "analyst", "administrator"}),
    "secondary": frozenset({"case_worker", "supervisor", "analyst"}),
    "screening": frozenset({"case_worker", "supervisor", "analyst"}),
    "rosters": frozenset(ROLES),
    "settlements": frozenset({"case_worker", "supervisor", "analyst", "administrator"}),
    "packs": frozenset(ROLES),
    # actions
    "decide_warning": frozenset({"agency_clerk"}),
    "accept_application": frozenset({"case_worker", "supervisor"}),
    "decide_application": frozenset({"case_worker", "supervisor"}),
    "create_secondary_run": frozenset({"case_worker", "supervisor"}),
    "approve_secondary_run": frozenset({"supervisor"}),
    "download_bank_file": frozenset({"supervisor"}),
    "run_screening": frozenset({"case_worker", "supervisor"}),
    "confirm_offer": frozenset({"case_worker", "supervisor"}),
    "compare_rosters": frozenset({"case_worker", "supervisor"}),
    # what a page shows
    "full_identity_numbers": frozenset({"case_worker", "supervisor"}),
}


WARNING_AGENCIES: Final = frozenset({"civil_affairs", "poverty_office"})
"""The agencies the dual early warning goes to: the other agencies' clerks have no queue."""
_WARNING_PERMISSIONS: Final = frozenset({"warnings", "decide_warning"})


def may(role: str, permission: str, agency: str = "") -> bool:
    """Whether ``role`` (a clerk: of ``agency``) holds ``permission``; an unknown permission:
    no one."""
    if (
        role == "agency_clerk"
        and permission in _WARNING_PERMISSIONS
        and agency not in WARNING_AGENCIES
    ):
        return False
    return role in PERMISSIONS.get(permission, frozenset())

"""The names people read for the codes the services answer: roles, agencies, statuses,
funds, kinds and states. Each is an English message id, translated when shown
(``{{ _(labels.STATUSES[code]) }}``); a code without a name shows as itself."""

from __future__ import annotations

from typing import Any, Final


def N_(message: str) -> str:  # noqa: N802 (gettext's name for a message marked, not translated)
    """Marks ``message`` for the catalog; translated where it is shown."""
    return message


ROLES: Final = {
    "case_worker": N_("Case worker"),
    "analyst": N_("Analyst"),
    "supervisor": N_("Supervisor"),
    "administrator": N_("Administrator"),
    "agency_clerk": N_("Agency clerk"),
}
AGENCIES: Final = {
    "civil_affairs": N_("Civil affairs"),
    "poverty_office": N_("Poverty office"),
    "trade_union": N_("Trade union"),
    "veteran_cadre_bureau": N_("Veteran cadre bureau"),
    "disabled_persons_federation": N_("Disabled persons' federation"),
    "veterans_affairs": N_("Veterans affairs"),
    "platform": N_("The platform"),
}
STATUSES: Final = {
    "extreme_poverty": N_("Extreme poverty support"),
    "dibao": N_("Minimum living allowance (dibao)"),
    "orphan": N_("Orphan"),
    "low_income": N_("Low income / dibao margin"),
    "expenditure_hardship": N_("Hardship from medical expenses"),
    "unsupported_child": N_("De facto unsupported child"),
    "marginal": N_("Marginal family"),
    "registered_poor": N_("Registered poor household"),
    "poverty_exited": N_("Household out of poverty"),
    "at_risk": N_("At risk of (returning to) poverty"),
    "difficult_worker": N_("Worker in difficulty"),
    "retired_cadre": N_("Retired cadre"),
    "severely_disabled": N_("Severely disabled"),
    "entitled_group": N_("Entitled group (veterans and families)"),
    "monitored": N_("Monitored persons (any status)"),
}
FUNDS: Final = {
    "310100": N_("Employees' basic pooling fund"),
    "310200": N_("Employees' personal account"),
    "320100": N_("Civil servants' medical subsidy"),
    "330100": N_("Employees' large-expense subsidy"),
    "340100": N_("Retired cadres' medical fund"),
    "390100": N_("Residents' basic medical insurance fund"),
    "390200": N_("Residents' critical illness insurance"),
    "610100": N_("Medical assistance fund"),
}
VISIT_TYPES: Final = {
    "": N_("All visits"),
    "inpatient": N_("Inpatient"),
    "outpatient_chronic": N_("Outpatient, chronic disease"),
    "outpatient_major": N_("Outpatient, major disease"),
    "outpatient_general": N_("Outpatient, general"),
    "pharmacy": N_("Pharmacy"),
}
WARNING_KINDS: Final = {
    "impoverishment": N_("Impoverishment (因病致贫)"),
    "return_to_poverty": N_("Return to poverty (因病返贫)"),
}
WARNING_STATES: Final = {
    "raised": N_("Raised"),
    "acknowledged": N_("Acknowledged"),
    "certified": N_("Certified"),
    "dismissed": N_("Dismissed"),
}
APPLICATION_KINDS: Final = {
    "expenditure_hardship": N_("Hardship from medical expenses"),
    "temporary": N_("Temporary assistance"),
    "out_of_area_hardship": N_("Hardship from care out of the area"),
}
APPLICATION_STATES: Final = {
    "accepted": N_("Accepted"),
    "under_review": N_("Under review"),
    "approved": N_("Approved"),
    "refused": N_("Refused"),
}
OFFER_STATES: Final = {
    "offered": N_("Offered"),
    "confirmed": N_("Confirmed"),
    "superseded": N_("Superseded"),
}

COMPARISON_CLASSES: Final = {
    "not_insured": N_("Not insured (the gap)"),
    "insured": N_("Insured here"),
    "insured_elsewhere": N_("Insured in another region"),
    "name_differs": N_("Name differs from the register"),
}
ROSTER_STATES: Final = {
    "receiving": N_("Receiving rows"),
    "current": N_("Current"),
    "superseded": N_("Superseded by a newer roster"),
}
GAP_REASONS: Final = {
    "not_registered": N_("Not in the register"),
    "not_enrolled": N_("Registered, not enrolled"),
}


def enum_code(name: str, prefix: str) -> str:
    """``WARNING_KIND_RETURN_TO_POVERTY`` → ``return_to_poverty``."""
    return name.removeprefix(prefix).lower()


def code_of(message: Any, field: str, prefix: str) -> str:
    """The code of an enum field of a proto message (``kind`` → ``return_to_poverty``);
    empty when unset or a value this build does not know."""
    number = getattr(message, field)
    values = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number
    if not number or number not in values:
        return ""
    return enum_code(values[number].name, prefix)

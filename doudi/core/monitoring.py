"""Watching the burden (docs/domain.md section 7): the rules a pack's ``monitoring`` section
gives, and the arithmetic of the dual early warning and of secondary assistance.

Pure functions of integer fen: the assistance service applies them to its ledger of
burdens. A household's burden *passes* a line when it goes from at most the line to
above it (a settlement, a bill entered, a reversal undone); a warning is raised then,
once per household, kind and year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from doudi.core.money import BasisPoints, Fen, apply_ratio

RETURN_TO_POVERTY: Final = "return_to_poverty"
"""因病返贫: a household that left poverty, or holds a monitored status."""
IMPOVERISHMENT: Final = "impoverishment"
"""因病致贫: any other insured household."""
WARNING_KINDS: Final = (IMPOVERISHMENT, RETURN_TO_POVERTY)
WARNING_KIND_NAMES: Final = {IMPOVERISHMENT: "因病致贫", RETURN_TO_POVERTY: "因病返贫"}
"""Each warning kind's name, as the bureau and the agencies say it."""
APPLICATION_KIND_NAMES: Final = {
    "expenditure_hardship": "支出型重病",
    "temporary": "临时救助",
    "out_of_area_hardship": "异地就医未转诊困难",
}
"""What one applies for at the window (依申请救助, docs/domain.md section 7), by name."""


@dataclass(frozen=True, slots=True)
class MonitoringRules:
    """A pack's figures for watching the burden; each cited or assumed in the pack."""

    reference_income_fen: Fen
    """The province's rural per-capita disposable income of the year before."""
    reference_year: int
    return_to_poverty_share: BasisPoints
    """Of the reference income: the line of a 因病返贫 warning."""
    return_to_poverty_statuses: frozenset[str]
    """A member holding one of these makes the household's warning 因病返贫."""
    impoverishment_share: BasisPoints
    """Of the reference income: the line of a 因病致贫 warning."""
    overdue_days: int
    """A warning undecided this many days after it was raised is overdue."""
    secondary_statuses: frozenset[str]
    """Who may receive secondary assistance (二次救助)."""
    secondary_threshold_fen: Fen
    secondary_share: BasisPoints
    """Of the yearly eligible burden above the threshold."""
    secondary_yearly_cap_fen: Fen

    def warning_kind(self, household_statuses: frozenset[str]) -> str:
        """The kind of warning a household's burden is watched for, by the statuses its
        members hold (or held: a poverty status that ended counts as 脱贫)."""
        if household_statuses & self.return_to_poverty_statuses:
            return RETURN_TO_POVERTY
        return IMPOVERISHMENT

    def warning_line(self, kind: str) -> Fen:
        """The yearly household burden above which a warning of ``kind`` is raised."""
        share = (
            self.return_to_poverty_share if kind == RETURN_TO_POVERTY else self.impoverishment_share
        )
        return apply_ratio(self.reference_income_fen, share)

    def secondary_owed(self, eligible_burden_fen: Fen) -> Fen:
        """Secondary assistance owed for a year's eligible burden: the share of the part
        above the threshold, up to the yearly cap (what earlier runs paid not deducted)."""
        above = eligible_burden_fen - self.secondary_threshold_fen
        if above <= 0:
            return 0
        return min(apply_ratio(above, self.secondary_share), self.secondary_yearly_cap_fen)


def passes(before_fen: Fen, after_fen: Fen, line_fen: Fen) -> bool:
    """Whether a burden going from ``before_fen`` to ``after_fen`` passes ``line_fen``."""
    return before_fen <= line_fen < after_fen


# --- the bureau's day (dual early warning: when a warning is overdue) ------------------

BUREAU_TIMEZONE: Final = ZoneInfo("Asia/Shanghai")


def bureau_day(moment: datetime) -> date:
    """The bureau's calendar day of ``moment`` (a naive moment is UTC, as stored)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(BUREAU_TIMEZONE).date()


def warning_due_on(raised_at: datetime, overdue_days: int) -> date:
    """The first day a warning raised at ``raised_at`` is overdue if still undecided:
    ``overdue_days`` after the bureau's day it was raised."""
    return bureau_day(raised_at) + timedelta(days=overdue_days)

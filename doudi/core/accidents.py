"""Accident cover (意外伤害附加保险, docs/domain.md section 6): what a pack's ``accident_cover``
section says, when a claim's window closes and what a decided claim pays.

Pure functions of integer fen and dates: the settlement service keeps the claims and
applies these (services/settlement/accidents.py). A pack's section is read by
``doudi.core.packs.accident_cover``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from doudi.core.money import Fen

DEATH: Final = "death"
"""意外身故: a fixed sum, once per person, ever."""
MEDICAL: Final = "medical"
"""意外医疗: the costs on the receipts, up to the pack's cap per claim."""
ACCIDENT_KINDS: Final = (DEATH, MEDICAL)
ACCIDENT_KIND_NAMES: Final = {DEATH: "意外身故", MEDICAL: "意外医疗"}
"""Each kind of claim as the bureau's clerks say it."""


@dataclass(frozen=True, slots=True)
class AccidentCover:
    """A pack's accident cover; each figure cited or assumed in the pack."""

    fund: str
    """The paying insurer: one of the pack's own funds (a commercial insurer)."""
    schemes: frozenset[str]
    """Whose accidents it covers: the persons of the region insured in these schemes on
    the event's day."""
    death_fen: Fen
    """What an accidental death pays."""
    medical_cap_fen: Fen
    """The most one claim for accidental medical costs pays."""
    claim_within_years: int
    """How many years after the event a claim is accepted (追溯期)."""

    def payable(self, kind: str, claimed_fen: Fen) -> Fen:
        """What an approved claim pays: the fixed sum for a death; the costs claimed, up to
        the cap, for medical costs."""
        if kind == DEATH:
            return self.death_fen
        return min(claimed_fen, self.medical_cap_fen)

    def window_closes(self, event_date: date) -> date:
        """The last day a claim for an event on ``event_date`` is accepted (see
        :func:`last_day_within`)."""
        return last_day_within(event_date, self.claim_within_years)


def last_day_within(start: date, years: int) -> date:
    """The last day of a period of ``years`` years that starts the day after ``start``:
    the same day ``years`` later, or the month's last day where that day does not exist
    (an event on 29 February: 28 February). The Civil Code counts periods so (民法典 第201
    条: the first day is not counted; 第202条: the period ends on the corresponding day of
    its last month, or that month's last day without one)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:  # 29 February in a common year
        return date(start.year + years, 2, 28)

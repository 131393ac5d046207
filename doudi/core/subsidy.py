"""Subsidised enrolment (资助参保, docs/domain.md section 5): which premium a certified-poor person
is enrolled with, and the part the medical-assistance fund pays.

The figures are the region's policy pack's (its ``enrolment_subsidy`` section, read by
``doudi.core.packs.subsidy_categories``). The premium is the person's PERSONAL premium
(个人缴费) for the year; the government's per-head subsidy to the scheme is not the
assistance fund's and is not counted.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from doudi.core.packs import SubsidyCategory, subsidy_categories
from doudi.core.policy import Pack


@dataclass(frozen=True, slots=True)
class SubsidisedPremium:
    """A person's subsidised enrolment for the year; the person pays
    ``premium_fen - subsidy_fen`` (``personal_fen``)."""

    category: str
    """The pack's category id."""
    name: str
    """Its Chinese name."""
    tier: str | None
    """The resident tier (``doudi.core.codes.TIERS``) enrolled at, or None (no tiers)."""
    premium_fen: int
    """The person's personal premium for the year, in fen."""
    subsidy_fen: int
    """The part the assistance fund pays, in fen (at most ``premium_fen``)."""

    @property
    def personal_fen(self) -> int:
        """What the person still pays."""
        return self.premium_fen - self.subsidy_fen


def subsidised_premium(pack: Pack, statuses: Collection[str]) -> SubsidisedPremium | None:
    """The category of ``pack`` that applies to a person holding ``statuses`` (status codes,
    ``doudi.core.codes.STATUSES``): of those that apply, the one with the largest subsidy,
    the earlier in the pack on a tie. None when none applies or the pack has no section.
    """
    chosen: SubsidyCategory | None = None
    for category in subsidy_categories(pack):
        if category.applies_to(statuses) and (
            chosen is None or category.subsidy_fen > chosen.subsidy_fen
        ):
            chosen = category
    if chosen is None:
        return None
    return SubsidisedPremium(
        category=chosen.id,
        name=chosen.name,
        tier=chosen.tier,
        premium_fen=chosen.premium_fen,
        subsidy_fen=chosen.subsidy_fen,
    )

"""Employees' personal accounts (职工个人账户, docs/domain.md section 5): the rules a pack's
``personal_account`` section gives, and the arithmetic the settlement service applies.

An account has two pots: ``card`` (the share of the year's credit moved to the social
security card month by month, Tianjin) and ``account`` (the rest). Every amount is integer
fen; every function here is pure, so the service's ledger and these rules cannot disagree
on a fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from doudi.core.money import BasisPoints, Fen, apply_ratio

MONTHS: Final = 12


@dataclass(frozen=True, slots=True)
class HealthProduct:
    """A commercial health product of the bureau's approved catalogue (Linzhi), bought with
    personal-account money."""

    id: str
    name: str
    insurer: str
    premium_fen: Fen


@dataclass(frozen=True, slots=True)
class PersonalAccountRules:
    """A pack's personal-account rules; each figure cited or assumed in the pack."""

    card_share: BasisPoints | None
    """Of the year's credit: the part moved to the card month by month (None: none, the
    whole credit goes to the account at once)."""
    withdrawal_above_fen: Fen | None
    """The year's inpatient costs above which the whole balance may be withdrawn once
    (None: no withdrawal)."""
    products: tuple[HealthProduct, ...]
    """The approved catalogue of health products (empty: none to buy)."""

    def product(self, product_id: str) -> HealthProduct | None:
        return next((product for product in self.products if product.id == product_id), None)

    def split_credit(self, amount_fen: Fen) -> tuple[Fen, Fen]:
        """A year's credit as (to the account now, to the card over the year): the card's
        part is the share rounded half-up to the fen, the account takes the rest, so the
        two add up to the credit exactly."""
        card = 0 if self.card_share is None else apply_ratio(amount_fen, self.card_share)
        return amount_fen - card, card


def monthly_card_part(card_fen: Fen, month: int) -> Fen:
    """What month ``month`` (1-12) moves to the card of a year's card part ``card_fen``: a
    twelfth rounded down, and December the remainder, so that the twelve add up to the
    card part exactly whatever order the months are run in."""
    if not 1 <= month <= MONTHS:
        raise ValueError(f"a month is 1 to 12, got {month}")
    twelfth = card_fen // MONTHS
    return card_fen - (MONTHS - 1) * twelfth if month == MONTHS else twelfth


def draw(amount_fen: Fen, card_fen: Fen, account_fen: Fen) -> tuple[Fen, Fen]:
    """What paying up to ``amount_fen`` takes from each pot, card first (assumed: the money
    already on the card is spent before the account's): (from the card, from the account),
    together at most the balance."""
    from_card = min(amount_fen, card_fen)
    return from_card, min(amount_fen - from_card, account_fen)

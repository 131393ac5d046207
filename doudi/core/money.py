"""Money is integer fen (分), everywhere; ratios are integer basis points (万分之一).

One convention for the whole platform: an ``int`` amount of fen. Yuan appear
only at the edges (policy packs, the national settlement summary), converted
here exactly, never through a float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TypeAlias

Fen: TypeAlias = int
"""An amount of money in fen (1 yuan = 100 fen). Never a float."""

BasisPoints: TypeAlias = int
"""A ratio in basis points: 80% is 8000."""

FEN_PER_YUAN = 100
FULL_RATIO: BasisPoints = 10_000

MAX_ITEM_FEN: Fen = 10**10
"""The largest amount one line of a bill may carry: 100 million yuan (1亿元), thousands of
times any real item. Any other single amount the platform takes (a premium) is bounded by
it too."""
MAX_BILL_FEN: Fen = 10**11
"""The largest total one bill may carry: 1 billion yuan (10亿元). With it every amount the
platform derives from a bill (layers, self-pay, clearing records) is at most 10^11 fen, and
sums of them stay far inside 64 bits (2^63 - 1 is about 9.2 x 10^18): a day's clearing of
one fund at one hospital would need more than 92 million bills at the limit to overflow."""


def round_half_up(numerator: int, denominator: int) -> Fen:
    """``numerator / denominator`` rounded half-up to an integer (both non-negative)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator and a positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def apply_ratio(amount: Fen, ratio: BasisPoints) -> Fen:
    """``amount x ratio``, rounded half-up to the fen."""
    return round_half_up(amount * ratio, FULL_RATIO)


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool | float):
        raise ValueError(f"{what} must be an integer or a quoted decimal, not {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what} is not a number: {value!r}") from None
        if not parsed.is_finite():
            raise ValueError(f"{what} is not a finite number: {value!r}")
        return parsed
    raise ValueError(f"{what} must be a number, not {type(value).__name__}")


def yuan_to_fen(value: object) -> Fen:
    """Exact yuan (an int or a decimal string such as ``"12.50"``) to fen.

    More than two decimals is an error, and so is a float."""
    amount = _decimal(value, "an amount in yuan") * FEN_PER_YUAN
    if amount != amount.to_integral_value():
        raise ValueError(f"{value!r} yuan is not a whole number of fen")
    return int(amount)


def percent_to_basis_points(value: object) -> BasisPoints:
    """A percentage (int or decimal string such as ``"72.5"``) to basis points."""
    points = _decimal(value, "a percentage") * 100
    if points != points.to_integral_value():
        raise ValueError(f"{value!r}% is finer than a basis point")
    return int(points)


def fen_to_yuan(amount: Fen) -> str:
    """Fen as yuan with two decimals, as the national settlement message has them."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), FEN_PER_YUAN)
    return f"{sign}{whole}.{cents:02d}"


def format_yuan(amount: Fen) -> str:
    """Fen as yuan for people to read: two decimals, thousands separated (``-1,234.50``)."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), FEN_PER_YUAN)
    return f"{sign}{whole:,}.{cents:02d}"


def format_percent(ratio: BasisPoints) -> str:
    """Basis points as a percentage for people: ``80%``, ``72.5%``."""
    whole, rest = divmod(ratio, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}".rstrip("0") + "%"

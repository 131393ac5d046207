"""A policy pack once loaded: layers, rules, deductibles, bands, caps (DOMAIN.md section 6).

Everything a pack says is turned by ``doudi.core.packs`` into the small objects
below, whose numbers are already in fen and basis points and whose choices
(by hospital level, scheme, age, n-th stay, status) are compiled into
functions of a ``VisitContext``. The engine only evaluates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from doudi.core.model import Person, StatusPeriod, Visit
from doudi.core.money import BasisPoints, Fen


@dataclass(slots=True)
class VisitContext:
    """What rules may depend on, for one visit of one person (computed once per visit)."""

    person: Person
    visit: Visit
    day: date
    year: int
    scheme: str
    employment: str | None
    tier: str | None
    age: int
    level: int | None
    visit_type: str
    out_of_area: bool
    referred: bool
    statuses: frozenset[str]
    nth_stay: int
    outpatient_costs: Mapping[int, Fen]
    """In-scope outpatient costs of earlier years, for the years that are known."""

    def status_periods(self, code: str) -> list[StatusPeriod]:
        return [s for s in self.person.statuses if s.code == code]


IntSelector = Callable[[VisitContext], int]
StrSelector = Callable[[VisitContext], str]
Condition = Callable[[VisitContext], bool]


@dataclass(frozen=True, slots=True)
class Described:
    """A compiled condition with the words to explain it."""

    test: Condition
    text: str


@dataclass(frozen=True, slots=True)
class QuietYearReductions:
    """Tianjin: the yearly outpatient deductible is lowered after years whose outpatient
    costs stayed at or under it (1, 2, 3+ years in a row: 100, 200, 300)."""

    by_years: tuple[Fen, ...]  # index i: reduction after i+1 quiet years; the last for more

    def reduction(self, ctx: VisitContext, unreduced: Fen) -> tuple[Fen, int]:
        quiet = 0
        year = ctx.year - 1
        costs = ctx.outpatient_costs
        while year in costs and costs[year] <= unreduced:
            quiet += 1
            year -= 1
        if quiet == 0:
            return 0, 0
        return self.by_years[min(quiet, len(self.by_years)) - 1], quiet


@dataclass(frozen=True, slots=True)
class LowOutpatientYearDeductible:
    """Tianjin employees: if last year's outpatient costs stayed at or under a threshold,
    the inpatient deductible is replaced (first stay 500, later stays none)."""

    threshold: IntSelector
    amount: IntSelector

    def applies(self, ctx: VisitContext) -> bool:
        last = ctx.outpatient_costs.get(ctx.year - 1)
        return last is not None and last <= self.threshold(ctx)


@dataclass(frozen=True, slots=True)
class Deductible:
    """起付线: per visit or per year (the rule's period)."""

    amount: IntSelector
    after_low_outpatient_year: LowOutpatientYearDeductible | None = None
    quiet_year_reductions: QuietYearReductions | None = None

    def evaluate(self, ctx: VisitContext) -> tuple[Fen, str]:
        """The deductible for this visit and, when a reduction applied, why."""
        low = self.after_low_outpatient_year
        if low is not None and low.applies(ctx):
            return low.amount(ctx), "lowered: last year's outpatient costs were low"
        amount = self.amount(ctx)
        quiet = self.quiet_year_reductions
        if quiet is not None:
            cut, years = quiet.reduction(ctx, amount)
            if cut:
                return max(0, amount - cut), f"lowered by {cut} fen after {years} quiet year(s)"
        return amount, ""


@dataclass(frozen=True, slots=True)
class Band:
    """The part of the base from ``lower`` up to the next band's lower bound pays ``ratio``."""

    lower: Fen
    ratio: IntSelector


@dataclass(frozen=True, slots=True)
class Adjustment:
    """Ratio points added (or taken) when a condition holds (e.g. +5 for dibao)."""

    when: Described
    points: BasisPoints


@dataclass(frozen=True, slots=True)
class Cap:
    """封顶线: the most a layer pays per visit or per year, optionally raised by the
    carried-over outpatient quota (Tianjin)."""

    id: str
    per_year: bool
    amount: IntSelector
    plus_carried_quota: bool
    accumulator: str  # yearly ledger key of what the layer paid against this cap


@dataclass(frozen=True, slots=True)
class Rule:
    """How a layer pays for some visit types (and, optionally, some people)."""

    id: str
    visit_types: frozenset[str]
    when: Described | None
    yearly: bool
    deductible: Deductible | None
    bands: tuple[Band, ...]
    adjustments: tuple[Adjustment, ...]
    caps: tuple[Cap, ...]
    accumulator: str  # yearly ledger key of this rule's base


@dataclass(frozen=True, slots=True)
class Layer:
    """One protection layer of the one-window settlement (基本医保, 大病保险, 医疗救助 ...)."""

    id: str
    name: str
    fund: StrSelector
    eligible: Described | None
    in_force_from: date | None
    whole_remainder: bool  # base: the whole remainder, else the in-scope remainder
    rules: tuple[Rule, ...]

    def rule_for(self, ctx: VisitContext) -> Rule | None:
        for rule in self.rules:
            if ctx.visit_type in rule.visit_types and (rule.when is None or rule.when.test(ctx)):
                return rule
        return None


@dataclass(frozen=True, slots=True)
class DiseaseClass:
    id: str
    name: str
    matches: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class InstantPayout:
    """A fixed sum paid at first diagnosis, outside the settlement (Linzhi 重病就医前置保障)."""

    id: str
    name: str
    fund: str
    eligible: Described | None
    amount: IntSelector
    classes: tuple[DiseaseClass, ...]


@dataclass(frozen=True, slots=True)
class Pack:
    """A region's rules for a period: in force from ``effective_from`` until a newer
    pack of the same region starts."""

    id: str
    region_code: str
    region_name: str
    title: str
    effective_from: date
    file: str
    class_b_pre_self_pay: BasisPoints
    layers: tuple[Layer, ...]
    outpatient_quota: IntSelector | None
    payouts: tuple[InstantPayout, ...]
    funds: Mapping[str, str]
    document: Mapping[str, Any] = field(repr=False, compare=False)

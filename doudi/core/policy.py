"""A policy pack once loaded: layers, rules, deductibles, bands, caps (docs/domain.md section 6).

Everything a pack says is turned by ``doudi.core.packs`` into the small objects
below, whose numbers are already in fen and basis points and whose choices
(by hospital level, scheme, age, n-th stay, status) are compiled into
functions of a ``VisitContext``. The engine only evaluates them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from doudi.core.codes import VISIT_TYPES
from doudi.core.model import Person, StatusPeriod, Visit
from doudi.core.money import BasisPoints, Fen


class VisitContext(NamedTuple):
    """What rules may depend on, for one visit of one person (computed once per visit;
    a tuple because it is built on every settlement)."""

    person: Person
    visit: Visit
    day: date
    year: int
    scheme: str
    employment: str | None
    tier: str | None
    level: int | None
    visit_type: str
    out_of_area: bool
    referred: bool
    statuses: frozenset[str]
    nth_stay: int
    outpatient_costs: Mapping[int, Fen]
    """In-scope outpatient costs of earlier years, for the years that are known."""
    reformed: bool = False
    """The hospital is a level-2 one of the public-hospital reform (Tianjin)."""

    @property
    def age(self) -> int:
        """Completed years of age on the visit's date, from the identity number."""
        return self.person.resident_id.age_on(self.day)

    def status_periods(self, code: str) -> list[StatusPeriod]:
        return [s for s in self.person.statuses if s.code == code]


IntSelector = Callable[[VisitContext], int]
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

    @property
    def selector(self) -> IntSelector:
        """The function that gives a visit's deductible: the plain amount when nothing lowers it."""
        if self.after_low_outpatient_year is None and self.quiet_year_reductions is None:
            return self.amount
        return self.evaluate

    def evaluate(self, ctx: VisitContext) -> Fen:
        """The deductible for this visit."""
        low = self.after_low_outpatient_year
        if low is not None and low.applies(ctx):
            return low.amount(ctx)
        amount = self.amount(ctx)
        quiet = self.quiet_year_reductions
        if quiet is not None:
            cut = quiet.reduction(ctx, amount)[0]
            if cut:
                return amount - cut if amount > cut else 0
        return amount

    def why(self, ctx: VisitContext) -> str:
        """Why this visit's deductible differs from the plain one ("" when it does not)."""
        low = self.after_low_outpatient_year
        if low is not None and low.applies(ctx):
            return "lowered: last year's outpatient costs were low"
        if self.quiet_year_reductions is not None:
            cut, years = self.quiet_year_reductions.reduction(ctx, self.amount(ctx))
            if cut:
                return (
                    f"lowered by {cut} fen after {years} year(s) of outpatient costs at or under it"
                )
        return ""


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
    deductible_of: IntSelector = field(default=lambda ctx: 0)
    """This visit's deductible: a fixed number, a choice, or the deductible with its reductions."""
    flat_ratio: IntSelector | None = None
    """The one ratio, when the rule has a ratio rather than bands."""
    schedule: BandSchedule | None = None
    """The bands precomputed, when the deductible and ratios are the same for everyone."""
    yearly_cap_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(cap.accumulator for cap in self.caps if cap.per_year)
        object.__setattr__(self, "yearly_cap_keys", keys)


@dataclass(frozen=True, slots=True)
class BandSchedule:
    """``f(x)`` of fixed bands above a fixed deductible, as cumulative sums: for ``x`` in
    band ``i``, ``f(x) = totals[i] + (x - starts[i]) x ratios[i]`` (fen x basis points)."""

    deductible: Fen
    starts: tuple[Fen, ...]
    totals: tuple[int, ...]
    ratios: tuple[BasisPoints, ...]

    @classmethod
    def build(
        cls, deductible: Fen, lowers: tuple[Fen, ...], ratios: tuple[BasisPoints, ...]
    ) -> BandSchedule:
        starts: list[Fen] = []
        kept: list[BasisPoints] = []
        totals: list[int] = []
        running = 0
        for index, lower in enumerate(lowers):
            start = max(lower, deductible)
            end = lowers[index + 1] if index + 1 < len(lowers) else None
            if end is not None and end <= start:
                continue
            if starts:
                running += (start - starts[-1]) * kept[-1]
            starts.append(start)
            kept.append(ratios[index])
            totals.append(running)
        return cls(deductible, tuple(starts), tuple(totals), tuple(kept))

    def value(self, x: Fen) -> int:
        """``f(x)`` in fen x basis points (round it half-up to the fen)."""
        index = bisect_right(self.starts, x) - 1
        if index < 0:
            return 0
        return self.totals[index] + (x - self.starts[index]) * self.ratios[index]


@dataclass(frozen=True, slots=True)
class Layer:
    """One protection layer of the one-window settlement (基本医保, 大病保险, 医疗救助 ...)."""

    id: str
    name: str
    fund: Mapping[str, str]
    """The paying fund for each scheme (the same code for both when it does not differ)."""
    eligible: Described | None
    in_force_from: date | None
    whole_remainder: bool  # base: the whole remainder, else the in-scope remainder
    rules: tuple[Rule, ...]
    rules_by_type: Mapping[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_type: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            for visit_type in rule.visit_types:
                by_type[visit_type] = (*by_type.get(visit_type, ()), rule)
        object.__setattr__(self, "rules_by_type", by_type)


@dataclass(frozen=True, slots=True)
class DiseaseClass:
    id: str
    name: str
    matches: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class CertifiedDisease:
    """A disease an outpatient certificate may name (门诊慢性病 / 门诊特殊病 病种): its ICD-10
    codes, and the kind of certificate (``chronic`` or ``special``)."""

    id: str
    name: str
    kind: str
    codes: tuple[str, ...]
    matches: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class CertificateRules:
    """How a region certifies outpatient diseases (docs/domain.md section 5): the diseases
    of each kind, how many one application may name, how long a certificate lasts."""

    diseases: Mapping[str, CertifiedDisease]
    """By id, in the pack's order."""
    max_diseases_per_application: int
    validity_years: int
    kinds: frozenset[str] = field(init=False, repr=False, compare=False)
    """The kinds the pack lists diseases of: only visits of these kinds are checked."""

    def __post_init__(self) -> None:
        kinds = frozenset(disease.kind for disease in self.diseases.values())
        object.__setattr__(self, "kinds", kinds)

    def disease_of(self, kind: str, code: str) -> CertifiedDisease | None:
        """The first disease of ``kind`` whose codes take the ICD-10 ``code``."""
        for disease in self.diseases.values():
            if disease.kind == kind and disease.matches(code):
                return disease
        return None


@dataclass(frozen=True, slots=True)
class NoDepositRule:
    """Who is admitted without a deposit, and why (Xixia's poverty window; Jiangsu's treat
    first, pay later): a condition on an admission's context."""

    id: str
    reason: str
    when: Described


@dataclass(frozen=True, slots=True)
class InstantPayout:
    """A fixed sum paid at first diagnosis, outside the settlement (Linzhi 重病就医前置保障)."""

    id: str
    name: str
    fund: str
    eligible: Described | None
    in_force_from: date | None
    """Diagnoses discharged (outpatient: seen) before it pay nothing and use up no class."""
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
    certificates: CertificateRules | None = None
    """The region's outpatient certificates; None: visit types are trusted."""
    no_deposit: tuple[NoDepositRule, ...] = ()
    """Who is admitted without a deposit (the first rule that holds says why)."""
    layer_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    layer_funds: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    """For each scheme, the fund of every layer in order."""

    covering: Mapping[str, tuple[tuple[int, Layer, tuple[Rule, ...]], ...]] = field(
        init=False, repr=False, compare=False
    )
    """For each visit type, the layers with a rule for it: (position, layer, its rules)."""
    uncovering: Mapping[str, tuple[tuple[int, Layer], ...]] = field(
        init=False, repr=False, compare=False
    )
    """For each visit type, the layers without a rule for it: (position, layer)."""
    engine_memo: dict[object, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """What the engine derives from the pack once, for itself: an explanation's unchanging parts
    (a layer that does not apply, a fixed band's row), built at the first visit that needs them."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_ids", tuple(layer.id for layer in self.layers))
        covering = {
            visit_type: tuple(
                (index, layer, layer.rules_by_type[visit_type])
                for index, layer in enumerate(self.layers)
                if visit_type in layer.rules_by_type
            )
            for visit_type in VISIT_TYPES
        }
        object.__setattr__(self, "covering", covering)
        uncovering = {
            visit_type: tuple(
                (index, layer)
                for index, layer in enumerate(self.layers)
                if visit_type not in layer.rules_by_type
            )
            for visit_type in VISIT_TYPES
        }
        object.__setattr__(self, "uncovering", uncovering)
        schemes = {scheme for layer in self.layers for scheme in layer.fund}
        object.__setattr__(
            self,
            "layer_funds",
            {scheme: tuple(layer.fund[scheme] for layer in self.layers) for scheme in schemes},
        )

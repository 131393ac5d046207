"""The one-window calculation (一站式结算): every layer of a pack, in order, on one visit.

``settle_visit`` is a pure function of the pack, the person, the visit and
what the person's year had accumulated before it (a ``LedgerView``). It
returns each layer's payment, the patient's remainder and the increments to
the yearly accumulators; the caller stores them (the CLI in a ``PersonLedger``
in memory, the settlement service in its database, in one transaction).

The rules of docs/domain.md section 6 that every pack obeys live here:

* costs split into class C, over-limit, class B pre-payment and in-scope;
* each layer's base is what the earlier layers left (in-scope or whole);
* a per-visit layer pays ``round_half_up(f(b))``; a yearly one pays
  ``round_half_up(f(A + b)) - round_half_up(f(A))``, so split bills pay the same;
* caps clip last; the clipped part stays with the patient for the next layer;
* ``total = Σ layers + self_pay`` exactly, to the fen.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, NamedTuple

from doudi.core.codes import (
    CERTIFIED_VISIT_TYPES,
    INPATIENT,
    OUTPATIENT_TYPES,
    PHARMACY,
    VISIT_TYPES,
)
from doudi.core.model import Item, Person, Visit
from doudi.core.money import (
    FULL_RATIO,
    BasisPoints,
    Fen,
    apply_ratio,
    format_percent,
    round_half_up,
)
from doudi.core.policy import Band, Layer, Pack, Rule, VisitContext

STAYS = "stays"
"""Yearly ledger key: inpatient stays settled in the year (for n-th stay deductibles)."""
GENERAL_OUTPATIENT = "outpatient_general"
OUTPATIENT_COST = "outpatient_cost"
"""Yearly ledger key: in-scope cost of outpatient visits (pharmacy excluded)."""


_new_tuple = tuple.__new__
"""Builds a NamedTuple from a tuple of its fields, skipping its keyword-handling ``__new__``
(the settlement path builds three per visit)."""


class VisitCosts(NamedTuple):
    """How a bill splits: total = class C + over-limit + class B pre-payment + in-scope."""

    total_fen: Fen
    class_c_fen: Fen
    over_limit_fen: Fen
    pre_self_pay_fen: Fen
    in_scope_fen: Fen

    @property
    def out_of_scope_fen(self) -> Fen:
        return self.class_c_fen + self.over_limit_fen + self.pre_self_pay_fen


def classify_costs(items: Sequence[Item], class_b_pre_self_pay: BasisPoints) -> VisitCosts:
    """Split line items by the catalogue: 甲类 in scope, 乙类 in scope after the personal
    pre-payment (rounded half-up per item), 丙类 and 超限价 parts out of scope."""
    total = class_c = over = pre = 0
    for item in items:
        amount = item.amount_fen
        total += amount
        over += item.over_limit_fen
        if item.item_class == "C":
            class_c += amount - item.over_limit_fen
        elif item.item_class == "B":
            pre += apply_ratio(amount - item.over_limit_fen, class_b_pre_self_pay)
    return _new_tuple(VisitCosts, (total, class_c, over, pre, total - class_c - over - pre))


class LedgerView(NamedTuple):
    """What the engine reads of a person's history before a visit.

    ``year_totals``: the visit year's accumulators (ledger keys to amounts);
    ``outpatient_costs``: in-scope outpatient costs of earlier years, only the
    years that are known; ``payouts_made``: instant payouts already paid, ever.
    """

    year_totals: Mapping[str, int] = {}
    outpatient_costs: Mapping[int, Fen] = {}
    payouts_made: Set[str] = frozenset()


class LayerPayment(NamedTuple):
    layer: str
    fund: str
    paid_fen: Fen
    explanation: Mapping[str, Any] | None = None


class Payout(NamedTuple):
    """An instant payout made on this visit, outside the settlement equation."""

    benefit: str
    disease_class: str
    fund: str
    diagnosis: str
    paid_fen: Fen

    @property
    def ledger_key(self) -> str:
        return payout_key(self.benefit, self.disease_class)


class VisitSettlement(NamedTuple):
    """One visit settled: what each layer paid, the patient's remainder, and the increments
    to the year's accumulators (``deltas``; a reversal subtracts them)."""

    visit_id: str
    year: int
    costs: VisitCosts
    layer_ids: tuple[str, ...]
    funds: tuple[str, ...]
    paid: tuple[Fen, ...]
    """What each layer paid, in the pack's order."""
    self_pay_fen: Fen
    payouts: tuple[Payout, ...]
    deltas: Mapping[str, int]
    explanations: tuple[Mapping[str, Any], ...] | None = None
    """Each layer's explanation, read-only: parts of it are shared between settlements."""
    settled_as: str = ""
    """The visit type the layers settled it as (a chronic visit without a certificate is
    settled as general outpatient)."""
    notes: tuple[str, ...] = ()
    """Why the visit was settled as another type, or counted as referred or not."""

    @property
    def layers(self) -> tuple[LayerPayment, ...]:
        explanations = self.explanations or (None,) * len(self.paid)
        return tuple(map(LayerPayment, self.layer_ids, self.funds, self.paid, explanations))

    @property
    def fund_paid_fen(self) -> Fen:
        return sum(self.paid)


def payout_key(benefit: str, disease_class: str) -> str:
    return f"payout:{benefit}:{disease_class}"


def settled_as(pack: Pack, person: Person, visit: Visit) -> tuple[str, bool, tuple[str, ...]]:
    """The visit type the layers settle ``visit`` as, whether it counts as referred, and
    why either differs from what the hospital sent (docs/domain.md sections 5 and 6).

    * A chronic or major-disease outpatient visit is paid as such only for a diagnosis
      covered by a certificate of its kind valid on the visit's date; otherwise it is
      settled as a general outpatient visit. Checked only when the person's certificates
      are known and the pack lists diseases of that kind.
    * An out-of-area visit counts as referred only with a registration (异地安置 or 转诊备案)
      valid on its date for the hospital's region (any region when the visit names none).
      Checked only when the person's registrations are known; otherwise the hospital's
      ``referred`` flag is taken.
    """
    visit_type = visit.visit_type
    referred = visit.referred
    notes: tuple[str, ...] = ()
    certificates = person.certificates
    rules = pack.certificates
    if certificates is not None and rules is not None:
        kind = CERTIFIED_VISIT_TYPES.get(visit_type)
        if kind is not None and kind in rules.kinds:
            day = visit.settles_on
            covered = [
                c.disease
                for c in certificates
                if c.kind == kind
                and c.valid_on(day)
                and (disease := rules.diseases.get(c.disease)) is not None
                and any(disease.matches(code) for code in visit.diagnoses)
            ]
            if covered:
                notes = (f"certificate for {covered[0]} valid on {day.isoformat()}",)
            else:
                visit_type = GENERAL_OUTPATIENT
                notes = (
                    f"settled as {GENERAL_OUTPATIENT}: no {kind} certificate valid on "
                    f"{day.isoformat()} covers its diagnoses",
                )
    registrations = person.registrations
    if registrations is not None and visit.out_of_area:
        day = visit.settles_on
        where = visit.region
        found = [
            r for r in registrations if r.valid_on(day) and (where is None or r.region == where)
        ]
        referred = bool(found)
        if found:
            notes = (*notes, f"referred: {found[0].kind} registration for {found[0].region}")
        elif visit.referred:
            notes = (*notes, "not referred: no registration valid on the day for the region")
    return visit_type, referred, notes


def visit_context(
    person: Person,
    visit: Visit,
    ledger: LedgerView,
    visit_type: str | None = None,
    referred: bool | None = None,
) -> VisitContext:
    """What the pack's rules read of one visit; ``visit_type`` and ``referred`` as
    :func:`settled_as` found them (default: as the visit says)."""
    day = visit.settles_on
    if visit_type is None:
        visit_type = visit.visit_type
    if referred is None:
        referred = visit.referred
    # StatusPeriod.holds_on, inlined: this runs on every settlement.
    held = (
        frozenset(
            [s.code for s in person.statuses if s.start <= day and (s.end is None or day <= s.end)]
        )
        if person.statuses
        else _NONE
    )
    return _new_tuple(
        VisitContext,
        (
            person,
            visit,
            day,
            day.year,
            person.scheme,
            person.employment,
            person.tier,
            visit.hospital_level,
            visit_type,
            visit.out_of_area,
            referred,
            held,
            ledger.year_totals.get(STAYS, 0) + 1 if visit_type == INPATIENT else 0,
            ledger.outpatient_costs,
            visit.reformed_hospital,
        ),
    )


_NONE: frozenset[str] = frozenset()


def settle_visit(
    pack: Pack, person: Person, visit: Visit, ledger: LedgerView, *, explain: bool = False
) -> VisitSettlement:
    """Settle one visit under ``pack``, given what the person's year had accumulated.

    With ``explain``, each layer's explanation: the parts that do not change from one visit
    to the next (a layer that does not apply, a band the base does not reach) are the same
    objects in every settlement, so they are read-only."""
    costs = classify_costs(visit.items, pack.class_b_pre_self_pay)
    if person.certificates is None and person.registrations is None:
        visit_type = visit.visit_type
        notes: tuple[str, ...] = ()
        ctx = visit_context(person, visit, ledger)
    else:
        visit_type, referred, notes = settled_as(pack, person, visit)
        ctx = visit_context(person, visit, ledger, visit_type, referred)
    totals = ledger.year_totals
    deltas: dict[str, int] = {}
    paid_so_far = 0
    paid: list[Fen] = [0] * len(pack.layers)
    traces: list[Mapping[str, Any] | None] | None = None
    if explain:
        traces = [None] * len(pack.layers)
        skips = pack.engine_memo.get("skips") or _skips(pack)
    day = ctx.day
    # Only the layers with a rule for this kind of visit; the others pay nothing.
    for index, layer, rules in pack.covering[visit_type]:
        in_force_from = layer.in_force_from
        eligible = layer.eligible
        if in_force_from is not None and day < in_force_from:
            if traces is not None:
                traces[index] = skips[index][0]
            continue
        if eligible is not None and not eligible.test(ctx):
            if traces is not None:
                traces[index] = skips[index][1]
            continue
        for rule in rules:
            if rule.when is None or rule.when.test(ctx):
                break
        else:
            if traces is not None:
                traces[index] = skips[index][2][visit_type]
            continue
        if layer.whole_remainder:
            base = costs.total_fen - paid_so_far
        else:
            base = costs.in_scope_fen - paid_so_far
            if base < 0:
                base = 0
        amount = _pay(pack, rule, ctx, base, totals, deltas, traces, index)
        paid_so_far += amount
        paid[index] = amount
    if traces is not None:
        # The layers without a rule for this kind of visit: why they do not apply.
        for index, layer in pack.uncovering[visit_type]:
            in_force_from = layer.in_force_from
            eligible = layer.eligible
            if in_force_from is not None and day < in_force_from:
                traces[index] = skips[index][0]
            elif eligible is not None and not eligible.test(ctx):
                traces[index] = skips[index][1]
            else:
                traces[index] = skips[index][2][visit_type]
    if visit_type == INPATIENT:
        deltas[STAYS] = 1
    elif visit_type in OUTPATIENT_TYPES:
        deltas[OUTPATIENT_COST] = costs.in_scope_fen
    return _new_tuple(
        VisitSettlement,
        (
            visit.id,
            ctx.year,
            costs,
            pack.layer_ids,
            pack.layer_funds[person.scheme],
            tuple(paid),
            costs.total_fen - paid_so_far,
            _instant_payouts(pack, ctx, ledger.payouts_made) if pack.payouts else (),
            deltas,
            None if traces is None else tuple(traces),
            visit_type,
            notes,
        ),
    )


_Skip = tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Mapping[str, Any]]]
"""A layer's explanations when it does not apply: not yet in force, the person not eligible,
and, by visit type, no rule for the visit."""


def _skips(pack: Pack) -> tuple[_Skip, ...]:
    """Each layer's explanations when it does not apply, made once per pack."""
    skips: tuple[_Skip, ...] | None = pack.engine_memo.get("skips")
    if skips is None:
        skips = tuple(
            (
                _skipped(
                    ""
                    if layer.in_force_from is None
                    else f"not in force before {layer.in_force_from.isoformat()}"
                ),
                _skipped(
                    "" if layer.eligible is None else f"not eligible: needs {layer.eligible.text}"
                ),
                {visit_type: _skipped(_uncovered(layer, visit_type)) for visit_type in VISIT_TYPES},
            )
            for layer in pack.layers
        )
        pack.engine_memo["skips"] = skips
    return skips


def _uncovered(layer: Layer, visit_type: str) -> str:
    """Why a layer pays nothing for a visit of ``visit_type`` that it could pay for."""
    rules = layer.rules_by_type.get(visit_type, ())
    conditions = [rule.when.text for rule in rules if rule.when is not None]
    if not rules or len(conditions) < len(rules):
        return f"does not cover {visit_type} visits for this person"
    return f"covers {visit_type} visits only for " + "; or ".join(conditions)


def _skipped(reason: str) -> Mapping[str, Any]:
    return {"applies": False, "reason": reason}


def _pay(
    pack: Pack,
    rule: Rule,
    ctx: VisitContext,
    base: Fen,
    totals: Mapping[str, int],
    deltas: dict[str, int],
    traces: list[Mapping[str, Any] | None] | None,
    index: int,
) -> Fen:
    """What the rule pays on ``base``; records its increments in ``deltas`` and, when given
    ``traces``, how it got there as the layer's (``index``) explanation."""
    deductible = rule.deductible_of(ctx)
    points = 0
    if rule.adjustments:
        for adjustment in rule.adjustments:
            if adjustment.when.test(ctx):
                points += adjustment.points
    bands = rule.bands
    yearly = rule.yearly
    before = totals.get(rule.accumulator, 0) if yearly else 0
    after = before + base
    ratios: list[BasisPoints] | None = None  # each band's, once known
    if rule.flat_ratio is not None:
        # One ratio above the deductible (the rule's one band): the common case, kept short.
        ratio = rule.flat_ratio(ctx) + points
        ratio = FULL_RATIO if ratio > FULL_RATIO else 0 if ratio < 0 else ratio
        above = after - deductible
        computed = round_half_up(above * ratio, FULL_RATIO) if above > 0 else 0
        if yearly:
            above = before - deductible
            if above > 0:
                computed -= round_half_up(above * ratio, FULL_RATIO)
        if traces is not None:
            ratios = [ratio]
    elif rule.schedule is not None and not points:
        schedule = rule.schedule
        computed = round_half_up(schedule.value(after), FULL_RATIO)
        if yearly:
            computed -= round_half_up(schedule.value(before), FULL_RATIO)
    else:
        ratios = [_clamp(band.ratio(ctx) + points) for band in bands]
        computed = _rounded_band_value(bands, ratios, deductible, after)
        if yearly:
            computed -= _rounded_band_value(bands, ratios, deductible, before)
    if yearly:
        deltas[rule.accumulator] = base
    paid = computed
    cap_rows: list[dict[str, Any]] | None = None
    if rule.caps:
        if traces is not None:
            cap_rows = []
        for cap in rule.caps:
            limit = cap.amount(ctx)
            if cap.plus_carried_quota:
                carried = carried_quota(pack, ctx)
                limit += carried
            remaining = limit - totals.get(cap.accumulator, 0) if cap.per_year else limit
            if paid > remaining:
                paid = remaining if remaining > 0 else 0
            if cap_rows is not None:
                row: dict[str, Any] = {
                    "cap": cap.id,
                    "per": "year" if cap.per_year else "visit",
                    "limit_fen": limit,
                }
                if cap.plus_carried_quota:
                    row["carried_over_quota_fen"] = carried
                row["remaining_fen"] = remaining if remaining > 0 else 0
                cap_rows.append(row)
        for key in rule.yearly_cap_keys:
            deltas[key] = paid
    if traces is None:
        return paid
    applied = (after if after < deductible else deductible) - before
    if yearly:
        trace: dict[str, Any] = {
            "applies": True,
            "rule": rule.id,
            "base_fen": base,
            "period": "year",
            "yearly_base_before_fen": before,
            "yearly_base_after_fen": after,
            "deductible_fen": deductible,
            "deductible_applied_fen": applied if applied > 0 else 0,
        }
    else:
        trace = {
            "applies": True,
            "rule": rule.id,
            "base_fen": base,
            "period": "visit",
            "deductible_fen": deductible,
            "deductible_applied_fen": applied if applied > 0 else 0,
        }
    lowered = rule.deductible
    if lowered is not None and (
        lowered.after_low_outpatient_year is not None or lowered.quiet_year_reductions is not None
    ):
        why = lowered.why(ctx)
        if why:
            trace["deductible_note"] = why
    if points:
        trace["ratio_adjustment_points"] = points // 100
    if ratios is None:  # the fixed bands of a schedule
        trace["bands"] = _fixed_band_trace(pack, rule, ctx, deductible, before, after)
    elif len(ratios) == 1 and len(bands) == 1:
        low = bands[0].lower if bands[0].lower > deductible else deductible
        portion = after - (before if before > low else low)
        trace["bands"] = [
            {
                "from_fen": low,
                "to_fen": None,
                "ratio": _percent(ratios[0]),
                "portion_fen": portion if portion > 0 else 0,
            }
        ]
    else:
        trace["bands"] = _band_trace(bands, ratios, deductible, before, after)
    trace["computed_fen"] = computed
    if cap_rows is not None:
        trace["caps"] = cap_rows
    trace["clipped_by_cap_fen"] = computed - paid
    trace["paid_fen"] = paid
    traces[index] = trace
    return paid


def _clamp(ratio: BasisPoints) -> BasisPoints:
    return 0 if ratio < 0 else FULL_RATIO if ratio > FULL_RATIO else ratio


def _rounded_band_value(
    bands: tuple[Band, ...], ratios: list[BasisPoints], deductible: Fen, x: Fen
) -> Fen:
    """``round_half_up(f(x))``: the bands' payment on a base of ``x``, above the deductible."""
    numerator = 0
    last = len(bands) - 1
    for index, band in enumerate(bands):
        low = band.lower if band.lower > deductible else deductible
        if x <= low:
            break
        top = x
        if index < last:
            high = bands[index + 1].lower
            if high < top:
                top = high
        if top > low:
            numerator += (top - low) * ratios[index]
    return round_half_up(numerator, FULL_RATIO)


def _band_trace(
    bands: tuple[Band, ...], ratios: list[BasisPoints], deductible: Fen, start: Fen, end: Fen
) -> list[dict[str, Any]]:
    """The part of this visit's base (``start`` to ``end`` on the band axis) in each band."""
    rows: list[dict[str, Any]] = []
    last = len(bands) - 1
    for index, band in enumerate(bands):
        low = band.lower if band.lower > deductible else deductible
        high = bands[index + 1].lower if index < last else None
        if high is not None and high <= low:
            continue
        portion = (end if high is None or end < high else high) - (start if start > low else low)
        rows.append(
            {
                "from_fen": low,
                "to_fen": high,
                "ratio": _percent(ratios[index]),
                "portion_fen": portion if portion > 0 else 0,
            }
        )
    return rows


def _fixed_band_trace(
    pack: Pack, rule: Rule, ctx: VisitContext, deductible: Fen, start: Fen, end: Fen
) -> list[Mapping[str, Any]]:
    """:func:`_band_trace` of a rule whose deductible and ratios are the same for every visit
    (it has a ``schedule``): each band's bounds and ratio in words are worked out once, and
    so is its row for a visit whose base does not reach it."""
    memo = pack.engine_memo
    fixed: tuple[Fen, list[tuple[Fen, Fen | None, str, Mapping[str, Any]]]] | None = memo.get(
        id(rule)  # the rule lives as long as the pack, and so as its memo
    )
    if fixed is None or fixed[0] != deductible:
        bands = rule.bands
        ratios = [_clamp(band.ratio(ctx)) for band in bands]
        fixed = (
            deductible,
            [
                (row["from_fen"], row["to_fen"], row["ratio"], {**row, "portion_fen": 0})
                for row in _band_trace(bands, ratios, deductible, 0, 0)
            ],
        )
        memo[id(rule)] = fixed
    rows: list[Mapping[str, Any]] = []
    for low, high, ratio, untouched in fixed[1]:
        portion = (end if high is None or end < high else high) - (start if start > low else low)
        if portion > 0:
            rows.append({"from_fen": low, "to_fen": high, "ratio": ratio, "portion_fen": portion})
        else:
            rows.append(untouched)
    return rows


_percent = functools.lru_cache(maxsize=256)(format_percent)
"""A band's ratio in words, remembered: a pack has a few dozen ratios."""


def carried_quota(pack: Pack, ctx: VisitContext) -> Fen:
    """Tianjin: the unused outpatient quota of every known earlier year, added to the
    inpatient maximum; measured by outpatient cost, never negative, accumulating."""
    if pack.outpatient_quota is None:
        return 0
    quota = pack.outpatient_quota(ctx)
    return sum(
        quota - cost
        for year, cost in ctx.outpatient_costs.items()
        if year < ctx.year and cost < quota
    )


def _instant_payouts(pack: Pack, ctx: VisitContext, made: Set[str]) -> tuple[Payout, ...]:
    # Diagnosed at a hospital: a pharmacy purchase diagnoses nothing, whatever level it carries.
    if ctx.visit_type == PHARMACY or ctx.level is None or not ctx.visit.diagnoses:
        return ()
    paid: list[Payout] = []
    done = set(made)
    for benefit in pack.payouts:
        if (benefit.in_force_from is not None and ctx.day < benefit.in_force_from) or (
            benefit.eligible is not None and not benefit.eligible.test(ctx)
        ):
            continue  # nothing paid, and no class used up
        for diagnosis in ctx.visit.diagnoses:
            for disease_class in benefit.classes:
                key = payout_key(benefit.id, disease_class.id)
                if key not in done and disease_class.matches(diagnosis):
                    done.add(key)
                    paid.append(
                        Payout(
                            benefit.id,
                            disease_class.id,
                            benefit.fund,
                            diagnosis,
                            benefit.amount(ctx),
                        )
                    )
    return tuple(paid)


class PersonLedger:
    """A person's accumulators in memory, year by year (年度累计), as ``doudi calc`` keeps them.

    ``history`` gives outpatient costs of years before the first visit; from the
    first visit's year on, every year is known (no visit: no cost).
    """

    def __init__(self, history_outpatient_costs: Mapping[int, Fen] | None = None) -> None:
        self.history: dict[int, Fen] = dict(history_outpatient_costs or {})
        self.years: dict[int, dict[str, int]] = {}
        self.payouts: set[str] = set()
        self.first_year: int | None = None
        self._views: dict[int, LedgerView] = {}
        self._views_until = 0  # no view is of a later year

    def outpatient_costs_before(self, year: int) -> dict[int, Fen]:
        """Known outpatient costs of the years before ``year``."""
        costs = {y: c for y, c in self.history.items() if y < year}
        if self.first_year is not None:
            for past in range(self.first_year, year):
                costs[past] = self.years.get(past, {}).get(OUTPATIENT_COST, 0)
        return costs

    def view(self, year: int) -> LedgerView:
        """What the engine reads before a visit of ``year`` (kept until an earlier year changes)."""
        view = self._views.get(year)
        if view is None:
            totals = self.years.setdefault(year, {})
            view = LedgerView(totals, self.outpatient_costs_before(year), self.payouts)
            self._views[year] = view
            if year > self._views_until:
                self._views_until = year
        return view

    def apply(self, settlement: VisitSettlement, sign: int = 1) -> None:
        """Add a settlement's increments (``sign=-1`` takes them away again: a reversal)."""
        payouts = settlement.payouts
        self.apply_increments(
            settlement.year,
            settlement.deltas,
            [payout.ledger_key for payout in payouts] if payouts else (),
            sign,
        )

    def apply_increments(
        self, year: int, deltas: Mapping[str, int], payout_keys: Iterable[str], sign: int = 1
    ) -> None:
        """Add a visit's increments to ``year`` and record its payouts (``sign=-1``: remove them).

        A stored settlement keeps its ``deltas`` and payout keys so that a
        reversal can remove exactly what it added.
        """
        if self.first_year is None or year < self.first_year:
            self.first_year = year
            self._views.clear()
        elif OUTPATIENT_COST in deltas and self._views_until > year:
            for later in [y for y in self._views if y > year]:
                del self._views[later]
            self._views_until = year
        totals = self.years.get(year)
        if totals is None:
            totals = self.years[year] = {}
        get = totals.get
        for key, amount in deltas.items():
            totals[key] = get(key, 0) + sign * amount
        for key in payout_keys:
            if sign > 0:
                self.payouts.add(key)
            else:
                self.payouts.discard(key)

    def to_document(self) -> dict[str, Any]:
        """The ledger as JSON-ready data (the settlement service stores it per person)."""
        return {
            "years": {str(year): dict(totals) for year, totals in sorted(self.years.items())},
            "payouts": sorted(self.payouts),
            "first_year": self.first_year,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> PersonLedger:
        """The ledger :meth:`to_document` wrote."""
        ledger = cls()
        ledger.years = {
            int(year): {str(key): int(amount) for key, amount in totals.items()}
            for year, totals in document.get("years", {}).items()
        }
        ledger.payouts = {str(key) for key in document.get("payouts", ())}
        first_year = document.get("first_year")
        ledger.first_year = None if first_year is None else int(first_year)
        return ledger

    def settle(
        self, pack: Pack, person: Person, visit: Visit, *, explain: bool = False
    ) -> VisitSettlement:
        year = visit.settles_on.year
        settlement = settle_visit(
            pack, person, visit, self._views.get(year) or self.view(year), explain=explain
        )
        payouts = settlement.payouts
        self.apply_increments(
            year, settlement.deltas, [payout.ledger_key for payout in payouts] if payouts else ()
        )
        return settlement

"""Properties of the one-window engine that hold for every pack, every person and every bill.

* ``total = Σ layers + self_pay`` and ``total = out_of_scope + in_scope`` on every visit;
* no payment is negative or above its layer's base;
* no yearly cap is ever exceeded;
* for yearly-band layers, one bill and the same costs split into several bills in one
  year pay the same total;
* fund payments never fall when costs rise, other things equal;
* outpatient certificates only ever decide the visit type: certificates covering every
  visit settle as certificates not known, none at all as the visits sent as general
  outpatient.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doudi.core.cases import parse_case, settle_case
from doudi.core.engine import PersonLedger, settle_visit
from doudi.core.packs import PackRegistry, compile_pack
from tests.support import with_check_digit

REGISTRY = PackRegistry.load()
PACK_YEAR = {"xixia-2017": 2017, "tianjin-2017": 2017, "linzhi-2020": 2020, "taishan-2022": 2022}
VISIT_TYPES = [
    "inpatient",
    "outpatient_chronic",
    "outpatient_major",
    "outpatient_general",
    "pharmacy",
]
STATUS_CODES = [
    "registered_poor",
    "poverty_exited",
    "dibao",
    "low_income",
    "extreme_poverty",
    "at_risk",
    "marginal",
    "orphan",
    "unsupported_child",
    "expenditure_hardship",
    "difficult_worker",
]
ANY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def resident_id(prefix: str, birth: str, sequence: str = "001") -> str:
    return with_check_digit(prefix + birth + sequence)


@st.composite
def people(draw: st.DrawFn, year: int) -> dict[str, Any]:
    birth = draw(st.sampled_from(["19460305", "19520716", "19581231", "19750101", "20080809"]))
    scheme = draw(st.sampled_from(["resident", "resident", "employee"]))
    person: dict[str, Any] = {"id": resident_id("411323", birth), "scheme": scheme}
    if scheme == "employee":
        person["employment"] = draw(st.sampled_from(["in_service", "retired"]))
    statuses = []
    for code in draw(st.lists(st.sampled_from(STATUS_CODES), max_size=3, unique=True)):
        start = date(year - 1, 1, 1) + timedelta(days=draw(st.integers(0, 700)))
        status: dict[str, Any] = {"code": code, "from": start.isoformat(), "to": None}
        if draw(st.booleans()):
            status["to"] = (start + timedelta(days=draw(st.integers(0, 400)))).isoformat()
        statuses.append(status)
    person["statuses"] = statuses
    return person


items = st.lists(
    st.fixed_dictionaries(
        {
            "class": st.sampled_from("AABC"),
            "amount_fen": st.integers(0, 30_000_000),
            "over": st.integers(0, 100),
        }
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def visits(draw: st.DrawFn, year: int, count: int) -> list[dict[str, Any]]:
    days = sorted(draw(st.lists(st.integers(0, 364), min_size=count, max_size=count)))
    result = []
    for index, day in enumerate(days):
        when = date(year, 1, 1) + timedelta(days=day)
        kind = draw(st.sampled_from(VISIT_TYPES))
        visit: dict[str, Any] = {"id": f"v{index}", "type": kind}
        if kind != "pharmacy":
            visit["hospital_level"] = draw(st.integers(1, 3))
        if kind == "inpatient":
            visit["admitted"] = (when - timedelta(days=draw(st.integers(0, 30)))).isoformat()
            visit["discharged"] = when.isoformat()
        else:
            visit["date"] = when.isoformat()
        visit["out_of_area"] = draw(st.booleans())
        visit["referred"] = draw(st.booleans())
        visit["diagnoses"] = draw(
            st.lists(st.sampled_from(["C34.1", "I21.0", "N18.5", "J18.9", "I63.9"]), max_size=2)
        )
        visit["items"] = [
            {
                "code": f"X{n}",
                "class": item["class"],
                "amount_fen": item["amount_fen"],
                "over_limit_fen": item["amount_fen"] * item["over"] // 100,
            }
            for n, item in enumerate(draw(items))
        ]
        result.append(visit)
    return result


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    policy = draw(st.sampled_from(sorted(PACK_YEAR)))
    year = PACK_YEAR[policy]
    history = {
        str(year - n): draw(st.integers(0, 900_000)) for n in (1, 2, 3) if draw(st.booleans())
    }
    return {
        "policy": policy,
        "person": draw(people(year)),
        "history": {"outpatient_cost_fen": history},
        "visits": draw(visits(year, draw(st.integers(1, 8)))),
    }


@ANY
@given(cases())
def test_every_fen_is_accounted_for_and_no_payment_is_negative_or_above_its_base(
    data: dict[str, Any],
) -> None:
    case = parse_case(data, REGISTRY)
    for settlement in settle_case(case):
        costs = settlement.costs
        assert costs.total_fen == costs.out_of_scope_fen + costs.in_scope_fen
        assert costs.total_fen == settlement.fund_paid_fen + settlement.self_pay_fen
        assert settlement.self_pay_fen >= costs.out_of_scope_fen
        for layer in settlement.layers:
            assert layer.explanation is not None
            assert layer.paid_fen >= 0
            if layer.explanation["applies"]:
                assert layer.paid_fen <= layer.explanation["base_fen"]
            else:
                assert layer.paid_fen == 0


@ANY
@given(cases())
def test_yearly_caps_are_never_exceeded(data: dict[str, Any]) -> None:
    case = parse_case(data, REGISTRY)
    paid_against: dict[tuple[str, str], int] = defaultdict(int)
    limits: dict[tuple[str, str], int] = {}
    for settlement in settle_case(case):
        for layer in settlement.layers:
            assert layer.explanation is not None
            for cap in layer.explanation.get("caps", []):
                if cap["per"] == "year":
                    key = (layer.layer, cap["cap"])
                    paid_against[key] += layer.paid_fen
                    limits[key] = min(limits.get(key, cap["limit_fen"]), cap["limit_fen"])
    for key, paid in paid_against.items():
        assert paid <= limits[key], key


def _yearly_band_pack(deductible: int, steps: list[tuple[int, int]], cap: int | None) -> Any:
    rule: dict[str, Any] = {
        "id": "yearly",
        "visit_types": ["inpatient", "outpatient_general"],
        "period": "year",
        "deductible": {"yuan": deductible, "assumed": "test"},
        "bands": {
            "steps": [{"from_yuan": low, "percent": pct} for low, pct in steps],
            "assumed": "test",
        },
    }
    layer: dict[str, Any] = {"id": "yearly", "name": "test", "fund": "390200", "rules": [rule]}
    if cap is not None:
        rule["caps"] = ["yearly"]
        layer["caps"] = [{"id": "yearly", "per": "year", "yuan": cap, "assumed": "test"}]
    document = {
        "id": "test-2017",
        "region": {"code": "411323", "name": "test"},
        "title": "test",
        "effective_from": "2017-01-01",
        "sources": {"test": {"title": "a test pack", "publisher": "the tests", "date": "2017"}},
        "catalogue": {"class_b_pre_self_pay_percent": 10, "assumed": "test"},
        "layers": [
            layer,
            {
                "id": "rest",
                "name": "test",
                "fund": "610100",
                "rules": [
                    {
                        "id": "all",
                        "visit_types": ["inpatient", "outpatient_general"],
                        "period": "visit",
                        "ratio": {"percent": 70, "assumed": "test"},
                    }
                ],
            },
        ],
    }
    return compile_pack(document, "test-2017.yaml")


def _split(total: int, cuts: list[int]) -> list[int]:
    points = sorted({min(total, c) for c in cuts} | {0, total})
    return [b - a for a, b in itertools.pairwise(points)] or [0]


@ANY
@given(
    deductible=st.integers(0, 20_000),
    steps=st.lists(
        st.tuples(st.integers(0, 200_000), st.integers(0, 100)),
        min_size=1,
        max_size=5,
        unique_by=lambda s: s[0],
    ),
    cap=st.none() | st.integers(0, 300_000),
    total=st.integers(0, 50_000_000),
    cuts=st.lists(st.integers(0, 50_000_000), max_size=6),
)
def test_yearly_band_layers_pay_the_same_for_one_bill_or_the_same_costs_split(
    deductible: int, steps: list[tuple[int, int]], cap: int | None, total: int, cuts: list[int]
) -> None:
    pack = _yearly_band_pack(deductible, sorted(steps), cap)
    person = parse_case(
        {
            "policy": "xixia-2017",
            "person": {"id": resident_id("411323", "19800101"), "scheme": "resident"},
            "visits": [
                {
                    "id": "v",
                    "type": "outpatient_general",
                    "hospital_level": 1,
                    "date": "2017-01-01",
                    "items": [{"code": "X", "class": "A", "amount_fen": 1}],
                }
            ],
        },
        REGISTRY,
    ).person

    def yearly_layer_total(amounts: list[int]) -> int:
        ledger = PersonLedger()
        paid = 0
        for index, amount in enumerate(amounts):
            visit = parse_case(
                {
                    "policy": "xixia-2017",
                    "person": {"id": person.resident_id.number, "scheme": "resident"},
                    "visits": [
                        {
                            "id": f"v{index}",
                            "type": "outpatient_general",
                            "hospital_level": 2,
                            "date": f"2017-03-{index + 1:02d}",
                            "items": [{"code": "X", "class": "A", "amount_fen": amount}],
                        }
                    ],
                },
                REGISTRY,
            ).visits[0]
            paid += ledger.settle(pack, person, visit).layers[0].paid_fen
        return paid

    assert yearly_layer_total([total]) == yearly_layer_total(_split(total, cuts))


@ANY
@given(
    amounts=st.lists(st.integers(1, 2_000_000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 3_000_000), max_size=5),
    scheme=st.sampled_from(["employee", "resident"]),
)
def test_tianjin_yearly_outpatient_basic_pays_the_same_for_split_bills(
    amounts: list[int], cuts: list[int], scheme: str
) -> None:
    """Tianjin's outpatient basic layer has a yearly deductible and a yearly cap."""
    total = sum(amounts)

    def basic_total(bills: list[int]) -> int:
        person: dict[str, Any] = {"id": resident_id("120101", "19700101"), "scheme": scheme}
        if scheme == "employee":
            person["employment"] = "in_service"
        data = {
            "policy": "tianjin-2017",
            "person": person,
            "visits": [
                {
                    "id": f"v{i}",
                    "type": "outpatient_general",
                    "hospital_level": 1,
                    "date": "2017-05-01",
                    "items": [{"code": "M", "class": "A", "amount_fen": amount}],
                }
                for i, amount in enumerate(bills)
            ],
        }
        return sum(
            s.layers[0].paid_fen for s in settle_case(parse_case(data, REGISTRY), explain=False)
        )

    assert basic_total([total]) == basic_total(_split(total, cuts))


@ANY
@given(cases(), st.data())
def test_fund_payments_never_fall_when_costs_rise(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    case = parse_case(data, REGISTRY)
    ledger = PersonLedger(case.history_outpatient_costs)
    for visit in case.visits[:-1]:
        ledger.settle(case.pack, case.person, visit)
    last = data["visits"][-1]
    item = draw.draw(st.sampled_from(last["items"]))
    before = settle_visit(
        case.pack, case.person, case.visits[-1], ledger.view(case.visits[-1].year)
    )
    item["amount_fen"] += draw.draw(st.integers(1, 5_000_000))
    raised = parse_case(data, REGISTRY).visits[-1]
    after = settle_visit(case.pack, case.person, raised, ledger.view(raised.year))
    assert after.costs.total_fen > before.costs.total_fen
    assert after.fund_paid_fen >= before.fund_paid_fen


def _ledger_state(ledger: PersonLedger) -> tuple[dict[int, dict[str, int]], set[str]]:
    years = {
        year: {key: amount for key, amount in totals.items() if amount}
        for year, totals in ledger.years.items()
    }
    return {year: totals for year, totals in years.items() if totals}, set(ledger.payouts)


@ANY
@given(cases())
def test_a_reversal_restores_every_accumulator_and_the_next_visit_pays_as_if_never_settled(
    data: dict[str, Any],
) -> None:
    case = parse_case(data, REGISTRY)
    *earlier, reversed_visit = case.visits
    ledger = PersonLedger(case.history_outpatient_costs)
    for visit in earlier:
        ledger.settle(case.pack, case.person, visit)
    before = _ledger_state(ledger)
    settlement = ledger.settle(case.pack, case.person, reversed_visit)
    ledger.apply(settlement, sign=-1)
    assert _ledger_state(ledger) == before
    again = ledger.settle(case.pack, case.person, reversed_visit)
    assert again.paid == settlement.paid
    assert again.payouts == settlement.payouts


CERTIFIED = {"outpatient_chronic": "chronic", "outpatient_major": "special"}
"""The visit types a certificate pays for, and its kind (doudi.core.codes)."""


def _certified_kinds(policy: str) -> frozenset[str]:
    pack = REGISTRY.get(policy)
    assert pack is not None
    return frozenset() if pack.certificates is None else pack.certificates.kinds


@ANY
@given(cases(), st.data())
def test_certificates_covering_every_visit_settle_as_certificates_not_known(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    """Each chronic and major-disease visit gets a certificate of its kind, valid on its day,
    for a disease one of its diagnoses falls under: the person then settles exactly as one
    whose certificates are not known (only the notes say which certificate paid)."""
    pack = REGISTRY.get(data["policy"])
    assert pack is not None
    certificates = []
    for visit in data["visits"]:
        kind = CERTIFIED.get(visit["type"])
        if pack.certificates is None or kind not in pack.certificates.kinds:
            continue
        diseases = [d for d in pack.certificates.diseases.values() if d.kind == kind]
        disease = draw.draw(st.sampled_from(diseases))
        code = draw.draw(st.sampled_from(disease.codes)).split("-")[0]
        at = draw.draw(st.integers(0, len(visit["diagnoses"])))
        visit["diagnoses"].insert(at, code)
        day = date.fromisoformat(visit["date"])
        certificates.append(
            {
                "disease": disease.id,
                "from": (day - timedelta(days=draw.draw(st.integers(0, 1095)))).isoformat(),
                "to": (day + timedelta(days=draw.draw(st.integers(0, 1095)))).isoformat(),
            }
        )
    certified = copy.deepcopy(data)
    certified["person"]["certificates"] = draw.draw(st.permutations(certificates))
    unknown = settle_case(parse_case(data, REGISTRY))
    known = settle_case(parse_case(certified, REGISTRY))
    for sent, plain, checked in zip(data["visits"], unknown, known, strict=True):
        assert checked.settled_as == sent["type"]
        assert bool(checked.notes) == (
            CERTIFIED.get(sent["type"]) in _certified_kinds(data["policy"])
        )
        assert checked._replace(notes=()) == plain


@ANY
@given(cases())
def test_no_certificates_settle_certified_visits_as_general_outpatient(
    data: dict[str, Any],
) -> None:
    """A person known to hold no certificate: every chronic or major-disease visit of a kind
    the pack certifies settles exactly as the same visit sent as general outpatient."""
    kinds = _certified_kinds(data["policy"])
    as_general = copy.deepcopy(data)
    for visit in as_general["visits"]:
        if CERTIFIED.get(visit["type"]) in kinds:
            visit["type"] = "outpatient_general"
    data["person"]["certificates"] = []
    checked = settle_case(parse_case(data, REGISTRY))
    general = settle_case(parse_case(as_general, REGISTRY))
    for sent, settled, expected in zip(as_general["visits"], checked, general, strict=True):
        assert settled.settled_as == sent["type"]
        assert settled._replace(notes=()) == expected

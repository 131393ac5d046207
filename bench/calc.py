"""Settle a synthetic year under each policy pack and print the engine's speed.

    .venv/bin/python bench/calc.py [--persons 10000] [--visits-per-person 10] [--repeat 3]
    .venv/bin/python bench/calc.py --long-history 20000

A year of mixed visits (stays, chronic, major-disease and general outpatient,
pharmacy) for persons with a realistic share of statuses, settled in date
order per person with yearly accumulators, on one core. Prints visits per
second and microseconds per visit for each pack, and the ratio to the goal of
at most 20 µs per visit for the Xixia pack. Inputs are built before timing:
this measures the engine, not JSON parsing.

``--long-history N`` measures ``doudi calc`` itself on one person's long
history instead: a case file of N visits of that mix over 20 years under the
Xixia pack, run through the command's own path in this process (read and
check the case, settle every visit with its explanation, write the result
JSON to a file), best of ``--repeat`` runs, against the goal of 0.5 s for
20,000 visits.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from contextlib import redirect_stdout
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from stdnum.cn import ric

from doudi.cli.main import main as doudi
from doudi.core.engine import PersonLedger
from doudi.core.identity import parse_resident_id
from doudi.core.model import Item, Person, StatusPeriod, Visit
from doudi.core.packs import PackRegistry
from doudi.core.policy import Pack

GOAL_US_PER_VISIT = 20.0
GOAL_LONG_HISTORY_SECONDS = 0.5  # doudi calc of 20,000 visits, with explanations
LONG_HISTORY_YEARS = 20
TYPES = (
    ("inpatient", 0.15),
    ("outpatient_chronic", 0.25),
    ("outpatient_major", 0.10),
    ("outpatient_general", 0.35),
    ("pharmacy", 0.15),
)
STATUS_MIX = (
    ("registered_poor", 0.30),
    ("poverty_exited", 0.10),
    ("dibao", 0.10),
    ("low_income", 0.05),
    ("extreme_poverty", 0.03),
    ("at_risk", 0.05),
)


def make_person(rng: random.Random, region: str, year: int) -> Person:
    birth = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 75))
    body = f"{region}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    resident_id = parse_resident_id(body + ric.calc_check_digit(body + "X"))
    statuses = tuple(
        StatusPeriod(code, date(year - 1, 1, 1) + timedelta(days=rng.randrange(540)))
        for code, share in STATUS_MIX
        if rng.random() < share
    )
    scheme = "employee" if rng.random() < 0.2 else "resident"
    employment = rng.choice(("in_service", "retired")) if scheme == "employee" else None
    return Person(resident_id, scheme, employment, None, statuses)


def make_visits(rng: random.Random, year: int, count: int, serial: int) -> list[Visit]:
    days = sorted(rng.randrange(365) for _ in range(count))
    visits = []
    for index, day in enumerate(days):
        kind = rng.choices([t for t, _ in TYPES], [w for _, w in TYPES])[0]
        when = date(year, 1, 1) + timedelta(days=day)
        scale = 2_000_000 if kind == "inpatient" else 60_000
        items = tuple(
            Item(f"I{n}", rng.choice("AAABC"), rng.randrange(1, scale))
            for n in range(rng.randint(1, 4))
        )
        visits.append(
            Visit(
                id=f"{serial}-{index}",
                visit_type=kind,
                settles_on=when,
                items=items,
                hospital_level=None if kind == "pharmacy" else rng.choice((1, 2, 2, 3)),
                admitted=when - timedelta(days=rng.randrange(20)) if kind == "inpatient" else None,
                out_of_area=rng.random() < 0.05,
                referred=rng.random() < 0.5,
                diagnoses=("C34.1",) if rng.random() < 0.02 else (),
            )
        )
    return visits


def bench_pack(pack: Pack, persons: int, per_person: int, repeat: int) -> tuple[int, float]:
    rng = random.Random(2017)
    year = pack.effective_from.year
    population = [
        (make_person(rng, pack.region_code, year), make_visits(rng, year, per_person, n))
        for n in range(persons)
    ]
    visits = sum(len(v) for _, v in population)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for person, person_visits in population:
            ledger = PersonLedger()
            for visit in person_visits:
                ledger.settle(pack, person, visit)
        best = min(best, time.perf_counter() - started)
    return visits, best


def visit_document(visit: Visit) -> dict[str, Any]:
    """A visit as a case file writes it."""
    document: dict[str, Any] = {"id": visit.id, "type": visit.visit_type}
    if visit.admitted is not None:
        document["admitted"] = visit.admitted.isoformat()
        document["discharged"] = visit.settles_on.isoformat()
    else:
        document["date"] = visit.settles_on.isoformat()
    if visit.hospital_level is not None:
        document["hospital_level"] = visit.hospital_level
    document["out_of_area"] = visit.out_of_area
    document["referred"] = visit.referred
    if visit.diagnoses:
        document["diagnoses"] = list(visit.diagnoses)
    document["items"] = [
        {"code": item.code, "class": item.item_class, "amount_fen": item.amount_fen}
        for item in visit.items
    ]
    return document


def long_history_case(visits: int) -> dict[str, Any]:
    """One registered-poor Xixia resident's ``visits`` visits over LONG_HISTORY_YEARS years."""
    rng = random.Random(2017)
    pack = next(pack for pack in PackRegistry.load() if pack.id == "xixia-2017")
    first = pack.effective_from.year
    person = make_person(rng, pack.region_code, first)
    documents = []
    for offset in range(LONG_HISTORY_YEARS):
        count = visits // LONG_HISTORY_YEARS + (offset < visits % LONG_HISTORY_YEARS)
        documents += map(visit_document, make_visits(rng, first + offset, count, offset))
    return {
        "policy": pack.id,
        "person": {
            "id": person.resident_id.number,
            "scheme": "resident",
            "statuses": [{"code": "registered_poor", "from": f"{first - 1}-01-01", "to": None}],
        },
        "visits": documents,
    }


def bench_long_history(visits: int, repeat: int) -> None:
    """Time ``doudi calc CASE`` in this process, output to a file; print the best run."""
    with tempfile.TemporaryDirectory() as folder:
        case = Path(folder) / "long.case.json"
        case.write_text(json.dumps(long_history_case(visits), ensure_ascii=False), "utf-8")
        output = Path(folder) / "result.json"
        best = cpu = float("inf")
        for _ in range(repeat):
            with output.open("w", encoding="utf-8") as out, redirect_stdout(out):
                started, cpu_started = time.perf_counter(), time.process_time()
                code = doudi(["calc", str(case)])
                out.flush()
                best = min(best, time.perf_counter() - started)
                cpu = min(cpu, time.process_time() - cpu_started)
            if code != 0:
                raise SystemExit(f"doudi calc exited with {code}")
        size = output.stat().st_size
    goal = GOAL_LONG_HISTORY_SECONDS * visits / 20_000
    print(
        f"doudi calc, one person, {visits:,} visits over {LONG_HISTORY_YEARS} years "
        f"(xixia-2017, with explanations, {size / 1e6:.1f} MB of JSON), best of {repeat} runs"
    )
    print(
        f"{best:.3f} s, {best / visits * 1e6:.1f} µs/visit; {best / goal:.2f}x the goal of "
        f"{goal:g} s (CPU {cpu:.3f} s: on a shared machine the wall time waits for the others)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--visits-per-person", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="runs per pack; the best is reported")
    parser.add_argument("--pack", action="append", help="only this pack (may be repeated)")
    parser.add_argument(
        "--long-history",
        type=int,
        metavar="N",
        help="time doudi calc on one person's N visits over 20 years instead (goal: 0.5 s "
        "for 20,000)",
    )
    args = parser.parse_args()
    if args.long_history:
        bench_long_history(args.long_history, args.repeat)
        return
    print(
        f"one core, {args.persons:,} persons x {args.visits_per_person} visits, best of {args.repeat} runs"
    )
    print(
        f"{'pack':<14}{'visits':>10}{'seconds':>10}{'visits/s':>12}{'µs/visit':>10}{'vs 20 µs goal':>15}"
    )
    for pack in PackRegistry.load():
        if args.pack and pack.id not in args.pack:
            continue
        visits, seconds = bench_pack(pack, args.persons, args.visits_per_person, args.repeat)
        per_visit = seconds / visits * 1e6
        print(
            f"{pack.id:<14}{visits:>10,}{seconds:>10.2f}{visits / seconds:>12,.0f}{per_visit:>10.1f}"
            f"{per_visit / GOAL_US_PER_VISIT:>14.2f}x"
        )


if __name__ == "__main__":
    main()

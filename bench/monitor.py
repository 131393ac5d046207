"""A county's year of burden watching: settlement events into the assistance service's
ledger, against DuckDB's plain aggregate of the same events as the floor.

    .venv/bin/python bench/monitor.py [--persons 100000] [--households 40000]
                                      [--events 1000000] [--senders 2]
                                      [--backends sqlite,postgresql] [--seed 7]
                                      [--duration 15] [--clients 64]

``--persons 10000 --households 4000 --events 100000`` is a quick try (under a
minute for both backends).

For each backend it starts the platform as ``make run`` does (bench/settle.py's
start-up; on PostgreSQL each service its own database in a throwaway cluster, or
in the server at ``DOUDI_BENCH_POSTGRES_URL``) and then:

1. **Setup (timed, not part of the goal).** Xixia (411323) with ``--persons``
   persons in ``--households`` households, sent to assistance as enrollment's
   outbox sends them (``RecordPersons``); 30% of the households hold a status
   (dibao, low-income, registered poor, left poverty or monitored), sent as the
   hub sends them (``RecordPersonStatuses``).
2. **Events into the ledger.** ``--events`` settlements of the year (about one
   in six an inpatient stay, the rest outpatient visits and pharmacy purchases,
   one in fifty reversed later), in batches of 5,000 (the most a call takes) through
   ``RecordSettlementEvents``, the call settlement's outbox makes, by
   ``--senders`` concurrent senders. The batches are built and encoded before
   the clock starts. It prints events per second into the ledger; goal: at
   least 10,000 a second on each backend.
3. **Checked**: the events recorded and the ledger's sums (all persons' total,
   personal and eligible burden) equal the generated events' own sums, and a
   sample of persons' ``GetBurden`` equals DuckDB's figures for them.
4. **Warnings.** The dual early warning is raised inside the intake's
   transactions (its cost is part of step 2, not separable): it prints how many
   were raised, beside DuckDB's count of households over their line (the pack's,
   by the household's status) in the events' order; checked: at least the
   households over the line at the end, at most those over it by their
   settlements alone (concurrent senders may apply batches out of order).
5. **Secondary run** (timed): ``CreateSecondaryRun`` for Xixia through December
   31, then ``ApproveSecondaryRun``, each with its time.
6. **The year's report** (timed): ``GetReport`` for Xixia's year (every figure by
   category and visit type, from the monthly aggregate the intake keeps), best of three,
   beside DuckDB's plain aggregate of the same events per month, visit type and status
   (best of three) as the floor; goal: within 10x of it and under 1 s. Checked: the
   report's visits and total cost equal the events'.
7. **Screening run** (timed): 2,000 out-of-area bills of persons holding a status
   entered (not timed), then ``RunScreening`` for Xixia's year: every person holding
   a status sent to settlement's ``ScreenSettlements`` (a thousand a call) and the
   bills settled again under the pack.
8. **Settlement with assistance receiving** (``--duration`` seconds a phase, 0: not
   run): bench/settle.py's load (``--clients``, ``--settle-persons``,
   ``--settlement-processes``) on a platform of its own, first with assistance paused,
   then receiving: both rates and their ratio (goal: at least 0.9x) and each
   settlement's wait from its commit to its burden (goal: p99 under 2 s); see
   ``bench/settle.py --assistance-ratio``.

The floor: DuckDB (in memory, from Python) holding the same events aggregates them
per person and year, and per household and year (what the ledger keeps); the best
of three runs is printed beside the intake.

Every step prints the CPU seconds each process spent in it (bench/roster.py's
meter); with ``--profile DIR``, where assistance's threads spent the intake's time
(py-spy, bench/roster.py's profiler). The PostgreSQL databases it creates are dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import grpc
import sqlalchemy

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1 import assistance_pb2_grpc
from doudi.cli.launcher import Platform
from doudi.common.db import create_engine_for
from doudi.common.enums import ASSISTANCE_STATUSES
from doudi.common.protos import from_date
from doudi.core.monitoring import MonitoringRules
from doudi.core.packs import monitoring_rules
from services.assistance import tables as assistance_tables
from services.assistance import warnings as assistance_warnings
from services.assistance.service import MAX_EVENTS

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.roster import (
    XIXIA,
    Meter,
    Profiler,
    Result,
    chinese_name,
    identity_numbers,
    measured,
    platform_on,
)
from bench.settle import (
    INTERNAL,
    assistance_ratio,
    bench_persons,
    default_settlement_processes,
    postgres_server,
)

BATCH = 1000
"""Persons a ``RecordPersons`` call (as enrollment's outbox sends them)."""
GOAL_EVENTS_PER_SECOND = 10_000
STATUS_SHARE = 0.3
STATUSES = (
    pb.STATUS_DIBAO,
    pb.STATUS_LOW_INCOME,
    pb.STATUS_REGISTERED_POOR,
    pb.STATUS_POVERTY_EXITED,
    pb.STATUS_AT_RISK,
)
AGENCY_OF = {
    pb.STATUS_DIBAO: pb.AGENCY_CIVIL_AFFAIRS,
    pb.STATUS_LOW_INCOME: pb.AGENCY_CIVIL_AFFAIRS,
    pb.STATUS_REGISTERED_POOR: pb.AGENCY_POVERTY_OFFICE,
    pb.STATUS_POVERTY_EXITED: pb.AGENCY_POVERTY_OFFICE,
    pb.STATUS_AT_RISK: pb.AGENCY_POVERTY_OFFICE,
}
RECORD = "/doudi.assistance.v1.AssistanceService/RecordSettlementEvents"


@dataclass
class Person:
    person_id: str
    name: str
    household: str
    status: int  # 0: none


@dataclass
class Year:
    """What the benchmark sends: persons, households' statuses and the events' batches
    (encoded), with the events' own sums to check the ledger against."""

    year: int
    persons: list[Person]
    batches: list[bytes] = field(default_factory=list)
    events: int = 0
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    """(person, household, sign, total, fund paid, self-pay, eligible, order) per event."""


def generate(persons: int, households: int, events: int, year: int, seed: int) -> Year:
    rng = random.Random(seed)
    numbers = identity_numbers(persons, rng)
    statused = set(rng.sample(range(households), round(households * STATUS_SHARE)))
    status_of = {index: rng.choice(STATUSES) for index in statused}
    people = []
    for index, number in enumerate(numbers):
        household = index % households if index >= households else index
        people.append(
            Person(number, chinese_name(rng), f"H{household:07d}", status_of.get(household, 0))
        )
    data = Year(year, people)
    first = date(year, 1, 1)
    settled: list[pb.SettlementEvent] = []
    event_id = 0
    batch: list[pb.SettlementEvent] = []

    def add(event: pb.SettlementEvent, person: Person, sign: int) -> None:
        nonlocal batch
        batch.append(event)
        data.rows.append(
            (
                person.person_id,
                person.household,
                sign,
                event.total_fen,
                sum(payment.paid_fen for payment in event.payments),
                event.self_pay_fen,
                max(0, event.self_pay_fen - event.out_of_scope_fen),
                len(data.rows),
            )
        )
        # As many as settlement's outbox sends a call when a backlog is queued.
        if len(batch) == MAX_EVENTS:
            data.batches.append(pb.RecordSettlementEventsRequest(events=batch).SerializeToString())
            batch = []

    by_id = {p.person_id: p for p in people}
    for index in range(events):
        person = rng.choice(people)
        kind = rng.random()
        if kind < 0.16:
            visit_type, total = pb.VISIT_TYPE_INPATIENT, rng.randrange(300_000, 8_000_000)
        elif kind < 0.3:
            visit_type, total = pb.VISIT_TYPE_OUTPATIENT_CHRONIC, rng.randrange(5_000, 200_000)
        elif kind < 0.8:
            visit_type, total = pb.VISIT_TYPE_OUTPATIENT_GENERAL, rng.randrange(2_000, 60_000)
        else:
            visit_type, total = pb.VISIT_TYPE_PHARMACY, rng.randrange(1_000, 40_000)
        out_of_scope = total * rng.randrange(5, 25) // 100
        in_scope = total - out_of_scope
        basic = in_scope * 60 // 100
        payments = [pb.FundPayment(layer="basic", fund="390100", paid_fen=basic)]
        if person.status:
            assistance = (in_scope - basic) // 2
            payments.append(
                pb.FundPayment(layer="medical_assistance", fund="610100", paid_fen=assistance)
            )
        self_pay = total - sum(payment.paid_fen for payment in payments)
        settles_on = first + timedelta(days=index * 365 // events)
        event_id += 1
        event = pb.SettlementEvent(
            event_id=event_id,
            kind=pb.SETTLEMENT_EVENT_KIND_SETTLED,
            settlement_id=f"s-{index:08d}",
            person_id=person.person_id,
            region=XIXIA,
            visit_type=visit_type,
            settled_on=from_date(settles_on),
            total_fen=total,
            in_scope_fen=in_scope,
            out_of_scope_fen=out_of_scope,
            payments=payments,
            self_pay_fen=self_pay,
            statuses=[person.status] if person.status else [],
            policy="xixia-2017",
        )
        add(event, person, 1)
        settled.append(event)
        if rng.random() < 0.02 and len(settled) > 100:
            undone = settled.pop(rng.randrange(len(settled) - 100))
            event_id += 1
            reversal = pb.SettlementEvent()
            reversal.CopyFrom(undone)
            reversal.event_id = event_id
            reversal.kind = pb.SETTLEMENT_EVENT_KIND_REVERSED
            add(reversal, by_id[undone.person_id], -1)
    if batch:
        data.batches.append(pb.RecordSettlementEventsRequest(events=batch).SerializeToString())
    data.events = event_id
    return data


def send_persons(channel: grpc.Channel, data: Year) -> None:
    stub = assistance_pb2_grpc.AssistanceServiceStub(channel)
    for start in range(0, len(data.persons), BATCH):
        chunk = data.persons[start : start + BATCH]
        stub.RecordPersons(
            pb.RecordPersonsRequest(
                persons=[
                    pb.InsuredPerson(
                        person_id=p.person_id,
                        version=1,
                        name=p.name,
                        household_id=p.household,
                        region=XIXIA,
                        years=[data.year],
                    )
                    for p in chunk
                ]
            ),
            metadata=INTERNAL,
        )
        held = [p for p in chunk if p.status]
        if held:
            stub.RecordPersonStatuses(
                pb.RecordPersonStatusesRequest(
                    persons=[
                        pb.PersonStatuses(
                            person_id=p.person_id,
                            version=1,
                            periods=[
                                pb.StatusPeriod(
                                    status=p.status,
                                    valid_from=from_date(date(data.year - 1, 1, 1)),
                                    agency=AGENCY_OF[p.status],
                                )
                            ],
                        )
                        for p in held
                    ]
                ),
                metadata=INTERNAL,
            )


def send_events(channel: grpc.Channel, batches: Sequence[bytes], senders: int) -> int:
    """Every batch through ``RecordSettlementEvents`` by ``senders`` threads; answers how
    many events were recorded as new."""
    call = channel.unary_unary(
        RECORD,
        request_serializer=None,  # the batches are encoded already
        response_deserializer=pb.RecordSettlementEventsResponse.FromString,
    )
    queue = iter(range(len(batches)))
    lock = threading.Lock()
    recorded = [0]
    failures: list[BaseException] = []

    def sender() -> None:
        try:
            while True:
                with lock:
                    index = next(queue, None)
                if index is None:
                    return
                answer = call(batches[index], metadata=INTERNAL, timeout=120)
                with lock:
                    recorded[0] += answer.recorded_count
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return recorded[0]


class Floor:
    """DuckDB holding the same events: the plain aggregates the ledger keeps."""

    def __init__(self, data: Year) -> None:
        self.db = duckdb.connect()
        self.db.execute(
            "CREATE TABLE events (person_id VARCHAR, household VARCHAR, sign INTEGER, "
            "total BIGINT, fund_paid BIGINT, self_pay BIGINT, eligible BIGINT, seq BIGINT)"
        )
        self.db.execute("CREATE TABLE lines (household VARCHAR, line BIGINT)")
        with tempfile.NamedTemporaryFile("w", suffix=".csv") as file:
            for row in data.rows:
                file.write(",".join(map(str, row)) + "\n")
            file.flush()
            self.db.execute(
                f"INSERT INTO events SELECT * FROM read_csv('{file.name}', header=false)"
            )

    def best(self, statement: str, runs: int = 3) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            self.db.execute(statement).fetchall()
            times.append(time.perf_counter() - started)
        return min(times)

    def ledger_seconds(self) -> float:
        """Per person and per household: what the ledger keeps, from the events."""
        return self.best(
            "SELECT person_id, sum(sign * total), sum(sign * fund_paid), sum(sign * self_pay), "
            "sum(sign * eligible) FROM events GROUP BY person_id"
        ) + self.best(
            "SELECT household, sum(sign * self_pay), sum(sign * eligible) FROM events "
            "GROUP BY household"
        )

    def sums(self) -> tuple[int, int, int]:
        row = self.db.execute(
            "SELECT sum(sign * total), sum(sign * self_pay), sum(sign * eligible) FROM events"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def households_over(self, data: Year, rules: MonitoringRules) -> tuple[int, int, int]:
        """Households past their warning line: at the end of the year, ever in the
        events' order, and by their settlements alone (reversals left out)."""
        lines = {}
        for person in data.persons:
            held = (
                frozenset({ASSISTANCE_STATUSES.code(person.status, "status")})
                if person.status
                else frozenset()
            )
            lines[person.household] = rules.warning_line(rules.warning_kind(held))
        self.db.execute("DELETE FROM lines")
        self.db.executemany("INSERT INTO lines VALUES (?, ?)", list(lines.items()))
        row = self.db.execute(
            "SELECT count(*) FILTER (WHERE final > line), count(*) FILTER (WHERE peak > line), "
            "count(*) FILTER (WHERE settled > line) FROM ("
            " SELECT household, max(running) AS peak, "
            " arg_max(running, seq) AS final, sum(greatest(sign, 0) * self_pay) AS settled"
            " FROM (SELECT household, seq, sign, self_pay, sum(sign * self_pay) OVER"
            "  (PARTITION BY household ORDER BY seq) AS running FROM events)"
            " GROUP BY household) JOIN lines USING (household)"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    def person(self, person_id: str) -> tuple[int, int, int]:
        row = self.db.execute(
            "SELECT coalesce(sum(sign * total), 0), coalesce(sum(sign * self_pay), 0), "
            "coalesce(sum(sign * eligible), 0) FROM events WHERE person_id = ?",
            [person_id],
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


def ledger_sums(engine: sqlalchemy.Engine, year: int) -> tuple[int, int, int, int]:
    burdens = assistance_tables.burdens
    events = assistance_tables.settlement_events
    with engine.connect() as connection:
        recorded = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count()).select_from(events)
        )
        totals = connection.execute(
            sqlalchemy.select(
                sqlalchemy.func.sum(burdens.c.total_fen),
                sqlalchemy.func.sum(burdens.c.personal_burden_fen),
                sqlalchemy.func.sum(burdens.c.eligible_burden_fen),
            ).where(burdens.c.year == year)
        ).one()
        return int(recorded.scalar_one()), *(int(value or 0) for value in totals)


def check_warnings(engine: sqlalchemy.Engine, data: Year, floor: Floor) -> None:
    """The warnings the intake raised, against DuckDB's households over their line."""
    pack = assistance_warnings.packs().in_force(XIXIA, date(data.year, 12, 31))
    rules = None if pack is None else monitoring_rules(pack)
    table = assistance_tables.warnings
    with engine.connect() as connection:
        raised = connection.execute(
            sqlalchemy.select(sqlalchemy.func.count())
            .select_from(table)
            .where(table.c.region == XIXIA, table.c.year == data.year)
        ).scalar_one()
    if rules is None:
        print(f"  warnings: {raised:,} raised; Xixia's pack has no monitoring rules", flush=True)
        return
    final, in_order, settled = floor.households_over(data, rules)
    print(
        f"  warnings: {raised:,} raised; DuckDB: {in_order:,} households past their line "
        f"in the events' order ({final:,} at the end of the year)",
        flush=True,
    )
    if not final <= raised <= settled:
        raise SystemExit(
            f"{raised} warnings raised: not from {final} (over the line at the end) "
            f"to {settled} (over it by settlements alone)"
        )


def secondary_run(
    stub: assistance_pb2_grpc.AssistanceServiceStub,
    meter: Meter,
    profiler: Profiler,
    result: Result,
    year: int,
) -> None:
    """A secondary-assistance run over Xixia's year, then its approval, each timed."""
    with measured(meter, profiler, "secondary run") as step:
        run = stub.CreateSecondaryRun(
            pb.CreateSecondaryRunRequest(
                request_id=f"bench-{year}",
                region=XIXIA,
                year=year,
                through=from_date(date(year, 12, 31)),
                case_worker="bench",
            ),
            metadata=INTERNAL,
            timeout=600,
        ).run
    result.add(
        "secondary run: create",
        step.seconds,
        f"{run.entry_count:,} recipients, {run.payable_count:,} to pay, "
        f"{run.to_pay_fen / 100:,.2f} yuan",
        step.cpu,
    )
    with measured(meter, profiler, "secondary approval") as step:
        stub.ApproveSecondaryRun(
            pb.ApproveSecondaryRunRequest(run_id=run.run_id, approver="bench-approver"),
            metadata=INTERNAL,
            timeout=600,
        )
    result.add("secondary run: approve", step.seconds, f"run {run.run_id}", step.cpu)


GOAL_REPORT_SECONDS = 1.0
GOAL_REPORT_TIMES_FLOOR = 10


def yearly_report(
    stub: assistance_pb2_grpc.AssistanceServiceStub,
    meter: Meter,
    profiler: Profiler,
    result: Result,
    data: Year,
) -> None:
    """The year's report of Xixia, best of three, beside DuckDB's plain aggregate of the
    same events (decoded from the batches sent) per month, visit type and status."""
    db = duckdb.connect()
    db.execute(
        "CREATE TABLE visits (month INTEGER, visit_type INTEGER, status INTEGER, "
        "sign INTEGER, total BIGINT, fund_paid BIGINT, self_pay BIGINT, eligible BIGINT)"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as file:
        for batch in data.batches:
            for e in pb.RecordSettlementEventsRequest.FromString(batch).events:
                sign = -1 if e.kind == pb.SETTLEMENT_EVENT_KIND_REVERSED else 1
                paid = sum(payment.paid_fen for payment in e.payments)
                eligible = max(0, e.self_pay_fen - e.out_of_scope_fen)
                status = e.statuses[0] if e.statuses else 0
                file.write(
                    f"{e.settled_on.month},{e.visit_type},{status},{sign},{e.total_fen},"
                    f"{paid},{e.self_pay_fen},{eligible}\n"
                )
        file.flush()
        db.execute(f"INSERT INTO visits SELECT * FROM read_csv('{file.name}', header=false)")
    floor = []
    for _ in range(3):
        started = time.perf_counter()
        db.execute(
            "SELECT month, visit_type, status, sum(sign), sum(sign * total), "
            "sum(sign * fund_paid), sum(sign * self_pay), sum(sign * eligible) "
            "FROM visits GROUP BY month, visit_type, status"
        ).fetchall()
        floor.append(time.perf_counter() - started)
    expected = db.execute("SELECT sum(sign), sum(sign * total) FROM visits").fetchone()
    db.close()
    times = []
    with measured(meter, profiler, "report") as step:
        for _ in range(3):
            started = time.perf_counter()
            answer = stub.GetReport(
                pb.GetReportRequest(region=XIXIA, year=data.year),
                metadata=INTERNAL,
                timeout=600,
            )
            times.append(time.perf_counter() - started)
    found = {
        row.figure: row.year_to_date
        for row in answer.rows
        if (row.category, row.visit_type, row.fund) == ("", 0, "")
    }
    if expected is None or (found["visits"], found["total_fen"]) != tuple(expected):
        raise SystemExit(f"the report's visits and total {found}: not the events' {expected}")
    best, fastest_floor = min(times), min(floor)
    # Both are timed on a machine that may be shared: the load says how busy it was.
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    result.add(
        "the year's report",
        best,
        f"{len(answer.rows):,} figures (first call {times[0]:.3f} s); DuckDB's aggregate "
        f"{fastest_floor:.3f} s: {best / fastest_floor:.1f}x (goal <= "
        f"{GOAL_REPORT_TIMES_FLOOR}x and < {GOAL_REPORT_SECONDS:.0f} s); load average {load}",
        step.cpu,
    )


SCREENED_BILLS = 2000


def screening_run(
    stub: assistance_pb2_grpc.AssistanceServiceStub,
    meter: Meter,
    profiler: Profiler,
    result: Result,
    data: Year,
) -> None:
    """A proactive-screening run over Xixia's year, timed: every person holding a status is
    sent to settlement (``ScreenSettlements``, which holds none of the benchmark's visits:
    the round trips and assistance's side are what is timed), and the bills of the year
    entered first (not timed), out-of-area stays of persons holding a status, are settled
    again under the pack."""
    holders = [person for person in data.persons if person.status]
    picked = random.Random(data.year).sample(holders, min(SCREENED_BILLS, len(holders)))
    for number, person in enumerate(picked):
        discharged = date(data.year, 1, 1) + timedelta(days=number % 300 + 5)
        stub.RecordBill(
            pb.RecordBillRequest(
                bill=pb.Bill(
                    request_id=f"bench-bill-{number}",
                    person_id=person.person_id,
                    region=XIXIA,
                    hospital_name="郑州大学第一附属医院",
                    hospital_level=3,
                    visit=pb.Visit(
                        visit_id=f"ZZ-{number}",
                        visit_type=pb.VISIT_TYPE_INPATIENT,
                        admitted=from_date(discharged - timedelta(days=4)),
                        discharged=from_date(discharged),
                        out_of_area=True,
                        items=[
                            pb.Item(code="BED", item_class=pb.ITEM_CLASS_A, amount_fen=1_200_000)
                        ],
                    ),
                    insurance_payments=[pb.BillPayment(fund="390100", paid_fen=600_000)],
                    self_pay_fen=600_000,
                )
            ),
            metadata=INTERNAL,
        )
    with measured(meter, profiler, "screening run") as step:
        run = stub.RunScreening(
            pb.RunScreeningRequest(
                request_id=f"bench-screening-{data.year}",
                region=XIXIA,
                year=data.year,
                case_worker="bench",
            ),
            metadata=INTERNAL,
            timeout=1200,
        ).run
    result.add(
        "screening run",
        step.seconds,
        f"{len(holders):,} persons with a status sent to settlement, {len(picked):,} bills; "
        f"{run.offer_count:,} offers, {run.offered_fen / 100:,.2f} yuan",
        step.cpu,
    )


def run_backend(
    backend: str, admin_url: str | None, data: Year, floor: Floor, args: argparse.Namespace
) -> Result:
    result = Result(backend)
    print(f"\n== {backend} ==", flush=True)
    with platform_on(backend, admin_url) as (platform, urls):
        meter = Meter(platform)
        profiler = Profiler(platform, args.profile / backend if args.profile else None)
        channel = grpc.insecure_channel(f"127.0.0.1:{platform.ports['assistance']}")
        engine = create_engine_for(urls["assistance"])
        with contextlib.closing(channel), contextlib.ExitStack() as stack:
            stack.callback(engine.dispose)
            with measured(meter, profiler, "setup") as step:
                send_persons(channel, data)
            result.add(
                "setup: persons and statuses",
                step.seconds,
                f"{len(data.persons):,} persons, {args.households:,} households",
            )
            with (
                measured(meter, profiler, "intake", ("assistance",)) as step,
                assistance_log_on_failure(platform),
            ):
                recorded = send_events(channel, data.batches, args.senders)
            rate = data.events / step.seconds
            floor_seconds = floor.ledger_seconds()
            result.add(
                "events into the ledger",
                step.seconds,
                f"{rate:,.0f} events/s (goal >= {GOAL_EVENTS_PER_SECOND:,}); "
                f"DuckDB's aggregate {floor_seconds:.2f} s; assistance's CPU "
                f"{step.spent.get('assistance', 0.0) / data.events * 1e6:.0f} us an event",
                step.cpu,
            )
            count, total, personal, eligible = ledger_sums(engine, data.year)
            expected = floor.sums()
            if recorded != data.events or count != data.events:
                raise SystemExit(f"{recorded} events recorded, {count} stored, {data.events} sent")
            if (total, personal, eligible) != expected:
                raise SystemExit(f"the ledger holds {(total, personal, eligible)}, not {expected}")
            stub = assistance_pb2_grpc.AssistanceServiceStub(channel)
            for person in random.Random(args.seed).sample(data.persons, 20):
                found = stub.GetBurden(
                    pb.GetBurdenRequest(person_id=person.person_id, year=data.year),
                    metadata=INTERNAL,
                ).burden
                figures = (found.total_fen, found.personal_burden_fen, found.eligible_burden_fen)
                if figures != floor.person(person.person_id):
                    raise SystemExit(f"GetBurden of a person: {figures}, not as DuckDB sums")
            print("  checked: every event once; the ledger's sums equal the events'", flush=True)
            check_warnings(engine, data, floor)
            secondary_run(stub, meter, profiler, result, data.year)
            yearly_report(stub, meter, profiler, result, data)
            with assistance_log_on_failure(platform):
                screening_run(stub, meter, profiler, result, data)
    return result


@contextlib.contextmanager
def assistance_log_on_failure(platform: Platform) -> Iterator[None]:
    """A call that fails prints the end of assistance's log (the platform's files go with
    it)."""
    try:
        yield
    except grpc.RpcError:
        log = platform.log_path("assistance").read_text(errors="replace")
        print(log[-4000:], file=sys.stderr)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Settlement events into the assistance service's ledger, beside DuckDB.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--households", type=int, default=40_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds of each phase of bench/settle.py's load (0: not run)",
    )
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--settle-persons", type=int, default=500)
    parser.add_argument(
        "--settlement-processes",
        type=int,
        default=default_settlement_processes(),
        help="settlement processes (default: one per two cores)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record assistance with py-spy during the intake and print where the time went",
    )
    args = parser.parse_args()
    if not 0 < args.households <= args.persons:
        parser.error("--households must be from 1 to --persons")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    year = date.today().year
    started = time.perf_counter()
    data = generate(args.persons, args.households, args.events, year, args.seed)
    print(
        f"generated {len(data.persons):,} persons and {data.events:,} events "
        f"({len(data.batches):,} batches) in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    floor = Floor(data)
    with contextlib.ExitStack() as stack:
        admin_url = stack.enter_context(postgres_server()) if "postgresql" in backends else None
        for backend in backends:
            run_backend(backend, admin_url, data, floor, args)
            if args.duration > 0:
                print(
                    f"\n== {backend}: bench/settle.py's load, assistance paused then receiving =="
                )
                assistance_ratio(backend, admin_url, bench_persons(args.settle_persons), args)


if __name__ == "__main__":
    main()

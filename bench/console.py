"""The console's dashboard of a county's year: a region with a year of settlement events,
the dashboard page asked by a logged-in analyst, its time measured on the server's side.

    .venv/bin/python bench/console.py [--persons 100000] [--households 40000]
                                      [--events 1000000] [--senders 2]
                                      [--backends sqlite,postgresql] [--seed 7]
                                      [--repeat 10] [--profile DIR]

``--persons 10000 --households 4000 --events 100000 --repeat 5`` is a quick try (a few
minutes for both backends).

For each backend it starts the platform as ``make run`` does (the four services and the
gateway, bench/monitor.py's start-up: on PostgreSQL each service its own database in a
throwaway cluster, or in the server at ``DOUDI_BENCH_POSTGRES_URL``) and then:

1. **Setup (timed, not the goal).** bench/monitor.py's Xixia (411323): ``--persons``
   persons in ``--households`` households, 30% of the households holding a status, and
   ``--events`` settlements of the year, sent to assistance through
   ``RecordSettlementEvents`` by ``--senders`` concurrent senders (its generator and its
   intake; the warnings the intake raises are then delivered to the hub before anything
   is timed).
2. **An analyst's session.** A console account of the analyst role made through
   datashare's ``CreateConsoleUser`` (the internal token), logged in over HTTP as a browser
   does (the login form's CSRF token, then its POST), with httpx.
3. **The dashboard.** ``GET /console/dashboard?region=411323&year=YEAR``, ``--repeat``
   times after two warm-ups. For each answer: the gateway's own time from its
   ``Server-Timing: app;dur=<ms>`` header (the console's middleware: the whole request,
   its ``GetReport`` call to assistance included, without the network), and the client's
   wall time. Checked: each answer is 200 and shows the year's total cost as the report
   gives it (``GetReport``'s ``total_fen`` of everyone and every visit type, in yuan as the
   console writes it), and each CSV download (below) holds it to the fen.
4. **The floor.** In the same rounds, the direct gRPC ``GetReport(region, year,
   monthly=True)``, the one call the page makes: what the page costs beyond it is the
   console's own (the session, the account's check at the hub, the charts, the
   template).
5. **The CSV download.** ``GET /console/dashboard/report.csv?region=411323&year=YEAR``
   once a round: its server-side time (it asks ``GetReport`` for the year without the
   months).

The three requests of a round are made in turn, so that the machine's drift weighs on
each alike. It prints, per backend, the dashboard's server-side p50, p95 and max, the
client's p50, ``GetReport``'s best and p50 and the ratio of the dashboard's p50 to it,
the CSV's times, the CPU each process spent per request (the platform's processes read
from /proc before and after each request: ticks of 10 ms, averaged), and whether the
goal is met: **the dashboard's server-side p95 under 1,000 ms**. p95 of a few rounds
is the nearest rank (of 10, the largest).

``--profile DIR``: after the timed rounds, 20 s of dashboards more with py-spy recording
the gateway (bench/settle.py's profiler: samples holding the GIL; printed: the seconds it
held it a dashboard, and their share under each of the project's functions and
templates) and assistance (bench/roster.py's: its threads' time in the project's code,
waiting for the database included). The PostgreSQL databases it creates are dropped at
the end. It exits with 1 when a check of step 3 fails (not for a missed goal).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, overload

import grpc
import httpx
from tqdm import tqdm

from doudi.assistance.v1 import assistance_pb2 as pb
from doudi.assistance.v1 import assistance_pb2_grpc
from doudi.cli.launcher import Platform
from doudi.cli.progress import bar
from doudi.common.db import create_engine_for
from doudi.core.money import fen_to_yuan, format_yuan
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.assistance import tables as assistance_tables

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.monitor import Year, assistance_log_on_failure, generate, send_events, send_persons
from bench.roster import XIXIA, Meter, Profiler, empty, measured, platform_on, wait_until
from bench.settle import INTERNAL, postgres_server, profiling

GOAL_P95_MS = 1000.0
WARMUPS = 2
USERNAME = "bench-analyst"
PASSWORD = "bench-analyst-password"  # a throwaway platform's account
SERVER_TIMING = re.compile(r"\bapp;dur=([0-9.]+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PROFILE_RATE = 200  # bench/settle.py's profiler's
PROFILE_SECONDS = 20
"""How long dashboards are profiled: the gateway holds the GIL a few ms of each."""
SHOWN_CPU = ("gateway", "assistance", "datashare", "postgresql", "bench", "other processes")


class Ticking(Sequence[bytes]):
    """The batches, a progress bar moved on as each is taken to be sent (bench/monitor.py's
    senders take them by index)."""

    def __init__(self, items: Sequence[bytes], progress: tqdm[Any]) -> None:
        self.items = items
        self.progress = progress

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return self.items[index]
        self.progress.update()
        return self.items[index]


@dataclass
class Figures:
    """One backend's measurements, in milliseconds."""

    backend: str
    events: int = 0
    intake_seconds: float = 0.0
    dashboard: list[float] = field(default_factory=list)
    """The gateway's time (Server-Timing)."""
    dashboard_wall: list[float] = field(default_factory=list)
    csv: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)
    """Direct ``GetReport(monthly)``, the client's wall time."""
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """CPU seconds by process, summed over the rounds, for each kind of request."""
    failures: list[str] = field(default_factory=list)
    load: str = ""

    @property
    def met(self) -> bool:
        return bool(self.dashboard) and nearest_rank(self.dashboard, 0.95) < GOAL_P95_MS


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def server_ms(answer: httpx.Response) -> float | None:
    """The gateway's time from the answer's ``Server-Timing`` (None: not there)."""
    found = SERVER_TIMING.search(answer.headers.get("server-timing", ""))
    return None if found is None else float(found.group(1))


def fault(answer: httpx.Response, expected: str) -> str | None:
    """What is wrong with an answer that should be 200, carry its Server-Timing and show
    ``expected``; None when nothing is."""
    if answer.status_code == 200 and expected in answer.text and server_ms(answer) is not None:
        return None
    problems = [f"{answer.status_code}"]
    if server_ms(answer) is None:
        problems.append("no Server-Timing app;dur")
    if answer.status_code == 200 and expected not in answer.text:
        problems.append(f"without {expected!r}")
    else:
        problems.append(f"body {answer.text[:300]!r}")
    return f"{answer.request.method} {answer.request.url.path}: " + ", ".join(problems)


def create_analyst(platform: Platform) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{platform.ports['datashare']}") as channel:
        datashare_pb2_grpc.DatashareServiceStub(channel).CreateConsoleUser(
            datashare_pb2.CreateConsoleUserRequest(
                username=USERNAME,
                display_name="基准分析员",
                role=datashare_pb2.CONSOLE_ROLE_ANALYST,
                password=PASSWORD,
            ),
            metadata=INTERNAL,
        )


def logged_in(platform: Platform) -> httpx.Client:
    """An httpx client holding the analyst's session, logged in as a browser does."""
    client = httpx.Client(
        base_url=f"{platform.gateway_url}/console", timeout=600, follow_redirects=False
    )
    form = client.get("/login")
    token = CSRF.search(form.text)
    if form.status_code != 200 or token is None:
        raise SystemExit(f"GET /console/login: {form.status_code}, no CSRF token on the form")
    answer = client.post(
        "/login", data={"username": USERNAME, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    if answer.status_code != 303:
        raise SystemExit(f"POST /console/login: {answer.status_code}, not 303\n{answer.text}")
    return client


def the_year_total(answer: pb.GetReportResponse) -> int:
    """The report's total cost of the year: everyone, every visit type."""
    return next(
        (
            row.year_to_date
            for row in answer.rows
            if (row.figure, row.category, row.visit_type, row.fund) == ("total_fen", "", 0, "")
        ),
        0,
    )


def intake(platform: Platform, meter: Meter, data: Year, args: argparse.Namespace) -> float:
    """bench/monitor.py's persons, statuses and events into assistance; then the warnings
    the intake raised delivered to the hub (nothing of it left running to be timed)."""
    profiler = Profiler(platform, None)
    with (
        grpc.insecure_channel(f"127.0.0.1:{platform.ports['assistance']}") as channel,
        assistance_log_on_failure(platform),
    ):
        with measured(meter, profiler, "setup") as step:
            send_persons(channel, data)
        print(
            f"  setup: {len(data.persons):,} persons, {args.households:,} households: "
            f"{step.seconds:.1f} s",
            flush=True,
        )
        with (
            bar("batches sent", len(data.batches), "batch") as progress,
            measured(meter, profiler, "intake") as step,
        ):
            recorded = send_events(channel, Ticking(data.batches, progress), args.senders)
    if recorded != data.events:
        raise SystemExit(f"{recorded:,} events recorded of {data.events:,} sent")
    print(
        f"  intake (not the goal): {data.events:,} events in {step.seconds:.1f} s, "
        f"{data.events / step.seconds:,.0f}/s; CPU s: {step.cpu}",
        flush=True,
    )
    engine = create_engine_for(
        platform.database_urls.get("assistance")
        or f"sqlite:///{platform.data_dir / 'assistance.db'}"
    )
    try:
        waited = wait_until(
            "the warnings' delivery to the hub",
            lambda: empty(engine, assistance_tables.warning_deliveries),
            timeout=1800,
        )
    finally:
        engine.dispose()
    if waited is not None:
        print(f"  the warnings delivered to the hub {waited:.1f} s after the intake", flush=True)
    return step.seconds


def timed(meter: Meter, cpu: dict[str, float], request: Callable[[], Any]) -> tuple[Any, float]:
    """``request()``'s answer and wall time in ms; the CPU each process spent meanwhile is
    added to ``cpu``."""
    before = meter.snapshot()
    started = time.perf_counter()
    answer = request()
    elapsed = (time.perf_counter() - started) * 1000
    for name, seconds in meter.snapshot().items():
        cpu[name] += seconds - before.get(name, 0.0)
    return answer, elapsed


def rounds(
    platform: Platform, client: httpx.Client, figures: Figures, year: int, repeat: int
) -> None:
    """Two warm-up rounds, then ``repeat`` measured: the dashboard, the direct
    ``GetReport(monthly)`` and the CSV download, in turn."""
    meter = Meter(platform)
    query = {"region": XIXIA, "year": str(year)}
    cpu: dict[str, dict[str, float]] = {
        kind: defaultdict(float) for kind in ("dashboard", "GetReport", "csv")
    }
    with (
        grpc.insecure_channel(f"127.0.0.1:{platform.ports['assistance']}") as channel,
        bar("rounds", WARMUPS + repeat, "round") as progress,
    ):
        stub = assistance_pb2_grpc.AssistanceServiceStub(channel)

        def report() -> pb.GetReportResponse:
            return stub.GetReport(
                pb.GetReportRequest(region=XIXIA, year=year, monthly=True),
                metadata=INTERNAL,
                timeout=600,
            )

        for index in range(WARMUPS + repeat):
            counted = index >= WARMUPS
            spent = cpu if counted else {kind: defaultdict(float) for kind in cpu}
            page, page_wall = timed(
                meter, spent["dashboard"], lambda: client.get("/dashboard", params=query)
            )
            direct, report_wall = timed(meter, spent["GetReport"], report)
            csv, _ = timed(
                meter, spent["csv"], lambda: client.get("/dashboard/report.csv", params=query)
            )
            total = the_year_total(direct)
            page_fault = fault(page, f"<dd>{format_yuan(total)}</dd>")
            csv_fault = fault(csv, fen_to_yuan(total))
            for found in (page_fault, csv_fault):
                if found is not None:
                    if not figures.failures:  # the first: what the gateway said about it
                        log = platform.log_path("gateway").read_text(errors="replace")
                        print(f"  the gateway's log, its end:\n{log[-3000:]}", flush=True)
                    figures.failures.append(f"round {index + 1}: {found}")
                    print(f"  CHECK FAILED: round {index + 1}: {found}", flush=True)
            if counted:
                figures.report.append(report_wall)
                if page_fault is None:
                    figures.dashboard.append(server_ms(page) or 0.0)
                    figures.dashboard_wall.append(page_wall)
                if csv_fault is None:
                    figures.csv.append(server_ms(csv) or 0.0)
            progress.update()
    figures.cpu = {kind: dict(spent) for kind, spent in cpu.items()}
    figures.load = ", ".join(f"{value:.1f}" for value in os.getloadavg())


OURS = re.compile(r"\((gateway|services|doudi)/|\.html\)")
NOT_OURS = re.compile(r"^(<module>|main|run_service) \(")
LINE = re.compile(r":\d+\)$")
SHORTER = re.compile(r"\(/\S*?/(site-packages|python3\.\d+|main)/")


def gil_profile(path: Path, top: int = 16) -> tuple[float, list[str]]:
    """From a py-spy raw profile (samples holding the GIL): the seconds held, then the
    share of them under each of the project's functions and templates (inclusive, the
    process's start-up frames left out), then the innermost frames by line, most first."""
    inclusive: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [SHORTER.sub("(", frame) for frame in stack.split(";")]
        total += int(count)
        innermost[frames[-1]] += int(count)
        for function in {LINE.sub(")", frame) for frame in frames}:
            if OURS.search(function) and not NOT_OURS.search(function):
                inclusive[function] += int(count)
    if not total:
        return 0.0, []

    def shares(counter: Counter[str], count: int) -> list[str]:
        return [f"{n / total:6.1%}  {frame}" for frame, n in counter.most_common(count)]

    return total / PROFILE_RATE, [
        *shares(inclusive, top),
        "  innermost:",
        *shares(innermost, top // 2),
    ]


def profile(platform: Platform, client: httpx.Client, year: int, directory: Path) -> None:
    """Dashboards for :data:`PROFILE_SECONDS`, recorded by py-spy: the gateway (with the
    other services but assistance) by bench/settle.py's profiler (samples holding the
    GIL), assistance by bench/roster.py's (its threads' time in the project's code,
    waiting for the database included), which prints its own summary."""
    query = {"region": XIXIA, "year": str(year)}
    server, count = 0.0, 0
    with (
        profiling(platform, directory, PROFILE_SECONDS),
        Profiler(platform, directory).record("dashboards", ("assistance",)),
    ):
        started = time.perf_counter()
        # Within the gateway's recording, which began a second before (Profiler's wait).
        while time.perf_counter() - started < PROFILE_SECONDS - 3:
            server += server_ms(client.get("/dashboard", params=query)) or 0.0
            count += 1
        wall = time.perf_counter() - started
    print(
        f"  profiled: {count} dashboards, {wall:.2f} s of client time, {server / 1000:.2f} s "
        "of the gateway's (Server-Timing)",
        flush=True,
    )
    path = directory / "gateway.txt"
    if not path.exists() or not count:
        print(f"  gateway: no profile ({path})")
        return
    held, lines = gil_profile(path)
    print(
        f"  gateway ({path}): held the GIL {held:.2f} s, {held / count * 1000:.0f} ms a "
        "dashboard; share of those samples under the project's functions and templates:"
    )
    for line in lines:
        print(f"    {line}")


def ms(values: Sequence[float], how: Callable[[Sequence[float]], float]) -> str:
    """A statistic of the times in ms, ``-`` when there are none (every answer failed)."""
    return f"{how(values):,.0f}" if values else "-"


def p95(values: Sequence[float]) -> float:
    return nearest_rank(values, 0.95)


def ratio(figures: Figures) -> str:
    """The dashboard's median over the direct GetReport's."""
    if not figures.dashboard or not figures.report:
        return "-"
    return f"{statistics.median(figures.dashboard) / statistics.median(figures.report):.2f}x"


def summary(figures: Figures, repeat: int) -> list[str]:
    d, median = figures.dashboard, statistics.median
    lines = [
        f"  {figures.backend}: {figures.events:,} events (intake {figures.intake_seconds:.1f} s); "
        f"{repeat} rounds after {WARMUPS} warm-ups; load average {figures.load}",
        f"    dashboard, server side (Server-Timing): p50 {ms(d, median)} ms, p95 {ms(d, p95)} "
        f"ms, max {ms(d, max)} ms; client wall p50 {ms(figures.dashboard_wall, median)} ms",
        f"    GetReport(monthly), direct: best {ms(figures.report, min)} ms, p50 "
        f"{ms(figures.report, median)} ms; dashboard p50 / GetReport p50: {ratio(figures)}",
        f"    CSV download, server side: p50 {ms(figures.csv, median)} ms, max "
        f"{ms(figures.csv, max)} ms",
    ]
    # On SQLite the PostgreSQL server's CPU is none of the platform's (another's work).
    names = [n for n in SHOWN_CPU if figures.backend != "sqlite" or n != "postgresql"]
    for kind, spent in figures.cpu.items():
        shown = ", ".join(
            f"{name} {spent.get(name, 0.0) / repeat * 1000:.0f}"
            for name in names
            if spent.get(name, 0.0) >= 0.005
        )
        lines.append(f"    CPU ms per {kind}: {shown}")
    verdict = "met" if figures.met else "NOT MET"
    lines.append(
        f"    goal (server-side p95 < {GOAL_P95_MS:,.0f} ms): {verdict} (p95 {ms(d, p95)} ms"
        f"{'' if len(d) == repeat else f' of {len(d)} answers that passed the check'})"
    )
    return lines


def table(results: Sequence[Figures]) -> list[str]:
    rows = [
        "| backend | events | dashboard p50 / p95 / max (server) | client p50 | "
        "GetReport(monthly) best / p50 | dashboard p50 / GetReport p50 | CSV p50 / max (server) "
        "| goal: p95 < 1,000 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    median = statistics.median
    for f in results:
        d = f.dashboard
        rows.append(
            f"| {f.backend} | {f.events:,} | {ms(d, median)} / {ms(d, p95)} / {ms(d, max)} ms | "
            f"{ms(f.dashboard_wall, median)} ms | {ms(f.report, min)} / {ms(f.report, median)} "
            f"ms | {ratio(f)} | {ms(f.csv, median)} / {ms(f.csv, max)} ms | "
            f"{'met' if f.met else 'NOT met'} |"
        )
    return rows


def run_backend(
    backend: str, admin_url: str | None, data: Year, args: argparse.Namespace
) -> Figures:
    figures = Figures(backend, events=data.events)
    print(f"\n== {backend} ==", flush=True)
    with platform_on(backend, admin_url) as (platform, _urls):
        meter = Meter(platform)
        figures.intake_seconds = intake(platform, meter, data, args)
        create_analyst(platform)
        with contextlib.closing(logged_in(platform)) as client:
            rounds(platform, client, figures, data.year, args.repeat)
            print(*summary(figures, args.repeat), sep="\n", flush=True)
            if args.profile:
                profile(platform, client, data.year, args.profile / backend)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The console's dashboard of a region's year of settlement events: its "
        "server-side time (Server-Timing) beside the GetReport call it makes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "--persons", type=int, default=100_000, help="Xixia's persons (default: %(default)s)"
    )
    parser.add_argument(
        "--households", type=int, default=40_000, help="their households (default: %(default)s)"
    )
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="settlements of the year, before reversals (default: %(default)s)",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=2,
        help="concurrent RecordSettlementEvents senders (default: %(default)s)",
    )
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="the generator's seed (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=10,
        help=f"measured rounds, after {WARMUPS} warm-ups (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the timed rounds, record the gateway and assistance with py-spy during "
        f"{PROFILE_SECONDS} s of dashboards more and print where their time went "
        "(default: no profile)",
    )
    args = parser.parse_args()
    if not 0 < args.households <= args.persons:
        parser.error("--households must be from 1 to --persons")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    year = date.today().year
    print(f"generating Xixia's year {year} ...", flush=True)
    started = time.perf_counter()
    data = generate(args.persons, args.households, args.events, year, args.seed)
    data.rows.clear()  # the DuckDB floor's rows: not needed here
    print(
        f"generated {len(data.persons):,} persons and {data.events:,} events "
        f"({len(data.batches):,} batches) in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    results = []
    with contextlib.ExitStack() as stack:
        admin_url = stack.enter_context(postgres_server()) if "postgresql" in backends else None
        for backend in backends:
            results.append(run_backend(backend, admin_url, data, args))
    print("\n== summary ==")
    for figures in results:
        print(*summary(figures, args.repeat), sep="\n")
    print(*table(results), sep="\n")
    failed = [f"{f.backend}: {failure}" for f in results for failure in f.failures]
    if failed:
        print(f"\nCHECKS FAILED ({len(failed)}):", *failed, sep="\n  ")
        raise SystemExit(1)
    print("\nchecked: every dashboard answered 200 showing the year's total cost; every CSV too")


if __name__ == "__main__":
    main()

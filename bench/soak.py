"""Sustained load: settlements at 80% of the platform's measured maximum for ten minutes.

    .venv/bin/python bench/soak.py [--minutes 10] [--share 0.8] [--backend postgresql]
                                   [--clients 64] [--persons 500]

It starts the platform as bench/settle.py does (on PostgreSQL: a throwaway cluster, or
the server at ``DOUDI_BENCH_POSTGRES_URL``), measures the maximum rate with ``--clients``
closed-loop connections for 15 s, then offers ``--share`` of it as an open load for
``--minutes``: requests are sent on a fixed schedule whether or not the earlier ones
were answered (a request's latency counts from when it was due, so a platform that falls
behind shows it), over a pool of keep-alive connections. Each minute it prints the
requests answered, the errors, p50 and p99 latency, and the resident memory of every
process of the platform. The goals, checked at the end (exit status 1 if one fails):

- p99 stable: no minute's p99 above twice the first minute's;
- no error: every request answered 201;
- memory flat: every process's resident memory, at each later minute, within 10% of
  its size after the first minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import uvloop

from doudi.cli.launcher import Platform
from doudi.cli.progress import bar

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.settle import (
    bench_persons,
    create_databases,
    default_settlement_processes,
    drive,
    postgres_server,
    register,
    running_platform,
    settlement_requests,
)

SERVICES = ("enrollment", "datashare", "settlement", "assistance")
P99_LIMIT = 2.0
MEMORY_LIMIT = 0.10
_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    late: int = 0
    """Requests still waiting for a connection when the minute ended."""

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def resident_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_load(
    port: int,
    rate: float,
    minutes: int,
    make_request: Callable[[], bytes],
    connections: int,
    platform: Platform,
) -> tuple[list[Minute], list[dict[str, int]]]:
    """``rate`` requests a second for ``minutes``, due on a fixed schedule; the minutes'
    figures, and each process's memory at the end of each minute."""
    results = [Minute() for _ in range(minutes)]
    memory: list[dict[str, int]] = []

    async def main() -> None:
        pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for _ in range(connections):
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        start = time.perf_counter()
        total = int(rate * minutes * 60)
        interval = 1.0 / rate
        pending: set[asyncio.Task[None]] = set()

        async def one(due: float) -> None:
            reader, writer = await pool.get()
            minute = min(int((due - start) // 60), minutes - 1)
            try:
                writer.write(make_request())
                head = await reader.readuntil(b"\r\n\r\n")
                match = _LENGTH.search(head)
                if match:
                    await reader.readexactly(int(match.group(1)))
                results[minute].latencies.append(time.perf_counter() - due)
                if int(head[9:12]) != 201:
                    results[minute].errors += 1
            except (OSError, asyncio.IncompleteReadError):
                results[minute].errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            pool.put_nowait((reader, writer))

        progress = bar("soak", minutes, "min")
        next_minute = 1
        for index in range(total):
            due = start + index * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if due - start >= next_minute * 60:
                memory.append(
                    {
                        name: resident_kib(process.pid)
                        for name, process in platform.processes.items()
                    }
                )
                results[next_minute - 1].late = len(pending)
                next_minute += 1
                progress.update(1)
        await asyncio.gather(*pending)
        memory.append(
            {name: resident_kib(process.pid) for name, process in platform.processes.items()}
        )
        progress.update(1)
        progress.close()
        while not pool.empty():
            _, writer = pool.get_nowait()
            writer.close()

    uvloop.run(main())
    return results, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="how long the load lasts")
    parser.add_argument(
        "--share", type=float, default=0.8, help="the share of the maximum rate offered"
    )
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql"), default="postgresql", help="the database"
    )
    parser.add_argument("--clients", type=int, default=64, help="closed-loop clients (maximum)")
    parser.add_argument("--persons", type=int, default=500, help="persons settled for")
    parser.add_argument(
        "--settlement-processes",
        type=int,
        default=default_settlement_processes(),
        help="settlement processes (default: one per two cores)",
    )
    args = parser.parse_args()
    year = date.today().year
    persons = bench_persons(args.persons)
    with contextlib.ExitStack() as stack:
        urls = None
        if args.backend == "postgresql":
            admin_url = stack.enter_context(postgres_server())
            urls = create_databases(admin_url, list(SERVICES))
        platform = stack.enter_context(running_platform(urls, args.settlement_processes))
        register(platform, persons, year)
        port = platform.ports["gateway"]
        make = settlement_requests(persons, year, seed=1)
        peak = drive(port, args.clients, 15.0, make)
        rate = peak.rate * args.share
        print(
            f"{args.backend}: the maximum {peak.rate:.0f}/s (p99 {peak.percentile(0.99):.0f} ms, "
            f"{args.clients} clients); offering {rate:.0f}/s ({args.share:.0%}) for "
            f"{args.minutes} min",
            flush=True,
        )
        minutes, memory = open_load(
            port, rate, args.minutes, settlement_requests(persons, year, seed=2), 128, platform
        )
    return report(minutes, memory)


def report(minutes: list[Minute], memory: list[dict[str, int]]) -> int:
    print(f"{'minute':>6} {'answered':>9} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8}  memory (MiB)")
    for index, minute in enumerate(minutes):
        sizes = " ".join(f"{name} {kib / 1024:.0f}" for name, kib in sorted(memory[index].items()))
        print(
            f"{index + 1:>6} {len(minute.latencies):>9} {minute.errors:>6} "
            f"{minute.percentile(0.5):>8.1f} {minute.percentile(0.99):>8.1f}  {sizes}"
        )
    failures = []
    first = minutes[0].percentile(0.99)
    worst = max(minute.percentile(0.99) for minute in minutes)
    print(f"p99: first minute {first:.1f} ms, worst {worst:.1f} ms ({worst / first:.2f}x)")
    if worst > P99_LIMIT * first:
        failures.append(f"a minute's p99 is {worst / first:.2f}x the first's (limit {P99_LIMIT}x)")
    errors = sum(minute.errors for minute in minutes)
    print(f"errors: {errors}")
    if errors:
        failures.append(f"{errors} errors")
    baseline = memory[0]
    for name in sorted(baseline):
        growth = max(sizes.get(name, 0) / baseline[name] - 1 for sizes in memory[1:])
        print(
            f"memory of {name}: {baseline[name] / 1024:.0f} MiB after a minute, at most {growth:+.1%} later"
        )
        if growth > MEMORY_LIMIT:
            failures.append(f"{name} grew {growth:.1%} (limit {MEMORY_LIMIT:.0%})")
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("all goals met")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A clerk's roster file of 200,000 rows through ``doudi roster submit``, end to end.

    .venv/bin/python bench/roster_submit.py [--rows 200000] [--seed 7]

Starts the platform on SQLite as ``make run`` does (bench/settle.py's start-up), writes
the poverty office's roster of ``--rows`` valid rows as a UTF-8 CSV, and times the
command a clerk runs, as a child process (reading the file, streaming it to the hub,
the hub recording it): the first submission (every row an assertion); the same file
again (nothing changes); and a next month's roster with 1% of the persons gone and 1%
new (a revocation of 1%, under the hub's guard against mass revocations). Prints the
seconds of each and the rows per second. The issue's goal: a few seconds for 200,000
rows.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/ is on the path, not the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.roster import chinese_name, identity_numbers
from bench.settle import running_platform

HEADER = ("身份证号码", "姓名", "户编号", "救助类别", "认定日期", "终止日期", "业务编号")


def write_roster(path: Path, persons: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for index, (number, name) in enumerate(persons):
            writer.writerow(
                (
                    number,
                    name,
                    f"H{index // 3:07d}",
                    "建档立卡贫困户",
                    "2024-01-01",
                    "",
                    f"R{index:07d}",
                )
            )


def submit(path: Path, as_of: date, address: str, *extra: str) -> float:
    command = [
        sys.executable, "-m", "doudi", "roster", "submit", str(path),
        "--agency", "poverty_office", "--region", "411323", "--as-of", as_of.isoformat(),
        "--address", address, *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"doudi roster submit exited with {done.returncode}:\n{done.stderr}")
    summary = [
        line
        for line in done.stdout.splitlines()
        if line.strip().startswith(("accepted", "asserted", "revoked", "rejected"))
    ]
    print("   ", "; ".join(" ".join(line.split()) for line in summary))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="roster rows (default 200,000)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    numbers = identity_numbers(args.rows + args.rows // 100, rng)
    persons = [(number, chinese_name(rng)) for number in numbers]
    first, newcomers = persons[: args.rows], persons[args.rows :]
    gone = len(newcomers)
    following = first[gone:] + newcomers
    with tempfile.TemporaryDirectory() as folder, running_platform(None, 1) as platform:
        os.environ.pop("DOUDI_AGENCY_KEY", None)
        address = platform.addresses["datashare"]
        one, two = Path(folder) / "roster.csv", Path(folder) / "next.csv"
        write_roster(one, first)
        write_roster(two, following)
        print(
            f"doudi roster submit, {args.rows:,} rows (UTF-8 CSV, {one.stat().st_size / 1e6:.1f} MB), SQLite"
        )
        runs = (
            ("first submission", one, date(2024, 1, 1), ()),
            ("the same file again", one, date(2024, 1, 1), ()),
            (f"next month, {gone:,} gone and {gone:,} new", two, date(2024, 2, 1), ()),
        )
        for label, path, as_of, extra in runs:
            seconds = submit(path, as_of, address, *extra)
            print(f"{label:<40}{seconds:>8.2f} s{args.rows / seconds:>12,.0f} rows/s")


if __name__ == "__main__":
    main()

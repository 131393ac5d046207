"""The generated corpus of malformed rosters (tests/roster_corpus.py), read file by file in
a child process: no traceback, none over 10 s or 500 MB, and no line lost without a word.

A file read without a file-level error must account for every data line the generator
wrote (a RosterLine or a LineError each); a file the generator damaged beyond reading
(a quote never closed, a zip bomb...) must be refused with InvalidInput. Then every file
goes through ``doudi roster submit --dry-run``'s path to a real hub: the hub's answer
accounts for every line too (accepted, or rejected with its line and reason), and a
refused file sends nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from doudi.cli import roster_client
from doudi.core.errors import InvalidInput
from tests.roster_corpus import LIMIT_SECONDS, write_corpus
from tests.services import no_peers, running_service

ROOT = Path(__file__).resolve().parent.parent
PEAK_MB = 500


def test_every_malformed_roster_is_refused_in_one_line_or_read_without_losing_a_line(
    tmp_path: Path,
) -> None:
    cases = write_corpus(tmp_path)
    assert sum(case.name.endswith(".csv") for case in cases) >= 300
    assert sum(case.name.endswith(".xlsx") for case in cases) >= 30
    done = subprocess.run(
        [sys.executable, "-m", "tests.roster_corpus", str(tmp_path / "manifest.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = {result["name"]: result for result in map(json.loads, done.stdout.splitlines())}
    assert set(results) == {case.name for case in cases}
    problems = []
    for case in cases:
        result = results[case.name]
        outcome = result["outcome"]
        if outcome not in ("read", "refused"):
            problems.append(f"{case.name}: {outcome}: {result['message']}")
        if result["seconds"] > LIMIT_SECONDS:
            problems.append(f"{case.name}: {result['seconds']:.1f} s")
        if result["peak_mb"] > PEAK_MB:
            problems.append(f"{case.name}: {result['peak_mb']:.0f} MB")
        if case.refused is not None and (outcome == "refused") != case.refused:
            problems.append(
                f"{case.name}: {outcome}, not {'refused' if case.refused else 'read'}"
                f" ({result.get('message', '')[:200]})"
            )
        if outcome == "read":
            if case.lines is not None and result["lines"] != case.lines:
                missing = sorted(set(case.lines) - set(result["lines"]))
                extra = sorted(set(result["lines"]) - set(case.lines))
                problems.append(
                    f"{case.name}: lines missing {missing[:10]}, unexpected {extra[:10]}"
                )
            if result["invisible"]:
                problems.append(f"{case.name}: invisible characters kept in {result['invisible']}")
        elif outcome == "refused" and "\n" in result["message"]:
            problems.append(f"{case.name}: a refusal of more than one line")
    assert problems == []


def test_every_line_of_every_malformed_roster_is_accepted_or_rejected_by_the_hub_with_a_reason(
    tmp_path: Path, database_url: str
) -> None:
    """Previews (a stored roster would revoke the one before it, which the hub's guard
    refuses unconfirmed): the same path and counts as a submission, nothing stored."""
    files = tmp_path / "files"
    files.mkdir()
    cases = write_corpus(files)
    problems = []
    previewed = 0
    with running_service("datashare", tmp_path, database_url=database_url, env=no_peers()) as hub:
        for case in cases:
            try:
                report = roster_client.submit_roster(
                    files / case.name,
                    agency="civil_affairs",
                    region="411323",
                    as_of=date(2026, 3, 1),
                    key="demo-civil-affairs",
                    address=hub.address,
                    preview=True,
                )
            except InvalidInput as error:
                if case.refused is False and "none of its" not in error.message:
                    problems.append(f"{case.name}: refused: {error.message[:200]}")
                if "nothing was sent" not in error.message:
                    problems.append(f"{case.name}: refused without saying nothing was sent")
                continue
            previewed += 1
            if case.refused:
                problems.append(f"{case.name}: previewed, not refused")
            rejected = {rejection.line for rejection in report.rejections}
            if report.accepted + len(rejected) != report.rows:
                problems.append(
                    f"{case.name}: {report.rows} rows, {report.accepted} accepted and "
                    f"{len(rejected)} lines rejected"
                )
            if case.lines is not None and (
                report.rows != len(case.lines) or not rejected <= set(case.lines)
            ):
                problems.append(f"{case.name}: {report.rows} rows of {len(case.lines)} lines")
            if any(not rejection.reason for rejection in report.rejections):
                problems.append(f"{case.name}: a rejection without a reason")
    assert problems == []
    assert previewed >= 200

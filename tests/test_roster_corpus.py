"""The generated corpus of malformed rosters (tests/roster_corpus.py), read file by file in
a child process: no traceback, none over 10 s or 500 MB, and no line lost without a word.

A file read without a file-level error must account for every data line the generator
wrote (a RosterLine or a LineError each); a file the generator damaged beyond reading
(a quote never closed, a zip bomb...) must be refused with InvalidInput.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.roster_corpus import LIMIT_SECONDS, write_corpus

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

"""The repository is all a user gets: nothing in it names a file outside it.

No tracked file names the reference folder the project was first written beside, a
source document by the file it was read from, or a path of the machine it was written
on. Sources are cited by document (docs/domain.md section 9); the domain and the case
format are the project's own docs. The strings are put together here so that this file
does not name them itself.
"""

from __future__ import annotations

import re
import subprocess

from tests.services import ROOT

FORBIDDEN = re.compile(
    "|".join(
        re.escape(text)
        for text in (
            "shared" + "/",
            "seed" + "-0",
            "DOMAIN" + ".md",
            "CASES" + ".md",
            "/" + "work/",
            "/" + "root/",
            "/" + "home/",
        )
    )
)


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_names_anything_outside_the_repository() -> None:
    files = tracked_files()
    assert "README.md" in files
    found = []
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue  # binary files (none is text that could name a path)
        found += [
            f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group()}"
            for match in FORBIDDEN.finditer(text)
        ]
    assert found == []

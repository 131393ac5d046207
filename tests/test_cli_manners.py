"""The ``doudi`` command's manners: help for everything, quiet when its reader goes away,
a usage error for a packs directory that is not one."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from doudi.cli.main import _parser, main
from tests.support import worked_case

DOUDI = Path(sys.executable).with_name("doudi")  # the installed command


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and subcommand's parser, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


COMMANDS = list(commands(_parser()))
IDS = [" ".join(path) or "doudi" for path, _ in COMMANDS]


def test_the_walk_finds_every_command() -> None:
    assert [" ".join(path) for path, _ in COMMANDS] == [
        "",
        "calc",
        "packs",
        "packs show",
        "run",
        "roster",
        "roster submit",
        "roster compare",
        "roster export",
        "roster enrol",
        "applications",
        "applications accept",
        "applications list",
        "applications show",
        "applications decide",
        "applications supply",
        "warnings",
        "warnings list",
        "burden",
        "bills",
        "bills add",
        "bills list",
        "secondary",
        "secondary run",
        "secondary list",
        "secondary show",
        "secondary approve",
        "secondary export",
        "screening",
        "screening run",
        "screening list",
        "screening show",
        "screening confirm",
        "report",
        "admin",
        "admin user",
        "admin user add",
        "admin user disable",
        "admin user reset",
        "admin user list",
        "admin hospital",
        "admin hospital add",
        "admin hospital reformed",
        "admin hospital list",
        "admin hospital rotate-key",
        "admin hospital end-rotation",
        "admin agency",
        "admin agency add",
        "admin agency list",
        "admin agency rotate-key",
        "admin agency end-rotation",
        "admin person",
        "admin person add",
        "admin token",
        "admin token new",
        "admin token digest",
        "accounts",
        "accounts credit",
        "accounts transfer",
        "accounts withdraw",
        "accounts purchase",
        "accounts show",
        "accidents",
        "accidents file",
        "accidents decide",
        "accidents list",
        "accidents clearing",
        "certificates",
        "certificates apply",
        "certificates batch",
        "certificates list",
        "certificates applications",
        "registrations",
        "registrations add",
        "registrations end",
        "registrations list",
    ]


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=IDS)
def test_every_argument_and_subcommand_has_help_and_a_metavar(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    assert parser.description, f"doudi {' '.join(path)} has no description"
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} has no help"
        assert action.help != argparse.SUPPRESS, f"{name} has its help hidden"
        if isinstance(action, argparse._SubParsersAction):
            assert action.metavar == "COMMAND"
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            assert set(helps) == set(action.choices), f"a subcommand of {name} has no help"
            assert all(helps.values()), f"a subcommand of {name} has no help"
        elif action.nargs != 0:  # takes a value
            assert action.metavar, f"{name} of doudi {' '.join(path)} has no metavar"


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=IDS)
def test_every_command_answers_help(
    path: tuple[str, ...], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    out, err = capsys.readouterr()
    assert (exited.value.code, err) == (0, "")
    assert out.startswith(f"usage: {' '.join(('doudi', *path))} ")
    assert parser.description is not None
    assert parser.description.split()[0] in out


def test_the_bureaus_commands_are_the_bureaus_and_submit_the_agencys() -> None:
    [(_, roster)] = [(path, parser) for path, parser in COMMANDS if path == ("roster",)]
    [subcommands] = [a for a in roster._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {choice.dest: choice.help or "" for choice in subcommands._choices_actions}
    assert summaries["submit"].startswith("an agency: ")
    for command in ("compare", "export", "enrol"):
        assert summaries[command].startswith("the bureau: ")
        description = subcommands.choices[command].description or ""
        assert "The bureau's command" in description
        assert "agency" not in summaries[command]


# -- the real command -----------------------------------------------------------------------


def test_calc_into_a_reader_that_goes_away_exits_quietly(tmp_path: Path) -> None:
    case = worked_case()
    first = case["visits"][0]
    case["visits"] = [{**first, "id": f"v{n}"} for n in range(300)]  # ~1 MB of output
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), "utf-8")
    with subprocess.Popen(
        [DOUDI, "calc", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline() == b"{\n"  # as `doudi calc ... | head -1`
        process.stdout.close()
        err = process.stderr.read()
        code = process.wait(timeout=60)
    assert err == b""  # no BrokenPipeError traceback
    assert code == 1  # Python's own status on EPIPE


def test_calc_into_a_reader_that_reads_all_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(worked_case()), "utf-8")
    done = subprocess.run([DOUDI, "calc", path], capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout)["visits"][0]["self_pay_fen"] == 93_600


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_packs_dir_that_is_not_a_directory_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    where = tmp_path / "packs"
    if kind == "file":
        where.write_text("id: x\n", "utf-8")
    done = subprocess.run(
        [DOUDI, "--packs-dir", where, "packs"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (2, "")
    reason = "does not exist" if kind == "missing" else "is not a directory"
    assert done.stderr.splitlines() == [
        "usage: doudi [-h] [--packs-dir DIR] COMMAND ...",
        f"doudi: error: argument --packs-dir: '{where}' {reason}",
    ]

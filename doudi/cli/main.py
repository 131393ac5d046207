"""The ``doudi`` command: what policy analysts and operators type.

    doudi calc CASE.json | -        settle a case (docs/case-format.md) and print the result JSON
    doudi packs                     list the policy packs
    doudi packs show ID             print a pack's layers and rules with their sources
    doudi run                       run the whole platform on SQLite with demo data (Ctrl-C stops)
    doudi roster submit --agency AGENCY --region REGION --as-of YYYY-MM-DD FILE
                                    submit an agency's roster file to the datashare hub
    doudi roster compare --region REGION --year YEAR
                                    compare the region's rosters with the register (the bureau)
    doudi roster export ID --output FILE [--class CLASS]
                                    write a comparison's persons to a .csv or .xlsx file
    doudi roster enrol ID            enrol a comparison's gap with the pack's premiums
    doudi burden PERSON_ID --year YYYY [--json]
                                    a person's and their household's burden of a year
    doudi bills add FILE.json | bills list (--person ID | --region CODE) [--year YYYY]
                                    enter or list bills paid outside the window
    doudi secondary run|list|show|approve|export
                                    secondary assistance runs (doudi/cli/secondary.py)
    doudi screening run|list|show|confirm
                                    proactive screening runs and offers (doudi/cli/screening.py)
    doudi warnings list --region REGION --year YEAR [--json]
                                    the dual early warnings raised (the bureau)
    doudi report --region CODE --year YYYY [--month M] [--json|--csv FILE|--xlsx FILE]
                                    a region's monitoring figures (doudi/cli/report.py)
    doudi admin user add|disable|reset|list
                                    the web console's accounts (doudi/cli/admin.py)
    doudi admin hospital|agency add|list|rotate-key|end-rotation
                                    hospitals, agencies' systems and their API keys
    doudi admin person add | doudi admin token new|digest
                                    the register; the internal token (admin_platform.py)
    doudi accounts credit|transfer|withdraw|purchase|show
                                    employees' personal accounts (doudi/cli/accounts.py)
    doudi accidents file|decide|list|clearing
                                    accident cover claims (doudi/cli/accidents.py)

Bad input exits with code 2, prints nothing on stdout and one line on stderr
naming the field. The ``roster`` commands exit with 1 when a service cannot be reached
or refuses the call. A reader that goes away (``doudi calc ... | head``) ends the command
quietly, with 1 as Python's own status on a broken pipe.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import NoReturn

import orjson

from doudi.cli import (
    accidents,
    accounts,
    admin,
    applications,
    burden,
    certificates,
    report,
    screening,
    secondary,
)
from doudi.cli import warnings as warnings_cli
from doudi.common.protos import INT64_MAX
from doudi.core.cases import read_case, result_document, settle_case
from doudi.core.dates import FIRST_YEAR, LAST_YEAR, parse_date
from doudi.core.describe import describe_pack, pack_table
from doudi.core.errors import InvalidInput, PolicyPackError
from doudi.core.packs import PackRegistry
from doudi.core.statuses import AGENCIES

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"doudi: error: {message}\n")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= INT64_MAX:  # an id: what the services' int64 fields carry
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {INT64_MAX}")
    return value


def _count(text: str) -> int:
    """A number of things, 0 included (int32, as the hub's field carries it)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {2**31 - 1}")
    return value


def _year(text: str) -> int:
    try:
        year = int(text)
    except ValueError:
        year = 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year from {FIRST_YEAR} to {LAST_YEAR}")
    return year


def _day(text: str) -> date:
    try:
        return parse_date(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _agency(text: str) -> str:
    if text not in AGENCIES:
        raise argparse.ArgumentTypeError(
            f"unknown agency {text!r} (known: {', '.join(sorted(AGENCIES))})"
        )
    return text


def _region(text: str) -> str:
    if not re.fullmatch(r"[0-9]{6}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 6-digit region code")
    return text


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
    return path


_CLASSES = ("insured", "not_insured", "insured_elsewhere", "name_differs")


def _subcommands(
    parser: argparse.ArgumentParser, dest: str, summary: str, *, required: bool = True
) -> argparse._SubParsersAction[_Parser]:
    return parser.add_subparsers(
        dest=dest,
        required=required,
        parser_class=_Parser,
        metavar="COMMAND",
        title="commands",
        help=summary,
    )


def _command(
    commands: argparse._SubParsersAction[_Parser], name: str, summary: str, description: str
) -> _Parser:
    """A subcommand: ``summary`` in its parent's list, ``description`` atop its own help."""
    return commands.add_parser(name, help=summary, description=description)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="doudi",
        description="Doudi (兜底): one-window settlement against poverty caused by illness. "
        "Policy analysts settle cases and read the policy packs; an operator runs the "
        "platform; agencies submit rosters; the bureau compares them with the register and "
        "enrols the uninsured.",
        epilog="Bad input exits with 2, printing one line on stderr naming what is wrong; a "
        "service that cannot be reached or refuses exits with 1.",
    )
    parser.add_argument(
        "--packs-dir",
        action="append",
        type=_directory,
        default=[],
        metavar="DIR",
        help="also load the policy packs (*.yaml) in the directory DIR, a region's own beside "
        "the shipped ones; may be repeated",
    )
    commands = _subcommands(parser, "command", "one of these ('doudi COMMAND --help' tells more):")
    calc = _command(
        commands,
        "calc",
        "settle a calculation case and print the result JSON",
        "Settle a calculation case (one person, their statuses and visits, under one policy "
        "pack; docs/case-format.md) and print what every layer paid on each visit, in fen, "
        "as JSON on stdout. Exits with 2 and one line on stderr naming the field when the "
        "case is not valid.",
    )
    calc.add_argument(
        "case", metavar="CASE", help="the case file (JSON, UTF-8), or - to read standard input"
    )
    calc.add_argument(
        "--no-explain",
        action="store_true",
        help="leave out each layer's explanation (rule, base, deductible, bands, caps)",
    )
    packs = _command(
        commands,
        "packs",
        "list the policy packs, or show one",
        "List the policy packs Doudi knows (region, period, layers), or show one pack's "
        "layers and rules with the source of every figure.",
    )
    pack_commands = _subcommands(
        packs, "pack_command", "without one, the list of packs:", required=False
    )
    show = _command(
        pack_commands,
        "show",
        "print a pack's layers and rules with their sources",
        "Print a policy pack's layers, rules, deductibles, bands and caps in words, each "
        "figure with its source.",
    )
    show.add_argument("pack_id", metavar="ID", help="the pack's id, as 'doudi packs' lists it")
    run = _command(
        commands,
        "run",
        "run the four services and the gateway on SQLite with the demo data",
        "Run the whole platform on this machine: enrollment, datashare, settlement and "
        "assistance on SQLite (under var/, or DOUDI_DATA_DIR) and the gateway, with the demo "
        "hospitals, persons and agency keys loaded; Ctrl-C stops it all.",
    )
    run.add_argument(
        "--port", type=int, default=8000, metavar="PORT", help="the gateway's port (8000)"
    )
    run.add_argument(
        "--base-port",
        type=int,
        default=50051,
        metavar="PORT",
        help="the first of the four services' ports (50051: enrollment, datashare, "
        "settlement, assistance; further settlement processes take the ports after)",
    )
    run.add_argument(
        "--settlement-processes",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="settlement processes sharing its database (1; one per core uses every core "
        "of the machine, as bench/settle.py does)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        metavar="PORT",
        help="the first process's Prometheus metrics port (9464; the others take the ports "
        "after, as the start-up table says; 0: no metrics)",
    )
    roster = _command(
        commands,
        "roster",
        "rosters: an agency submits its own; the bureau compares, exports and enrols",
        "An agency's clerk submits the agency's roster file to the datashare hub ('submit'). "
        "The bureau compares every agency's roster of a region with the enrolment register "
        "('compare'), exports the result for its clerks ('export') and enrols the uninsured "
        "with the premiums of the region's policy pack ('enrol').",
    )
    roster_commands = _subcommands(
        roster, "roster_command", "one of these ('doudi roster COMMAND --help' tells more):"
    )
    submit = _command(
        roster_commands,
        "submit",
        "an agency: submit its full roster of a region from a CSV or Excel file",
        "Submit an agency's full current roster of a pooling region to the datashare hub and "
        "print what became of it: counts, every rejected line with its reason, and every "
        "person no longer on the roster, whose status is revoked. The hub stores the whole "
        "roster or nothing. It refuses a roster that would revoke more than its share (5% by "
        "default) of the agency's current roster of the region, or that has no accepted row, "
        "unless --confirm-revocations gives the number of revocations; --dry-run shows what "
        "the roster would change and stores nothing. A progress bar shows on a terminal. Exit "
        "0 when the hub stored it (rejected lines and all) or answered the dry run, 1 when the "
        "hub cannot be reached or refuses it, 2 on bad input or a file that is not a roster.",
    )
    submit.add_argument(
        "file", type=Path, metavar="FILE", help="the roster: .csv (UTF-8 or GB18030) or .xlsx"
    )
    submit.add_argument(
        "--agency",
        required=True,
        type=_agency,
        metavar="AGENCY",
        help=f"the agency whose roster it is ({', '.join(sorted(AGENCIES))})",
    )
    submit.add_argument(
        "--region",
        required=True,
        type=_region,
        metavar="REGION",
        help="the pooling region's 6-digit code",
    )
    submit.add_argument(
        "--as-of",
        required=True,
        type=_day,
        metavar="YYYY-MM-DD",
        help="the day the roster is true on; persons no longer on it lose the status then",
    )
    submit.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the datashare hub (DOUDI_DATASHARE_ADDRESS, else 127.0.0.1:50052, where "
        "doudi run starts it)",
    )
    submit.add_argument(
        "--key",
        metavar="KEY",
        help="the agency's API key (DOUDI_AGENCY_KEY; else the agency's demo key, which only "
        "a hub with DOUDI_ENVIRONMENT=local accepts)",
    )
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="only show what the roster would assert, change and revoke (and whose statuses "
        "it would revoke); store nothing",
    )
    submit.add_argument(
        "--confirm-revocations",
        type=_count,
        metavar="N",
        help="the number of revocations you accept, as --dry-run showed it: needed when the "
        "roster revokes more than the hub's share of the current roster or has no accepted "
        "row; the hub refuses the roster if it revokes another number",
    )
    submit.add_argument("--json", action="store_true", help="print the report as JSON")
    bureau = (
        " The bureau's command: it calls datashare and enrollment with the platform's token "
        "(DOUDI_INTERNAL_TOKEN). Exit 1 when a service cannot be reached or refuses."
    )
    compare = _command(
        roster_commands,
        "compare",
        "the bureau: compare a region's rosters with the enrolment register for a year",
        "Compare every agency's current roster of a region with the enrolment register for a "
        "year and print the comparison's id and how many certified persons are insured, not "
        "insured (the gap), insured elsewhere, or under another name." + bureau,
    )
    compare.add_argument(
        "--region",
        required=True,
        type=_region,
        metavar="REGION",
        help="the pooling region's 6-digit code",
    )
    compare.add_argument(
        "--year", required=True, type=_year, metavar="YEAR", help="the year insured"
    )
    export = _command(
        roster_commands,
        "export",
        "the bureau: write a comparison's persons, in the clerks' words, to CSV or Excel",
        "Write every person of a comparison (or of one class) to a .csv or .xlsx file, "
        "with Chinese headers and values, identity numbers in full. A progress bar shows on "
        "a terminal." + bureau,
    )
    export.add_argument(
        "comparison_id",
        type=_at_least_one,
        metavar="ID",
        help="the comparison's id, as 'doudi roster compare' printed it",
    )
    export.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="FILE",
        help="the file to write: .csv (UTF-8 with a byte-order mark, as Excel opens it) or .xlsx",
    )
    export.add_argument(
        "--class",
        dest="klass",
        choices=_CLASSES,
        metavar="CLASS",
        help=f"only persons of this class ({', '.join(_CLASSES)}; not_insured: the gap)",
    )
    enrol = _command(
        roster_commands,
        "enrol",
        "the bureau: enrol a comparison's gap with the premiums of the region's policy pack",
        "Enrol the persons a comparison found not insured, with the premium and the "
        "assistance fund's subsidy the region's policy pack gives their statuses, and print "
        "the totals by category. Enrolling again enrols nobody twice." + bureau,
    )
    enrol.add_argument(
        "comparison_id",
        type=_at_least_one,
        metavar="ID",
        help="the comparison's id, as 'doudi roster compare' printed it",
    )
    applications.add_commands(commands)
    warnings_cli.add_commands(commands)  # issue 18: the dual early warning
    for bureau_command in (compare, export, enrol):
        bureau_command.add_argument(
            "--datashare",
            metavar="HOST:PORT",
            help="the datashare hub (DOUDI_DATASHARE_ADDRESS, else 127.0.0.1:50052)",
        )
        bureau_command.add_argument(
            "--enrollment",
            metavar="HOST:PORT",
            help="the enrollment service (DOUDI_ENROLLMENT_ADDRESS, else 127.0.0.1:50051)",
        )
    burden.add_commands(commands)
    secondary.add_commands(commands)
    screening.add_commands(commands)
    report.add_commands(commands)
    admin.add_commands(commands)
    accounts.add_commands(commands)  # issue 21: employees' personal accounts
    accidents.add_commands(commands)  # issue 21: accident cover claims
    certificates.add_commands(commands)  # issue 21: outpatient certificates, registrations
    return parser


def add_assistance_option(parser: argparse.ArgumentParser) -> None:
    """``--assistance HOST:PORT``, the address ``rpc_errors.call_assistance`` calls."""
    parser.add_argument(
        "--assistance",
        metavar="HOST:PORT",
        help="the assistance service (DOUDI_ASSISTANCE_ADDRESS, else 127.0.0.1:50054)",
    )


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """One line on stderr, whatever the input's field names hold."""
    line = _CONTROL.sub(lambda match: repr(match.group())[1:-1], message)
    print(f"doudi: error: {line}", file=sys.stderr)
    return code


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(_parser().parse_args(argv))
    except BrokenPipeError:
        # The reader went away (doudi calc ... | head): stop quietly, as Python's signal
        # documentation says: what is left to flush goes to /dev/null, and the exit
        # status is 1, as for Python itself on EPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED


def _run(args: argparse.Namespace) -> int:
    if args.command == "run":
        from doudi.cli.launcher import run

        return run(
            base_port=args.base_port,
            gateway_port=args.port,
            settlement_processes=args.settlement_processes,
            metrics_port=args.metrics_port,
        )
    if args.command in burden.COMMANDS:
        return burden.run(args)
    if args.command == "applications":
        return applications.run(args)
    if args.command == "warnings":
        return warnings_cli.run(args)
    if args.command == "roster":
        if args.roster_command == "submit":
            return _roster_submit(args)
        return _roster_bureau(args)
    if args.command == "secondary":
        return secondary.run(args)
    if args.command == "screening":
        return screening.run(args)
    if args.command == "report":
        return report.run(args)
    if args.command == "admin":
        return admin.run(args)
    if args.command == "accounts":
        return accounts.run(args)
    if args.command == "accidents":
        return accidents.run(args)
    if args.command in certificates.COMMANDS:
        return certificates.run(args)
    try:
        registry = PackRegistry.load(args.packs_dir)
    except PolicyPackError as error:
        return _fail(f"policy pack {error}")
    if args.command == "calc":
        return _calc(registry, args.case, explain=not args.no_explain)
    if args.pack_command == "show":
        pack = registry.get(args.pack_id)
        if pack is None:
            return _fail(
                f"unknown policy pack {args.pack_id!r} (known: {', '.join(p.id for p in registry)})"
            )
        sys.stdout.write(describe_pack(pack))
        return 0
    sys.stdout.write(pack_table(registry))
    return 0


def _calc(registry: PackRegistry, source: str, *, explain: bool) -> int:
    name = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as error:
        return _fail(f"cannot read {name}: {error.strerror}")
    except UnicodeDecodeError:
        return _fail(f"{name}: not UTF-8 text")
    # A long history is millions of small objects, none in a cycle: the cyclic garbage
    # collector, run again and again as they are made, would only walk them. It stays off
    # until they are gone again: turned on while they live, it would walk them all once more
    # at the next object made.
    gc.disable()
    try:
        return _settle_and_write(registry, text, name, explain=explain)
    finally:
        gc.enable()


def _settle_and_write(registry: PackRegistry, text: str, name: str, *, explain: bool) -> int:
    try:
        case = read_case(text, registry)
        document = result_document(case, settle_case(case, explain=explain))
    except InvalidInput as error:
        return _fail(f"{name}: {error}")
    write_json(document)
    return 0


def write_json(document: object) -> None:
    """``document`` on stdout as UTF-8 JSON indented by two, as ``json.dumps(document,
    ensure_ascii=False, indent=2)`` writes it, with a newline: by orjson (a long history's
    result is tens of megabytes, which the standard library's indenting encoder, written in
    Python, takes seconds over), by the standard library where orjson cannot (an integer
    beyond 64 bits)."""
    try:
        data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()
    sys.stdout.flush()
    out = sys.stdout.buffer
    view = memoryview(data)
    while view:  # a pipe may take part of it: a reader gone shows at the next write
        view = view[out.write(view) :]
    out.flush()


def _roster_submit(args: argparse.Namespace) -> int:
    # Imported here: gRPC is for this command only.
    from doudi.cli import progress, roster_client, roster_file

    path: Path = args.file
    try:
        key, demo = roster_client.choose_key(args.agency, args.key)
    except ValueError as error:
        return _fail(str(error))
    address = args.address or roster_client.default_address()
    try:
        total = roster_file.line_count(path) if progress.shown() else None
        with progress.bar(f"{path.name} to the hub", total, "lines") as bar:
            report = roster_client.submit_roster(
                path,
                agency=args.agency,
                region=args.region,
                as_of=args.as_of,
                key=key,
                address=address,
                preview=args.dry_run,
                confirmed_revocations=args.confirm_revocations,
                progress=lambda line: progress.advance_to(bar, line),
            )
    except InvalidInput as error:
        return _fail(f"{path}: {error.message if error.field == 'file' else error}")
    except OSError as error:
        return _fail(f"cannot read {path}: {error.strerror or error}")
    except roster_client.HubError as error:
        _demo_note(demo, args.agency, key)
        return _fail(str(error), EXIT_REFUSED)
    _demo_note(demo, args.agency, key)
    if args.json:
        write_json(report.document())
    else:
        sys.stdout.write(report.text())
    return 0


def _demo_note(demo: bool, agency: str, key: str) -> None:
    if demo:
        print(
            f"doudi: note: no --key or DOUDI_AGENCY_KEY: used the demo key of {agency}, {key}, "
            "which only a hub with DOUDI_ENVIRONMENT=local accepts",
            file=sys.stderr,
        )


def _roster_bureau(args: argparse.Namespace) -> int:
    """``compare``, ``export`` and ``enrol``: the bureau's calls, with the platform's token."""
    import grpc  # imported here: gRPC is for these commands only

    from doudi.cli import comparisons, progress, roster_client, rpc_errors
    from doudi.common import grpc_client
    from doudi.common.errors import decode_status
    from doudi.common.settings import ProcessSettings

    output: Path | None = getattr(args, "output", None)
    if output is not None and output.suffix.lower().lstrip(".") not in comparisons.FORMATS:
        return _fail(f"{output}: write a .csv or .xlsx file")
    datashare = args.datashare or roster_client.default_address("datashare")
    enrollment = args.enrollment or roster_client.default_address("enrollment")
    try:
        settings = ProcessSettings()
    except ValueError as error:
        return _fail(str(error))
    with (
        grpc_client.sync_channel(datashare, settings) as hub,
        grpc_client.sync_channel(enrollment, settings) as register,
    ):
        bureau = comparisons.Bureau.connect(hub, register, settings)
        try:
            if args.roster_command == "compare":
                sys.stdout.write(
                    comparisons.comparison_text(bureau.compare(args.region, args.year))
                )
            elif args.roster_command == "enrol":
                sys.stdout.write(comparisons.enrolment_text(bureau.enrol_gap(args.comparison_id)))
            else:
                assert output is not None
                total = comparisons.class_count(bureau.comparison(args.comparison_id), args.klass)
                with progress.bar(output.name, total, "persons") as bar:
                    rows = (
                        comparisons.export_row(entry)
                        for entry in progress.counted(
                            bureau.entries(args.comparison_id, args.klass), bar
                        )
                    )
                    count = comparisons.export(rows, output, output.suffix.lower().lstrip("."))
                print(f"{output}: {count:,} persons of comparison {args.comparison_id}")
        except grpc.RpcError as error:
            status = decode_status(error)  # type: ignore[arg-type]
            if args.roster_command == "enrol":
                service, address = "the enrollment service", enrollment
            else:
                service, address = "the datashare hub", datashare
            return _fail(rpc_errors.sentence(status, service, address), EXIT_REFUSED)
    return 0

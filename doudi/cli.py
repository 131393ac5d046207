"""The ``doudi`` command: what policy analysts and operators type.

    doudi calc CASE.json | -        settle a case (CASES.md) and print the result JSON
    doudi packs                     list the policy packs
    doudi packs show ID             print a pack's layers and rules with their sources
    doudi run                       run the whole platform on SQLite with demo data (Ctrl-C stops)

Bad input exits with code 2, prints nothing on stdout and one line on stderr
naming the field.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from doudi.core.cases import load_json, parse_case, result_document, settle_case
from doudi.core.describe import describe_pack, pack_table
from doudi.core.errors import InvalidInput, PolicyPackError
from doudi.core.packs import PackRegistry

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
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="doudi",
        description="Doudi (兜底): one-window settlement against poverty caused by illness",
    )
    parser.add_argument(
        "--packs-dir",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also load the policy packs (*.yaml) in DIR; may be repeated",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    calc = commands.add_parser("calc", help="settle a calculation case and print the result JSON")
    calc.add_argument("case", help="the case file (CASES.md), or - for standard input")
    calc.add_argument(
        "--no-explain", action="store_true", help="leave out the per-layer explanation"
    )
    packs = commands.add_parser("packs", help="list the policy packs, or show one")
    pack_commands = packs.add_subparsers(dest="pack_command", parser_class=_Parser)
    show = pack_commands.add_parser(
        "show", help="print a pack's layers and rules with their sources"
    )
    show.add_argument("pack_id", metavar="ID")
    run = commands.add_parser(
        "run", help="run the four services and the gateway on SQLite with the demo data"
    )
    run.add_argument("--port", type=int, default=8000, help="the gateway's port (8000)")
    run.add_argument(
        "--base-port",
        type=int,
        default=50051,
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
    return parser


def _fail(message: str) -> int:
    """One line on stderr, whatever the input's field names hold."""
    line = _CONTROL.sub(lambda match: repr(match.group())[1:-1], message)
    print(f"doudi: error: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from doudi.launcher import run

        return run(
            base_port=args.base_port,
            gateway_port=args.port,
            settlement_processes=args.settlement_processes,
        )
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
    try:
        case = parse_case(load_json(text), registry)
    except InvalidInput as error:
        return _fail(f"{name}: {error}")
    document = result_document(case, settle_case(case, explain=explain))
    json.dump(document, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0

"""The bureau's secondary assistance (二次救助, docs/domain.md section 7): ``doudi secondary
run|list|show|approve|export``.

A case worker creates a run for a region and a year through a day (``run``), reads who
is owed what and why (``show``), approves it once (``approve``) and writes the approved
payments as the bank file (``export``: CSV or xlsx, Chinese headers). The work is the
assistance service's; these commands call it with the platform's internal token
(``DOUDI_INTERNAL_TOKEN``) at ``DOUDI_ASSISTANCE_ADDRESS`` (else where ``doudi run``
starts it). Tables and ``--json`` show identity numbers masked; the bank file, written only
where the case worker says, holds them in full (the bank needs them). Money: yuan with
two decimals in tables and the bank file, integer fen in ``--json``.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from doudi.common.exports import BANK_COLUMNS, BANK_SHEET, bank_row
from doudi.core.identity import mask
from doudi.core.money import fen_to_yuan, format_yuan

if TYPE_CHECKING:  # gRPC is imported when a command calls the service, not for `doudi calc`
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub

PAGE: Final = 1000


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``doudi secondary ...`` under the command list ``commands`` of ``doudi``."""
    from doudi.cli import main as cli  # its argument types; loaded by now
    from doudi.cli.main import add_assistance_option  # loaded by now

    secondary = cli._command(
        commands,
        "secondary",
        "the bureau: secondary assistance (二次救助) runs, approval and the bank file",
        "A case worker creates a run of secondary assistance for a region and a year "
        "('run'), reads who is owed what and why ('show', 'list'), approves it once "
        "('approve') and writes its payments as the bank file ('export'). Each person is "
        "paid what the pack's rule owes them to date less what approved runs paid, never "
        "twice. The bureau's command: it calls the assistance service with the platform's "
        "token (DOUDI_INTERNAL_TOKEN). Exit 1 when the service cannot be reached or refuses, "
        "2 on bad input.",
    )
    actions = cli._subcommands(
        secondary,
        "secondary_command",
        "one of these ('doudi secondary COMMAND --help' tells more):",
    )
    run = cli._command(
        actions,
        "run",
        "create a run: every recipient of a region, owed to date, to pay now",
        "Create a run for a region and a year: every person a settlement of the year applied "
        "a recipient status to (the pack's secondary statuses), their eligible burden net of "
        "reversals, what the rule owes them, what earlier approved runs paid and what to pay "
        "now. Persons owed less than was paid before (a reversal lowered it) are flagged; "
        "nothing is taken back. Prints the run's id and totals.",
    )
    run.add_argument(
        "--region",
        required=True,
        type=cli._region,
        metavar="REGION",
        help="the pooling region's 6-digit code",
    )
    run.add_argument(
        "--year", required=True, type=cli._year, metavar="YEAR", help="the calendar year"
    )
    run.add_argument(
        "--through",
        type=cli._day,
        metavar="YYYY-MM-DD",
        help="count visits settled on or before this day of YEAR (default: YEAR's last day)",
    )
    run.add_argument("--case-worker", required=True, metavar="NAME", help="who creates it")
    run.add_argument(
        "--request-id",
        metavar="KEY",
        help="an idempotency key: the same key answers the same run (default: a new one)",
    )
    listing = cli._command(
        actions, "list", "list runs, newest first", "List runs of a region, newest first."
    )
    listing.add_argument(
        "--region", type=cli._region, metavar="REGION", help="only this region's runs"
    )
    listing.add_argument("--year", type=cli._year, metavar="YEAR", help="only this year's runs")
    show = cli._command(
        actions,
        "show",
        "print a run: its totals and each person with the reason",
        "Print a run's totals and each person's eligible burden, what is owed, paid before "
        "and to pay, with the reason in figures (identity numbers masked).",
    )
    approve = cli._command(
        actions,
        "approve",
        "approve a run once and pay its persons",
        "Approve a run: each person is paid the least of the run's amount and what they are "
        "owed less what every approval so far paid them. A run is approved once.",
    )
    approve.add_argument("--approver", required=True, metavar="NAME", help="who approves it")
    export = cli._command(
        actions,
        "export",
        "write an approved run's payments as the bank file (.csv or .xlsx)",
        "Write the payments of an approved run, one line per person paid, with the headers "
        f"{', '.join(BANK_COLUMNS)}: identity numbers in full, amounts in yuan with two "
        "decimals.",
    )
    for command in (show, approve, export):
        command.add_argument(
            "run_id", type=cli._at_least_one, metavar="RUN", help="the run's id ('run' printed it)"
        )
    export.add_argument(
        "--output",
        required=True,
        type=Path,
        metavar="FILE",
        help="the file to write: .csv (UTF-8 with a byte-order mark) or .xlsx",
    )
    for command in (run, listing, show, approve, export):
        add_assistance_option(command)
    for command in (run, listing, show, approve):
        command.add_argument(
            "--json", action="store_true", help="print JSON (amounts in fen) instead of a table"
        )


def run(args: argparse.Namespace) -> int:
    """One ``doudi secondary`` command; its exit status."""
    from doudi.cli import comparisons, rpc_errors
    from doudi.cli import main as cli

    output: Path | None = getattr(args, "output", None)
    if output is not None and output.suffix.lower().lstrip(".") not in comparisons.FORMATS:
        return cli._fail(f"{output}: write a .csv or .xlsx file")
    through: date | None = getattr(args, "through", None)
    if through is not None and through.year != args.year:
        return cli._fail(f"--through: {through} is not a day of {args.year}")
    return rpc_errors.call_assistance(
        args.assistance, lambda stub, metadata: _call(stub, metadata, args)
    )


def _call(stub: AssistanceServiceStub, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.cli import comparisons
    from doudi.cli import main as cli
    from doudi.common.protos import from_date

    command = args.secondary_command
    if command == "run":
        through = args.through or date(args.year, 12, 31)
        created = stub.CreateSecondaryRun(
            pb.CreateSecondaryRunRequest(
                request_id=args.request_id or str(uuid.uuid4()),
                region=args.region,
                year=args.year,
                through=from_date(through),
                case_worker=args.case_worker,
            ),
            metadata=metadata,
        )
        return _show_run(created.run, args.json)
    if command == "approve":
        approved = stub.ApproveSecondaryRun(
            pb.ApproveSecondaryRunRequest(run_id=args.run_id, approver=args.approver),
            metadata=metadata,
        )
        return _show_run(approved.run, args.json)
    if command == "list":
        runs = list(_runs(stub, metadata, args.region or "", args.year or 0))
        if args.json:
            cli.write_json([run_document(found) for found in runs])
        else:
            sys.stdout.write("".join(run_text(found) for found in runs) or "no runs\n")
        return 0
    found = stub.GetSecondaryRun(pb.GetSecondaryRunRequest(run_id=args.run_id), metadata=metadata)
    if command == "show":
        entries = list(entries_of(stub, metadata, args.run_id, paid_only=False))
        if args.json:
            cli.write_json(
                {
                    "run": run_document(found.run),
                    "entries": [entry_document(entry) for entry in entries],
                }
            )
        else:
            sys.stdout.write(run_text(found.run) + entries_text(entries))
        return 0
    if not found.run.approver:
        return cli._fail(
            f"run {args.run_id} is not approved: approve it before writing its bank file",
            cli.EXIT_REFUSED,
        )
    output: Path = args.output
    year = found.run.year
    rows = (
        bank_row(entry, year) for entry in entries_of(stub, metadata, args.run_id, paid_only=True)
    )
    count = comparisons.export(
        rows, output, output.suffix.lower().lstrip("."), columns=BANK_COLUMNS, sheet=BANK_SHEET
    )
    print(
        f"{output}: {count:,} payments of run {args.run_id}, {fen_to_yuan(found.run.paid_fen)} yuan"
    )
    return 0


def _show_run(found: pb.SecondaryRun, as_json: bool) -> int:
    from doudi.cli import main as cli

    if as_json:
        cli.write_json(run_document(found))
    else:
        sys.stdout.write(run_text(found))
    return 0


def _runs(
    stub: AssistanceServiceStub, metadata: Any, region: str, year: int
) -> Iterator[pb.SecondaryRun]:
    from doudi.assistance.v1 import assistance_pb2 as pb

    token = ""
    while True:
        page = stub.ListSecondaryRuns(
            pb.ListSecondaryRunsRequest(region=region, year=year, page_size=PAGE, page_token=token),
            metadata=metadata,
        )
        yield from page.runs
        token = page.next_page_token
        if not token:
            return


def entries_of(
    stub: AssistanceServiceStub, metadata: Any, run_id: int, *, paid_only: bool
) -> Iterator[pb.SecondaryRunEntry]:
    """Every entry of the run (only those paid), in identity-number order."""
    from doudi.assistance.v1 import assistance_pb2 as pb

    token = ""
    while True:
        page = stub.ListSecondaryRunEntries(
            pb.ListSecondaryRunEntriesRequest(
                run_id=run_id, paid_only=paid_only, page_size=PAGE, page_token=token
            ),
            metadata=metadata,
        )
        yield from page.entries
        token = page.next_page_token
        if not token:
            return


def run_document(found: pb.SecondaryRun) -> dict[str, object]:
    return {
        "run_id": found.run_id,
        "region": found.region,
        "year": found.year,
        "through": _date_text(found.through),
        "case_worker": found.case_worker,
        "created_at": found.create_time.ToDatetime().isoformat() + "Z",
        "approver": found.approver or None,
        "approved_at": (
            found.approve_time.ToDatetime().isoformat() + "Z"
            if found.HasField("approve_time")
            else None
        ),
        "entry_count": found.entry_count,
        "payable_count": found.payable_count,
        "to_pay_fen": found.to_pay_fen,
        "flagged_count": found.flagged_count,
        "paid_count": found.paid_count,
        "paid_fen": found.paid_fen,
        "unjudged_policies": list(found.unjudged_policies),
    }


def entry_document(entry: pb.SecondaryRunEntry) -> dict[str, object]:
    return {
        "person_id": mask(entry.person_id),
        "name": entry.name,
        "policy": entry.policy,
        "eligible_burden_fen": entry.eligible_burden_fen,
        "threshold_fen": entry.threshold_fen,
        "share_basis_points": entry.share_basis_points,
        "yearly_cap_fen": entry.yearly_cap_fen,
        "owed_fen": entry.owed_fen,
        "paid_before_fen": entry.paid_before_fen,
        "to_pay_fen": entry.to_pay_fen,
        "flagged": entry.flagged,
        "reason": entry.reason,
        "paid_fen": entry.paid_fen,
    }


def run_text(found: pb.SecondaryRun) -> str:
    approved = (
        f"approved by {found.approver} on {found.approve_time.ToDatetime().date()}: paid "
        f"{found.paid_count:,} persons {format_yuan(found.paid_fen)} yuan"
        if found.approver
        else "not approved"
    )
    text = (
        f"secondary run {found.run_id}: region {found.region}, {found.year} through "
        f"{_date_text(found.through)}, by {found.case_worker}; {approved}\n"
        f"  recipients          {found.entry_count:>9,}\n"
        f"  to pay              {found.payable_count:>9,} persons {format_yuan(found.to_pay_fen)} yuan\n"
        f"  flagged             {found.flagged_count:>9,} (owed less than paid before)\n"
    )
    if found.unjudged_policies:
        text += (
            "  visits not judged under the packs "
            f"{', '.join(found.unjudged_policies)} (unknown here or without monitoring rules)\n"
        )
    return text


def entries_text(entries: list[pb.SecondaryRunEntry]) -> str:
    from doudi.cli import columns

    if not entries:
        return "  no recipients\n"
    lines = [
        f"  {'person':<18} {'name':<8} {'eligible':>12} {'owed':>10} {'paid before':>11} "
        f"{'to pay':>10} {'paid':>10}"
    ]
    for entry in entries:
        flag = "  FLAGGED" if entry.flagged else ""
        lines.append(
            f"  {mask(entry.person_id):<18} {columns.left(entry.name, 8)} "
            f"{format_yuan(entry.eligible_burden_fen):>12} {format_yuan(entry.owed_fen):>10} "
            f"{format_yuan(entry.paid_before_fen):>11} {format_yuan(entry.to_pay_fen):>10} "
            f"{format_yuan(entry.paid_fen):>10}{flag}"
        )
        lines.append(f"      {entry.reason}")
    return "\n".join(lines) + "\n"


def _date_text(value: Any) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"

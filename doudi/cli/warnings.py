"""``doudi warnings list``: the bureau reads the dual early warnings (双预警) the assistance
service raised for a region and year, with what the agencies did with them.

The bureau's command: it calls the assistance service (``--assistance``, else
``DOUDI_ASSISTANCE_ADDRESS``, else 127.0.0.1:50054) with the platform's internal token
(``DOUDI_INTERNAL_TOKEN``). ``--json`` prints a list of objects, money in fen; without
it, a table for people, money in yuan with two decimals, kinds and states in Chinese.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Final

from doudi.core.codes import STATUSES as STATUS_NAMES
from doudi.core.identity import mask
from doudi.core.money import format_yuan
from doudi.core.monitoring import WARNING_KIND_NAMES

KIND_NAMES: Final = WARNING_KIND_NAMES
STATE_NAMES: Final = {
    "raised": "待处理",
    "acknowledged": "已接收",
    "certified": "已认定",
    "dismissed": "已排除",
}
AGENCY_NAMES: Final = {"civil_affairs": "民政局", "poverty_office": "乡村振兴局"}
PAGE: Final = 1000


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``doudi warnings list``, registered under the top level's ``commands``."""
    from doudi.cli.main import (  # the top level's argument types
        _region,
        _year,
        add_assistance_option,  # loaded by now
    )

    warnings = commands.add_parser(
        "warnings",
        help="the bureau: the dual early warnings (双预警) raised, and what agencies did",
        description="The dual early warnings the assistance service raised: households whose "
        "yearly burden passed the line of their kind (因病致贫 or 因病返贫), and what civil "
        "affairs or the poverty office did with each.",
    )
    listing = warnings.add_subparsers(
        dest="warnings_command",
        required=True,
        parser_class=type(warnings),
        metavar="COMMAND",
        title="commands",
        help="one of these ('doudi warnings COMMAND --help' tells more):",
    ).add_parser(
        "list",
        help="list a region's warnings of a year, newest first",
        description="List a region's warnings of a year, newest first: the household, its "
        "burden and the line it passed, the members, the state and whether it is overdue "
        "(undecided 30 days after it was raised, the pack's figure). Calls the assistance "
        "service with the platform's token (DOUDI_INTERNAL_TOKEN).",
    )
    listing.add_argument(
        "--region", required=True, type=_region, metavar="REGION", help="the 6-digit code"
    )
    listing.add_argument(
        "--year", required=True, type=_year, metavar="YEAR", help="the year of the burden"
    )
    listing.add_argument(
        "--kind",
        choices=tuple(KIND_NAMES),
        metavar="KIND",
        help=f"only warnings of this kind ({', '.join(KIND_NAMES)})",
    )
    listing.add_argument(
        "--state",
        choices=tuple(STATE_NAMES),
        metavar="STATE",
        help=f"only warnings in this state ({', '.join(STATE_NAMES)})",
    )
    listing.add_argument("--overdue", action="store_true", help="only the overdue ones")
    listing.add_argument(
        "--json", action="store_true", help="print JSON (money in fen) instead of a table"
    )
    add_assistance_option(listing)


def run(args: argparse.Namespace) -> int:
    from doudi.cli import rpc_errors

    return rpc_errors.call_assistance(
        args.assistance, lambda stub, metadata: _list(stub, metadata, args)
    )


def _list(stub: Any, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.assistance.v1 import assistance_pb2
    from doudi.cli.main import write_json
    from doudi.common.enums import WARNING_KINDS, WARNING_STATES

    found: list[dict[str, Any]] = []
    token = ""
    while True:
        page = stub.ListWarnings(
            assistance_pb2.ListWarningsRequest(
                region=args.region,
                year=args.year,
                kind=WARNING_KINDS.value(args.kind),
                state=WARNING_STATES.value(args.state),
                overdue_only=args.overdue,
                page_size=PAGE,
                page_token=token,
            ),
            metadata=metadata,
        )
        found.extend(document(warning) for warning in page.warnings)
        token = page.next_page_token
        if not token:
            break
    if args.json:
        write_json(found)
    else:
        sys.stdout.write(table(found, args.region, args.year))
    return 0


def document(warning: Any) -> dict[str, Any]:
    """A warning as ``--json`` prints it (money in fen)."""
    from doudi.common.enums import AGENCIES, STATUSES, WARNING_KINDS, WARNING_STATES

    decision = warning.decision
    found: dict[str, Any] = {
        "id": warning.warning_id,
        "kind": WARNING_KINDS.code(warning.kind, "kind"),
        "household_id": warning.household_id,
        "region": warning.region,
        "year": warning.year,
        "burden_fen": warning.burden_fen,
        "threshold_fen": warning.threshold_fen,
        "state": WARNING_STATES.code(decision.state, "state"),
        "overdue": warning.overdue,
        "raised_at": warning.raised_at.ToDatetime().isoformat() + "Z",
        "raised_by": warning.raised_by,
        "due_on": f"{warning.due_on.year:04d}-{warning.due_on.month:02d}-{warning.due_on.day:02d}",
        "policy": warning.policy,
        "members": [
            {
                "person_id": member.person_id,
                "name": member.name,
                "personal_burden_fen": member.personal_burden_fen,
            }
            for member in warning.members
        ],
        "decided_by": AGENCIES.optional_code(decision.decided_by, "decided_by"),
        "certified_status": STATUSES.optional_code(decision.certified_status, "status"),
        "reason": decision.reason or None,
    }
    return found


def table(found: list[dict[str, Any]], region: str, year: int) -> str:
    """The warnings for people: one block per warning, its members beneath it."""
    if not found:
        return f"{region} {year}: 无预警 (no warnings)\n"
    lines = [f"{region} {year}: {len(found)} 条预警 (warnings)", ""]
    for warning in found:
        state = STATE_NAMES[warning["state"]]
        if warning["overdue"]:
            state += " (逾期 overdue)"
        decision = ""
        if warning["decided_by"]:
            decision = AGENCY_NAMES.get(warning["decided_by"], warning["decided_by"])
            if warning["certified_status"]:
                decision += f" 认定 {STATUS_NAMES[warning['certified_status']][0]}"
            if warning["reason"]:
                decision += f" 排除: {warning['reason']}"
        lines.append(
            f"#{warning['id']}  {KIND_NAMES[warning['kind']]}  户 {warning['household_id']}  "
            f"负担 {format_yuan(warning['burden_fen'])} 元 > 预警线 {format_yuan(warning['threshold_fen'])} 元"
            f"  {state}{'  ' + decision if decision else ''}"
        )
        lines.append(f"    raised {warning['raised_at']} by {warning['raised_by']}")
        for member in warning["members"]:
            name = member["name"] or "(未登记)"
            lines.append(
                f"    {mask(member['person_id'])}  {name}  "
                f"{format_yuan(member['personal_burden_fen'])} 元"
            )
        lines.append("")
    return "\n".join(lines)

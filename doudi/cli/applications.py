"""``doudi applications accept|list|show|decide|supply``: assistance on application
(依申请救助, docs/domain.md section 7) at the bureau's window.

The bureau's commands: they call the assistance service (``DOUDI_ASSISTANCE_ADDRESS``,
else 127.0.0.1:50054, where ``doudi run`` starts it) with the platform's token
(``DOUDI_INTERNAL_TOKEN``). Tables for people (amounts in yuan with two decimals; an
overdue application in red on a terminal), ``--json`` for programs (amounts in fen).
Exit 2 on bad input (the service's too, naming the field), 1 when the service cannot be
reached or refuses.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from doudi.cli import columns
from doudi.core.money import fen_to_yuan, yuan_to_fen
from doudi.core.monitoring import APPLICATION_KIND_NAMES

if TYPE_CHECKING:
    from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc

KINDS: Final = APPLICATION_KIND_NAMES
STATES: Final = {
    "accepted": "已受理(缺件)",
    "under_review": "审核中",
    "approved": "已批准",
    "refused": "不予批准",
}
RED: Final = "\033[31m"
RESET: Final = "\033[0m"


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """The ``applications`` command and its subcommands, under ``doudi``."""
    from doudi.cli import main as cli
    from doudi.cli.main import add_assistance_option  # loaded by now

    parser = commands.add_parser(
        "applications",
        help="assistance on application: accept at the window, track deadlines, decide",
        description="Assistance on application (依申请救助): accept an application at the "
        "window with the documents received, those missing and the date to bring each "
        "(容缺受理), and the proofs a signed commitment replaces (承诺制); list them with "
        "the working days left of the 30 (overdue ones in red); decide once. Approving "
        "支出型重病 certifies the status through the hub. The bureau's commands: the "
        "platform's token (DOUDI_INTERNAL_TOKEN). Exit 2 on bad input, 1 when the service "
        "cannot be reached or refuses.",
    )
    sub = parser.add_subparsers(
        dest="applications_command",
        required=True,
        parser_class=type(parser),
        metavar="COMMAND",
        title="commands",
        help="one of these ('doudi applications COMMAND --help' tells more):",
    )
    accept = sub.add_parser(
        "accept",
        help="accept an application at the window",
        description="Record an application accepted at the window and print it with its "
        "deadline (30 working days). Running the same command again answers the same "
        "application (the request id, unless given, follows from the person, kind, region "
        "and day).",
    )
    accept.add_argument("--person", required=True, metavar="ID", help="identity number")
    accept.add_argument(
        "--household", required=True, metavar="ID", help="household book number (户号)"
    )
    accept.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit code"
    )
    accept.add_argument(
        "--kind",
        required=True,
        choices=sorted(KINDS),
        metavar="KIND",
        help=f"what is applied for ({', '.join(sorted(KINDS))})",
    )
    accept.add_argument(
        "--accepted-on", type=cli._day, metavar="YYYY-MM-DD", help="the day (today)"
    )
    accept.add_argument(
        "--received", action="append", default=[], metavar="NAME", help="a document received"
    )
    accept.add_argument(
        "--missing",
        action="append",
        default=[],
        type=_missing,
        metavar="NAME=YYYY-MM-DD",
        help="a document missing and the day by which to bring it",
    )
    accept.add_argument(
        "--commitment",
        action="append",
        default=[],
        metavar="NAME",
        help="a proof the applicant's signed commitment replaces",
    )
    accept.add_argument("--case-worker", required=True, metavar="NAME", help="who accepts it")
    accept.add_argument("--request-id", metavar="ID", help="the request's id, for retries")
    listing = sub.add_parser(
        "list",
        help="list applications with their deadlines",
        description="List applications, oldest first, with the working days left to their "
        "deadline; an overdue one (undecided after it) in red on a terminal.",
    )
    listing.add_argument("--region", type=cli._region, metavar="REGION", help="only this region's")
    listing.add_argument(
        "--state",
        choices=sorted(STATES),
        metavar="STATE",
        help=f"only in this state ({', '.join(sorted(STATES))})",
    )
    listing.add_argument(
        "--kind",
        choices=sorted(KINDS),
        metavar="KIND",
        help=f"only of this kind ({', '.join(sorted(KINDS))})",
    )
    listing.add_argument("--overdue", action="store_true", help="only the overdue")
    show = sub.add_parser(
        "show",
        help="show one application",
        description="Show one application: documents, deadline, decision, status.",
    )
    show.add_argument(
        "application_id", type=cli._at_least_one, metavar="ID", help="the application's number"
    )
    decide = sub.add_parser(
        "decide",
        help="approve or refuse an application, once",
        description="Approve or refuse an application; a second decision is refused. "
        "Approving temporary or out-of-area assistance needs --amount.",
    )
    decide.add_argument(
        "application_id", type=cli._at_least_one, metavar="ID", help="the application's number"
    )
    verdict = decide.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true", help="approve it")
    verdict.add_argument("--refuse", action="store_true", help="refuse it")
    decide.add_argument(
        "--reason", required=True, metavar="TEXT", help="why (told to the applicant)"
    )
    decide.add_argument("--amount", type=_yuan, metavar="YUAN", help="one-off amount, yuan")
    decide.add_argument("--on", type=cli._day, metavar="YYYY-MM-DD", help="the day (today)")
    decide.add_argument("--case-worker", required=True, metavar="NAME", help="who decides")
    supply = sub.add_parser(
        "supply",
        help="record a missing document brought",
        description="Record that a missing document was brought.",
    )
    supply.add_argument(
        "application_id", type=cli._at_least_one, metavar="ID", help="the application's number"
    )
    supply.add_argument(
        "--document", required=True, metavar="NAME", help="the missing document's name"
    )
    supply.add_argument("--on", type=cli._day, metavar="YYYY-MM-DD", help="the day (today)")
    for command in (accept, listing, show, decide, supply):
        command.add_argument("--json", action="store_true", help="print JSON (amounts in fen)")
        add_assistance_option(command)


def run(args: argparse.Namespace) -> int:
    from doudi.cli import rpc_errors  # imported here: gRPC is for these commands only

    return rpc_errors.call_assistance(
        args.assistance, lambda stub, metadata: _show(_call(stub, args, metadata), args)
    )


def _show(found: list[assistance_pb2.Application], args: argparse.Namespace) -> int:
    from doudi.cli import main as cli

    if args.json:
        documents = [document(item) for item in found]
        cli.write_json(documents if args.applications_command == "list" else documents[0])
    elif args.applications_command == "list":
        sys.stdout.write(table(found, color=sys.stdout.isatty()))
    else:
        sys.stdout.write(details(found[0]))
    return 0


def _call(
    stub: assistance_pb2_grpc.AssistanceServiceStub,
    args: argparse.Namespace,
    metadata: tuple[tuple[str, str], ...],
) -> list[assistance_pb2.Application]:
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.common.protos import from_date

    command = args.applications_command
    if command == "list":
        return list(_pages(stub, args, metadata))
    if command == "show":
        request = pb.GetApplicationRequest(application_id=args.application_id)
        return [stub.GetApplication(request, metadata=metadata).application]
    if command == "accept":
        accepted_on = args.accepted_on or _today()
        request_id = args.request_id or _request_id(args, accepted_on)
        message = pb.AcceptApplicationRequest(
            request_id=request_id,
            person_id=args.person,
            household_id=args.household,
            region=args.region,
            kind=pb.ApplicationKind.Value(f"APPLICATION_KIND_{args.kind.upper()}"),
            accepted_on=from_date(accepted_on),
            documents_received=args.received,
            missing_documents=[
                pb.MissingDocument(name=name, due_on=from_date(due_on))
                for name, due_on in args.missing
            ],
            commitments=args.commitment,
            case_worker=args.case_worker,
        )
        return [stub.AcceptApplication(message, metadata=metadata).application]
    if command == "decide":
        decision = pb.DecideApplicationRequest(
            application_id=args.application_id,
            decision=pb.DECISION_APPROVE if args.approve else pb.DECISION_REFUSE,
            reason=args.reason,
            approved_amount_fen=args.amount or 0,
            case_worker=args.case_worker,
        )
        if args.on is not None:
            decision.decided_on.CopyFrom(from_date(args.on))
        return [stub.DecideApplication(decision, metadata=metadata).application]
    supplied = pb.SupplyDocumentRequest(
        application_id=args.application_id,
        name=args.document,
        supplied_on=from_date(args.on or _today()),
    )
    return [stub.SupplyDocument(supplied, metadata=metadata).application]


def _pages(
    stub: assistance_pb2_grpc.AssistanceServiceStub,
    args: argparse.Namespace,
    metadata: tuple[tuple[str, str], ...],
) -> Iterator[assistance_pb2.Application]:
    from doudi.assistance.v1 import assistance_pb2 as pb

    query = pb.ListApplicationsRequest(
        region=args.region or "", overdue_only=args.overdue, page_size=1000
    )
    if args.state:
        query.state = pb.ApplicationState.Value(f"APPLICATION_STATE_{args.state.upper()}")
    if args.kind:
        query.kind = pb.ApplicationKind.Value(f"APPLICATION_KIND_{args.kind.upper()}")
    while True:
        answer = stub.ListApplications(query, metadata=metadata)
        yield from answer.applications
        query.page_token = answer.next_page_token
        if not query.page_token:
            return


# --- output ----------------------------------------------------------------------------------


def document(application: assistance_pb2.Application) -> dict[str, Any]:
    """An application as JSON: codes in lower case, dates as YYYY-MM-DD, money in fen."""
    return {
        "application_id": application.application_id,
        "request_id": application.request_id,
        "person_id": application.person_id,
        "household_id": application.household_id,
        "region": application.region,
        "kind": _code(application, "kind", "APPLICATION_KIND_"),
        "state": _code(application, "state", "APPLICATION_STATE_"),
        "accepted_on": _day(application.accepted_on),
        "deadline": _day(application.deadline),
        "deadline_provisional": application.deadline_provisional,
        "working_days_left": application.working_days_left,
        "overdue": application.overdue,
        "documents_received": list(application.documents_received),
        "missing_documents": [
            {
                "name": missing.name,
                "due_on": _day(missing.due_on),
                "supplied_on": _day(missing.supplied_on)
                if missing.HasField("supplied_on")
                else None,
            }
            for missing in application.missing_documents
        ],
        "commitments": list(application.commitments),
        "case_worker": application.case_worker,
        "decided_on": _optional_day(application, "decided_on"),
        "decision_reason": application.decision_reason or None,
        "approved_amount_fen": application.approved_amount_fen,
        "status_valid_from": _optional_day(application, "status_valid_from"),
        "status_valid_to": _optional_day(application, "status_valid_to"),
        "status_certified": application.status_certified,
    }


def table(applications: list[assistance_pb2.Application], *, color: bool) -> str:
    """The applications, a line each; an overdue line in red when ``color``."""
    if not applications:
        return "no applications\n"
    header = ("编号", "身份证号", "类别", "状态", "受理日期", "办结时限", "剩余工作日", "金额(元)")
    rows = [header]
    overdue = [False]
    for application in applications:
        item = document(application)
        deadline = item["deadline"] + ("*" if item["deadline_provisional"] else "")
        if item["state"] in ("approved", "refused"):
            left = "已办结"
        elif item["overdue"]:
            left = "逾期"
        else:
            left = str(item["working_days_left"])
        rows.append(
            (
                str(item["application_id"]),
                _masked(item["person_id"]),
                KINDS[item["kind"]],
                STATES[item["state"]],
                item["accepted_on"],
                deadline,
                left,
                fen_to_yuan(item["approved_amount_fen"]),
            )
        )
        overdue.append(item["overdue"])
    widths = [max(columns.width(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for row, late in zip(rows, overdue, strict=True):
        line = "  ".join(
            columns.left(cell, width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        lines.append(f"{RED}{line}{RESET}" if late and color else line)
    if any(application.deadline_provisional for application in applications):
        lines.append("* 暂定: the deadline's year is not on the working calendar yet")
    return "\n".join(lines) + "\n"


def details(application: assistance_pb2.Application) -> str:
    item = document(application)
    lines = [
        f"application {item['application_id']}  {KINDS[item['kind']]}  {STATES[item['state']]}",
        f"  person       {item['person_id']}  household {item['household_id']}  "
        f"region {item['region']}",
        f"  accepted on  {item['accepted_on']} by {item['case_worker']}",
        f"  deadline     {item['deadline']}"
        + (" (provisional)" if item["deadline_provisional"] else "")
        + (" OVERDUE" if item["overdue"] else "")
        + (
            f", {item['working_days_left']} working days left"
            if item["state"] in ("accepted", "under_review") and not item["overdue"]
            else ""
        ),
        f"  received     {', '.join(item['documents_received']) or '-'}",
        f"  commitments  {', '.join(item['commitments']) or '-'}",
    ]
    for missing in item["missing_documents"]:
        brought = missing["supplied_on"] or "not yet"
        lines.append(f"  missing      {missing['name']}: due {missing['due_on']}, {brought}")
    if item["decided_on"]:
        lines.append(f"  decided on   {item['decided_on']}: {item['decision_reason']}")
        lines.append(f"  amount       {fen_to_yuan(item['approved_amount_fen'])} yuan")
    if item["status_valid_from"]:
        certified = "recorded by the hub" if item["status_certified"] else "not yet at the hub"
        lines.append(
            f"  status       expenditure_hardship {item['status_valid_from']} to "
            f"{item['status_valid_to']}, {certified}"
        )
    return "\n".join(lines) + "\n"


# --- values ----------------------------------------------------------------------------------


def _missing(text: str) -> tuple[str, date]:
    from doudi.cli import main as cli

    name, separator, day = text.rpartition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=YYYY-MM-DD")
    return name.strip(), cli._day(day)


def _yuan(text: str) -> int:
    try:
        fen = yuan_to_fen(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if fen < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: an amount is not negative")
    return fen


def _today() -> date:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(os.environ.get("DOUDI_TIME_ZONE") or "Asia/Shanghai")).date()


def _request_id(args: argparse.Namespace, accepted_on: date) -> str:
    """The same for the same person, kind, region and day: running the command again
    answers the application it accepted."""
    key = f"{args.person}|{args.kind}|{args.region}|{accepted_on.isoformat()}"
    return "cli-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def _code(message: Any, name: str, prefix: str) -> str:
    field = message.DESCRIPTOR.fields_by_name[name]
    return (
        str(field.enum_type.values_by_number[getattr(message, name)].name)
        .removeprefix(prefix)
        .lower()
    )


def _day(value: Any) -> str:
    return date(value.year, value.month, value.day).isoformat()


def _optional_day(message: Any, name: str) -> str | None:
    return _day(getattr(message, name)) if message.HasField(name) else None


def _masked(number: str) -> str:
    from doudi.core.identity import mask

    return mask(number)

"""The bureau's view of the burden (docs/domain.md section 7): ``doudi burden`` reads a
person's year from the assistance service, ``doudi bills add`` enters a bill paid outside
the window from a JSON file (its shape: services/assistance/README.md), ``doudi bills
list`` lists them.

The commands call assistance with the platform's internal token (``DOUDI_INTERNAL_TOKEN``)
at ``DOUDI_ASSISTANCE_ADDRESS`` (else 127.0.0.1:50054, where ``doudi run`` starts it).
Tables are for people: yuan with two decimals, every identity number masked but the one
asked for. ``--json`` is for machines: fen as integers, identity numbers in full.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from doudi.common.logs import mask_identity_numbers
from doudi.core.codes import STATUSES, VISIT_TYPES
from doudi.core.errors import InvalidInput
from doudi.core.money import format_yuan

if TYPE_CHECKING:
    from doudi.assistance.v1 import assistance_pb2

COMMANDS: Final = ("burden", "bills")
_BILL_FIELDS: Final = ("request_id", "person_id", "region", "hospital", "visit", "self_pay_fen")
_BILL_OPTIONAL: Final = ("insurance_paid", "note")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``burden`` and ``bills`` (``add``, ``list``) under ``doudi``."""
    bureau = (
        " The bureau's command: it calls the assistance service with the platform's token "
        "(DOUDI_INTERNAL_TOKEN). Exit 1 when it cannot be reached or refuses, 2 on bad input."
    )
    burden = commands.add_parser(
        "burden",
        help="the bureau: a person's and their household's burden of a year",
        description="Print a person's medical costs of a calendar year as the assistance "
        "service's ledger holds them (settlements and bills paid outside the window): total, "
        "what the funds paid, the personal burden (个人负担) and its in-scope part (政策范围内), "
        "their household's burden with each member's, visits by type and the statuses held. "
        "A table in yuan, other members' identity numbers masked; --json prints fen." + bureau,
    )
    burden.add_argument("person_id", metavar="PERSON_ID", help="the identity number")
    burden.add_argument("--year", required=True, type=int, metavar="YYYY", help="the year")
    _common(burden)

    bills = commands.add_parser(
        "bills",
        help="the bureau: enter or list bills paid outside the window",
        description="Bills the one-stop window did not settle (an out-of-area stay paid in "
        "full, receipts a clerk enters) count toward the burden." + bureau,
    )
    bill_commands = bills.add_subparsers(
        dest="bills_command",
        required=True,
        parser_class=type(bills),
        metavar="COMMAND",
        title="commands",
        help="one of these ('doudi bills COMMAND --help' tells more):",
    )
    add = bill_commands.add_parser(
        "add",
        help="enter a bill from a JSON file",
        description="Enter a bill paid outside the window from a JSON file (its shape: "
        "services/assistance/README.md): the visit as docs/case-format.md writes one, what "
        "insurance already paid there by fund and the self-pay, in fen; the items must add "
        "up to the two, to the fen. Entering the same file again changes nothing (its "
        "request_id); another bill under the same request_id is refused." + bureau,
    )
    add.add_argument("file", type=Path, metavar="FILE", help="the bill (.json, UTF-8)")
    _common(add)
    listing = bill_commands.add_parser(
        "list",
        help="list a person's bills, or a region's of a year",
        description="List the bills entered for a person (of a year, with --year) or for a "
        "region and year, in the order they were entered." + bureau,
    )
    listing.add_argument("--person", metavar="PERSON_ID", help="the person's identity number")
    listing.add_argument("--region", metavar="REGION", help="the pooling region's code")
    listing.add_argument("--year", type=int, default=0, metavar="YYYY", help="the year")
    _common(listing)


def _common(parser: argparse.ArgumentParser) -> None:
    from doudi.cli.main import add_assistance_option  # loaded by now

    parser.add_argument("--json", action="store_true", help="print JSON (fen) for machines")
    add_assistance_option(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``doudi burden`` or ``doudi bills ...``; the exit code."""
    from doudi.cli import rpc_errors  # imported here: gRPC is for these commands only
    from doudi.cli.main import EXIT_BAD_INPUT, _fail

    try:
        if args.command == "burden":
            action: Callable[[Any, Any], int] = _burden_action(args)
        elif args.bills_command == "add":
            action = _add_action(args)
        else:
            action = _list_action(args)
    except (InvalidInput, ValueError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    return rpc_errors.call_assistance(args.assistance, action)


# --- doudi burden ---------------------------------------------------------------------


def _burden_action(args: argparse.Namespace) -> Callable[[Any, Any], int]:
    from doudi.assistance.v1 import assistance_pb2
    from doudi.core.dates import check_year
    from doudi.core.identity import read_resident_id

    person = read_resident_id(args.person_id, "PERSON_ID").number
    check_year(args.year, "--year")

    def act(stub: Any, metadata: Any) -> int:
        answer = stub.GetBurden(
            assistance_pb2.GetBurdenRequest(person_id=person, year=args.year), metadata=metadata
        )
        document = burden_document(answer)
        if args.json:
            _write_json(document)
        else:
            sys.stdout.write(burden_text(document))
        return 0

    return act


def burden_document(answer: assistance_pb2.GetBurdenResponse) -> dict[str, Any]:
    """The answer as ``--json`` prints it: fen as integers."""
    from doudi.common.enums import ASSISTANCE_AGENCIES, ASSISTANCE_STATUSES
    from doudi.common.protos import to_date

    burden = answer.burden
    return {
        "person_id": burden.person_id,
        "household_id": answer.household_id,
        "year": burden.year,
        "total_fen": burden.total_fen,
        "fund_paid_fen": burden.fund_paid_fen,
        "personal_burden_fen": burden.personal_burden_fen,
        "eligible_burden_fen": burden.eligible_burden_fen,
        "household_burden_fen": answer.household_burden_fen,
        "household_eligible_burden_fen": answer.household_eligible_burden_fen,
        "funds": [{"fund": p.fund, "paid_fen": p.paid_fen} for p in burden.fund_payments],
        "visits": {kind: getattr(burden, f"{kind}_visits") for kind in VISIT_TYPES},
        "members": [
            {
                "person_id": member.person_id,
                "name": member.name,
                "personal_burden_fen": member.personal_burden_fen,
                "eligible_burden_fen": member.eligible_burden_fen,
            }
            for member in answer.members
        ],
        "statuses": [
            {
                "status": ASSISTANCE_STATUSES.code(period.status, "status"),
                "agency": ASSISTANCE_AGENCIES.code(period.agency, "agency"),
                "valid_from": to_date(period.valid_from, "valid_from").isoformat(),
                "valid_to": (
                    to_date(period.valid_to, "valid_to").isoformat()
                    if period.HasField("valid_to")
                    else None
                ),
            }
            for period in answer.statuses
        ],
    }


def burden_text(document: dict[str, Any]) -> str:
    """The year as a table for people: yuan, other members' numbers masked (Chinese terms
    at the ends of lines, where their width moves no column)."""
    person = document["person_id"]
    household = document["household_id"]
    lines = [
        f"{person}  {document['year']}  "
        + (f"household {household}" if household else "(not on the register's copy yet)"),
        "",
        _row("total cost", document["total_fen"], "总费用"),
        _row("paid by the funds", document["fund_paid_fen"], "基金支付"),
        _row("personal burden", document["personal_burden_fen"], "个人负担"),
        _row("  in scope", document["eligible_burden_fen"], "政策范围内个人负担"),
        _row("household burden", document["household_burden_fen"], "家庭个人负担"),
        _row("  in scope", document["household_eligible_burden_fen"], "家庭政策范围内个人负担"),
    ]
    if document["funds"]:
        lines += ["", "paid by fund"]
        lines += [_row(f"  {fund['fund']}", fund["paid_fen"]) for fund in document["funds"]]
    visits = [(kind, count) for kind, count in document["visits"].items() if count]
    if visits:
        lines += ["", "visits"]
        lines += [f"  {kind:<20}{count:>14,}  {VISIT_TYPES[kind]}" for kind, count in visits]
    if household:
        lines += ["", f"  {'member':<18}  {'personal':>14}  {'in scope':>14}  name"]
        for member in document["members"]:
            number = member["person_id"]
            shown = number if number == person else mask_identity_numbers(number)
            lines.append(
                f"  {shown:<18}  {format_yuan(member['personal_burden_fen']):>14}  "
                f"{format_yuan(member['eligible_burden_fen']):>14}  {member['name']}"
            )
    if document["statuses"]:
        lines += ["", "statuses held in the year"]
        for period in document["statuses"]:
            name = STATUSES.get(period["status"], (period["status"], ""))[0]
            until = period["valid_to"] or "…"
            lines.append(
                f"  {period['status']:<20}{period['valid_from']} – {until:<10}  "
                f"{period['agency']}  {name}"
            )
    lines += ["", "amounts in yuan"]
    return "\n".join(lines) + "\n"


def _row(label: str, fen: int, term: str = "") -> str:
    return f"{label:<20}{format_yuan(fen):>14}  {term}".rstrip()


# --- doudi bills ------------------------------------------------------------------------


def _add_action(args: argparse.Namespace) -> Callable[[Any, Any], int]:
    from doudi.assistance.v1 import assistance_pb2

    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        bill = read_bill(text)
    except InvalidInput as error:
        raise ValueError(f"{path}: {error}") from None

    def act(stub: Any, metadata: Any) -> int:
        answer = stub.RecordBill(assistance_pb2.RecordBillRequest(bill=bill), metadata=metadata)
        stored = bill_document(answer.bill)
        if args.json:
            _write_json(
                {
                    "bill": stored,
                    "recorded": answer.recorded,
                    "person_on_record": answer.person_on_record,
                }
            )
        else:
            done = "recorded" if answer.recorded else "already recorded (nothing changed)"
            print(f"bill {stored['bill_id']} {done}:")
            sys.stdout.write(bills_text([stored], show=stored["person_id"]))
        if not answer.person_on_record:
            print(
                f"doudi: note: enrollment has not sent {mask_identity_numbers(bill.person_id)} "
                "to assistance: the bill counts toward the person's burden, and toward a "
                "household's once the register's copy arrives",
                file=sys.stderr,
            )
        return 0

    return act


def read_bill(text: str) -> assistance_pb2.Bill:
    """A bill file (services/assistance/README.md) as assistance's ``Bill``; InvalidInput
    names the field at fault (``visit.items[0].amount_fen``)."""
    from doudi.assistance.v1 import assistance_pb2
    from doudi.common.visits import assistance_visit_to_proto
    from doudi.core.cases import load_json, parse_visit

    data = load_json(text)
    if not isinstance(data, dict):
        raise InvalidInput("", "expected a JSON object: the bill")
    for key in data:
        if key not in _BILL_FIELDS and key not in _BILL_OPTIONAL:
            allowed = ", ".join(sorted((*_BILL_FIELDS, *_BILL_OPTIONAL)))
            raise InvalidInput(key, f"unknown field (expected {allowed})")
    for key in _BILL_FIELDS:
        if data.get(key) is None:
            raise InvalidInput(key, "missing required field")
    for key in ("request_id", "person_id", "region", "hospital"):
        if not isinstance(data[key], str):
            raise InvalidInput(key, "expected a string")
    visit = parse_visit(data["visit"], "visit")
    payments = data.get("insurance_paid") or []
    if not isinstance(payments, list):
        raise InvalidInput("insurance_paid", "expected an array of {fund, paid_fen}")
    messages = []
    for index, payment in enumerate(payments):
        where = f"insurance_paid[{index}]"
        if not isinstance(payment, dict) or set(payment) != {"fund", "paid_fen"}:
            raise InvalidInput(where, "expected an object with fund and paid_fen only")
        if not isinstance(payment["fund"], str):
            raise InvalidInput(f"{where}.fund", "expected a string")
        messages.append(
            assistance_pb2.BillPayment(
                fund=payment["fund"], paid_fen=_fen(payment["paid_fen"], f"{where}.paid_fen")
            )
        )
    return assistance_pb2.Bill(
        request_id=data["request_id"],
        person_id=data["person_id"],
        region=data["region"],
        hospital_name=data["hospital"],
        hospital_level=visit.hospital_level or 0,
        visit=assistance_visit_to_proto(visit),
        insurance_payments=messages,
        self_pay_fen=_fen(data["self_pay_fen"], "self_pay_fen"),
    )


def _fen(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, "expected a whole number of fen")
    if not 0 <= value < 2**63:
        raise InvalidInput(field, f"must not be negative, got {value}")
    return value


def _list_action(args: argparse.Namespace) -> Callable[[Any, Any], int]:
    from doudi.core.dates import check_year
    from doudi.core.identity import read_resident_id

    person = region = ""
    if args.person:
        if args.region:
            raise InvalidInput("--region", "give --person or --region, not both")
        person = read_resident_id(args.person, "--person").number
    elif args.region:
        region = args.region
    else:
        raise InvalidInput("--person", "required: --person, or --region with --year")
    if args.year or region:
        check_year(args.year, "--year")

    def act(stub: Any, metadata: Any) -> int:
        found = [bill_document(bill) for bill in _pages(stub, metadata, person, region, args.year)]
        if args.json:
            _write_json(found)
        else:
            sys.stdout.write(bills_text(found, show=person))
        return 0

    return act


def _pages(
    stub: Any, metadata: Any, person: str, region: str, year: int
) -> Iterator[assistance_pb2.Bill]:
    from doudi.assistance.v1 import assistance_pb2

    token = ""
    while True:
        page = stub.ListBills(
            assistance_pb2.ListBillsRequest(
                person_id=person, region=region, year=year, page_size=1000, page_token=token
            ),
            metadata=metadata,
        )
        yield from page.bills
        token = page.next_page_token
        if not token:
            return


def bill_document(bill: assistance_pb2.Bill) -> dict[str, Any]:
    """A stored bill as ``--json`` prints it (the visit in docs/case-format.md's shape)."""
    from doudi.common.visits import assistance_visit_from_proto, visit_document

    visit = assistance_visit_from_proto(bill.visit, hospital_level=bill.hospital_level or None)
    return {
        "bill_id": bill.bill_id,
        "request_id": bill.request_id,
        "person_id": bill.person_id,
        "region": bill.region,
        "hospital": bill.hospital_name,
        "visit": visit_document(visit),
        "insurance_paid": [
            {"fund": p.fund, "paid_fen": p.paid_fen} for p in bill.insurance_payments
        ],
        "self_pay_fen": bill.self_pay_fen,
        "total_fen": bill.total_fen,
        "out_of_scope_fen": bill.out_of_scope_fen,
        "eligible_burden_fen": bill.eligible_burden_fen,
    }


def bills_text(documents: list[dict[str, Any]], *, show: str) -> str:
    """Bills as a table for people: yuan, identity numbers masked but ``show``."""
    if not documents:
        return "no bills\n"
    lines = [
        f"{'bill':>6}  {'person':<18}  {'date':<10}  {'type':<18}  {'total':>12}  "
        f"{'insurance':>12}  {'self-pay':>12}  {'in scope':>12}  hospital"
    ]
    for bill in documents:
        visit = bill["visit"]
        number = bill["person_id"]
        lines.append(
            f"{bill['bill_id']:>6}  "
            f"{number if number == show else mask_identity_numbers(number):<18}  "
            f"{visit.get('discharged') or visit.get('date'):<10}  "
            f"{visit['type']:<18}  "
            f"{format_yuan(bill['total_fen']):>12}  "
            f"{format_yuan(bill['total_fen'] - bill['self_pay_fen']):>12}  "
            f"{format_yuan(bill['self_pay_fen']):>12}  "
            f"{format_yuan(bill['eligible_burden_fen']):>12}  "
            f"{bill['hospital']}{' (out of area 异地)' if visit['out_of_area'] else ''}"
        )
    lines.append("amounts in yuan")
    return "\n".join(lines) + "\n"


def _write_json(document: object) -> None:
    from doudi.cli.main import write_json

    write_json(document)

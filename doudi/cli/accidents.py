"""The bureau's accident cover claims (意外伤害附加保险, docs/domain.md section 6): ``doudi
accidents file|decide|list|clearing``.

A clerk files a claim for a person of a region whose pack has an accident cover
(``file``: accidental death, or accidental medical costs in yuan from the receipts),
decides it once (``decide``: approving pays it at once), lists a region's claims (``list``)
and reads what the insurer owes for a day's paid claims (``clearing``). The work is the
settlement service's; these commands call it with the platform's internal token
(``DOUDI_INTERNAL_TOKEN``) at ``DOUDI_SETTLEMENT_ADDRESS`` (else where ``doudi run`` starts
it). Tables are for people: yuan with two decimals, Chinese names of kinds and states,
identity numbers masked; ``--json`` is for machines: fen as integers, numbers in full.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from doudi.core.accidents import ACCIDENT_KIND_NAMES, ACCIDENT_KINDS, DEATH
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask
from doudi.core.money import format_yuan, yuan_to_fen

if TYPE_CHECKING:  # gRPC is imported when a command calls the service, not for `doudi calc`
    from doudi.settlement.v1 import settlement_pb2 as pb
    from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub

PAGE: Final = 1000
STATE_NAMES: Final = {"filed": "已受理", "paid": "已赔付", "rejected": "不予赔付"}
"""Each state of a claim as the clerks say it."""


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``doudi accidents ...`` under the command list ``commands`` of ``doudi``."""
    from doudi.cli import main as cli  # its argument types; loaded by now

    accidents = cli._command(
        commands,
        "accidents",
        "the bureau: accident cover (意外伤害附加保险) claims, decisions and clearing",
        "A clerk files a claim on the accident cover of the region's policy pack for an "
        "accidental death (意外身故, the pack's fixed sum) or accidental medical costs "
        "(意外医疗, the costs on the receipts up to the pack's cap), up to the pack's window "
        "after the event ('file'); decides it once, an approval paying it at once ('decide'); "
        "lists a region's claims ('list') and prints what the insurer owes for a day's paid "
        "claims ('clearing'). The bureau's command: it calls the settlement service with the "
        "platform's token (DOUDI_INTERNAL_TOKEN). Exit 1 when the service cannot be reached "
        "or refuses, 2 on bad input.",
    )
    actions = cli._subcommands(
        accidents,
        "accidents_command",
        "one of these ('doudi accidents COMMAND --help' tells more):",
    )
    filing = cli._command(
        actions,
        "file",
        "file a claim (受理): a person, the kind, the accident's day and the costs",
        "File a claim for a person of REGION insured in the accident's year. It is received "
        "today on the bureau's calendar, which must be within the pack's window after the "
        "accident (two years in Linzhi and Tianjin). One claim per person, kind and accident "
        "day; a death is paid once. Filing the same --request-id again answers the same claim.",
    )
    filing.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit region"
    )
    filing.add_argument(
        "--person", required=True, metavar="PERSON_ID", help="the person's identity number"
    )
    filing.add_argument(
        "--kind",
        required=True,
        choices=ACCIDENT_KINDS,
        metavar="KIND",
        help="death (意外身故) or medical (意外医疗)",
    )
    filing.add_argument(
        "--event-date",
        required=True,
        type=cli._day,
        metavar="YYYY-MM-DD",
        help="the day of the accident",
    )
    filing.add_argument(
        "--claimed",
        metavar="YUAN",
        help="medical costs: the total on the receipts in yuan (e.g. 12345.67); not for a death",
    )
    filing.add_argument(
        "--request-id",
        metavar="KEY",
        help="an idempotency key: the same key answers the same claim (default: a new one)",
    )
    deciding = cli._command(
        actions,
        "decide",
        "decide a claim once: approve and pay (赔付), or reject (不予赔付) with a reason",
        "Decide a filed claim. Approving pays it at once from the pack's insurer: a death the "
        "pack's sum, medical costs what was claimed up to the pack's cap. Rejecting needs a "
        "reason. A claim is decided once.",
    )
    deciding.add_argument(
        "claim_id",
        type=cli._at_least_one,
        metavar="CLAIM",
        help="the claim's id ('file' printed it)",
    )
    verdict = deciding.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", action="store_true", help="approve and pay the claim")
    verdict.add_argument("--reject", metavar="REASON", help="reject the claim, for this reason")
    listing = cli._command(
        actions,
        "list",
        "list a region's claims in the order they were filed",
        "List a region's claims, oldest first, optionally only those in one state.",
    )
    listing.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit region"
    )
    listing.add_argument(
        "--state",
        choices=tuple(STATE_NAMES),
        metavar="STATE",
        help="only claims filed (已受理), paid (已赔付) or rejected (不予赔付)",
    )
    clearing = cli._command(
        actions,
        "clearing",
        "what each insurer owes the bureau for a day's paid claims (清算)",
        "Print, per insurer, the region's claims paid on a day of the bureau's calendar: how "
        "many and their total, which the insurer repays the bureau.",
    )
    clearing.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit region"
    )
    clearing.add_argument(
        "--date", required=True, type=cli._day, metavar="YYYY-MM-DD", help="the day paid"
    )
    for command in actions.choices.values():
        command.add_argument(
            "--json", action="store_true", help="print JSON (amounts in fen) instead of a table"
        )
        command.add_argument(
            "--settlement",
            metavar="HOST:PORT",
            help="the settlement service (DOUDI_SETTLEMENT_ADDRESS, else 127.0.0.1:50053)",
        )


def run(args: argparse.Namespace) -> int:
    """One ``doudi accidents`` command; its exit status."""
    from doudi.cli import main as cli
    from doudi.cli import rpc_errors
    from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub

    try:
        claimed_fen = _claimed_fen(args) if args.accidents_command == "file" else 0
    except InvalidInput as error:
        return cli._fail(str(error))
    return rpc_errors.call_service(
        "settlement",
        SettlementServiceStub,
        args.settlement,
        lambda stub, metadata: _call(stub, metadata, args, claimed_fen),
    )


def _claimed_fen(args: argparse.Namespace) -> int:
    """The costs claimed in fen, from ``--claimed`` in yuan."""
    if args.kind == DEATH:
        if args.claimed is not None:
            raise InvalidInput("--claimed", "a death claim pays the pack's fixed sum: leave it out")
        return 0
    if args.claimed is None:
        raise InvalidInput("--claimed", "required for medical costs: the receipts' total in yuan")
    try:
        return yuan_to_fen(args.claimed)
    except ValueError as error:
        raise InvalidInput("--claimed", str(error)) from None


def _call(
    stub: SettlementServiceStub, metadata: Any, args: argparse.Namespace, claimed_fen: int
) -> int:
    from doudi.cli import main as cli
    from doudi.common.enums import ACCIDENT_CLAIM_STATES, ACCIDENT_KINDS
    from doudi.common.protos import from_date
    from doudi.settlement.v1 import settlement_pb2 as pb

    command = args.accidents_command
    if command == "file":
        filed = stub.FileAccidentClaim(
            pb.FileAccidentClaimRequest(
                request_id=args.request_id or str(uuid.uuid4()),
                region=args.region,
                person_id=args.person,
                kind=ACCIDENT_KINDS.value(args.kind),
                event_date=from_date(args.event_date),
                claimed_fen=claimed_fen,
            ),
            metadata=metadata,
        )
        done = "already filed (nothing changed)" if filed.replayed else "filed"
        return _print([filed.claim], args.json, f"claim {filed.claim.claim_id} {done}:\n")
    if command == "decide":
        decided = stub.DecideAccidentClaim(
            pb.DecideAccidentClaimRequest(
                claim_id=args.claim_id, approve=args.approve, reason=args.reject or ""
            ),
            metadata=metadata,
        )
        return _print([decided.claim], args.json, f"claim {decided.claim.claim_id} decided:\n")
    if command == "list":
        state = ACCIDENT_CLAIM_STATES.value(args.state)
        return _print(list(_claims(stub, metadata, args.region, state)), args.json, "")
    answer = stub.GetAccidentClearing(
        pb.GetAccidentClearingRequest(region=args.region, date=from_date(args.date)),
        metadata=metadata,
    )
    if args.json:
        cli.write_json(clearing_document(answer))
    else:
        sys.stdout.write(clearing_text(answer))
    return 0


def _print(claims: list[pb.AccidentClaim], as_json: bool, heading: str) -> int:
    from doudi.cli import main as cli

    if as_json:
        documents = [claim_document(claim) for claim in claims]
        cli.write_json(documents[0] if heading else documents)
    else:
        sys.stdout.write(heading + claims_text(claims))
    return 0


def _claims(
    stub: SettlementServiceStub,
    metadata: Any,
    region: str,
    state: pb.AccidentClaimState.ValueType,
) -> Iterator[pb.AccidentClaim]:
    from doudi.settlement.v1 import settlement_pb2 as pb

    token = ""
    while True:
        page = stub.ListAccidentClaims(
            pb.ListAccidentClaimsRequest(
                region=region, state=state, page_size=PAGE, page_token=token
            ),
            metadata=metadata,
        )
        yield from page.claims
        token = page.next_page_token
        if not token:
            return


def claim_document(claim: pb.AccidentClaim) -> dict[str, Any]:
    """A claim as ``--json`` prints it: fen as integers, the identity number in full."""
    from doudi.common.enums import ACCIDENT_CLAIM_STATES, ACCIDENT_KINDS

    return {
        "claim_id": claim.claim_id,
        "request_id": claim.request_id,
        "person_id": claim.person_id,
        "region": claim.region,
        "kind": ACCIDENT_KINDS.code(claim.kind, "kind"),
        "event_date": _date_text(claim.event_date),
        "received_on": _date_text(claim.received_on),
        "claimed_fen": claim.claimed_fen,
        "state": ACCIDENT_CLAIM_STATES.code(claim.state, "state"),
        "policy": claim.policy,
        "fund": claim.fund,
        "decided_on": _date_text(claim.decided_on) if claim.HasField("decided_on") else None,
        "paid_fen": claim.paid_fen,
        "rejection_reason": claim.rejection_reason or None,
    }


def claims_text(claims: list[pb.AccidentClaim]) -> str:
    """Claims as a table for people: yuan, Chinese names, identity numbers masked."""
    from doudi.cli import columns

    if not claims:
        return "no claims\n"
    lines = [
        f"{'claim':>6}  {'person':<18}  {columns.left('kind', 8)}  {'accident':<10}  "
        f"{'received':<10}  {'claimed':>12}  {columns.left('state', 8)}  {'paid':>12}  decided"
    ]
    for claim in claims:
        document = claim_document(claim)
        decided = document["decided_on"] or ""
        if document["rejection_reason"]:
            decided += f"  {document['rejection_reason']}"
        claimed = "" if document["kind"] == DEATH else format_yuan(claim.claimed_fen)
        lines.append(
            f"{claim.claim_id:>6}  {mask(claim.person_id):<18}  "
            f"{columns.left(ACCIDENT_KIND_NAMES[document['kind']], 8)}  "
            f"{document['event_date']:<10}  {document['received_on']:<10}  {claimed:>12}  "
            f"{columns.left(STATE_NAMES[document['state']], 8)}  "
            f"{format_yuan(claim.paid_fen):>12}  {decided}".rstrip()
        )
    lines.append("amounts in yuan")
    return "\n".join(lines) + "\n"


def clearing_document(answer: pb.GetAccidentClearingResponse) -> dict[str, Any]:
    return {
        "region": answer.region,
        "date": _date_text(answer.date),
        "funds": [
            {"fund": fund.fund, "claim_count": fund.claim_count, "paid_fen": fund.paid_fen}
            for fund in answer.funds
        ],
        "claim_count": answer.claim_count,
        "paid_fen": answer.paid_fen,
    }


def clearing_text(answer: pb.GetAccidentClearingResponse) -> str:
    from doudi.cli import columns

    lines = [
        f"accident claims paid in region {answer.region} on {_date_text(answer.date)} "
        "(意外伤害保险 清算)",
        f"  {'insurer':<20}  {'claims':>8}  {'paid':>14}",
    ]
    lines += [
        f"  {fund.fund:<20}  {fund.claim_count:>8,}  {format_yuan(fund.paid_fen):>14}"
        for fund in answer.funds
    ]
    lines += [
        f"  {columns.left('total 合计', 20)}  {answer.claim_count:>8,}  "
        f"{format_yuan(answer.paid_fen):>14}",
        "amounts in yuan",
    ]
    return "\n".join(lines) + "\n"


def _date_text(value: Any) -> str:
    from doudi.common.protos import to_date

    return to_date(value, "date").isoformat()

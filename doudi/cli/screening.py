"""The bureau's proactive screening (主动救助, docs/domain.md section 7): ``doudi screening
run|list|show|confirm``.

A case worker runs screening for a region and a year (``run``): settled visits a status
certified later would have assisted more, and bills paid outside the window by persons
holding a status on their day, each an offer with its figures. They read the offers
(``show RUN``, ``list``), contact the person, and confirm one (``confirm OFFER``, with a
note): it is paid once. The work is the assistance service's; these commands call it with
the platform's internal token (``DOUDI_INTERNAL_TOKEN``) at ``DOUDI_ASSISTANCE_ADDRESS``
(else where ``doudi run`` starts it). Identity numbers are masked; money is yuan with two
decimals in tables, integer fen in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from doudi.core.identity import mask
from doudi.core.money import format_yuan

if TYPE_CHECKING:  # gRPC is imported when a command calls the service, not for `doudi calc`
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub

PAGE: Final = 1000
STATES: Final = ("offered", "confirmed", "superseded")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``doudi screening ...`` under the command list ``commands`` of ``doudi``."""
    from doudi.cli import main as cli  # its argument types; loaded by now
    from doudi.cli.main import add_assistance_option  # loaded by now

    screening = cli._command(
        commands,
        "screening",
        "the bureau: proactive screening (主动救助) runs, offers and their confirmation",
        "A case worker runs screening for a region and a year ('run'): settled visits that a "
        "status certified later (valid from on or before the visit) would have assisted "
        "more, recomputed by the settlement service, and bills paid outside the window by "
        "persons holding an assistance status on their day, assessed under the pack with "
        "its out-of-area rules. Each is an offer with its figures ('show', 'list'); the case "
        "worker contacts the person and confirms it ('confirm'): it is paid once. The "
        "bureau's command: it calls the assistance service with the platform's token "
        "(DOUDI_INTERNAL_TOKEN). Exit 1 when the service cannot be reached or refuses, 2 on "
        "bad input.",
    )
    actions = cli._subcommands(
        screening,
        "screening_command",
        "one of these ('doudi screening COMMAND --help' tells more):",
    )
    run = cli._command(
        actions,
        "run",
        "run screening of a region and a year: its offers",
        "Run screening for a region and a year and print the run's offers. Offers of an "
        "earlier run not confirmed yet are replaced by this run's; a visit or bill already "
        "paid is offered only what it is owed beyond what was paid.",
    )
    run.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="the 6-digit region"
    )
    run.add_argument(
        "--year", required=True, type=cli._year, metavar="YEAR", help="the calendar year"
    )
    run.add_argument("--case-worker", required=True, metavar="NAME", help="who runs it")
    run.add_argument(
        "--request-id",
        metavar="KEY",
        help="an idempotency key: the same key answers the same run (default: a new one)",
    )
    listing = cli._command(
        actions,
        "list",
        "list a region's offers of a year",
        "List the offers of a region and a year in the order they were made, with their "
        "state (offered, confirmed, superseded).",
    )
    listing.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="the 6-digit region"
    )
    listing.add_argument(
        "--year", required=True, type=cli._year, metavar="YEAR", help="the calendar year"
    )
    listing.add_argument(
        "--state",
        choices=STATES,
        metavar="STATE",
        help=f"only offers in this state: {', '.join(STATES)} (default: all)",
    )
    show = cli._command(
        actions,
        "show",
        "print a run: its totals and each offer with its figures",
        "Print a run's totals and each offer with the figures behind it (identity numbers masked).",
    )
    show.add_argument(
        "run_id", type=cli._at_least_one, metavar="RUN", help="the run's id ('run' printed it)"
    )
    confirm = cli._command(
        actions,
        "confirm",
        "confirm an offer once: the person contacted, the account known; it is paid",
        "Confirm an offer after contacting the person: it pays the least of the offer and "
        "what its visit or bill is owed less what was paid for it, once.",
    )
    confirm.add_argument("offer_id", type=cli._at_least_one, metavar="OFFER", help="the offer's id")
    confirm.add_argument("--case-worker", required=True, metavar="NAME", help="who confirms it")
    confirm.add_argument(
        "--note",
        required=True,
        metavar="TEXT",
        help="how the person was reached and the account paid into (at most 500 characters)",
    )
    for command in (run, listing, show, confirm):
        add_assistance_option(command)
        command.add_argument(
            "--json", action="store_true", help="print JSON (amounts in fen) instead of a table"
        )


def run(args: argparse.Namespace) -> int:
    """One ``doudi screening`` command; its exit status."""
    from doudi.cli import rpc_errors

    return rpc_errors.call_assistance(
        args.assistance, lambda stub, metadata: _call(stub, metadata, args)
    )


def _call(stub: AssistanceServiceStub, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.cli import main as cli

    command = args.screening_command
    if command == "confirm":
        confirmed = stub.ConfirmScreeningOffer(
            pb.ConfirmScreeningOfferRequest(
                offer_id=args.offer_id, case_worker=args.case_worker, note=args.note
            ),
            metadata=metadata,
        ).offer
        if args.json:
            cli.write_json(offer_document(confirmed))
        else:
            sys.stdout.write(
                f"offer {confirmed.offer_id} confirmed by {confirmed.confirmed_by}: paid "
                f"{format_yuan(confirmed.paid_fen)} yuan\n" + offers_text([confirmed])
            )
        return 0
    if command == "list":
        states = [pb.OfferState.Value(f"OFFER_STATE_{args.state.upper()}")] if args.state else []
        offers = list(offers_of(stub, metadata, region=args.region, year=args.year, states=states))
        if args.json:
            cli.write_json([offer_document(offer) for offer in offers])
        else:
            sys.stdout.write(offers_text(offers))
        return 0
    if command == "run":
        found = stub.RunScreening(
            pb.RunScreeningRequest(
                request_id=args.request_id or str(uuid.uuid4()),
                region=args.region,
                year=args.year,
                case_worker=args.case_worker,
            ),
            metadata=metadata,
        ).run
    else:
        found = stub.GetScreeningRun(
            pb.GetScreeningRunRequest(run_id=args.run_id), metadata=metadata
        ).run
    offers = list(offers_of(stub, metadata, run_id=found.run_id))
    if args.json:
        document = run_document(found)
        if command == "show":
            document["offers"] = [offer_document(offer) for offer in offers]
        cli.write_json(document)
    else:
        sys.stdout.write(run_text(found) + offers_text(offers))
    return 0


def offers_of(
    stub: AssistanceServiceStub,
    metadata: Any,
    *,
    run_id: int = 0,
    region: str = "",
    year: int = 0,
    states: list[Any] | None = None,
) -> Iterator[pb.ScreeningOffer]:
    """Every offer of the run, or of the region and year (in the states), in order."""
    from doudi.assistance.v1 import assistance_pb2 as pb

    token = ""
    while True:
        page = stub.ListScreeningOffers(
            pb.ListScreeningOffersRequest(
                run_id=run_id,
                region=region,
                year=year,
                states=states or [],
                page_size=PAGE,
                page_token=token,
            ),
            metadata=metadata,
        )
        yield from page.offers
        token = page.next_page_token
        if not token:
            return


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def run_document(found: pb.ScreeningRun) -> dict[str, object]:
    return {
        "run_id": found.run_id,
        "region": found.region,
        "year": found.year,
        "case_worker": found.case_worker,
        "created_at": found.create_time.ToDatetime().isoformat() + "Z",
        "offer_count": found.offer_count,
        "offered_fen": found.offered_fen,
    }


def offer_document(offer: pb.ScreeningOffer) -> dict[str, object]:
    from doudi.assistance.v1 import assistance_pb2 as pb

    return {
        "offer_id": offer.offer_id,
        "run_id": offer.run_id,
        "source": _name(pb.ScreeningSource, offer.source, "SCREENING_SOURCE_"),
        "reference": offer.reference,
        "person_id": mask(offer.person_id),
        "name": offer.name,
        "region": offer.region,
        "year": offer.year,
        "settles_on": _date_text(offer.settles_on),
        "visit_type": _name(pb.VisitType, offer.visit_type, "VISIT_TYPE_"),
        "statuses": [_name(pb.Status, status, "STATUS_") for status in offer.statuses],
        "policy": offer.policy,
        "self_pay_fen": offer.self_pay_fen,
        "owed_fen": offer.owed_fen,
        "paid_before_fen": offer.paid_before_fen,
        "offered_fen": offer.offered_fen,
        "state": _name(pb.OfferState, offer.state, "OFFER_STATE_"),
        "explanation": offer.explanation,
        "details": json.loads(offer.details_json or "{}"),
        "confirmed_by": offer.confirmed_by or None,
        "confirmed_at": (
            offer.confirm_time.ToDatetime().isoformat() + "Z"
            if offer.HasField("confirm_time")
            else None
        ),
        "confirm_note": offer.confirm_note or None,
        "paid_fen": offer.paid_fen,
    }


def run_text(found: pb.ScreeningRun) -> str:
    return (
        f"screening run {found.run_id}: region {found.region}, {found.year}, by "
        f"{found.case_worker} on {found.create_time.ToDatetime().date()}\n"
        f"  offers              {found.offer_count:>9,} {format_yuan(found.offered_fen)} yuan\n"
    )


def offers_text(offers: list[pb.ScreeningOffer]) -> str:
    from doudi.assistance.v1 import assistance_pb2 as pb
    from doudi.cli import columns

    if not offers:
        return "  no offers\n"
    lines = [
        f"  {'offer':>6} {'source':<10} {'person':<18} {'name':<8} {'day':<10} "
        f"{'self-pay':>12} {'owed':>10} {'paid before':>11} {'offered':>10} {'state':<10} "
        f"{'paid':>10}"
    ]
    for offer in offers:
        lines.append(
            f"  {offer.offer_id:>6} "
            f"{_name(pb.ScreeningSource, offer.source, 'SCREENING_SOURCE_'):<10} "
            f"{mask(offer.person_id):<18} {columns.left(offer.name, 8)} {_date_text(offer.settles_on):<10} "
            f"{format_yuan(offer.self_pay_fen):>12} {format_yuan(offer.owed_fen):>10} "
            f"{format_yuan(offer.paid_before_fen):>11} {format_yuan(offer.offered_fen):>10} "
            f"{_name(pb.OfferState, offer.state, 'OFFER_STATE_'):<10} "
            f"{format_yuan(offer.paid_fen):>10}"
        )
        lines.append(f"      {mask_text(offer.explanation)}")
        if offer.confirmed_by:
            lines.append(
                f"      confirmed by {offer.confirmed_by} on "
                f"{offer.confirm_time.ToDatetime().date()}: {offer.confirm_note}"
            )
    return "\n".join(lines) + "\n"


def mask_text(text: str) -> str:
    from doudi.common.logs import mask_identity_numbers

    return mask_identity_numbers(text)


def _date_text(value: Any) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"

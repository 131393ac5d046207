"""``doudi admin hospital|agency|person|token``: the operator's side of the platform.

- ``hospital add|list|rotate-key|end-rotation``: the hospitals that settle through the
  platform and their API keys (the settlement service keeps only the keys' digests);
  ``hospital reformed``: whether a level-2 hospital takes part in the public-hospital
  reform (公立医院改革, Tianjin's residents' general outpatient cover);
- ``agency add|list|rotate-key|end-rotation``: the agencies' systems that call the
  datashare hub and their keys (the hub keeps only the digests);
- ``person add``: a person in the register (the enrollment service), with a year's
  enrolment if asked;
- ``token new|digest``: a new internal token, and the digest another process accepts
  during the token's rotation (DOUDI_ACCEPTED_INTERNAL_TOKEN_DIGESTS).

Each command calls the service over its API with the platform's internal token
(``DOUDI_INTERNAL_TOKEN``), with TLS as ``DOUDI_TLS_*`` say. A key is printed once, when
it is made; nothing stores it but whoever receives it. Exit 2 on bad input (the
service's too), 1 when the service cannot be reached or refuses.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
DEFAULT_OVERLAP_HOURS: Final = 24.0
MAX_OVERLAP_HOURS: Final = 90 * 24
PAGE: Final = 1000


def add_areas(areas: argparse._SubParsersAction[Any]) -> None:
    """``hospital``, ``agency``, ``person`` and ``token`` under ``doudi admin``."""
    from doudi.cli import main as cli

    _hospital_commands(cli, areas)
    _agency_commands(cli, areas)
    _person_commands(cli, areas)
    _token_commands(cli, areas)


def _overlap(text: str) -> float:
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 <= hours <= MAX_OVERLAP_HOURS:
        raise argparse.ArgumentTypeError(f"from 0 to {MAX_OVERLAP_HOURS} hours")
    return hours


def _rotation_arguments(cli: Any, actions: argparse._SubParsersAction[Any], what: str) -> None:
    rotate = cli._command(
        actions,
        "rotate-key",
        "make a new key; the older ones keep working for the overlap",
        f"Make a new API key for the {what} and print it once. The older keys keep working "
        "for --overlap hours, so that its systems can switch without a gap; end-rotation "
        "retires them sooner.",
    )
    rotate.add_argument(
        "--overlap",
        type=_overlap,
        default=DEFAULT_OVERLAP_HOURS,
        metavar="HOURS",
        help=f"how long the older keys keep working (default {DEFAULT_OVERLAP_HOURS:g}; "
        f"0 to {MAX_OVERLAP_HOURS})",
    )
    cli._command(
        actions,
        "end-rotation",
        "retire every older key now",
        f"Retire now every API key of the {what} but its newest (once its systems use the "
        "new key).",
    )


def _hospital_commands(cli: Any, areas: argparse._SubParsersAction[Any]) -> None:
    hospital = cli._command(
        areas,
        "hospital",
        "the hospitals and their API keys: add, list, rotate-key, end-rotation, reformed",
        "The hospitals that settle through the platform (定点医疗机构) and their API keys, "
        "kept by the settlement service as digests only. A key is printed once, when made.",
    )
    actions = cli._subcommands(
        hospital, "hospital_command", "one of these ('doudi admin hospital COMMAND --help')"
    )
    add = cli._command(
        actions,
        "add",
        "register a hospital and make its first key",
        "Register a hospital with the pooling region it serves and its level, and print its "
        "first API key once.",
    )
    add.add_argument("--name", required=True, metavar="NAME", help="its name (西峡县人民医院)")
    add.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit region"
    )
    add.add_argument(
        "--level",
        required=True,
        type=int,
        choices=range(4),
        metavar="LEVEL",
        help="1, 2 or 3 (a township health centre is 1); 0 for a pharmacy",
    )
    add.add_argument(
        "--reformed",
        action="store_true",
        help="a level-2 hospital of the public-hospital reform (公立医院改革二级医院)",
    )
    cli._command(
        actions,
        "reformed",
        "mark a level-2 hospital as reformed (公立医院改革), or no longer",
        "Mark a level-2 hospital as taking part in the public-hospital reform "
        "(公立医院改革二级医院: Tianjin pays residents' general outpatient visits at level 1 "
        "and at these only), or with 'no' no longer. Other replicas see it when their "
        "hospital cache expires (DOUDI_HOSPITAL_CACHE_SECONDS).",
    )
    listing = cli._command(
        actions,
        "list",
        "list the hospitals and their live keys",
        "List the hospitals in id order with their live keys: each key's fingerprint (the "
        "first digits of its digest, never the key) and when it retires.",
    )
    listing.add_argument("--region", type=cli._region, metavar="REGION", help="only this region")
    _rotation_arguments(cli, actions, "hospital")
    for name, command in actions.choices.items():
        if name != "list":
            command.add_argument("hospital_id", metavar="HOSPITAL", help="the hospital's id")
        if name == "reformed":
            command.add_argument(
                "answer", choices=("yes", "no"), metavar="YES|NO", help="yes: reformed; no: not"
            )
        command.add_argument(
            "--settlement",
            metavar="HOST:PORT",
            help="the settlement service (DOUDI_SETTLEMENT_ADDRESS, else 127.0.0.1:50053)",
        )


def _agency_commands(cli: Any, areas: argparse._SubParsersAction[Any]) -> None:
    agency = cli._command(
        areas,
        "agency",
        "the agencies' systems and their API keys: add, list, rotate-key, end-rotation",
        "The agencies' systems that call the datashare hub (civil affairs, the poverty "
        "office, the unions...), each a client with the regions its keys serve; the hub "
        "keeps the keys as digests only. A key is printed once, when made.",
    )
    actions = cli._subcommands(
        agency, "agency_command", "one of these ('doudi admin agency COMMAND --help')"
    )
    add = cli._command(
        actions,
        "add",
        "register an agency's system and make its first key",
        "Register a system of an agency that calls the hub, with the regions its keys serve, "
        "and print its client id and first API key once.",
    )
    add.add_argument("agency", type=cli._agency, metavar="AGENCY", help="the agency's code")
    add.add_argument(
        "--region",
        dest="regions",
        action="append",
        type=cli._region,
        default=[],
        metavar="REGION",
        help="a pooling region its keys serve (may be repeated; none: every region)",
    )
    add.add_argument("--label", default="", metavar="TEXT", help="what the bureau calls it")
    cli._command(
        actions,
        "list",
        "list the clients and their live keys",
        "List the agencies' clients in id order with their regions and live keys (each "
        "key's fingerprint and when it retires; never a key).",
    )
    _rotation_arguments(cli, actions, "agency's client")
    for name, command in actions.choices.items():
        if name in ("rotate-key", "end-rotation"):
            command.add_argument(
                "client_id", metavar="CLIENT", help="the client's id (doudi admin agency list)"
            )
        command.add_argument(
            "--datashare",
            metavar="HOST:PORT",
            help="the datashare hub (DOUDI_DATASHARE_ADDRESS, else 127.0.0.1:50052)",
        )


def _person_commands(cli: Any, areas: argparse._SubParsersAction[Any]) -> None:
    from doudi.common.enums import EMPLOYMENTS, PREMIUM_PAYERS, SCHEMES, TIERS

    person = cli._command(
        areas,
        "person",
        "the register: add a person",
        "The register of insured persons (the enrollment service).",
    )
    actions = cli._subcommands(
        person, "person_command", "one of these ('doudi admin person COMMAND --help')"
    )
    add = cli._command(
        actions,
        "add",
        "add a person, and a year's enrolment if asked",
        "Add a person to the register with their household and pooling region; with --year, "
        "also their enrolment for that year. Again with the same data: no change.",
    )
    add.add_argument("person_id", metavar="ID", help="the 18-character resident identity number")
    add.add_argument("--name", required=True, metavar="NAME", help="the person's name")
    add.add_argument("--household", required=True, metavar="HOUSEHOLD", help="the household id")
    add.add_argument(
        "--region",
        required=True,
        type=cli._region,
        metavar="REGION",
        help="the 6-digit pooling region whose policy pack settles their visits",
    )
    add.add_argument("--year", type=cli._year, metavar="YEAR", help="enrol for this year")
    add.add_argument(
        "--scheme",
        choices=list(SCHEMES),
        default="resident",
        metavar="SCHEME",
        help=f"{', '.join(SCHEMES)} (default resident)",
    )
    add.add_argument(
        "--employment",
        choices=list(EMPLOYMENTS),
        metavar="EMPLOYMENT",
        help=f"{', '.join(EMPLOYMENTS)}: required for employees",
    )
    add.add_argument(
        "--tier",
        choices=list(TIERS),
        metavar="TIER",
        help=f"{', '.join(TIERS)}: where the region has tiers",
    )
    add.add_argument(
        "--premium",
        type=_yuan,
        default=0,
        metavar="YUAN",
        help="the year's personal premium in yuan (default 0)",
    )
    add.add_argument(
        "--premium-payer",
        choices=list(PREMIUM_PAYERS),
        default="person",
        dest="payer",
        metavar="PAYER",
        help=f"who paid the premium: {', '.join(PREMIUM_PAYERS)} (default person)",
    )
    add.add_argument(
        "--enrollment",
        metavar="HOST:PORT",
        help="the enrollment service (DOUDI_ENROLLMENT_ADDRESS, else 127.0.0.1:50051)",
    )


def _yuan(text: str) -> int:
    from doudi.cli.applications import _yuan as yuan

    return yuan(text)


def _token_commands(cli: Any, areas: argparse._SubParsersAction[Any]) -> None:
    token = cli._command(
        areas,
        "token",
        "the internal token: make a new one, or a token's digest",
        "The platform's internal token (DOUDI_INTERNAL_TOKEN). To rotate it without a gap: "
        "(1) give every process the new token's digest in "
        "DOUDI_ACCEPTED_INTERNAL_TOKEN_DIGESTS; (2) give every process the new token as "
        "DOUDI_INTERNAL_TOKEN and the old one's digest there instead; (3) empty it.",
    )
    actions = cli._subcommands(
        token, "token_command", "one of these ('doudi admin token COMMAND --help')"
    )
    cli._command(
        actions,
        "new",
        "print a new token and its digest",
        "Print a new random token (256 bits) and its SHA-256 digest.",
    )
    cli._command(
        actions,
        "digest",
        "print the digest of the token on standard input",
        "Read a token as one line of standard input and print its SHA-256 digest (what "
        "DOUDI_ACCEPTED_INTERNAL_TOKEN_DIGESTS lists).",
    )


def run(args: argparse.Namespace) -> int:
    """One ``doudi admin hospital|agency|person|token`` command; its exit status."""
    from doudi.cli import main as cli
    from doudi.cli import rpc_errors

    area = args.admin_command
    if area == "token":
        return _token(args)
    if area == "hospital":
        from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub

        return rpc_errors.call_service(
            "settlement", SettlementServiceStub, args.settlement, lambda s, m: _hospital(s, m, args)
        )
    if area == "agency":
        return rpc_errors.call_datashare(args.datashare, lambda s, m: _agency(s, m, args))
    if area == "person":
        from doudi.enrollment.v1.enrollment_pb2_grpc import EnrollmentServiceStub

        return rpc_errors.call_service(
            "enrollment", EnrollmentServiceStub, args.enrollment, lambda s, m: _person(s, m, args)
        )
    return cli._fail(f"unknown area {area!r}")


def _token(args: argparse.Namespace) -> int:
    from doudi.cli import main as cli
    from doudi.common.keys import digest, new_key

    if args.token_command == "new":
        token = new_key()
        print(f"token:  {token}")
        print(f"digest: {digest(token)}")
        return 0
    line = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not line:
        return cli._fail("token: none on standard input (one line)")
    print(digest(line))
    return 0


def _hospital(stub: Any, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.settlement.v1 import settlement_pb2 as pb

    command = args.hospital_command
    if command == "add":
        made = stub.CreateHospital(
            pb.CreateHospitalRequest(
                hospital=pb.Hospital(
                    hospital_id=args.hospital_id,
                    name=args.name,
                    region=args.region,
                    level=args.level,
                    reformed=args.reformed,
                )
            ),
            metadata=metadata,
        )
        return _made(_hospital_text(made.hospital), made.api_key)
    if command == "reformed":
        marked = stub.SetHospitalReformed(
            pb.SetHospitalReformedRequest(
                hospital_id=args.hospital_id, reformed=args.answer == "yes"
            ),
            metadata=metadata,
        )
        print(f"marked {_hospital_text(marked.hospital)}")
        return 0
    if command == "list":
        sys.stdout.write(hospital_table(list(_hospital_pages(stub, metadata, args.region))))
        return 0
    if command == "rotate-key":
        rotated = stub.RotateHospitalKey(
            pb.RotateHospitalKeyRequest(
                hospital_id=args.hospital_id, overlap_seconds=round(args.overlap * 3600)
            ),
            metadata=metadata,
        )
        return _rotated(
            _hospital_text(rotated.hospital), rotated.api_key, rotated.older_keys_retire_time
        )
    ended = stub.EndHospitalKeyRotation(
        pb.EndHospitalKeyRotationRequest(hospital_id=args.hospital_id), metadata=metadata
    )
    return _ended(_hospital_text(ended.hospital), ended.retired_count)


def _made(owner: str, api_key: str) -> int:
    print(f"registered {owner}")
    print(f"its API key, shown this once: {api_key}")
    return 0


def _rotated(owner: str, api_key: str, older_retire: Timestamp) -> int:
    print(f"a new API key for {owner}, shown this once:")
    print(api_key)
    print(f"the older keys work until {local_time(older_retire)} (Asia/Shanghai)")
    return 0


def _ended(owner: str, retired: int) -> int:
    print(f"{owner}: {retired} older key(s) retired now")
    return 0


def _hospital_text(hospital: Any) -> str:
    reformed = ", reformed (公立医院改革)" if hospital.reformed else ""
    return (
        f"{hospital.hospital_id} ({hospital.name}), region {hospital.region}, "
        f"level {hospital.level}{reformed}"
    )


def _hospital_pages(stub: Any, metadata: Any, region: str | None) -> Any:
    from doudi.settlement.v1 import settlement_pb2 as pb

    token = ""
    while True:
        page = stub.ListHospitals(
            pb.ListHospitalsRequest(
                region=region or "", page_size=PAGE, page_token=token, with_keys=True
            ),
            metadata=metadata,
        )
        yield from zip(page.hospitals, page.keys, strict=True)
        token = page.next_page_token
        if not token:
            return


def hospital_table(found: list[tuple[Any, Any]]) -> str:
    if not found:
        return "no hospitals\n"
    rows = [
        [
            hospital.hospital_id,
            hospital.name,
            hospital.region,
            str(hospital.level),
            "yes" if hospital.reformed else "no",
            _keys_text(keys.keys),
        ]
        for hospital, keys in found
    ]
    return text_table(
        ["hospital", "name", "region", "level", "reformed", "keys (fingerprint until)"], rows
    )


def _agency(stub: Any, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.datashare.v1 import datashare_pb2 as pb

    command = args.agency_command
    if command == "add":
        made = stub.CreateAgencyClient(
            pb.CreateAgencyClientRequest(
                agency=args.agency, regions=args.regions, label=args.label
            ),
            metadata=metadata,
        )
        return _made(_client_text(made.client), made.api_key)
    if command == "list":
        sys.stdout.write(client_table(list(_client_pages(stub, metadata))))
        return 0
    if command == "rotate-key":
        rotated = stub.RotateAgencyKey(
            pb.RotateAgencyKeyRequest(
                client_id=args.client_id, overlap_seconds=round(args.overlap * 3600)
            ),
            metadata=metadata,
        )
        return _rotated(
            _client_text(rotated.client), rotated.api_key, rotated.older_keys_retire_time
        )
    ended = stub.EndAgencyKeyRotation(
        pb.EndAgencyKeyRotationRequest(client_id=args.client_id), metadata=metadata
    )
    return _ended(_client_text(ended.client), ended.retired_count)


def _client_text(client: Any) -> str:
    regions = " ".join(client.regions) or "every region"
    label = f" ({client.label})" if client.label else ""
    return f"{client.client_id}{label} of {client.agency}, {regions}"


def _client_pages(stub: Any, metadata: Any) -> Any:
    from doudi.datashare.v1 import datashare_pb2 as pb

    token = ""
    while True:
        page = stub.ListAgencyClients(
            pb.ListAgencyClientsRequest(page_size=PAGE, page_token=token), metadata=metadata
        )
        yield from page.clients
        token = page.next_page_token
        if not token:
            return


def client_table(clients: list[Any]) -> str:
    if not clients:
        return "no agency clients\n"
    rows = [
        [
            client.client_id,
            client.agency,
            " ".join(client.regions) or "all",
            client.label or "-",
            _keys_text(client.keys),
        ]
        for client in clients
    ]
    return text_table(["client", "agency", "regions", "label", "keys (fingerprint until)"], rows)


def _person(stub: Any, metadata: Any, args: argparse.Namespace) -> int:
    from doudi.common.enums import EMPLOYMENTS, PREMIUM_PAYERS, SCHEMES, TIERS
    from doudi.core.identity import mask
    from doudi.core.money import fen_to_yuan
    from doudi.enrollment.v1 import enrollment_pb2 as pb

    person = stub.CreatePerson(
        pb.CreatePersonRequest(
            person=pb.Person(
                person_id=args.person_id,
                name=args.name,
                household_id=args.household,
                region=args.region,
            )
        ),
        metadata=metadata,
    ).person
    print(
        f"{mask(person.person_id)} {person.name}, household {person.household_id}, "
        f"region {person.region}"
    )
    if args.year is None:
        return 0
    enrolment = stub.CreateEnrolment(
        pb.CreateEnrolmentRequest(
            enrolment=pb.Enrolment(
                person_id=person.person_id,
                year=args.year,
                scheme=SCHEMES.value(args.scheme),
                employment=EMPLOYMENTS.value(args.employment),
                tier=TIERS.value(args.tier),
                premium_fen=args.premium,
                premium_payer=PREMIUM_PAYERS.value(args.payer),
            )
        ),
        metadata=metadata,
    ).enrolment
    print(
        f"enrolled for {enrolment.year}: {args.scheme}, premium "
        f"{fen_to_yuan(enrolment.premium_fen)} yuan paid by {args.payer}"
    )
    return 0


def _keys_text(keys: Any) -> str:
    return (
        ", ".join(
            f"{key.fingerprint} {local_time(key.retire_time) if key.HasField('retire_time') else '-'}"
            for key in keys
        )
        or "none"
    )


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Rows under a header in aligned columns (a Chinese character takes two)."""
    from doudi.cli import columns

    texts = [header, *rows]
    widths = [max(columns.width(row[c]) for row in texts) for c in range(len(header))]
    return "".join(
        "  ".join(
            columns.left(cell, width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        + "\n"
        for row in texts
    )


def local_time(moment: Timestamp) -> str:
    return moment.ToDatetime(tzinfo=UTC).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")

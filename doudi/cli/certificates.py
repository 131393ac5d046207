"""``doudi certificates apply|batch|list|applications`` and ``doudi registrations
add|end|list``: outpatient certificates (门诊慢特病) and registrations for care outside the
region (异地安置 / 转诊备案), kept by the enrollment service (docs/domain.md section 5).

The township health centre's clerk enters an application; the bureau decides the region's
monthly batch; a certificate reaches settlement before the batch is answered. The
commands call the enrollment service (``DOUDI_ENROLLMENT_ADDRESS``, else 127.0.0.1:50051,
where ``doudi run`` starts it) with the platform's token (``DOUDI_INTERNAL_TOKEN``).
Tables for clerks with Chinese labels, ``--json`` for programs. Exit 2 on bad input (the
service's too, naming the field), 1 when the service cannot be reached or refuses.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from doudi.cli import columns, progress
from doudi.core.codes import CERTIFICATE_KINDS, REGISTRATION_KINDS

if TYPE_CHECKING:
    from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc

Metadata = tuple[tuple[str, str], ...]
STATES: Final = {"pending": "待审批", "approved": "已批准", "rejected": "未批准"}
COMMANDS: Final = ("certificates", "registrations")


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """The ``certificates`` and ``registrations`` commands, under ``doudi``."""
    from doudi.cli import main as cli

    certificates = commands.add_parser(
        "certificates",
        help="outpatient certificates (门诊慢特病): apply, decide the monthly batch, list",
        description="Outpatient certificates (门诊慢特病): the township health centre enters "
        "a person's application (at most the pack's number of diseases at once, as ICD-10 "
        "codes), the bureau decides the region's monthly batch once the month is over, and "
        "each approved disease gets a certificate for the pack's years (Xixia three, Tianjin "
        "one), sent to settlement at once. Exit 2 on bad input, 1 when the service cannot be "
        "reached or refuses.",
    )
    sub = certificates.add_subparsers(
        dest="certificates_command",
        required=True,
        parser_class=type(certificates),
        metavar="COMMAND",
        title="commands",
        help="one of these ('doudi certificates COMMAND --help' tells more):",
    )
    apply = sub.add_parser(
        "apply",
        help="enter an application (申请)",
        description="Enter a person's application for an outpatient certificate. Running the "
        "same command again answers the same application (the request id, unless given, "
        "follows from the person, kind, codes and day).",
    )
    apply.add_argument("--person", required=True, metavar="ID", help="identity number (身份证号)")
    apply.add_argument(
        "--kind",
        required=True,
        choices=sorted(CERTIFICATE_KINDS),
        metavar="KIND",
        help="chronic (门诊慢性病) or special (门诊特殊病)",
    )
    apply.add_argument(
        "--diagnosis",
        required=True,
        action="append",
        metavar="ICD10",
        help="an ICD-10 code (诊断); give it once per disease",
    )
    apply.add_argument(
        "--applied-on", type=cli._day, metavar="YYYY-MM-DD", help="the paper's date (today)"
    )
    apply.add_argument(
        "--health-centre", required=True, metavar="NAME", help="the township health centre"
    )
    apply.add_argument("--request-id", metavar="ID", help="the request's id, for retries")
    batch = sub.add_parser(
        "batch",
        help="decide a region's monthly batch (每月集中审批)",
        description="Decide every pending application of the region applied on or before the "
        "month's last day: approved unless rejected here. A month is decided once: again, "
        "the batch is shown and nothing decided.",
    )
    batch.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit code"
    )
    batch.add_argument("--month", required=True, metavar="YYYY-MM", help="a month that is over")
    batch.add_argument("--decided-on", type=cli._day, metavar="YYYY-MM-DD", help="the day (today)")
    batch.add_argument(
        "--reject",
        action="append",
        default=[],
        type=_rejection,
        metavar="ID=REASON",
        help="reject this application, for this reason (未批准原因)",
    )
    listing = sub.add_parser(
        "list",
        help="a person's certificates (证书)",
        description="List a person's certificates, the newest first, with their validity.",
    )
    listing.add_argument("--person", required=True, metavar="ID", help="identity number")
    applications = sub.add_parser(
        "applications",
        help="a region's applications (申请)",
        description="List a region's applications, oldest first, page by page.",
    )
    applications.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="6-digit code"
    )
    applications.add_argument(
        "--state", choices=sorted(STATES), metavar="STATE", help="pending, approved or rejected"
    )
    applications.add_argument("--month", metavar="YYYY-MM", help="only applied in this month")

    registrations = commands.add_parser(
        "registrations",
        help="registrations for care outside the region (异地安置 / 转诊备案)",
        description="Registrations for care outside the person's region: a region and a "
        "validity. Settlement counts an out-of-area visit as referred only with one valid "
        "on its day for the hospital's region. Exit 2 on bad input, 1 when the service "
        "cannot be reached or refuses.",
    )
    rsub = registrations.add_subparsers(
        dest="registrations_command",
        required=True,
        parser_class=type(registrations),
        metavar="COMMAND",
        title="commands",
        help="one of these ('doudi registrations COMMAND --help' tells more):",
    )
    add = rsub.add_parser(
        "add",
        help="record a registration (备案)",
        description="Record a registration. Running the same command again answers it.",
    )
    add.add_argument("--person", required=True, metavar="ID", help="identity number")
    add.add_argument(
        "--kind",
        required=True,
        choices=sorted(REGISTRATION_KINDS),
        metavar="KIND",
        help="relocated (异地安置) or referred (转诊备案)",
    )
    add.add_argument(
        "--region", required=True, type=cli._region, metavar="REGION", help="where treated"
    )
    add.add_argument(
        "--from",
        dest="valid_from",
        required=True,
        type=cli._day,
        metavar="DAY",
        help="first day valid (YYYY-MM-DD)",
    )
    add.add_argument("--to", dest="valid_to", type=cli._day, metavar="DAY", help="(open)")
    add.add_argument("--request-id", metavar="ID", help="the request's id, for retries")
    end = rsub.add_parser(
        "end",
        help="end or cancel a registration (终止 / 撤销)",
        description="End a registration on a day, or cancel one recorded in error; once.",
    )
    end.add_argument(
        "registration_id", type=cli._at_least_one, metavar="ID", help="the registration's number"
    )
    how = end.add_mutually_exclusive_group(required=True)
    how.add_argument("--to", dest="valid_to", type=cli._day, metavar="DAY", help="last day")
    how.add_argument("--cancel", action="store_true", help="recorded in error: never valid")
    rlist = rsub.add_parser(
        "list", help="a person's registrations", description="List a person's registrations."
    )
    rlist.add_argument("--person", required=True, metavar="ID", help="identity number")
    for command in (apply, batch, listing, applications, add, end, rlist):
        command.add_argument("--json", action="store_true", help="print JSON")
        command.add_argument(
            "--enrollment",
            metavar="HOST:PORT",
            help="the enrollment service (DOUDI_ENROLLMENT_ADDRESS, else 127.0.0.1:50051)",
        )


def run(args: argparse.Namespace) -> int:
    from doudi.cli import rpc_errors  # imported here: gRPC is for these commands only
    from doudi.enrollment.v1.enrollment_pb2_grpc import EnrollmentServiceStub

    return rpc_errors.call_service(
        "enrollment",
        EnrollmentServiceStub,
        args.enrollment,
        lambda stub, metadata: _show(_call(stub, args, metadata), args),
    )


def _call(
    stub: enrollment_pb2_grpc.EnrollmentServiceStub, args: argparse.Namespace, metadata: Metadata
) -> list[dict[str, Any]]:
    """The command's call(s), and what they answered as JSON documents."""
    from doudi.common.protos import from_date
    from doudi.enrollment.v1 import enrollment_pb2 as pb

    command = args.certificates_command if args.command == "certificates" else None
    if command == "apply":
        applied_on = args.applied_on or _today()
        request = pb.ApplyForCertificateRequest(
            request_id=args.request_id or _request_id(args, applied_on),
            person_id=args.person,
            kind=pb.CertificateKind.Value(f"CERTIFICATE_KIND_{args.kind.upper()}"),
            diagnoses=args.diagnosis,
            applied_on=from_date(applied_on),
            health_centre=args.health_centre,
        )
        return [_message(stub.ApplyForCertificate(request, metadata=metadata).application)]
    if command == "batch":
        decided = pb.DecideCertificateBatchRequest(
            region=args.region,
            month=args.month,
            rejections=[
                pb.CertificateRejection(application_id=number, reason=reason)
                for number, reason in args.reject
            ],
        )
        if args.decided_on is not None:
            decided.decided_on.CopyFrom(from_date(args.decided_on))
        answer = stub.DecideCertificateBatch(decided, metadata=metadata)
        return [{**_message(answer.batch), "replayed": answer.replayed}]
    if command == "list":
        found = stub.ListCertificates(
            pb.ListCertificatesRequest(person_id=args.person), metadata=metadata
        )
        return [_message(certificate) for certificate in found.certificates]
    if command == "applications":
        return [_message(a) for a in _pages(stub, args, metadata)]
    return _registrations(stub, args, metadata)


def _registrations(
    stub: enrollment_pb2_grpc.EnrollmentServiceStub, args: argparse.Namespace, metadata: Metadata
) -> list[dict[str, Any]]:
    from doudi.common.protos import from_date
    from doudi.enrollment.v1 import enrollment_pb2 as pb

    command = args.registrations_command
    if command == "add":
        request = pb.RecordRegistrationRequest(
            request_id=args.request_id or _request_id(args, args.valid_from),
            person_id=args.person,
            kind=pb.RegistrationKind.Value(f"REGISTRATION_KIND_{args.kind.upper()}"),
            region=args.region,
            valid_from=from_date(args.valid_from),
        )
        if args.valid_to is not None:
            request.valid_to.CopyFrom(from_date(args.valid_to))
        return [_message(stub.RecordRegistration(request, metadata=metadata).registration)]
    if command == "end":
        ended = pb.EndRegistrationRequest(registration_id=args.registration_id, cancel=args.cancel)
        if args.valid_to is not None:
            ended.valid_to.CopyFrom(from_date(args.valid_to))
        return [_message(stub.EndRegistration(ended, metadata=metadata).registration)]
    found = stub.ListRegistrations(
        pb.ListRegistrationsRequest(person_id=args.person), metadata=metadata
    )
    return [_message(registration) for registration in found.registrations]


def _pages(
    stub: enrollment_pb2_grpc.EnrollmentServiceStub, args: argparse.Namespace, metadata: Metadata
) -> Iterator[enrollment_pb2.CertificateApplication]:
    """Every application the listing asks for, a page of 1,000 at a time (a bar counts
    them on a terminal)."""
    from doudi.enrollment.v1 import enrollment_pb2 as pb

    query = pb.ListCertificateApplicationsRequest(
        region=args.region, month=args.month or "", page_size=1000
    )
    if args.state:
        query.state = pb.CertificateApplicationState.Value(
            f"CERTIFICATE_APPLICATION_STATE_{args.state.upper()}"
        )
    with progress.bar("applications", None, "applications") as bar:
        while True:
            answer = stub.ListCertificateApplications(query, metadata=metadata)
            bar.update(len(answer.applications))
            yield from answer.applications
            query.page_token = answer.next_page_token
            if not query.page_token:
                return


# --- output ----------------------------------------------------------------------------------


def _show(found: list[dict[str, Any]], args: argparse.Namespace) -> int:
    from doudi.cli import main as cli

    listing = args.command == "registrations" and args.registrations_command == "list"
    listing |= args.command == "certificates" and args.certificates_command in (
        "list",
        "applications",
    )
    if args.json:
        cli.write_json(found if listing else found[0])
    elif not found:
        sys.stdout.write("none\n")
    else:
        sys.stdout.write(table(found))
    return 0


_LABELS: Final = {
    "application_id": "申请编号",
    "certificate_id": "证书编号",
    "registration_id": "备案编号",
    "person_id": "身份证号",
    "region": "地区",
    "month": "月份",
    "kind": "类别",
    "disease": "病种",
    "disease_name": "病种名称",
    "diseases": "病种",
    "diagnoses": "诊断",
    "applied_on": "申请日期",
    "state": "状态",
    "batch_month": "审批批次",
    "reason": "原因",
    "decided_on": "审批日期",
    "approved_count": "批准",
    "rejected_count": "未批准",
    "certificate_count": "发证",
    "replayed": "已审批过",
    "valid_from": "有效期起",
    "valid_to": "有效期止",
    "ended": "已终止",
    "cancelled": "已撤销",
}
"""The columns shown, in order, with their labels for the clerk."""


def table(documents: list[dict[str, Any]]) -> str:
    """The documents, a line each, under Chinese column labels; identity numbers masked."""
    from doudi.core.identity import mask

    keys = [key for key in _LABELS if key in documents[0]]
    rows = [tuple(_LABELS[key] for key in keys)]
    for document in documents:
        cells = []
        for key in keys:
            value = document[key]
            if key == "person_id":
                value = mask(value)
            elif key == "kind":
                value = {**CERTIFICATE_KINDS, **REGISTRATION_KINDS}.get(value, value)
            elif key == "state":
                value = STATES.get(value, value)
            elif isinstance(value, bool):
                value = "是" if value else ""
            elif isinstance(value, list):
                value = ", ".join(value)
            cells.append("" if value is None else str(value))
        rows.append(tuple(cells))
    widths = [max(columns.width(row[index]) for row in rows) for index in range(len(keys))]
    return (
        "\n".join(
            "  ".join(
                columns.left(cell, width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
            for row in rows
        )
        + "\n"
    )


def _message(message: Any) -> dict[str, Any]:
    """A message as JSON: enum values as the core's lower-case codes, dates as YYYY-MM-DD,
    repeated fields as lists, unset dates as None."""
    document: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.enum_type is not None:
            name = field.enum_type.values_by_number[value].name
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", field.enum_type.name).upper() + "_"
            document[field.name] = name.removeprefix(prefix).lower() if value else None
        elif field.message_type is not None and field.message_type.name == "Date":
            has = message.HasField(field.name)
            document[field.name] = (
                date(value.year, value.month, value.day).isoformat() if has else None
            )
        elif field.message_type is not None:
            continue  # the record's timestamps: not shown
        elif not isinstance(value, str | int | bool):
            document[field.name] = list(value)  # a repeated field
        else:
            document[field.name] = value
    return document


def _rejection(text: str) -> tuple[int, str]:
    from doudi.cli import main as cli

    number, separator, reason = text.partition("=")
    if not separator or not reason.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write ID=REASON")
    return cli._at_least_one(number), reason.strip()


def _today() -> date:
    from doudi.cli.applications import _today as today

    return today()


def _request_id(args: argparse.Namespace, day: date) -> str:
    """The same for the same person, kind, codes or region and day: running the command
    again answers what it recorded."""
    parts = [args.command, args.person, args.kind, *(getattr(args, "diagnosis", None) or [])]
    key = "|".join([*parts, getattr(args, "region", "") or "", day.isoformat()])
    return "cli-" + hashlib.sha256(key.encode()).hexdigest()[:24]

"""``doudi admin``: the bureau's administration of the platform. ``doudi admin user
add|disable|reset|list`` keeps the web console's accounts (``/console``), which the
datashare hub holds: the bureau's staff (case_worker, analyst, supervisor,
administrator) and the agencies' clerks (agency_clerk, with the agency and the pooling
regions they serve).

The bureau's command: it calls the hub (``--datashare``, else ``DOUDI_DATASHARE_ADDRESS``,
else 127.0.0.1:50052) with the platform's internal token (``DOUDI_INTERNAL_TOKEN``). A
password is typed twice on a terminal (never echoed), read as one line from standard
input otherwise, or made up (``--generate``) and printed once; the hub keeps only its
hash. Exit 2 on bad input (the hub's too), 1 when the hub cannot be reached or refuses.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from typing import TYPE_CHECKING, Any, Final

from doudi.cli import admin_platform
from doudi.core.errors import InvalidInput

if TYPE_CHECKING:  # gRPC is imported when a command calls the hub, not for `doudi calc`
    from doudi.datashare.v1 import datashare_pb2 as pb
    from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub

ROLES: Final = ("case_worker", "analyst", "supervisor", "administrator", "agency_clerk")
"""The console's roles (the hub's ConsoleRole), as the commands take and print them."""
GENERATED_BYTES: Final = 18
"""A generated password's randomness: 144 bits, 24 characters (URL-safe base64)."""
PAGE: Final = 1000


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``doudi admin user ...`` under the command list ``commands`` of ``doudi``."""
    from doudi.cli import main as cli  # its argument types; loaded by now

    admin = cli._command(
        commands,
        "admin",
        "the bureau: administer the platform (console accounts, hospitals, agencies' keys)",
        "The bureau's administration of the platform: the web console's accounts ('user'), "
        "the hospitals and their API keys ('hospital'), the agencies' systems and their keys "
        "('agency'), the register ('person') and the internal token ('token'). Each command "
        "calls its service with the platform's token (DOUDI_INTERNAL_TOKEN), over TLS as "
        "DOUDI_TLS_* say. Exit 1 when the service cannot be reached or refuses, 2 on bad "
        "input.",
    )
    areas = cli._subcommands(
        admin, "admin_command", "one of these ('doudi admin COMMAND --help' tells more):"
    )
    user = cli._command(
        areas,
        "user",
        "the web console's accounts: add, disable, reset a password, list",
        "The web console's accounts, kept by the datashare hub: the bureau's staff "
        f"({', '.join(ROLES[:-1])}) and the agencies' clerks (agency_clerk, served as their "
        "agency's key: only its data, only the regions given). Passwords are 12 to 256 "
        "characters; the hub keeps only their hash. After failed logins in a row an "
        "account is locked for a while; a reset ends the lock.",
    )
    actions = cli._subcommands(
        user, "user_command", "one of these ('doudi admin user COMMAND --help' tells more):"
    )
    add = cli._command(
        actions,
        "add",
        "create an account with its first password",
        "Create a console account. The password is typed twice on a terminal (not shown), "
        "read as one line from standard input otherwise, or made up with --generate and "
        "printed once.",
    )
    add.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        metavar="ROLE",
        help=f"what the user may do ({', '.join(ROLES)})",
    )
    add.add_argument("--name", required=True, metavar="DISPLAY", help="the name shown (王芳)")
    add.add_argument(
        "--agency",
        type=cli._agency,
        metavar="AGENCY",
        help="an agency clerk's agency (required for agency_clerk, refused for staff)",
    )
    add.add_argument(
        "--region",
        dest="regions",
        action="append",
        type=cli._region,
        default=[],
        metavar="REGION",
        help="a pooling region an agency clerk serves (6 digits; may be repeated; none: "
        "every region of the hub's policy packs)",
    )
    disable = cli._command(
        actions,
        "disable",
        "disable an account: it can no longer sign in",
        "Disable a console account: it can no longer sign in, and its sessions end. Again: "
        "no change.",
    )
    reset = cli._command(
        actions,
        "reset",
        "set a new password, ending any lock",
        "Set a console account's new password (typed twice, read from standard input, or "
        "--generate), clearing its failed logins and any lock. A disabled account stays "
        "disabled.",
    )
    listing = cli._command(
        actions,
        "list",
        "list the accounts",
        "List the console accounts in username order: name, role, agency, regions, whether "
        "disabled, failed logins in a row and until when locked (Asia/Shanghai). Never a "
        "password or its hash.",
    )
    for command in (add, disable, reset):
        command.add_argument(
            "username",
            metavar="USERNAME",
            help="3 to 32 characters of a-z, 0-9, '.', '_' and '-'",
        )
    for command in (add, reset):
        command.add_argument(
            "--generate",
            action="store_true",
            help="make up a strong password and print it once, instead of reading one",
        )
    for command in (add, disable, reset, listing):
        command.add_argument(
            "--datashare",
            metavar="HOST:PORT",
            help="the datashare hub (DOUDI_DATASHARE_ADDRESS, else 127.0.0.1:50052)",
        )
    admin_platform.add_areas(areas)


def run(args: argparse.Namespace) -> int:
    """One ``doudi admin`` command; its exit status."""
    from doudi.cli import main as cli
    from doudi.cli import rpc_errors

    if args.admin_command != "user":
        return admin_platform.run(args)
    password = ""
    if args.user_command in ("add", "reset"):
        try:
            password = _password(args.username, generate=args.generate)
        except InvalidInput as error:
            return cli._fail(str(error))
    return rpc_errors.call_datashare(
        args.datashare, lambda stub, metadata: _call(stub, metadata, args, password)
    )


def _password(username: str, *, generate: bool) -> str:
    """The password: made up, typed twice on a terminal, or one line of standard input."""
    if generate:
        return secrets.token_urlsafe(GENERATED_BYTES)
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise InvalidInput("password", "none on standard input (one line), nor --generate")
        return line.removesuffix("\n").removesuffix("\r")
    try:
        first = getpass.getpass(f"password for {username}: ")
        second = getpass.getpass("the same password again: ")
    except EOFError:
        raise InvalidInput("password", "none typed") from None
    if first != second:
        raise InvalidInput("password", "the two entries differ; nothing was changed")
    return first


def _call(
    stub: DatashareServiceStub, metadata: Any, args: argparse.Namespace, password: str
) -> int:
    from doudi.common.enums import CONSOLE_ROLES
    from doudi.datashare.v1 import datashare_pb2 as pb

    command = args.user_command
    if command == "list":
        sys.stdout.write(table(list(_users(stub, metadata))))
        return 0
    if command == "disable":
        user = stub.DisableConsoleUser(
            pb.DisableConsoleUserRequest(username=args.username), metadata=metadata
        ).user
        print(f"disabled {describe(user)}")
        return 0
    if command == "add":
        user = stub.CreateConsoleUser(
            pb.CreateConsoleUserRequest(
                username=args.username,
                display_name=args.name,
                role=CONSOLE_ROLES.value(args.role),
                agency=args.agency or "",
                regions=args.regions,
                password=password,
            ),
            metadata=metadata,
        ).user
        print(f"created {describe(user)}")
    else:
        user = stub.ResetConsolePassword(
            pb.ResetConsolePasswordRequest(username=args.username, password=password),
            metadata=metadata,
        ).user
        print(f"new password set for {describe(user)}")
    if args.generate:
        print(f"its password, shown this once: {password}")
    return 0


def _users(stub: DatashareServiceStub, metadata: Any) -> Any:
    from doudi.datashare.v1 import datashare_pb2 as pb

    token = ""
    while True:
        page = stub.ListConsoleUsers(
            pb.ListConsoleUsersRequest(page_size=PAGE, page_token=token), metadata=metadata
        )
        yield from page.users
        token = page.next_page_token
        if not token:
            return


def describe(user: pb.ConsoleUser) -> str:
    """``wang (王芳), case_worker``; a clerk's agency and regions; disabled if it is."""
    from doudi.common.enums import CONSOLE_ROLES

    text = f"{user.username} ({user.display_name}), {CONSOLE_ROLES.code(user.role, 'role')}"
    if user.agency:
        text += f" of {user.agency}, regions {' '.join(user.regions) or 'all'}"
    return text + (" (disabled)" if user.disabled else "")


def table(users: list[pb.ConsoleUser]) -> str:
    """The accounts as a text table (a Chinese character takes two columns)."""
    from doudi.common.enums import CONSOLE_ROLES

    if not users:
        return "no console users\n"
    header = [
        "username",
        "name",
        "role",
        "agency",
        "regions",
        "disabled",
        "failed",
        "locked until (Asia/Shanghai)",
    ]
    rows = [
        [
            user.username,
            user.display_name,
            CONSOLE_ROLES.code(user.role, "role"),
            user.agency or "-",
            " ".join(user.regions) or ("all" if user.agency else "-"),
            "yes" if user.disabled else "no",
            str(user.failed_logins),
            admin_platform.local_time(user.locked_until) if user.HasField("locked_until") else "-",
        ]
        for user in users
    ]
    return admin_platform.text_table(header, rows)

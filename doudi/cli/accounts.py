"""The bureau's clerks' commands for employees' personal accounts (职工个人账户, docs/domain.md
section 5): ``doudi accounts credit | transfer | withdraw | purchase | show``.

They call the settlement service, which owns the accounts, with the platform's internal
token (``DOUDI_INTERNAL_TOKEN``) at ``DOUDI_SETTLEMENT_ADDRESS`` (else 127.0.0.1:50053,
where ``doudi run`` starts it). Amounts are typed and printed in yuan with two decimals
(``--json`` prints fen for machines); the person's identity number is printed whole, as
the clerk typed it. A command given the same ``--request-id`` again does nothing twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from doudi.core.errors import InvalidInput
from doudi.core.money import MAX_ITEM_FEN, format_yuan, yuan_to_fen
from doudi.core.monitoring import bureau_day

if TYPE_CHECKING:
    from doudi.settlement.v1 import settlement_pb2

KIND_NAMES: Final = {
    1: "入账 credit",
    2: "划入社保卡 to card",
    3: "窗口支付 window",
    4: "窗口退回 refund",
    5: "一次性提取 withdrawal",
    6: "购买商业健康险 purchase",
}
"""Each movement kind (settlement's AccountMovementKind) as the clerks say it."""
_BUREAU: Final = (
    " The bureau's command: it calls the settlement service with the platform's token "
    "(DOUDI_INTERNAL_TOKEN). Exit 1 when it cannot be reached or refuses, 2 on bad input."
)


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``accounts`` (``credit``, ``transfer``, ``withdraw``, ``purchase``, ``show``)."""
    accounts = commands.add_parser(
        "accounts",
        help="the bureau: employees' personal accounts (职工个人账户)",
        description="Employees' personal accounts (职工个人账户): the yearly credit, the "
        "monthly transfer to the social security card (社保卡), the one-off withdrawal "
        "after large inpatient costs and purchases of approved health products. Each "
        "account has two pots: the card's (划入社保卡) and the account's (个人账户)." + _BUREAU,
    )
    account_commands = accounts.add_subparsers(
        dest="accounts_command",
        required=True,
        parser_class=type(accounts),
        metavar="COMMAND",
        title="commands",
        help="one of these ('doudi accounts COMMAND --help' tells more):",
    )
    credit = account_commands.add_parser(
        "credit",
        help="book an employee's yearly credit (个人账户入账)",
        description="Book an employee's credit of a year (from the employer's "
        "contributions): the account's part goes in at once; the card's part (Tianjin: 70%) "
        "is moved by 'doudi accounts transfer' month by month. A year is credited once; "
        "the same --request-id again answers the credit made." + _BUREAU,
    )
    _person(credit)
    credit.add_argument("--year", required=True, type=int, metavar="YYYY", help="the year")
    credit.add_argument(
        "--yuan", required=True, metavar="AMOUNT", help="the year's credit in yuan (12345.67)"
    )
    _request(credit)
    transfer = account_commands.add_parser(
        "transfer",
        help="the monthly run: move a month's card part to the cards (划入社保卡)",
        description="Move every credited employee's card part of a month to their card: a "
        "twelfth of the year's card part, December the rest, so the twelve add up exactly. "
        "Running a month again moves nothing. A month that has not begun is refused." + _BUREAU,
    )
    transfer.add_argument("--region", required=True, metavar="CODE", help="the pooling region")
    transfer.add_argument("--month", required=True, metavar="YYYY-MM", help="the month")
    withdraw = account_commands.add_parser(
        "withdraw",
        help="the one-off withdrawal of the whole balance (一次性提取)",
        description="Withdraw the whole balance (card and account) of an employee whose "
        "inpatient costs of the year passed the policy's threshold (Tianjin: 50,000 yuan); "
        "once per person and year." + _BUREAU,
    )
    _person(withdraw)
    withdraw.add_argument("--year", required=True, type=int, metavar="YYYY", help="the year")
    _request(withdraw)
    purchase = account_commands.add_parser(
        "purchase",
        help="buy an approved health product with the account (购买商业健康险)",
        description="Pay a product of the region's approved catalogue (Linzhi; 'doudi "
        "packs show ID' lists it) from the account, the card's part first." + _BUREAU,
    )
    _person(purchase)
    purchase.add_argument("--product", required=True, metavar="ID", help="the product's id")
    _request(purchase)
    show = account_commands.add_parser(
        "show",
        help="an account's pots and its movements (账户明细)",
        description="Print an employee's account: the card's pot, the account's pot, the "
        "balance and the latest movements, newest first." + _BUREAU,
    )
    _person(show)
    show.add_argument(
        "--limit", type=int, default=50, metavar="N", help="at most N movements (default 50)"
    )
    for command in (credit, transfer, withdraw, purchase, show):
        command.add_argument("--json", action="store_true", help="print JSON (fen) for machines")
        command.add_argument(
            "--settlement",
            metavar="HOST:PORT",
            help="the settlement service (DOUDI_SETTLEMENT_ADDRESS, else 127.0.0.1:50053)",
        )


def _person(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("person_id", metavar="PERSON_ID", help="the employee's identity number")


def _request(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--request-id",
        required=True,
        metavar="KEY",
        help="the clerk's key for this act (a form number): the same key again does nothing twice",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``doudi accounts ...``; the exit code."""
    from doudi.cli import rpc_errors  # imported here: gRPC is for these commands only
    from doudi.cli.main import EXIT_BAD_INPUT, _fail
    from doudi.settlement.v1.settlement_pb2_grpc import SettlementServiceStub

    try:
        action = _ACTIONS[args.accounts_command](args)
    except (InvalidInput, ValueError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    return rpc_errors.call_service("settlement", SettlementServiceStub, args.settlement, action)


Action = Callable[[Any, Any], int]


def _credit(args: argparse.Namespace) -> Action:
    from doudi.settlement.v1 import settlement_pb2

    person, year = _checked_person_year(args)
    try:
        amount = yuan_to_fen(args.yuan)
    except ValueError as error:
        raise InvalidInput("--yuan", str(error)) from None
    if not 1 <= amount <= MAX_ITEM_FEN:
        raise InvalidInput("--yuan", "from 0.01 to 100,000,000 yuan")

    def act(stub: Any, metadata: Any) -> int:
        answer = stub.CreditPersonalAccount(
            settlement_pb2.CreditPersonalAccountRequest(
                request_id=args.request_id, person_id=person, year=year, amount_fen=amount
            ),
            metadata=metadata,
        )
        lines = [
            f"{'已入账 (重复请求, 未再次入账)' if answer.replayed else '已入账'} credited {year}",
            _yuan_row("个人账户 to the account now", answer.movement.account_change_fen),
            _yuan_row("社保卡 to the card month by month", answer.card_scheduled_fen),
        ]
        return _answer(args, answer, lines, answer.account)

    return act


def _transfer(args: argparse.Namespace) -> Action:
    from doudi.cli.progress import advance_to, bar
    from doudi.settlement.v1 import settlement_pb2

    if len(args.region) != 6 or not args.region.isdigit():
        raise InvalidInput("--region", f"{args.region!r} is not a 6-digit region code")

    def act(stub: Any, metadata: Any) -> int:
        moved = already = fen = 0
        token = ""
        with bar(f"划入社保卡 {args.month}", None, "persons") as progress:
            while True:
                page = stub.TransferToCards(
                    settlement_pb2.TransferToCardsRequest(
                        region=args.region, month=args.month, page_size=1000, page_token=token
                    ),
                    metadata=metadata,
                )
                moved += page.transferred_count
                already += page.already_count
                fen += page.moved_fen
                progress.total = page.credited_count
                advance_to(progress, moved + already)
                token = page.next_page_token
                if not token:
                    break
        document = {
            "region": args.region,
            "month": args.month,
            "transferred_count": moved,
            "already_count": already,
            "moved_fen": fen,
        }
        if args.json:
            _write_json(document)
        else:
            sys.stdout.write(
                f"划入社保卡 {args.region} {args.month}\n"
                f"  本次划入人数 moved now       {moved:>14,}\n"
                f"  此前已划入 moved before      {already:>14,}\n"
                + _yuan_row("本次划入金额 amount moved", fen)
                + "\n"
            )
        return 0

    return act


def _withdraw(args: argparse.Namespace) -> Action:
    from doudi.settlement.v1 import settlement_pb2

    person, year = _checked_person_year(args)

    def act(stub: Any, metadata: Any) -> int:
        answer = stub.WithdrawPersonalAccount(
            settlement_pb2.WithdrawPersonalAccountRequest(
                request_id=args.request_id, person_id=person, year=year
            ),
            metadata=metadata,
        )
        lines = [
            f"{'已提取 (重复请求)' if answer.replayed else '已提取'} withdrawn {year}",
            _yuan_row("提取金额 withdrawn", answer.withdrawn_fen),
        ]
        return _answer(args, answer, lines, answer.account)

    return act


def _purchase(args: argparse.Namespace) -> Action:
    from doudi.core.identity import read_resident_id
    from doudi.settlement.v1 import settlement_pb2

    person = read_resident_id(args.person_id, "PERSON_ID").number

    def act(stub: Any, metadata: Any) -> int:
        answer = stub.PurchaseHealthProduct(
            settlement_pb2.PurchaseHealthProductRequest(
                request_id=args.request_id, person_id=person, product_id=args.product
            ),
            metadata=metadata,
        )
        paid = -(answer.movement.card_change_fen + answer.movement.account_change_fen)
        lines = [
            f"{'已购买 (重复请求)' if answer.replayed else '已购买'} bought {args.product}",
            _yuan_row("保费 premium", paid),
        ]
        return _answer(args, answer, lines, answer.account)

    return act


def _show(args: argparse.Namespace) -> Action:
    from doudi.core.identity import read_resident_id
    from doudi.settlement.v1 import settlement_pb2

    person = read_resident_id(args.person_id, "PERSON_ID").number
    if not 1 <= args.limit <= 1000:
        raise InvalidInput("--limit", "from 1 to 1000")

    def act(stub: Any, metadata: Any) -> int:
        answer = stub.GetPersonalAccount(
            settlement_pb2.GetPersonalAccountRequest(person_id=person, page_size=args.limit),
            metadata=metadata,
        )
        lines = ["", "明细 movements (newest first)"]
        for movement in answer.movements:
            when = bureau_day(movement.create_time.ToDatetime()).isoformat()  # Asia/Shanghai
            change = movement.card_change_fen + movement.account_change_fen
            lines.append(
                f"  {when}  {format_yuan(change):>14}  {KIND_NAMES.get(movement.kind, '?')}"
            )
        return _answer(args, answer, lines, answer.account)

    return act


_ACTIONS: Final[dict[str, Callable[[argparse.Namespace], Action]]] = {
    "credit": _credit,
    "transfer": _transfer,
    "withdraw": _withdraw,
    "purchase": _purchase,
    "show": _show,
}


def _checked_person_year(args: argparse.Namespace) -> tuple[str, int]:
    from doudi.core.dates import check_year
    from doudi.core.identity import read_resident_id

    person = read_resident_id(args.person_id, "PERSON_ID").number
    check_year(args.year, "--year")
    return person, int(args.year)


def _answer(
    args: argparse.Namespace,
    answer: Any,
    lines: list[str],
    account: settlement_pb2.PersonalAccount,
) -> int:
    """Print the answer: JSON (fen) with --json, else the lines and the account's pots."""
    if args.json:
        from google.protobuf.json_format import MessageToDict

        _write_json(_whole_fen(MessageToDict(answer, preserving_proto_field_name=True)))
        return 0
    head = [
        f"{account.person_id}  {account.region}",
        _yuan_row("社保卡 card", account.card_fen),
        _yuan_row("个人账户 account", account.account_fen),
        _yuan_row("余额 balance", account.balance_fen),
    ]
    sys.stdout.write("\n".join(lines[:1] + head + lines[1:]) + "\n")
    return 0


def _whole_fen(document: Any) -> Any:
    """The JSON mapping of a message with its int64 amounts and ids as numbers, not the
    strings protobuf's mapping makes of them."""
    if isinstance(document, dict):
        return {
            key: int(value)
            if isinstance(value, str) and (key.endswith("_fen") or key == "movement_id")
            else _whole_fen(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [_whole_fen(value) for value in document]
    return document


def _yuan_row(label: str, fen: int) -> str:
    return f"  {label:<32} {format_yuan(fen):>14} 元"


def _write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")

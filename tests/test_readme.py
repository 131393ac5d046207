"""README.md's commands, run as written against a platform with the demo data.

The README promises that every command in its ``sh`` blocks works as written in a
second terminal while ``make run`` runs, from the repository root. This test runs
those blocks, in order and in one shell (a block may use a variable an earlier one
set), in a folder that holds only what a fresh clone has beside the README (``.venv``
and ``examples``), against a platform started with ``doudi/cli/demo.py``'s data. The
one change made to them is the address: the gateway and the services listen on free
ports here, not on ``make run``'s. Blocks fenced as ``shell`` (``make run``, the
benchmarks) are not run.

What each command prints is then checked against what the README says it prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from doudi.cli import demo
from doudi.core.accounts import monthly_card_part
from doudi.core.dates import add_years
from doudi.core.money import apply_ratio, format_yuan, yuan_to_fen
from doudi.core.packs import PackRegistry, accident_cover, personal_account_rules
from tests.platform import Platform, demo_platforms
from tests.services import ROOT
from tests.support import business_day

README = ROOT / "README.md"
MARKER = "::doudi-readme-block::"


def fenced_blocks(text: str, info: str) -> list[str]:
    """The contents of the README's blocks fenced with exactly ``info``, the fences read in
    order (a closing fence never opens the next block)."""
    blocks: list[str] = []
    opened: str | None = None
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if opened is None:
            if line.startswith("```"):
                opened, lines = line[3:].rstrip("\n"), []
        elif line.rstrip("\n") == "```":
            if opened == info:
                blocks.append("".join(lines))
            opened = None
        else:
            lines.append(line)
    return blocks


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with demo_platforms(tmp_path_factory, "readme", business_day().year) as on:
        yield on("sqlite")


@pytest.fixture(scope="module")
def outputs(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Each ``sh`` block's standard output, the blocks run in one shell."""
    blocks = fenced_blocks(README.read_text(encoding="utf-8"), "sh")
    assert len(blocks) >= 6, "the README's runnable blocks are fenced as sh"
    clone = tmp_path_factory.mktemp("clone")
    for name in (".venv", "examples"):
        (clone / name).symlink_to(ROOT / name)
    script = ["set -euo pipefail"]
    for block in blocks:
        script += [f"echo {MARKER}", block.replace("http://127.0.0.1:8000", platform.base_url)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOUDI_")}
    env.update(
        DOUDI_DATASHARE_ADDRESS=platform.services["datashare"].address,
        DOUDI_ENROLLMENT_ADDRESS=platform.services["enrollment"].address,
        DOUDI_ASSISTANCE_ADDRESS=platform.services["assistance"].address,
        DOUDI_SETTLEMENT_ADDRESS=platform.services["settlement"].address,
    )
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"a README command failed:\n{done.stdout}\n{done.stderr}"
    printed = done.stdout.split(f"{MARKER}\n")[1:]
    assert len(printed) == len(blocks)
    assert (clone / "gap.xlsx").is_file()
    return printed


def json_documents(text: str) -> list[Any]:
    """The JSON values printed one after another (curl ends none with a newline)."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while (position := len(text) - len(text[position:].lstrip())) < len(text):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def readme_number(key: str) -> int:
    """The first ``"key": N`` of the README's shown answers."""
    match = re.search(rf'"{key}": (\d+)', README.read_text(encoding="utf-8"))
    assert match is not None
    return int(match.group(1))


def test_the_console_accounts_are_listed_as_the_readme_shows_them(outputs: list[str]) -> None:
    listed = outputs[0]
    readme = README.read_text(encoding="utf-8")
    for username, account in demo.DEMO_CONSOLE_USERS.items():
        assert re.search(rf"^{re.escape(username)}\s", listed, flags=re.MULTILINE), username
        assert f"| `{username}` | `{account.password}` |" in readme, username
    assert "argon2" not in listed.lower()
    assert "demo-caseworker-pass" not in listed


def test_the_settlement_answers_what_the_readme_shows(outputs: list[str]) -> None:
    settled = json.loads(outputs[1])
    assert settled["state"] == "settled"
    assert settled["person_id"] == demo.REGISTERED_POOR.person_id
    assert settled["visit_id"] == f"ZY-{business_day().isoformat()}"
    for key in ("total_fen", "fund_paid_fen", "self_pay_fen"):
        assert settled[key] == readme_number(key), key
    assert [layer["paid_fen"] for layer in settled["layers"]] == [
        3960000,
        0,
        280000,
        448000,
        218400,
    ]


def test_the_clearing_the_reversal_and_the_health_check(outputs: list[str]) -> None:
    clearing, reversed_settlement, health = json_documents(outputs[2])
    assert clearing["net_fen"] == readme_number("fund_paid_fen")
    assert reversed_settlement["state"] == "reversed"
    assert reversed_settlement["visit_id"] == f"ZY-{business_day().isoformat()}"
    assert health["status"] == "ok"


def test_the_admission_desk_admits_the_registered_poor_without_a_deposit(
    outputs: list[str],
) -> None:
    eligible, admission = json_documents(outputs[3])
    for answer in (eligible, admission):
        assert answer["person_id"] == demo.REGISTERED_POOR.person_id
        assert (answer["no_deposit"], answer["no_deposit_rule"]) == (True, "poverty_window")
        assert answer["no_deposit_reason"] in README.read_text(encoding="utf-8")
    assert {
        "status": "registered_poor",
        "valid_from": "2016-01-01",
        "valid_to": None,
        "agency": "poverty_office",
    } in eligible["statuses"]
    basic = next(layer for layer in eligible["layers"] if layer["layer"] == "basic")
    assert basic["caps"][0]["left_fen"] == basic["caps"][0]["limit_fen"] == 15000000
    assert admission["state"] == "admitted"
    assert admission["admitted"] == business_day().isoformat()


def test_calc_prints_the_worked_example_three_ways(outputs: list[str]) -> None:
    documents = json_documents(outputs[4])
    assert len(documents) == 3
    for document in documents:
        (visit,) = document["visits"]
        assert visit["self_pay_fen"] == readme_number("self_pay_fen")
    assert "explanation" in documents[0]["visits"][0]["layers"][0]
    assert "explanation" not in documents[2]["visits"][0]["layers"][0]


def test_the_packs_table_names_every_pack_the_command_lists(outputs: list[str]) -> None:
    text = README.read_text(encoding="utf-8")
    listed = re.findall(r"^\S+", outputs[5], flags=re.MULTILINE)
    for pack in ("xixia-2017", "tianjin-2017", "linzhi-2020", "taishan-2022"):
        assert pack in listed
        assert f"| `{pack}` |" in text
    assert "120000" in outputs[5]  # packs show tianjin-2017 follows the list


def test_the_roster_report_is_the_one_the_readme_shows(outputs: list[str]) -> None:
    shown = next(
        block
        for block in fenced_blocks(README.read_text(encoding="utf-8"), "")
        if "submission 1" in block
    )
    today = business_day().isoformat()
    expected = re.sub(r"as of \d{4}-\d{2}-\d{2}", f"as of {today}", shown)
    assert outputs[6] == expected


def test_the_comparison_finds_the_two_uninsured_and_enrol_enrols_them_once(
    outputs: list[str],
) -> None:
    compare_and_export_and_enrol = outputs[7]
    assert "comparison 1: region 411323" in compare_and_export_and_enrol
    assert re.search(r"insured\s+2\n", compare_and_export_and_enrol)
    assert re.search(r"not insured \(gap\)\s+2\n", compare_and_export_and_enrol)
    assert "gap.xlsx: 2 persons of comparison 1" in compare_and_export_and_enrol
    assert "enrolled 2 (of them 2 newly registered)" in compare_and_export_and_enrol
    assert "360.00" in compare_and_export_and_enrol


def test_every_file_the_readme_names_exists() -> None:
    text = README.read_text(encoding="utf-8")
    for path in set(re.findall(r"`((?:docs|doudi|examples|services|tests|bench)/[^`* ]+)`", text)):
        if "<" not in path:
            assert (ROOT / path).exists(), path


def yuan_rows(text: str) -> dict[str, int]:
    """The ``label  1,234.56 元`` rows of an account's printout, in fen, by their label's
    first word (the first of each label)."""
    rows: dict[str, int] = {}
    for label, amount in re.findall(r"^  (\S+) .*?\s([-\d,]+\.\d\d) 元$", text, re.MULTILINE):
        rows.setdefault(label, yuan_to_fen(amount.replace(",", "")))
    return rows


def test_the_demo_accounts_credit_once_move_january_to_the_card_and_buy_a_product(
    outputs: list[str],
) -> None:
    credit, transfer, shown, purchase = re.split(
        r"\n(?=划入社保卡 |\n\d{18}  |已购买)", outputs[11]
    )
    packs = PackRegistry.load()
    tianjin = personal_account_rules(packs.get("tianjin-2017"))  # type: ignore[arg-type]
    linzhi = personal_account_rules(packs.get("linzhi-2020"))  # type: ignore[arg-type]
    assert tianjin is not None
    assert tianjin.card_share is not None
    assert linzhi is not None
    credited = demo.ACCOUNT_CREDITS[demo.TIANJIN_EMPLOYEE]
    card_part = apply_ratio(credited, tianjin.card_share)
    january = monthly_card_part(card_part, 1)
    # The README's credit is the demo's own, answered again: booked once.
    assert credit.startswith("已入账 (重复请求, 未再次入账)")
    assert f"{format_yuan(card_part)} 元" in credit
    assert f"{format_yuan(january)} 元" in transfer
    assert re.search(r"moved now\s+1\n", transfer)
    account = yuan_rows(shown)
    assert (account["社保卡"], account["个人账户"], account["余额"]) == (
        january,
        credited - card_part,
        credited - card_part + january,
    )
    movements = re.findall(r"^  \d{4}-\d\d-\d\d\s+([\d,.]+)  (\S+)", shown, re.MULTILINE)
    assert movements == [
        (format_yuan(january), "划入社保卡"),
        (format_yuan(credited - card_part), "入账"),
    ]
    product = linzhi.product("picc_accident")
    assert product is not None
    bought = yuan_rows(purchase)
    assert purchase.startswith("已购买 bought picc_accident")
    assert bought["保费"] == product.premium_fen
    assert bought["余额"] == demo.ACCOUNT_CREDITS[demo.LINZHI_EMPLOYEE] - product.premium_fen
    assert demo.LINZHI_EMPLOYEE.person_id in purchase


def test_the_accident_claim_is_paid_once_up_to_the_packs_cap(outputs: list[str]) -> None:
    cover = accident_cover(PackRegistry.load().get("linzhi-2020"))  # type: ignore[arg-type]
    assert cover is not None
    claimed = yuan_to_fen("12345.67")
    paid = min(claimed, cover.medical_cap_fen)
    text, _, clearing_json = outputs[12].partition("{")
    replayed, decided, listed = text.split("amounts in yuan\n")[:3]
    assert replayed.startswith("claim 1 already filed (nothing changed)")
    assert "已受理" in replayed
    assert decided.startswith("claim 1 decided")
    for table in (decided, listed):
        (row,) = [line for line in table.splitlines() if re.match(r"\s+\d+\s", line)]
        assert "已赔付" in row
        assert row.split()[-2:] == [format_yuan(paid), business_day().isoformat()]
    clearing = json.loads("{" + clearing_json)
    assert clearing["date"] == business_day().isoformat()
    assert clearing["funds"] == [{"fund": cover.fund, "claim_count": 1, "paid_fen": paid}]
    assert (clearing["claim_count"], clearing["paid_fen"]) == (1, paid)


def test_the_demo_certificate_is_listed_with_its_validity_and_its_batch_answers_again(
    outputs: list[str],
) -> None:
    lines = outputs[13].splitlines()
    today = business_day()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    rules = PackRegistry.load().in_force(demo.NEIGHBOUR.region, today)
    assert rules is not None
    assert rules.certificates is not None
    valid_to = add_years(today, rules.certificates.validity_years) - timedelta(days=1)
    masked = f"{demo.NEIGHBOUR.person_id[:6]}********{demo.NEIGHBOUR.person_id[-4:]}"
    certificate = lines[1].split()
    assert certificate[2:] == [
        masked,
        "门诊慢性病",
        "hypertension",
        "高血压病",
        today.isoformat(),
        valid_to.isoformat(),
    ]
    assert len([line for line in lines if line.startswith("申请编号  证书编号")]) == 1
    application = lines[3].split()
    assert application[5:] == [
        demo.CERTIFICATE_DIAGNOSIS,
        f"{last_month}-{demo.CERTIFICATE_APPLIED_DAY:02d}",
        "已批准",
        last_month,
    ]
    assert lines[5].split() == [
        demo.NEIGHBOUR.region,
        last_month,
        today.isoformat(),
        "1",
        "0",
        "1",
        "是",
    ]
    registration = lines[-1].split()
    assert registration[1:] == [masked, "410100", "异地安置", today.isoformat()]

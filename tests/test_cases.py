"""Every calculation case gives exactly its expected result (docs/case-format.md).

The cases are the repository's own hand-worked ones in ``tests/cases`` (the
worked example of ``examples/`` among them). Only the keys the format defines
are compared; the per-layer explanation and the cost breakdown are extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doudi.core.cases import load_json, parse_case, result_document, settle_case
from doudi.core.packs import PackRegistry

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"

VISIT_KEYS = (
    "id",
    "total_fen",
    "out_of_scope_fen",
    "in_scope_fen",
    "layers",
    "self_pay_fen",
    "settled_as",
    "notes",
)
LAYER_KEYS = ("layer", "fund", "paid_fen")
PAYOUT_KEYS = ("benefit", "disease_class", "paid_fen")


def defined_keys(result: dict[str, Any]) -> dict[str, Any]:
    """The result restricted to the keys docs/case-format.md defines."""
    visits = []
    for visit in result["visits"]:
        kept = {key: visit[key] for key in VISIT_KEYS if key in visit}
        kept["layers"] = [{key: layer[key] for key in LAYER_KEYS} for layer in visit["layers"]]
        if "payouts" in visit:
            kept["payouts"] = [{key: p[key] for key in PAYOUT_KEYS} for p in visit["payouts"]]
        visits.append(kept)
    return {"policy": result["policy"], "visits": visits}


def case_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.case.json"))


@pytest.fixture(scope="module")
def registry() -> PackRegistry:
    return PackRegistry.load()


def check_case(registry: PackRegistry, case_file: Path) -> None:
    expected = json.loads(
        case_file.with_name(case_file.name.replace(".case.json", ".result.json")).read_text()
    )
    case = parse_case(load_json(case_file.read_text(encoding="utf-8")), registry)
    result = result_document(case, settle_case(case))
    assert defined_keys(result) == defined_keys(expected)
    for visit in result["visits"]:
        paid = sum(layer["paid_fen"] for layer in visit["layers"])
        assert visit["total_fen"] == paid + visit["self_pay_fen"]
        assert visit["total_fen"] == visit["out_of_scope_fen"] + visit["in_scope_fen"]


@pytest.mark.parametrize(
    "case_file", case_files(CASES), ids=lambda p: p.name.removesuffix(".case.json")
)
def test_case(registry: PackRegistry, case_file: Path) -> None:
    check_case(registry, case_file)


def test_cases_have_results_and_notes() -> None:
    files = case_files(CASES)
    assert len(files) >= 30
    for case_file in files:
        assert case_file.with_name(case_file.name.replace(".case.json", ".result.json")).exists(), (
            case_file.name
        )
        note = json.loads(case_file.read_text(encoding="utf-8")).get("note", "")
        assert len(note.split()) >= 4, (
            f"{case_file.name}: give a one-line note of the rule it checks"
        )


def test_every_example_is_one_of_the_hand_worked_cases() -> None:
    """The worked examples of ``examples/`` (docs/case-format.md) are copies of cases here,
    without their note, so each is held to its hand-worked result too."""
    worked = []
    for case_file in case_files(CASES):
        document = json.loads(case_file.read_text(encoding="utf-8"))
        document.pop("note")
        worked.append(document)
    examples = case_files(ROOT / "examples")
    assert len(examples) >= 2
    for example in examples:
        assert json.loads(example.read_text(encoding="utf-8")) in worked, example.name


def test_every_rule_of_every_pack_is_exercised_by_a_case(registry: PackRegistry) -> None:
    """Each rule of each pack pays something on at least one case."""
    exercised: set[tuple[str, str, str]] = set()
    for case_file in case_files(CASES):
        case = parse_case(load_json(case_file.read_text(encoding="utf-8")), registry)
        for settlement in settle_case(case):
            for layer in settlement.layers:
                if layer.paid_fen and layer.explanation:
                    exercised.add((case.pack.id, layer.layer, layer.explanation["rule"]))
    missing = [
        f"{pack.id}/{layer.id}/{rule.id}"
        for pack in registry
        for layer in pack.layers
        for rule in layer.rules
        if (pack.id, layer.id, rule.id) not in exercised
    ]
    assert not missing, f"rules no case pays through: {missing}"

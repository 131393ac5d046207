"""The per-layer explanation of ``doudi calc``, read on docs/case-format.md's worked example.

| layer | base | rule | paid |
| basic | 50,000 | (50,000 - 500) x 80% | 39,600 |
| critical_illness | 10,400 this year | below the 15,000 deductible | 0 |
| supplementary | 10,400 this year | 2,000x30% + 5,000x40% + 400x50% | 2,800 |
| insurance_assistance | 7,600 | (7,600 - 2,000) x 80% | 4,480 |
| medical_assistance | 3,120 | 3,120 x 70% | 2,184 |
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import run_cli, worked_case


@pytest.fixture
def result(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    case = tmp_path / "case.json"
    case.write_text(json.dumps(worked_case()), encoding="utf-8")
    code, out, _ = run_cli(["calc", str(case)], capsys)
    assert code == 0
    return json.loads(out)["visits"][0]


def explanation(result: dict[str, Any], layer: str) -> dict[str, Any]:
    return next(entry["explanation"] for entry in result["layers"] if entry["layer"] == layer)


def test_basic_shows_the_level_2_deductible_and_ratio(result: dict[str, Any]) -> None:
    basic = explanation(result, "basic")
    assert basic["base_fen"] == 5_000_000
    assert basic["deductible_applied_fen"] == 50_000
    assert basic["bands"] == [
        {"from_fen": 50_000, "to_fen": None, "ratio": "80%", "portion_fen": 4_950_000}
    ]
    assert basic["caps"][0]["limit_fen"] == 15_000_000
    assert basic["paid_fen"] == 3_960_000


def test_critical_illness_applies_but_the_whole_base_stays_under_its_yearly_deductible(
    result: dict[str, Any],
) -> None:
    critical = explanation(result, "critical_illness")
    assert critical["applies"] is True
    assert critical["period"] == "year"
    assert critical["yearly_base_after_fen"] == 1_040_000
    assert critical["deductible_applied_fen"] == 1_040_000
    assert critical["paid_fen"] == 0


def test_supplementary_shows_the_part_of_the_base_in_each_band(result: dict[str, Any]) -> None:
    bands = explanation(result, "supplementary_critical_illness")["bands"]
    portions = {band["ratio"]: band["portion_fen"] for band in bands}
    assert portions == {"30%": 200_000, "40%": 500_000, "50%": 40_000, "80%": 0, "90%": 0}


def test_out_of_area_without_referral_is_explained_as_minus_20_points(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    case = worked_case()
    case["visits"][0]["out_of_area"] = True
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    _, out, _ = run_cli(["calc", str(path)], capsys)
    assistance = explanation(json.loads(out)["visits"][0], "medical_assistance")
    assert assistance["ratio_adjustment_points"] == -20
    assert assistance["bands"][0]["ratio"] == "50%"
    assert assistance["paid_fen"] == 156_000  # 3,120 x 50%


def test_a_layer_that_does_not_apply_says_why(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    case = worked_case()
    case["person"]["statuses"] = []
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    _, out, _ = run_cli(["calc", str(path)], capsys)
    supplementary = explanation(json.loads(out)["visits"][0], "supplementary_critical_illness")
    assert supplementary["applies"] is False
    assert "registered_poor" in supplementary["reason"]


def test_the_visit_reports_its_final_reimbursement_ratio(result: dict[str, Any]) -> None:
    assert result["fund_paid_fen"] == 4_906_400
    assert result["reimbursement_ratio"] == "98.13%"  # docs/case-format.md: 98.1%

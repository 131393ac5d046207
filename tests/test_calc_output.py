"""What ``doudi calc`` writes: the standard library's indented JSON, byte for byte, however
it is produced, and only input it can write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doudi.cli.main import write_json
from doudi.core.cases import load_json, parse_case, result_document, settle_case
from doudi.core.packs import PackRegistry
from tests.support import ROOT, run_cli, worked_case

CASES = sorted((ROOT / "tests" / "cases").glob("*.case.json")) + sorted(
    (ROOT / "examples").glob("*.case.json")
)


@pytest.mark.parametrize("explain", [True, False], ids=["explained", "no-explain"])
@pytest.mark.parametrize("case_file", CASES, ids=lambda path: path.name)
def test_the_output_is_what_the_standard_library_writes(
    case_file: Path, explain: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    case = parse_case(load_json(case_file.read_text("utf-8")), PackRegistry.load())
    expected = json.dumps(
        result_document(case, settle_case(case, explain=explain)), ensure_ascii=False, indent=2
    )
    argv = ["calc", str(case_file)] if explain else ["calc", "--no-explain", str(case_file)]
    code, out, err = run_cli(argv, capsys)
    assert (code, err) == (0, "")
    assert out == expected + "\n"


def test_what_orjson_cannot_write_is_written_by_the_standard_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document: dict[str, Any] = {"big": 2**70, "text": "兜底", "empty": [], "nested": [{}]}
    write_json(document)
    assert capsys.readouterr().out == json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def test_a_lone_surrogate_is_bad_input_not_a_crash_half_way_through_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = worked_case()
    case["visits"][0]["id"] = "v\ud800"
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), "utf-8")  # written as the escape \ud800
    code, out, err = run_cli(["calc", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err == f"doudi: error: {path}: visits[0].id: holds a lone UTF-16 surrogate " + (
        "(\\ud800-\\udfff), not text\n"
    )


def test_a_visit_id_used_twice_far_apart_in_a_long_history_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = worked_case()
    first = case["visits"][0]
    case["visits"] = [{**first, "id": f"v{n}"} for n in range(3000)]
    case["visits"][2500]["id"] = "v7"
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), "utf-8")
    code, out, err = run_cli(["calc", str(path)], capsys)
    assert (code, out) == (2, "")
    assert err == f"doudi: error: {path}: visits[2500].id: visit id 'v7' is used twice\n"

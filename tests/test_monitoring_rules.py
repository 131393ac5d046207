"""The rules for watching the burden (docs/domain.md section 7): each pack's ``monitoring``
section, loaded strictly, and the arithmetic of the dual early warning and of secondary
assistance (``doudi.core.monitoring``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from doudi.core.errors import PolicyPackError
from doudi.core.monitoring import IMPOVERISHMENT, RETURN_TO_POVERTY, MonitoringRules, passes
from doudi.core.packs import PackRegistry, load_pack, monitoring_rules
from tests.support import ROOT
from tests.test_pack_loading import write_pack, xixia

DOMAIN = (ROOT / "docs" / "domain.md").read_text(encoding="utf-8")


def rules(pack_id: str) -> MonitoringRules:
    found = monitoring_rules(next(pack for pack in PackRegistry.load() if pack.id == pack_id))
    assert found is not None
    return found


def test_every_pack_holds_the_reference_income_docs_domain_gives() -> None:
    table = re.findall(
        r"^\s*\| (\w+) (\d{4}) \| (\w+) (\d{4}) \| ([\d,]+) yuan \|$", DOMAIN, flags=re.MULTILINE
    )
    assert len(table) == 4
    for region, year, _province, income_year, yuan in table:
        pack = rules(f"{region.lower()}-{year}")
        assert pack.reference_income_fen == int(yuan.replace(",", "")) * 100
        assert pack.reference_year == int(income_year) == int(year) - 1


def test_the_warning_lines_and_kinds() -> None:
    xixia_rules = rules("xixia-2017")  # 11,697 yuan
    assert xixia_rules.warning_line(RETURN_TO_POVERTY) == 584_850  # 50%
    assert xixia_rules.warning_line(IMPOVERISHMENT) == 1_169_700
    assert xixia_rules.warning_kind(frozenset({"poverty_exited"})) == RETURN_TO_POVERTY
    assert xixia_rules.warning_kind(frozenset({"at_risk", "dibao"})) == RETURN_TO_POVERTY
    assert xixia_rules.warning_kind(frozenset({"dibao"})) == IMPOVERISHMENT
    assert xixia_rules.warning_kind(frozenset()) == IMPOVERISHMENT


@pytest.mark.parametrize(
    ("before", "after", "passed"),
    [
        (0, 584_851, True),
        (584_850, 584_851, True),
        (584_850, 584_850, False),
        (584_851, 700_000, False),
        (0, 584_850, False),
    ],
)
def test_a_burden_passes_its_line_once(before: int, after: int, passed: bool) -> None:
    assert passes(before, after, 584_850) is passed


@pytest.mark.parametrize(
    ("eligible", "owed"),
    [
        (0, 0),
        (500_000, 0),
        (500_001, 1),
        (1_200_000, 350_000),
        (4_500_000, 2_000_000),
        (10**10, 2_000_000),
    ],
)
def test_secondary_assistance_is_half_above_5000_yuan_up_to_20000(eligible: int, owed: int) -> None:
    assert rules("taishan-2022").secondary_owed(eligible) == owed


def broken(tmp_path: Path, change: Any) -> PolicyPackError:
    document = xixia()
    change(document["monitoring"])
    with pytest.raises(PolicyPackError) as raised:
        monitoring_rules(load_pack(write_pack(tmp_path, document)))
    return raised.value


def test_a_figure_without_its_source_is_refused(tmp_path: Path) -> None:
    error = broken(tmp_path, lambda section: section["impoverishment"].pop("assumed"))
    assert error.path == "monitoring.impoverishment"
    assert "needs 'source'" in str(error)


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            lambda s: s["return_to_poverty"].update(percent_of_reference=0),
            "monitoring.return_to_poverty.percent_of_reference",
            "above 0",
        ),
        (
            lambda s: s["return_to_poverty"].update(statuses=["poor"]),
            "monitoring.return_to_poverty.statuses[0]",
            "status",
        ),
        (
            lambda s: s["reference_income"].update(year=16),
            "monitoring.reference_income.year",
            "whole number from 1978",
        ),
        (
            lambda s: s["secondary_assistance"].update(percent=150),
            "monitoring.secondary_assistance.percent",
            "outside 0-100%",
        ),
        (
            lambda s: s["overdue_days"].update(days=True),
            "monitoring.overdue_days.days",
            "whole number",
        ),
        (lambda s: s.update(extra=1), "monitoring", "extra"),
    ],
)
def test_a_bad_figure_is_refused_naming_it(
    tmp_path: Path, change: Any, path: str, words: str
) -> None:
    error = broken(tmp_path, change)
    assert error.path == path
    assert words in str(error)


def test_a_pack_without_the_section_has_no_rules(tmp_path: Path) -> None:
    document = xixia()
    del document["monitoring"]
    assert monitoring_rules(load_pack(write_pack(tmp_path, document))) is None

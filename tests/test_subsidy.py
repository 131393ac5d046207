"""Subsidised enrolment (资助参保): the packs' ``enrolment_subsidy`` sections, checked when
loaded, and ``subsidised_premium``, the category, tier, personal premium and subsidy for a
person's statuses.

The shipped packs' figures are checked against the sentences they quote from their source
documents (each cited by the id of a document the pack lists) and against
``docs/domain.md``, which states the same figures for the project's readers.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from doudi.core.codes import STATUSES
from doudi.core.errors import PolicyPackError
from doudi.core.packs import SubsidyCategory, compile_pack, load_pack, subsidy_categories
from doudi.core.policy import Pack
from doudi.core.subsidy import SubsidisedPremium, subsidised_premium
from tests.support import ROOT, provenance, run_cli

SHIPPED_DIR = Path(str(resources.files("doudi.packs")))
DOMAIN = ROOT / "docs" / "domain.md"
SECTION = "enrolment_subsidy"

Document = dict[str, Any]


def shipped(pack_id: str) -> Pack:
    return load_pack(SHIPPED_DIR / f"{pack_id}.yaml")


def shipped_document(pack_id: str) -> Document:
    document: Document = yaml.safe_load(
        (SHIPPED_DIR / f"{pack_id}.yaml").read_text(encoding="utf-8")
    )
    return document


def category(pack: Pack, category_id: str) -> SubsidyCategory:
    return next(entry for entry in subsidy_categories(pack) if entry.id == category_id)


def entry(document: Document, category_id: str) -> dict[str, Any]:
    return next(item for item in document[SECTION] if item["id"] == category_id)


# -- the quoted sentences and docs/domain.md -----------------------------------


def sources(node: Any) -> Iterator[tuple[str, str]]:
    """Every ``source:`` of a pack document as (document id, quoted sentence)."""
    for kind, text in provenance(node):
        if kind == "source":
            reference, quote = text.split(": ", 1)
            yield reference, quote


def quoted(pack_id: str, document: str) -> str:
    """What the pack quotes from ``document`` ("tianjin-2017"), one source a line."""
    return "\n".join(
        quote for reference, quote in sources(shipped_document(pack_id)) if reference == document
    )


def domain_section(number: int) -> str:
    """docs/domain.md's section ``number``, its white space folded."""
    text = DOMAIN.read_text(encoding="utf-8")
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"docs/domain.md has no section {number}"
    return re.sub(r"\s+", " ", match.group(0))


def yuan(text: str) -> int:
    """A yuan figure of a text ("1,080", "470.49万") in fen."""
    amount = Decimal(text.replace(",", "").removesuffix("万"))
    if text.endswith("万"):
        amount *= 10_000
    return int(amount * 100)


# -- a pack of our own ---------------------------------------------------------


def xixia_with(categories: list[dict[str, Any]]) -> Document:
    """The shipped Xixia pack with ``categories`` as its subsidised-enrolment section."""
    document = shipped_document("xixia-2017")
    document[SECTION] = categories
    return document


def a_category(category_id: str, statuses: list[str], premium: Any, subsidy: Any) -> Document:
    subsidy_spec: dict[str, Any] = (
        {"whole_premium": True} if subsidy == "whole" else {"yuan": subsidy}
    )
    return {
        "id": category_id,
        "name": f"{category_id} 类",
        "statuses": statuses,
        "premium": {"yuan": premium, "assumed": "a test figure"},
        "subsidy": {**subsidy_spec, "source": "xixia-2017: 想方設法幫其籌集參保費用"},
    }


def test_a_section_is_read_in_order_with_money_in_fen() -> None:
    document = xixia_with(
        [
            {**a_category("poor", ["registered_poor"], 180, "whole"), "note": "a note"},
            {
                **a_category("margin", ["low_income", "marginal"], "350.50", "230.25"),
                "also_one_of": ["dibao"],
            },
        ]
    )
    entry(document, "margin")["premium"]["tier"] = "adult_mid"

    pack = compile_pack(document, "xixia-2017.yaml")

    assert subsidy_categories(pack) == (
        SubsidyCategory(
            id="poor",
            name="poor 类",
            statuses=frozenset({"registered_poor"}),
            also_one_of=frozenset(),
            tier=None,
            premium_fen=18000,
            subsidy_fen=18000,
        ),
        SubsidyCategory(
            id="margin",
            name="margin 类",
            statuses=frozenset({"low_income", "marginal"}),
            also_one_of=frozenset({"dibao"}),
            tier="adult_mid",
            premium_fen=35050,
            subsidy_fen=23025,
        ),
    )


def test_an_unquoted_decimal_premium_is_read_exactly(tmp_path: Path) -> None:
    """The strict loader keeps 350.1 as the text "350.1": 35,010 fen, never a float."""
    text = (SHIPPED_DIR / "xixia-2017.yaml").read_text(encoding="utf-8")
    changed = text.replace("      yuan: 180\n", "      yuan: 350.1\n", 1)
    assert changed != text
    path = tmp_path / "xixia-2017.yaml"
    path.write_text(changed, encoding="utf-8")

    (registered_poor,) = subsidy_categories(load_pack(path))

    assert (registered_poor.premium_fen, registered_poor.subsidy_fen) == (35010, 35010)


def test_a_pack_without_the_section_has_no_categories() -> None:
    document = shipped_document("xixia-2017")
    del document[SECTION]

    pack = compile_pack(document, "xixia-2017.yaml")

    assert subsidy_categories(pack) == ()
    assert subsidised_premium(pack, {"registered_poor"}) is None


# -- broken sections -----------------------------------------------------------

Mutation = Callable[[Document], None]


def _set(category_id: str, *keys: str, value: Any) -> Mutation:
    """Set ``value`` at ``keys`` inside the shipped Xixia category ``category_id``."""

    def mutate(document: Document) -> None:
        target = entry(document, category_id)
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def _delete(category_id: str, *keys: str) -> Mutation:
    def mutate(document: Document) -> None:
        target = entry(document, category_id)
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return mutate


def _section(value: Any) -> Mutation:
    def mutate(document: Document) -> None:
        document[SECTION] = value

    return mutate


def _duplicate(document: Document) -> None:
    document[SECTION].append(copy.deepcopy(document[SECTION][0]))


def _partial_subsidy(document: Document) -> None:
    subsidy = entry(document, "registered_poor")["subsidy"]
    del subsidy["whole_premium"]
    subsidy["yuan"] = 181


POOR = "enrolment_subsidy[registered_poor]"

BROKEN = [
    pytest.param(_section({"registered_poor": 180}), SECTION, "expected a list", id="not-a-list"),
    pytest.param(_section([]), SECTION, "must not be empty", id="empty"),
    pytest.param(
        _set("registered_poor", "premum", value=180),
        "enrolment_subsidy[0]",
        "unknown key 'premum'",
        id="unknown-key",
    ),
    pytest.param(
        _delete("registered_poor", "subsidy"),
        "enrolment_subsidy[0]",
        "missing key 'subsidy'",
        id="no-subsidy",
    ),
    pytest.param(
        _set("registered_poor", "id", value="Registered Poor"),
        "enrolment_subsidy[0].id",
        "a category id is lower-case",
        id="bad-id",
    ),
    pytest.param(_duplicate, POOR, "duplicate category id", id="duplicate-id"),
    pytest.param(
        _set("registered_poor", "name", value=" "),
        f"{POOR}.name",
        "expected a non-empty text",
        id="blank-name",
    ),
    pytest.param(
        _set("registered_poor", "statuses", value=["registered_poor", "wealthy"]),
        f"{POOR}.statuses[1]",
        "unknown status 'wealthy'",
        id="unknown-status",
    ),
    pytest.param(
        _set("registered_poor", "statuses", value=[]),
        f"{POOR}.statuses",
        "must not be empty",
        id="no-statuses",
    ),
    pytest.param(
        _set("registered_poor", "also_one_of", value=["dibao", "rich"]),
        f"{POOR}.also_one_of[1]",
        "unknown status 'rich'",
        id="unknown-also-status",
    ),
    pytest.param(
        _set("registered_poor", "premium", "tier", value="adult_premium"),
        f"{POOR}.premium.tier",
        "unknown tier 'adult_premium'",
        id="unknown-tier",
    ),
    pytest.param(
        _delete("registered_poor", "premium", "assumed"),
        f"{POOR}.premium",
        "needs 'source'",
        id="premium-without-source-or-assumed",
    ),
    pytest.param(
        _set("registered_poor", "subsidy", value={"whole_premium": True, "note": "no provenance"}),
        f"{POOR}.subsidy",
        "unknown key 'note'",
        id="subsidy-unknown-key",
    ),
    pytest.param(
        _set("registered_poor", "subsidy", value={"whole_premium": True}),
        f"{POOR}.subsidy",
        "needs 'source'",
        id="subsidy-without-source-or-assumed",
    ),
    pytest.param(
        _set("registered_poor", "premium", "source", value="tianjin-2017: 180元"),
        f"{POOR}.premium.source",
        "should start with the id of one of this pack's sources",
        id="source-not-of-this-pack",
    ),
    pytest.param(
        _set("registered_poor", "premium", "yuan", value=-180),
        f"{POOR}.premium.yuan",
        "must not be negative",
        id="negative-premium",
    ),
    pytest.param(
        _set("registered_poor", "premium", "yuan", value=0),
        f"{POOR}.premium.yuan",
        "must be above 0",
        id="zero-premium",
    ),
    pytest.param(
        _set("registered_poor", "premium", "yuan", value="180.001"),
        f"{POOR}.premium.yuan",
        "not a whole number of fen",
        id="premium-finer-than-a-fen",
    ),
    pytest.param(
        _set("registered_poor", "premium", "yuan", value=180.0),
        f"{POOR}.premium.yuan",
        "must be an integer or a quoted decimal, not 180.0",
        id="premium-as-a-float",
    ),
    pytest.param(
        _set("registered_poor", "subsidy", "yuan", value=100),
        f"{POOR}.subsidy",
        "give either 'yuan' (a part of the premium) or 'whole_premium: true'",
        id="subsidy-both-yuan-and-whole",
    ),
    pytest.param(
        _delete("registered_poor", "subsidy", "whole_premium"),
        f"{POOR}.subsidy",
        "give either 'yuan'",
        id="subsidy-neither-yuan-nor-whole",
    ),
    pytest.param(
        _set("registered_poor", "subsidy", "whole_premium", value=False),
        f"{POOR}.subsidy.whole_premium",
        "leave it out and give 'yuan'",
        id="whole-premium-false",
    ),
    pytest.param(
        _set("registered_poor", "subsidy", "whole_premium", value="yes"),
        f"{POOR}.subsidy.whole_premium",
        "expected true or false",
        id="whole-premium-not-a-boolean",
    ),
    pytest.param(
        _partial_subsidy,
        f"{POOR}.subsidy.yuan",
        "181 yuan is more than the premium (180 yuan)",
        id="subsidy-above-premium",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), BROKEN)
def test_a_broken_section_is_refused_naming_the_file_and_the_path(
    mutate: Mutation, path: str, phrase: str
) -> None:
    document = shipped_document("xixia-2017")
    mutate(document)

    with pytest.raises(PolicyPackError) as raised:
        compile_pack(document, "xixia-2017.yaml")

    error = raised.value
    assert (error.file, error.path) == ("xixia-2017.yaml", path)
    assert phrase in error.message
    assert str(error).startswith(f"xixia-2017.yaml: {path}: ")


def test_source_or_assumed_alone_is_enough() -> None:
    document = shipped_document("xixia-2017")
    del entry(document, "registered_poor")["subsidy"]["source"]  # its 'assumed' stays

    (registered_poor,) = subsidy_categories(compile_pack(document, "xixia-2017.yaml"))

    assert registered_poor.subsidy_fen == 18000


def test_a_broken_section_in_a_file_is_refused_when_the_pack_loads(tmp_path: Path) -> None:
    text = (SHIPPED_DIR / "xixia-2017.yaml").read_text(encoding="utf-8")
    broken = text.replace("statuses: [registered_poor]", "statuses: [registered_pour]", 1)
    assert broken != text
    path = tmp_path / "xixia-2017.yaml"
    path.write_text(broken, encoding="utf-8")

    with pytest.raises(PolicyPackError, match=re.escape(f"{POOR}.statuses[0]: unknown status")):
        load_pack(path)


# -- choosing the category -----------------------------------------------------


@pytest.fixture
def three_categories() -> Pack:
    """small (100 of 180), large (180 of 180), equal (180 of 350, after large)."""
    return compile_pack(
        xixia_with(
            [
                a_category("small", ["registered_poor", "low_income"], 180, 100),
                a_category("large", ["dibao", "extreme_poverty"], 180, "whole"),
                a_category("equal", ["orphan", "extreme_poverty"], 350, 180),
            ]
        ),
        "xixia-2017.yaml",
    )


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param({"low_income"}, ("small", 18000, 10000), id="one-category"),
        pytest.param({"low_income", "dibao"}, ("large", 18000, 18000), id="largest-subsidy"),
        pytest.param({"dibao", "low_income"}, ("large", 18000, 18000), id="order-of-statuses"),
        pytest.param({"orphan"}, ("equal", 35000, 18000), id="a-part-of-the-premium"),
        pytest.param({"orphan", "dibao"}, ("large", 18000, 18000), id="tie-earlier-wins"),
        pytest.param({"extreme_poverty"}, ("large", 18000, 18000), id="tie-in-one-status"),
        pytest.param({"severely_disabled"}, None, id="no-category"),
        pytest.param(set(), None, id="no-status"),
    ],
)
def test_the_category_with_the_largest_subsidy_applies(
    three_categories: Pack, statuses: set[str], expected: tuple[str, int, int] | None
) -> None:
    chosen = subsidised_premium(three_categories, statuses)

    if expected is None:
        assert chosen is None
    else:
        assert chosen is not None
        assert (chosen.category, chosen.premium_fen, chosen.subsidy_fen) == expected
        assert chosen.personal_fen == expected[1] - expected[2]


def test_statuses_may_be_any_collection(three_categories: Pack) -> None:
    for statuses in (["orphan", "dibao"], ("orphan", "dibao"), frozenset({"orphan", "dibao"})):
        chosen = subsidised_premium(three_categories, statuses)
        assert chosen is not None
        assert chosen.category == "large"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param({"severely_disabled"}, "full_subsidy", id="disabled-alone-low-tier"),
        pytest.param({"extreme_poverty"}, "full_subsidy", id="extreme-poverty-alone"),
        pytest.param({"dibao"}, "dibao", id="dibao-middle-tier"),
        pytest.param({"low_income"}, "dibao_margin", id="margin-middle-tier"),
        pytest.param({"dibao", "severely_disabled"}, "special_hardship", id="dibao-disabled"),
        pytest.param({"low_income", "extreme_poverty"}, "special_hardship", id="margin-wubao"),
        pytest.param({"dibao", "entitled_group"}, "special_hardship", id="dibao-entitled"),
        pytest.param({"dibao", "low_income"}, "dibao", id="dibao-over-margin"),
        pytest.param({"entitled_group"}, None, id="entitled-alone"),
        pytest.param({"registered_poor", "orphan"}, None, id="no-tianjin-category"),
    ],
)
def test_tianjin_the_status_decides_the_tier_and_what_is_paid(
    statuses: set[str], expected: str | None
) -> None:
    chosen = subsidised_premium(shipped("tianjin-2017"), statuses)

    assert (chosen.category if chosen else None) == expected


def test_tianjin_a_severely_disabled_dibao_person_gets_the_high_tier_fully_paid() -> None:
    assert subsidised_premium(
        shipped("tianjin-2017"), {"dibao", "severely_disabled"}
    ) == SubsidisedPremium(
        category="special_hardship",
        name="低保及低保边缘户中的重残、五保、三无人员和优抚对象 (高档, 全额资助)",
        tier="adult_high",
        premium_fen=65000,
        subsidy_fen=65000,
    )


# -- the shipped packs' figures, against their sources ---------------------------


def tianjin_tiers() -> dict[str, tuple[int, int]]:
    """The adult tiers the Tianjin pack quotes: personal premium and total, in fen."""
    text = quoted("tianjin-2017", "tianjin-2017")
    match = re.search(
        r"個人繳費標準分別為(\d+)元、(\d+)元、(\d+)元,在此基礎上財政分別補助(\d+)元,"
        r"使籌資標準分別達到(\d+)元、(\d+)元和(\d+)元",
        text,
    )
    assert match is not None
    low, mid, high, subsidy, *totals = (yuan(figure) for figure in match.groups())
    personal = {"adult_low": low, "adult_mid": mid, "adult_high": high}
    assert [personal[tier] + subsidy for tier in personal] == totals
    return {tier: (personal[tier], total) for tier, total in zip(personal, totals, strict=True)}


def test_tianjin_premiums_are_the_personal_part_of_the_quoted_tiers() -> None:
    tiers = tianjin_tiers()
    pack = shipped("tianjin-2017")

    for entry_ in subsidy_categories(pack):
        assert entry_.tier in tiers, entry_.id
        assert entry_.premium_fen == tiers[entry_.tier][0], entry_.id
    # docs/domain.md section 5 says the same: 120, 350 or 650 personal = 850, 1,080, 1,380.
    domain = domain_section(5)
    figures = re.search(
        r"(?i)adults choose ([\d,]+), ([\d,]+) or ([\d,]+) personal \+ ([\d,]+) subsidy = "
        r"([\d,]+), ([\d,]+), ([\d,]+)",
        domain,
    )
    assert figures is not None
    personal = [yuan(figure) for figure in figures.groups()[:3]]
    totals = [yuan(figure) for figure in figures.groups()[4:]]
    assert [tiers[t] for t in ("adult_low", "adult_mid", "adult_high")] == list(
        zip(personal, totals, strict=True)
    )


def test_tianjin_dibao_and_margin_are_moved_to_the_middle_tier() -> None:
    text = quoted("tianjin-2017", "tianjin-2017")
    moved = re.search(r"籌資標準由低檔(\d+)元調整為中檔(\d+)元", text)
    assert moved is not None
    tiers = tianjin_tiers()
    pack = shipped("tianjin-2017")

    assert (tiers["adult_low"][1], tiers["adult_mid"][1]) == tuple(map(yuan, moved.groups()))
    for category_id in ("dibao", "dibao_margin"):
        assert category(pack, category_id).tier == "adult_mid"
    # dibao pay nothing (享受低保待遇的人員 ... 個人不繳費); the margin keep paying the low tier's part.
    assert "享受低保待遇的人員" in text
    dibao = category(pack, "dibao")
    assert dibao.subsidy_fen == dibao.premium_fen
    margin = category(pack, "dibao_margin")
    assert margin.premium_fen - margin.subsidy_fen == tiers["adult_low"][0]


def test_tianjin_special_hardship_is_the_high_tier_fully_paid() -> None:
    text = quoted("tianjin-2017", "tianjin-2017")
    high = re.search(r"參加居民醫保按高檔(\d+)元籌資,政府全額補助", text)
    assert high is not None
    special = category(shipped("tianjin-2017"), "special_hardship")

    assert tianjin_tiers()["adult_high"][1] == yuan(high.group(1))
    assert special.tier == "adult_high"
    assert special.subsidy_fen == special.premium_fen == tianjin_tiers()["adult_high"][0]
    # 重殘, 農村五保 / 城市三無 (特困) and 優撫對象, among 低保 and 低保邊緣 households.
    assert special.statuses == {"severely_disabled", "extreme_poverty", "entitled_group"}
    assert special.also_one_of == {"dibao", "low_income"}


def test_tianjin_severely_disabled_and_hardship_pay_nothing() -> None:
    text = quoted("tianjin-2017", "tianjin-2017")
    assert re.search(r"對重度殘疾人、享受低保待遇的人員、特殊困難家庭人員.*?個人不繳費", text)
    full = category(shipped("tianjin-2017"), "full_subsidy")

    assert full.statuses == {"severely_disabled", "extreme_poverty"}
    assert full.subsidy_fen == full.premium_fen > 0


TAISHAN_NAMES = {
    "extreme_poverty": "特困供养人员",
    "dibao": "最低生活保障家庭成员",
    "orphan": "孤儿",
    "low_income": "低收入家庭成员",
    "expenditure_hardship": "支出型重病患者",
    "at_risk": "易返贫致贫人口",
    "marginal": "边缘家庭救助对象",
    "unsupported_child": "事实无人抚养儿童",
}


def test_taishan_the_eight_categories_have_their_whole_premium_paid() -> None:
    text = quoted("taishan-2022", "taishan-2022")
    pack = shipped("taishan-2022")
    categories = subsidy_categories(pack)

    assert {c.name for c in categories} == set(TAISHAN_NAMES.values())
    for entry_ in categories:
        assert entry_.statuses == {entry_.id}
        assert entry_.name == TAISHAN_NAMES[entry_.id]
        assert entry_.also_one_of == frozenset()
        assert entry_.tier is None
        assert entry_.subsidy_fen == entry_.premium_fen
        chosen = subsidised_premium(pack, {entry_.id})
        assert chosen is not None
        assert chosen.personal_fen == 0
    assert "新增的3类对象明确由医疗救助基金全额资助参加我市城乡居民医保,个人免缴费" in text
    # docs/domain.md section 4 names the eight in the same words.
    domain = domain_section(4)
    assert all(name in domain for name in TAISHAN_NAMES.values())


def test_taishan_premium_is_the_assumed_national_figure_near_the_sources_average() -> None:
    text = quoted("taishan-2022", "taishan-2022")
    subsidised = re.search(r"资助困难居民(\d+)人参加城乡医保,资助金额达([\d.]+万)元", text)
    assert subsidised is not None
    people, amount_fen = int(subsidised.group(1)), yuan(subsidised.group(2))
    in_domain = re.search(r"([\d,]+) people subsidised, ([\d,]+) yuan", domain_section(5))
    assert in_domain is not None
    assert (people, amount_fen) == (
        int(in_domain.group(1).replace(",", "")),
        yuan(in_domain.group(2)),
    )
    average_yuan = round(amount_fen / people / 100)
    premiums = {c.premium_fen for c in subsidy_categories(shipped("taishan-2022"))}
    note = shipped_document("taishan-2022")[SECTION][0]["premium"]["assumed"]

    assert premiums == {35000}
    assert "350 yuan" in note
    assert "医保发〔2022〕20号" in note
    assert f"average {average_yuan} yuan" in note
    assert max(premiums) <= average_yuan * 100  # the whole assumed premium is not above it


def test_xixia_the_uninsured_poor_have_the_premium_raised_for_them() -> None:
    text = quoted("xixia-2017", "xixia-2017")
    assert "對篩查出的未參保貧困人員,想方設法幫其籌集參保費用" in text
    document = shipped_document("xixia-2017")
    (only,) = subsidy_categories(shipped("xixia-2017"))

    assert only.statuses == {"registered_poor"}
    assert only.subsidy_fen == only.premium_fen
    assert "籌集參保費用" in entry(document, "registered_poor")["subsidy"]["source"]
    # The source names no premium: 180 yuan is assumed, with its origin.
    assert not re.search(r"參保費用[^。]*\d+元", text)
    premium = entry(document, "registered_poor")["premium"]
    assert "source" not in premium
    assert only.premium_fen == yuan(str(premium["yuan"]))
    assert f"{premium['yuan']} yuan" in premium["assumed"]
    assert "财社〔2017〕36号" in premium["assumed"]


def test_linzhi_subsidises_nobody() -> None:
    pack = shipped("linzhi-2020")

    assert subsidy_categories(pack) == ()
    assert subsidised_premium(pack, set(STATUSES)) is None
    assert "No enrolment_subsidy section" in (SHIPPED_DIR / "linzhi-2020.yaml").read_text(
        encoding="utf-8"
    )


# -- provenance ------------------------------------------------------------------

PACKS_WITH_SECTION = ["tianjin-2017", "taishan-2022", "xixia-2017"]


def numbers(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping holding a number (a ``yuan`` key), with its path."""
    if isinstance(node, dict):
        if "yuan" in node:
            yield path, node
        for key, value in node.items():
            yield from numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from numbers(value, f"{path}[{index}]")


@pytest.mark.parametrize("pack_id", PACKS_WITH_SECTION)
def test_every_number_of_the_section_names_its_source_or_says_assumed(pack_id: str) -> None:
    section = shipped_document(pack_id)[SECTION]
    found = list(numbers(section))

    assert len(found) >= len(section)  # at least each premium
    for path, node in found:
        assert "source" in node or "assumed" in node, path
    for index, item in enumerate(section):  # a whole premium paid is a figure too
        assert "source" in item["subsidy"] or "assumed" in item["subsidy"], index


@pytest.mark.parametrize("pack_id", PACKS_WITH_SECTION)
def test_every_source_of_the_section_quotes_a_document_the_pack_lists(pack_id: str) -> None:
    """Each ``source:`` names a document of the pack's ``sources`` (which docs/domain.md
    section 9 lists too, ``tests/test_pack_loading.py``), and a premium's figure stands in
    the sentence it quotes."""
    document = shipped_document(pack_id)
    section = document[SECTION]
    cited = list(sources(section))

    assert cited
    for reference, quote in cited:
        assert reference in document["sources"], reference
        assert re.search(r"[\u4e00-\u9fff]", quote), quote  # the document's own words
    for item in section:
        premium = item["premium"]
        if "source" in premium:
            assert f"{premium['yuan']}元" in premium["source"], item["id"]


# -- doudi packs show ------------------------------------------------------------


@pytest.mark.parametrize("pack_id", PACKS_WITH_SECTION)
def test_packs_show_prints_each_category_with_its_sources(
    pack_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["packs", "show", pack_id], capsys)

    assert (code, err) == (0, "")
    assert "Subsidised enrolment (资助参保): the personal premium" in out
    shown = out.split("Subsidised enrolment (资助参保)", 1)[1]
    for item in shipped_document(pack_id)[SECTION]:
        assert f"  category {item['id']} - {item['name']}\n" in shown
        for node in (item, item["premium"], item["subsidy"]):
            for kind in ("source", "assumed"):
                if kind in node:
                    assert f"{kind}: {node[kind]}" in shown


def test_packs_show_gives_tianjins_tiers_and_what_each_pays(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(["packs", "show", "tianjin-2017"], capsys)

    assert code == 0
    assert (
        "who: status entitled_group or extreme_poverty or severely_disabled, "
        "together with dibao or low_income" in out
    )
    assert "premium: 650 yuan personal, tier adult_high (成年居民高档)" in out
    assert "assistance fund pays: the whole premium (650 yuan); the person pays 0 yuan" in out
    assert "assistance fund pays: 230 yuan; the person pays 120 yuan" in out


def test_packs_show_says_when_nobody_is_subsidised(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["packs", "show", "linzhi-2020"], capsys)

    assert code == 0
    assert (
        "Subsidised enrolment (资助参保): none in this pack; "
        "nobody's premium is paid by the assistance fund" in out
    )

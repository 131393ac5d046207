"""Policy packs are loaded strictly: a broken pack is refused with the file and the rule's path.

The broken packs are modified copies of the shipped Xixia pack, written to ``tmp_path``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from doudi.core.cases import parse_case, settle_case
from doudi.core.errors import PolicyPackError
from doudi.core.packs import PackRegistry, load_pack
from doudi.core.policy import Pack
from tests.support import ROOT, provenance, run_cli, worked_case

SHIPPED_DIR = Path(str(resources.files("doudi.packs")))
XIXIA_TEXT = (SHIPPED_DIR / "xixia-2017.yaml").read_text(encoding="utf-8")

# Layer ids of the shipped packs, in order (docs/case-format.md).
SHIPPED_LAYERS = {
    "xixia-2017": [
        "basic",
        "critical_illness",
        "supplementary_critical_illness",
        "insurance_assistance",
        "medical_assistance",
    ],
    "tianjin-2017": ["basic", "critical_illness", "medical_assistance"],
    "taishan-2022": ["basic", "critical_illness", "medical_assistance"],
    "linzhi-2020": ["basic", "critical_illness", "medical_assistance"],
}

Document = dict[str, Any]


def xixia() -> Document:
    return yaml.safe_load(XIXIA_TEXT)


def layer(document: Document, layer_id: str) -> dict[str, Any]:
    return next(entry for entry in document["layers"] if entry["id"] == layer_id)


def rule(document: Document, layer_id: str, rule_id: str) -> dict[str, Any]:
    return next(entry for entry in layer(document, layer_id)["rules"] if entry["id"] == rule_id)


def write_pack(directory: Path, document: Document, name: str | None = None) -> Path:
    path = directory / f"{name or document['id']}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def write_text_pack(directory: Path, text: str, name: str = "xixia-2017") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def basic_payment_for_a_chronic_visit(pack: Pack, amount_fen: int = 10000) -> int:
    """What the basic layer pays on a class-A chronic outpatient visit (no deductible in Xixia)."""
    case = {
        "policy": pack.id,
        "person": {"id": "411323195003150014", "scheme": "resident"},
        "visits": [
            {
                "id": "v1",
                "type": "outpatient_chronic",
                "hospital_level": 1,
                "date": "2017-08-01",
                "items": [{"code": "X01", "class": "A", "amount_fen": amount_fen}],
            }
        ],
    }
    (settlement,) = settle_case(parse_case(case, PackRegistry([pack])))
    basic = next(paid for paid in settlement.layers if paid.layer == "basic")
    return basic.paid_fen


# -- the shipped packs ---------------------------------------------------------


def test_the_registry_loads_the_four_shipped_packs() -> None:
    registry = PackRegistry.load()

    assert len(registry) == 4
    assert {pack.id for pack in registry} == set(SHIPPED_LAYERS)


@pytest.mark.parametrize("pack_id", sorted(SHIPPED_LAYERS))
def test_each_shipped_pack_loads_with_its_layers_in_order(pack_id: str) -> None:
    pack = load_pack(SHIPPED_DIR / f"{pack_id}.yaml")

    assert pack.id == pack_id
    assert pack.file == f"{pack_id}.yaml"
    assert [entry.id for entry in pack.layers] == SHIPPED_LAYERS[pack_id]


def test_xixia_pack_facts() -> None:
    pack = load_pack(SHIPPED_DIR / "xixia-2017.yaml")

    assert pack.region_code == "411323"
    assert pack.effective_from == date(2017, 1, 1)
    assert pack.class_b_pre_self_pay == 1000
    assert {"supplementary", "assistance_project", "390100"} <= set(pack.funds)


# What each source counts (docs/domain.md section 5): kind -> number of diseases.
CERTIFIED_COUNTS = {
    "xixia-2017": {"chronic": 19, "special": 10},
    "tianjin-2017": {"special": 13},
    "taishan-2022": None,
    "linzhi-2020": None,
}


@pytest.mark.parametrize("pack_id", sorted(SHIPPED_LAYERS))
def test_each_shipped_pack_certifies_as_many_diseases_as_its_source_counts(pack_id: str) -> None:
    rules = load_pack(SHIPPED_DIR / f"{pack_id}.yaml").certificates
    expected = CERTIFIED_COUNTS[pack_id]

    if expected is None:
        assert rules is None
        return
    assert rules is not None
    counted: dict[str, int] = {}
    for disease in rules.diseases.values():
        counted[disease.kind] = counted.get(disease.kind, 0) + 1
    assert counted == expected
    assert rules.kinds == frozenset(expected)


def test_xixia_certificates_name_two_diseases_and_last_three_years() -> None:
    rules = load_pack(SHIPPED_DIR / "xixia-2017.yaml").certificates

    assert rules is not None
    assert (rules.max_diseases_per_application, rules.validity_years) == (2, 3)
    assert rules.disease_of("chronic", "E11.9") == rules.diseases["diabetes"]
    assert rules.disease_of("special", "E11.9") is None
    assert rules.disease_of("special", "m321") == rules.diseases["lupus_nephritis"]
    assert rules.disease_of("special", "M32.8") is None


def test_an_unchanged_copy_loads(tmp_path: Path) -> None:
    """The round trip through yaml.safe_dump used by the tests below keeps the pack valid."""
    pack = load_pack(write_pack(tmp_path, xixia()))

    assert [entry.id for entry in pack.layers] == SHIPPED_LAYERS["xixia-2017"]
    assert basic_payment_for_a_chronic_visit(pack) == 6500  # 65% of 100 yuan


# -- broken packs --------------------------------------------------------------

Mutation = Callable[[Document], None]


def _unknown_fund(doc: Document) -> None:
    layer(doc, "basic")["fund"] = "399999"


def _unknown_status(doc: Document) -> None:
    layer(doc, "medical_assistance")["eligible"]["statuses"][1] = "wealthy"


def _unknown_visit_type(doc: Document) -> None:
    rule(doc, "basic", "inpatient")["visit_types"] = ["inpatient", "spa_stay"]


def _unknown_rule_key(doc: Document) -> None:
    rule(doc, "basic", "inpatient")["ratoi"] = {"percent": 80}


def _unknown_ratio_key(doc: Document) -> None:
    rule(doc, "basic", "outpatient_chronic")["ratio"]["per_cent"] = 65


def _percent(value: Any) -> Mutation:
    def mutate(doc: Document) -> None:
        rule(doc, "basic", "outpatient_chronic")["ratio"]["percent"] = value

    return mutate


def _negative_cap(doc: Document) -> None:
    layer(doc, "basic")["caps"][0]["yuan"] = -150000


def _negative_deductible(doc: Document) -> None:
    rule(doc, "insurance_assistance", "inpatient")["deductible"]["yuan"] = "-2000"


def _negative_level_deductible(doc: Document) -> None:
    rule(doc, "basic", "inpatient")["deductible"]["yuan"]["by_level"][2] = -500


def _ratio_without_provenance(doc: Document) -> None:
    ratio = rule(doc, "basic", "inpatient")["ratio"]
    del ratio["source"], ratio["assumed"]


def _deductible_without_provenance(doc: Document) -> None:
    del rule(doc, "critical_illness", "yearly")["deductible"]["source"]


def _cap_without_provenance(doc: Document) -> None:
    del layer(doc, "critical_illness")["caps"][0]["source"]


def _foreign_source(doc: Document) -> None:
    """Cites a real document, but not one this pack lists."""
    rule(doc, "insurance_assistance", "outpatient_chronic")["ratio"]["source"] = (
        "taishan-2022: 門診慢性病患者剩餘合規醫療費用按70%給予補助"
    )


def _source_without_colon(doc: Document) -> None:
    rule(doc, "insurance_assistance", "outpatient_chronic")["ratio"]["source"] = (
        "xixia-2017 門診慢性病患者剩餘合規醫療費用按70%給予補助"
    )


def _source_naming_a_file(doc: Document) -> None:
    doc["sources"]["texts/001.txt"] = doc["sources"].pop("xixia-2017")


def _source_without_publisher(doc: Document) -> None:
    del doc["sources"]["xixia-2017"]["publisher"]


def _source_as_bare_text(doc: Document) -> None:
    doc["sources"]["xixia-2017"] = "西峡县人社部门医疗保险扶贫政策, 2017"


def _bands(from_yuan: int) -> Mutation:
    def mutate(doc: Document) -> None:
        rule(doc, "critical_illness", "yearly")["bands"]["steps"][1]["from_yuan"] = from_yuan

    return mutate


def _undefined_cap(doc: Document) -> None:
    rule(doc, "basic", "outpatient_chronic")["caps"] = ["yearly", "chronic_yearly"]


def _duplicate_layer(doc: Document) -> None:
    doc["layers"].append(copy.deepcopy(layer(doc, "critical_illness")))


def _by_level_without_3(doc: Document) -> None:
    del rule(doc, "basic", "inpatient")["ratio"]["percent"]["by_level"][3]


def _by_level_with_4(doc: Document) -> None:
    rule(doc, "basic", "inpatient")["ratio"]["percent"]["by_level"][4] = 60


def _pharmacy_by_level(doc: Document) -> None:
    layer(doc, "basic")["rules"].append(
        {
            "id": "pharmacy",
            "visit_types": ["pharmacy"],
            "period": "visit",
            "ratio": {
                "percent": {"by_level": {1: 50, 2: 50, 3: 50}},
                "assumed": "a test of the loader",
            },
        }
    )


# -- certificates (门诊慢特病), admission, the conditions any_of / visit_types / reformed_hospital


def certified(doc: Document, kind: str) -> list[dict[str, Any]]:
    listing: list[dict[str, Any]] = doc["certificates"]["diseases"][kind]["list"]
    return listing


def _disease(index: int, **changes: Any) -> Mutation:
    def mutate(doc: Document) -> None:
        certified(doc, "chronic")[index].update(changes)

    return mutate


def _unknown_certificate_kind(doc: Document) -> None:
    diseases = doc["certificates"]["diseases"]
    diseases["rare"] = diseases.pop("special")


def _duplicate_disease(doc: Document) -> None:
    certified(doc, "special").append(copy.deepcopy(certified(doc, "chronic")[1]))


def _certificate_count(key: str, value: Any) -> Mutation:
    def mutate(doc: Document) -> None:
        doc["certificates"][key]["value"] = value

    return mutate


def _validity_without_source(doc: Document) -> None:
    del doc["certificates"]["validity_years"]["source"]


def _disease_group_without_provenance(doc: Document) -> None:
    group = doc["certificates"]["diseases"]["special"]
    del group["source"], group["assumed"]


def _no_diseases(doc: Document) -> None:
    doc["certificates"]["diseases"] = {}


def _when(condition: Any) -> Mutation:
    def mutate(doc: Document) -> None:
        rule(doc, "basic", "outpatient_chronic")["when"] = condition

    return mutate


def _no_deposit_rule(**changes: Any) -> Mutation:
    def mutate(doc: Document) -> None:
        entry = doc["admission"]["no_deposit"][0]
        for key, value in changes.items():
            if value is None:
                del entry[key]
            else:
                entry[key] = value

    return mutate


def _duplicate_no_deposit_rule(doc: Document) -> None:
    rules = doc["admission"]["no_deposit"]
    rules.append(copy.deepcopy(rules[0]))


BROKEN = [
    pytest.param(_unknown_fund, "layers[basic].fund", "unknown fund '399999'", id="unknown-fund"),
    pytest.param(
        _unknown_status,
        "layers[medical_assistance].eligible.statuses[1]",
        "unknown status 'wealthy'",
        id="unknown-status",
    ),
    pytest.param(
        _unknown_visit_type,
        "layers[basic].rules[inpatient].visit_types[1]",
        "unknown visit type 'spa_stay'",
        id="unknown-visit-type",
    ),
    pytest.param(
        _unknown_rule_key, "layers[basic].rules[0]", "unknown key 'ratoi'", id="unknown-rule-key"
    ),
    pytest.param(
        _unknown_ratio_key,
        "layers[basic].rules[outpatient_chronic].ratio",
        "unknown key 'per_cent'",
        id="unknown-ratio-key",
    ),
    pytest.param(
        _percent(100.5),
        "layers[basic].rules[outpatient_chronic].ratio.percent",
        "outside 0-100%",
        id="percent-100.5",
    ),
    pytest.param(
        _percent(101),
        "layers[basic].rules[outpatient_chronic].ratio.percent",
        "outside 0-100%",
        id="percent-101",
    ),
    pytest.param(
        _percent(-1),
        "layers[basic].rules[outpatient_chronic].ratio.percent",
        "outside 0-100%",
        id="percent-negative",
    ),
    pytest.param(
        _percent("65.123"),
        "layers[basic].rules[outpatient_chronic].ratio.percent",
        "finer than a basis point",
        id="percent-finer-than-a-basis-point",
    ),
    pytest.param(
        _percent("sixty-five"),
        "layers[basic].rules[outpatient_chronic].ratio.percent",
        "not a number",
        id="percent-in-words",
    ),
    pytest.param(
        _negative_cap, "layers[basic].caps[yearly].yuan", "must not be negative", id="negative-cap"
    ),
    pytest.param(
        _negative_deductible,
        "layers[insurance_assistance].rules[inpatient].deductible.yuan",
        "must not be negative",
        id="negative-deductible",
    ),
    pytest.param(
        _negative_level_deductible,
        "layers[basic].rules[inpatient].deductible.yuan.by_level.2",
        "must not be negative",
        id="negative-deductible-by-level",
    ),
    pytest.param(
        _ratio_without_provenance,
        "layers[basic].rules[inpatient].ratio",
        "needs 'source'",
        id="ratio-without-source-or-assumed",
    ),
    pytest.param(
        _deductible_without_provenance,
        "layers[critical_illness].rules[yearly].deductible",
        "needs 'source'",
        id="deductible-without-source-or-assumed",
    ),
    pytest.param(
        _cap_without_provenance,
        "layers[critical_illness].caps[yearly]",
        "needs 'source'",
        id="cap-without-source-or-assumed",
    ),
    pytest.param(
        _foreign_source,
        "layers[insurance_assistance].rules[outpatient_chronic].ratio.source",
        "should start with the id of one of this pack's sources",
        id="source-not-of-this-pack",
    ),
    pytest.param(
        _source_without_colon,
        "layers[insurance_assistance].rules[outpatient_chronic].ratio.source",
        "should start with the id of one of this pack's sources (xixia-2017, jiangsu-2022)",
        id="source-without-colon",
    ),
    pytest.param(
        _source_naming_a_file,
        "sources.texts/001.txt",
        "a document id is lower-case words and digits joined by '-'",
        id="source-naming-a-file",
    ),
    pytest.param(
        _source_without_publisher,
        "sources.xixia-2017",
        "missing key 'publisher'",
        id="source-without-publisher",
    ),
    pytest.param(
        _source_as_bare_text,
        "sources.xixia-2017",
        "expected a mapping",
        id="source-as-bare-text",
    ),
    pytest.param(
        _bands(10000),
        "layers[critical_illness].rules[yearly].bands.steps[1].from_yuan",
        "bands must rise",
        id="bands-falling",
    ),
    pytest.param(
        _bands(15000),
        "layers[critical_illness].rules[yearly].bands.steps[1].from_yuan",
        "bands must rise",
        id="bands-equal",
    ),
    pytest.param(
        _undefined_cap,
        "layers[basic].rules[outpatient_chronic].caps[1]",
        "unknown cap 'chronic_yearly'",
        id="cap-not-defined",
    ),
    pytest.param(
        _duplicate_layer, "layers[critical_illness]", "duplicate layer id", id="duplicate-layer"
    ),
    pytest.param(
        _by_level_without_3,
        "layers[basic].rules[inpatient].ratio.percent.by_level",
        "missing hospital level 3",
        id="by-level-missing-3",
    ),
    pytest.param(
        _by_level_with_4,
        "layers[basic].rules[inpatient].ratio.percent.by_level.4",
        "unknown hospital level 4",
        id="by-level-with-4",
    ),
    pytest.param(
        _pharmacy_by_level,
        "layers[basic].rules[pharmacy]",
        "pharmacy purchases have no hospital level",
        id="pharmacy-rule-by-level",
    ),
    pytest.param(
        _disease(0, id="High-Blood-Pressure"),
        "certificates.diseases.chronic.list[0].id",
        "lower-case words joined by '_'",
        id="certified-disease-id-not-lower-case-words",
    ),
    pytest.param(
        _unknown_certificate_kind,
        "certificates.diseases.rare",
        "unknown certificate kind 'rare' (known: chronic, special)",
        id="unknown-certificate-kind",
    ),
    pytest.param(
        _disease(1, icd10=["E1l-E14"]),
        "certificates.diseases.chronic.list[1].icd10[0]",
        "expected an ICD-10 category (I21), code (N18.5) or range (C00-C97)",
        id="certified-disease-malformed-icd10",
    ),
    pytest.param(
        _disease(1, icd10=["E14-E10"]),
        "certificates.diseases.chronic.list[1].icd10[0]",
        "runs backwards",
        id="certified-disease-backward-range",
    ),
    pytest.param(
        _disease(1, icd10=[]),
        "certificates.diseases.chronic.list[1].icd10",
        "must not be empty",
        id="certified-disease-without-codes",
    ),
    pytest.param(
        _duplicate_disease,
        "certificates.diseases.special.list[10]",
        "duplicate disease id 'diabetes'",
        id="certified-disease-twice",
    ),
    pytest.param(
        _certificate_count("max_diseases_per_application", 0),
        "certificates.max_diseases_per_application.value",
        "expected a whole number from 1 to 10, got 0",
        id="certificate-diseases-per-application-0",
    ),
    pytest.param(
        _certificate_count("validity_years", 11),
        "certificates.validity_years.value",
        "expected a whole number from 1 to 10, got 11",
        id="certificate-validity-11-years",
    ),
    pytest.param(
        _certificate_count("validity_years", "3"),
        "certificates.validity_years.value",
        "expected a whole number from 1 to 10, got '3'",
        id="certificate-validity-as-text",
    ),
    pytest.param(
        _validity_without_source,
        "certificates.validity_years",
        "needs 'source'",
        id="certificate-validity-without-source",
    ),
    pytest.param(
        _disease_group_without_provenance,
        "certificates.diseases.special",
        "needs 'source'",
        id="certified-diseases-without-source-or-assumed",
    ),
    pytest.param(
        _disease(2, source="xixia-2017 冠心病"),
        "certificates.diseases.chronic.list[2].source",
        "should start with the id of one of this pack's sources",
        id="certified-disease-source-without-colon",
    ),
    pytest.param(
        _no_diseases,
        "certificates.diseases",
        "list the diseases of at least one kind",
        id="certificates-without-diseases",
    ),
    pytest.param(
        _when({"any_of": []}),
        "layers[basic].rules[outpatient_chronic].when.any_of",
        "must not be empty",
        id="empty-any-of",
    ),
    pytest.param(
        _when({"any_of": [{"levels": [1]}, {}]}),
        "layers[basic].rules[outpatient_chronic].when.any_of[1]",
        "an empty condition",
        id="any-of-an-empty-condition",
    ),
    pytest.param(
        _when({"any_of": [{"levels": [1]}, {"level": [2]}]}),
        "layers[basic].rules[outpatient_chronic].when.any_of[1]",
        "unknown key 'level'",
        id="any-of-an-unknown-key",
    ),
    pytest.param(
        _when({"visit_types": ["outpatient_chronic", "dental"]}),
        "layers[basic].rules[outpatient_chronic].when.visit_types[1]",
        "unknown visit type 'dental'",
        id="condition-unknown-visit-type",
    ),
    pytest.param(
        _when({"levels": [2], "reformed_hospital": "yes"}),
        "layers[basic].rules[outpatient_chronic].when.reformed_hospital",
        "expected true or false, got 'yes'",
        id="condition-reformed-hospital-not-a-boolean",
    ),
    pytest.param(
        _no_deposit_rule(reason=None),
        "admission.no_deposit[0]",
        "missing key 'reason'",
        id="no-deposit-rule-without-reason",
    ),
    pytest.param(
        _no_deposit_rule(reason=" "),
        "admission.no_deposit[poverty_window].reason",
        "expected a non-empty text",
        id="no-deposit-rule-with-a-blank-reason",
    ),
    pytest.param(
        _no_deposit_rule(source=None),
        "admission.no_deposit[poverty_window]",
        "needs 'source'",
        id="no-deposit-rule-without-source",
    ),
    pytest.param(
        _no_deposit_rule(when={}),
        "admission.no_deposit[poverty_window].when",
        "an empty condition",
        id="no-deposit-rule-with-an-empty-condition",
    ),
    pytest.param(
        _duplicate_no_deposit_rule,
        "admission.no_deposit[poverty_window]",
        "duplicate rule id",
        id="no-deposit-rule-twice",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "phrase"), BROKEN)
def test_a_broken_pack_is_refused_naming_the_file_and_the_rule(
    mutate: Mutation, path: str, phrase: str, tmp_path: Path
) -> None:
    document = xixia()
    mutate(document)
    pack_file = write_pack(tmp_path, document)

    with pytest.raises(PolicyPackError) as raised:
        load_pack(pack_file)

    error = raised.value
    assert error.file == "xixia-2017.yaml"
    assert error.path == path
    assert phrase in error.message
    assert str(error).startswith(f"xixia-2017.yaml: {path}: ")


def test_an_unquoted_decimal_percent_is_read_exactly(tmp_path: Path) -> None:
    """The loader turns off YAML's implicit floats: 80.5 stays the text "80.5", read exactly
    as 80.5% (8050 basis points), never through a binary float."""
    document = xixia()
    _percent(80.5)(document)
    pack_file = write_pack(tmp_path, document)
    assert "percent: 80.5\n" in pack_file.read_text(encoding="utf-8")  # unquoted in the file

    pack = load_pack(pack_file)

    assert basic_payment_for_a_chronic_visit(pack, amount_fen=10000) == 8050
    assert basic_payment_for_a_chronic_visit(pack, amount_fen=3) == 2  # 2.415 fen


def test_a_quoted_decimal_percent_is_read_the_same(tmp_path: Path) -> None:
    pack = load_pack(
        write_text_pack(tmp_path, XIXIA_TEXT.replace("percent: 65", 'percent: "72.5"'))
    )

    assert basic_payment_for_a_chronic_visit(pack) == 7250


def test_a_leading_zero_number_is_not_read_as_octal(tmp_path: Path) -> None:
    pack_file = write_text_pack(tmp_path, XIXIA_TEXT.replace("percent: 65", "percent: 065"))

    try:
        pack = load_pack(pack_file)
    except PolicyPackError:
        return  # refusing it is as good as reading it as 65
    assert basic_payment_for_a_chronic_visit(pack) == 6500


def test_a_file_named_differently_from_its_id_is_refused(tmp_path: Path) -> None:
    pack_file = write_pack(tmp_path, xixia(), name="xixia-2018")

    with pytest.raises(PolicyPackError) as raised:
        load_pack(pack_file)

    assert raised.value.file == "xixia-2018.yaml"
    assert raised.value.path == "id"
    assert "must be named xixia-2017.yaml" in raised.value.message


def test_malformed_yaml_is_refused_on_one_line(tmp_path: Path) -> None:
    pack_file = write_text_pack(tmp_path, XIXIA_TEXT + "\n  - id: [unclosed\n")

    with pytest.raises(PolicyPackError) as raised:
        load_pack(pack_file)

    assert raised.value.file == "xixia-2017.yaml"
    assert "not valid YAML" in raised.value.message
    assert "\n" not in str(raised.value)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    duplicated = XIXIA_TEXT.replace("title:", "title: 重复\ntitle:", 1)
    pack_file = write_text_pack(tmp_path, duplicated)

    with pytest.raises(PolicyPackError) as raised:
        load_pack(pack_file)

    assert raised.value.file == "xixia-2017.yaml"
    assert "duplicate key 'title'" in raised.value.message


def test_duplicate_keys_inside_a_rule_are_refused(tmp_path: Path) -> None:
    duplicated = XIXIA_TEXT.replace("percent: 65\n", "percent: 65\n          percent: 95\n", 1)
    assert duplicated != XIXIA_TEXT

    with pytest.raises(PolicyPackError, match="duplicate key 'percent'"):
        load_pack(write_text_pack(tmp_path, duplicated))


# -- which pack is in force ----------------------------------------------------


def xixia_2019() -> Document:
    document = xixia()
    document["id"] = "xixia-2019"
    document["effective_from"] = "2019-01-01"
    return document


@pytest.fixture
def registry_with_xixia_2019(tmp_path: Path) -> PackRegistry:
    write_pack(tmp_path, xixia_2019())
    return PackRegistry.load([tmp_path])


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(date(2016, 12, 31), None, id="before-any-pack"),
        pytest.param(date(2017, 1, 1), "xixia-2017", id="first-day-of-2017-pack"),
        pytest.param(date(2018, 12, 31), "xixia-2017", id="last-day-before-2019-pack"),
        pytest.param(date(2019, 1, 1), "xixia-2019", id="first-day-of-2019-pack"),
        pytest.param(date(2030, 6, 1), "xixia-2019", id="long-after"),
    ],
)
def test_in_force_picks_the_newest_pack_that_has_started(
    registry_with_xixia_2019: PackRegistry, day: date, expected: str | None
) -> None:
    pack = registry_with_xixia_2019.in_force("411323", day)

    assert (pack.id if pack else None) == expected


def test_a_new_pack_does_not_touch_other_regions(registry_with_xixia_2019: PackRegistry) -> None:
    assert len(registry_with_xixia_2019) == 5
    tianjin = registry_with_xixia_2019.in_force("120000", date(2019, 6, 1))
    assert tianjin is not None
    assert tianjin.id == "tianjin-2017"
    assert registry_with_xixia_2019.in_force("999999", date(2019, 6, 1)) is None


def test_superseded_on_names_the_newer_pack(registry_with_xixia_2019: PackRegistry) -> None:
    old = registry_with_xixia_2019.get("xixia-2017")
    assert old is not None

    assert registry_with_xixia_2019.superseded_on(old, date(2018, 12, 31)) is None
    newer = registry_with_xixia_2019.superseded_on(old, date(2019, 1, 1))
    assert newer is not None
    assert newer.id == "xixia-2019"


def test_two_packs_of_a_region_starting_the_same_day_are_refused(tmp_path: Path) -> None:
    document = xixia()
    document["id"] = "xixia-2018"  # starts 2017-01-01, as xixia-2017 does
    write_pack(tmp_path, document)

    with pytest.raises(PolicyPackError, match="already starts on 2017-01-01"):
        PackRegistry.load([tmp_path])


def test_a_pack_id_defined_twice_is_refused(tmp_path: Path) -> None:
    write_pack(tmp_path, xixia())  # the same id as the shipped pack

    with pytest.raises(PolicyPackError, match="defined twice"):
        PackRegistry.load([tmp_path])


# -- the command line ----------------------------------------------------------


run = run_cli


WORKED_CASE: dict[str, Any] = worked_case()


def test_calc_with_a_malformed_pack_dir_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    write_text_pack(packs, "id: xixia-2019\nlayers: [unclosed\n", name="xixia-2019")
    case = tmp_path / "case.json"
    case.write_text(json.dumps(WORKED_CASE), encoding="utf-8")

    code, out, err = run(["--packs-dir", str(packs), "calc", str(case)], capsys)

    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "xixia-2019.yaml" in err
    assert "not valid YAML" in err


def test_calc_with_a_pack_dir_holding_a_broken_rule_names_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = xixia_2019()
    _unknown_fund(document)
    write_pack(tmp_path, document)
    case = tmp_path / "case.json"
    case.write_text(json.dumps(WORKED_CASE), encoding="utf-8")

    code, out, err = run(["--packs-dir", str(tmp_path), "calc", str(case)], capsys)

    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "xixia-2019.yaml: layers[basic].fund" in err


def test_calc_refuses_a_pack_superseded_on_the_visit_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pack(tmp_path, xixia_2019())
    case = copy.deepcopy(WORKED_CASE)
    case["visits"][0].update(admitted="2019-03-01", discharged="2019-03-10")
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case), encoding="utf-8")

    code, out, err = run(["--packs-dir", str(tmp_path), "calc", str(case_file)], capsys)
    assert (code, out) == (2, "")
    assert "visits[0].discharged" in err
    assert "xixia-2019 is in force" in err

    case["policy"] = "xixia-2019"
    case_file.write_text(json.dumps(case), encoding="utf-8")
    code, out, err = run(["--packs-dir", str(tmp_path), "calc", str(case_file)], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out)["policy"] == "xixia-2019"


def test_packs_lists_the_four_packs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["packs"], capsys)

    assert (code, err) == (0, "")
    header, *rows = out.splitlines()
    assert "ID" in header
    assert sorted(row.split()[0] for row in rows) == sorted(SHIPPED_LAYERS)
    xixia_row = next(row for row in rows if row.startswith("xixia-2017 "))
    assert "411323" in xixia_row
    assert "2017-01-01" in xixia_row


def test_packs_show_xixia_prints_layers_funds_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["packs", "show", "xixia-2017"], capsys)

    assert (code, err) == (0, "")
    document = xixia()
    for entry in document["layers"]:
        assert re.search(rf"^Layer \d+: {entry['id']} ", out, re.MULTILINE), entry["id"]
        assert f"fund: {entry['fund']} (" in out
        for rule_entry in entry["rules"]:
            assert f"rule {rule_entry['id']}:" in out
    for fund in ("390100", "390200", "supplementary", "assistance_project", "610100"):
        assert fund in out


def test_packs_show_tianjin_prints_the_outpatient_cover_s_hospitals_and_certificates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["packs", "show", "tianjin-2017"], capsys)

    assert (code, err) == (0, "")
    assert (
        "only for: (scheme employee) or (visit type outpatient_chronic or outpatient_major) or "
        "(hospital level 1) or (hospital level 2; a reformed public hospital)"
    ) in out
    assert "Outpatient certificates (门诊慢特病): outpatient_major (special) visits" in out
    assert "    diabetes 糖尿病: E10-E14" in out
    assert "  treat_first_pay_later: 先诊疗后付费" in out


@pytest.mark.parametrize("pack_id", sorted(SHIPPED_LAYERS))
def test_packs_show_prints_every_source_and_assumption(
    pack_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documents first, by id, title, publisher and date; then every figure's source
    sentence or assumption."""
    code, out, _ = run(["packs", "show", pack_id], capsys)

    assert code == 0
    document = yaml.safe_load((SHIPPED_DIR / f"{pack_id}.yaml").read_text(encoding="utf-8"))
    cited = out.split("Sources:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert cited == [
        f"  {key}: {source['title']}; {source['publisher']}; {source['date']}"
        for key, source in document["sources"].items()
    ]
    found = list(provenance(document))
    assert found
    missing = [(kind, text) for kind, text in found if f"{kind}: {text}" not in out]
    assert missing == []


def test_packs_show_gives_each_xixia_rule_a_source_or_assumption(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under each rule's heading, before the next rule or layer, a source or 'assumed' line."""
    code, out, _ = run(["packs", "show", "xixia-2017"], capsys)
    assert code == 0

    blocks = re.split(r"\n(?=  rule |Layer |  cap )", out)
    rule_blocks = [block for block in blocks if block.startswith("  rule ")]
    assert len(rule_blocks) == sum(len(entry["rules"]) for entry in xixia()["layers"])
    for block in rule_blocks:
        assert "source: " in block or "assumed: " in block, block


def test_packs_show_of_an_unknown_pack_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["packs", "show", "nope"], capsys)

    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "unknown policy pack 'nope'" in err
    assert "xixia-2017" in err


def domain_sources() -> dict[str, str]:
    """docs/domain.md section 9: each document id and its row of the table."""
    text = (ROOT / "docs" / "domain.md").read_text(encoding="utf-8")
    section = text.split("\n## 9. Sources\n", 1)[1]
    return dict(re.findall(r"^\| `([a-z0-9-]+)` \|(.*)$", section, re.MULTILINE))


@pytest.mark.parametrize("pack_id", sorted(SHIPPED_LAYERS))
def test_every_document_a_pack_cites_is_in_docs_domain_md_with_the_same_citation(
    pack_id: str,
) -> None:
    document = yaml.safe_load((SHIPPED_DIR / f"{pack_id}.yaml").read_text(encoding="utf-8"))
    listed = domain_sources()
    cited = {text.split(": ", 1)[0] for kind, text in provenance(document) if kind == "source"}

    assert cited <= set(document["sources"])
    for key, citation in document["sources"].items():
        assert key in listed, key
        for part in ("title", "publisher", "date"):
            assert citation[part] in listed[key], (key, part)

"""Comparing a roster's name with the register's: full width, spaces, script and middle dots."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from doudi.core.names import hidden_character, normalise_name, same_name

# -- the same name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("roster", "register"),
    [
        pytest.param("張建國", "张建国", id="traditional"),
        pytest.param("劉德華", "刘德华", id="traditional-2"),
        pytest.param("張建国", "张建國", id="mixed-scripts"),
        pytest.param("ＷＡＮＧ Ｌｉ", "WANG LI", id="full-width-latin"),
        pytest.param("wang li", "WANG LI", id="lower-case-latin"),
        pytest.param("张 建国", "张建国", id="space"),
        pytest.param("张\u3000建国", "张建国", id="ideographic-space"),
        pytest.param("\u00a0张建国\u202f", "张建国", id="no-break-spaces"),
        pytest.param("  张建国\t\r\n", "张建国", id="leading-trailing"),
        pytest.param("张\u200b建国\ufeff", "张建国", id="zero-width"),
        pytest.param("张建国２", "张建国2", id="full-width-digit"),
        pytest.param("⼈", "人", id="kangxi-radical"),
        pytest.param("JOHN F. KENNEDY", "JOHN F.KENNEDY", id="latin-stop-kept-spaces-go"),
    ],
)
def test_names_that_differ_only_in_form_are_the_same(roster: str, register: str) -> None:
    assert roster != register
    assert same_name(roster, register)
    assert same_name(register, roster)


def test_normal_form_is_simplified_upper_case_without_spaces() -> None:
    assert normalise_name("張 建國") == "张建国"
    assert normalise_name("ｍａｒｉａ\u3000Ｓｃｈｍｉｄｔ") == "MARIASCHMIDT"
    assert normalise_name("刘德华") == "刘德华"


UYGHUR = "买买提·艾力"  # U+00B7, the register's separator


@pytest.mark.parametrize(
    "dot",
    [
        pytest.param("\u00b7", id="middle-dot"),
        pytest.param("\u2022", id="bullet"),
        pytest.param("\u30fb", id="katakana-middle-dot"),
        pytest.param("\uff65", id="half-width-katakana-middle-dot"),
        pytest.param("\u2027", id="hyphenation-point-big5"),
        pytest.param("\u2219", id="bullet-operator"),
        pytest.param("\u22c5", id="dot-operator"),
        pytest.param("\u0387", id="greek-ano-teleia"),
        pytest.param("\u2e31", id="word-separator-middle-dot"),
        pytest.param("\ua78f", id="sinological-dot"),
        pytest.param(".", id="full-stop"),
        pytest.param("\uff0e", id="full-width-full-stop"),
        pytest.param("。", id="ideographic-full-stop"),
        pytest.param(" . ", id="full-stop-with-spaces"),
    ],
)
def test_middle_dot_variants_in_a_uyghur_name_are_the_same(dot: str) -> None:
    assert same_name(f"买买提{dot}艾力", UYGHUR)
    assert same_name(f"買買提{dot}艾力", UYGHUR)
    assert normalise_name(f"买买提{dot}艾力") == UYGHUR


def test_middle_dot_as_legacy_decoders_give_it() -> None:
    # The 间隔号 of a GBK roster read as GB 2312, and Big5's dot (A145) read as Big5 or cp950.
    gbk = UYGHUR.encode("gbk")
    big5 = b"\xb6R\xb6R\xb4\xa3\xa1E\xa6\xe3\xa4O"  # 買買提‧艾力
    for text in (gbk.decode("gb2312"), big5.decode("big5"), big5.decode("cp950")):
        assert text != UYGHUR
        assert same_name(text, UYGHUR)


def test_latin_full_stop_is_not_a_middle_dot() -> None:
    assert normalise_name("J.SMITH") == "J.SMITH"
    assert not same_name("J.SMITH", "J·SMITH")
    assert normalise_name("JEAN\u2022PIERRE") == "JEAN·PIERRE"


# -- different names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param("张建国", "张建军", id="given-name"),
        pytest.param("李桂兰", "李桂英", id="given-name-2"),
        pytest.param("張建國", "张建军", id="traditional-and-different"),
        pytest.param("张建国", "张建", id="missing-character"),
        pytest.param("张建国", "建国张", id="order"),
        pytest.param("买买提艾力", UYGHUR, id="dot-missing"),
        pytest.param("买买提●艾力", UYGHUR, id="mask-is-not-a-dot"),
        pytest.param("买买提-艾力", UYGHUR, id="hyphen-is-not-a-dot"),
        pytest.param("JOSÉ", "JOSE", id="accent"),
        pytest.param("WANG LI", "WANG LIN", id="latin"),
        pytest.param("张建国", "", id="empty"),
        # Characters the 通用规范汉字表 keeps in names although t2s folds them.
        pytest.param("於丽", "于丽", id="surname-yu"),
        pytest.param("李乾", "李干", id="qian"),
        pytest.param("毕昇", "毕升", id="sheng"),
        pytest.param("氾明", "泛明", id="surname-fan"),
    ],
)
def test_names_that_really_differ_stay_different(a: str, b: str) -> None:
    assert not same_name(a, b)
    assert not same_name(b, a)
    assert normalise_name(a) != normalise_name(b)


def test_name_forms_of_folded_characters() -> None:
    assert normalise_name("麴建國") == "麹建国"
    assert normalise_name("鉅") == "钜"
    assert normalise_name("乾隆") == "乾隆"
    assert same_name("張乾", "张乾")


# -- empty names ----------------------------------------------------------------


def test_empty_name() -> None:
    assert normalise_name("") == ""
    assert same_name("", "")
    assert same_name("", " \u3000")


def test_undecodable_bytes_are_kept_and_the_rest_converted() -> None:
    # A roster read with errors="surrogateescape" carries lone surrogates, which OpenCC refuses.
    assert normalise_name("張\udcc8建國") == "张\udcc8建国"
    assert not same_name("張\udcc8建國", "张建国")


# -- properties ---------------------------------------------------------------------

NAME_LIKE = st.text(
    alphabet=st.one_of(
        st.sampled_from("张張建国國刘劉德华華李桂兰蘭於乾昇麴鉅薴苧买買提艾力"),
        st.sampled_from(".。．·•・･‧∙⋅ \u3000\u00a0\t\u200bＡａAa"),
        st.characters(min_codepoint=0x3400, max_codepoint=0x9FFF),
    ),
    max_size=12,
)


@settings(max_examples=500)
@given(st.one_of(st.text(), NAME_LIKE))
@example("\u0390")  # ΐ: upper-casing decomposes it, so NFKC must run again
@example("薴")  # t2s gives 苧, which t2s turns into 苎
@example("张. .。建国")
def test_normalise_name_is_idempotent(name: str) -> None:
    once = normalise_name(name)
    assert normalise_name(once) == once


@given(st.one_of(st.text(), NAME_LIKE))
def test_a_name_is_the_same_as_its_normal_form_and_itself(name: str) -> None:
    assert same_name(name, name)
    assert same_name(name, normalise_name(name))
    assert not any(c.isspace() for c in normalise_name(name))


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("张三", None),
        ("张\u3000三", None),  # an ideographic space: shown, normalised when compared
        ("JOHN F. KENNEDY", None),
        ("买买提·艾力", None),
        ("\ufeff周丽", "\ufeff"),
        ("周\u200b丽", "\u200b"),
        ("周丽\r", "\r"),
        ("周\t丽", "\t"),
        ("周\x01丽", "\x01"),
        ("周\u2028丽", "\u2028"),
        ("周\ue000丽", None),  # private use: a rare name character in some GB18030 systems
    ],
)
def test_hidden_characters_are_found_and_nothing_else(text: str, hidden: str | None) -> None:
    assert hidden_character(text) == hidden

"""The resident identity number (GB 11643-1999) and money in integer fen (docs/domain.md section 2)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from stdnum.cn import ric

from doudi.core.identity import ResidentId, mask, parse_resident_id
from doudi.core.money import (
    apply_ratio,
    fen_to_yuan,
    format_yuan,
    percent_to_basis_points,
    round_half_up,
    yuan_to_fen,
)
from tests.support import with_check_digit

# -- identity numbers: accepted ------------------------------------------------


@pytest.mark.parametrize(
    ("number", "birth", "sex"),
    [
        pytest.param("411323195003150014", date(1950, 3, 15), "male", id="xixia-1950-male"),
        pytest.param("11010519491231002X", date(1949, 12, 31), "female", id="beijing-check-X"),
        pytest.param(
            with_check_digit("12010420000229002"), date(2000, 2, 29), "female", id="leap-day"
        ),
        pytest.param(
            with_check_digit("65010219881103123"), date(1988, 11, 3), "male", id="xinjiang"
        ),
        pytest.param(
            with_check_digit("81000019900101002"), date(1990, 1, 1), "female", id="hong-kong"
        ),
        pytest.param(
            with_check_digit("83000019900101001"), date(1990, 1, 1), "male", id="taiwan-permit"
        ),
    ],
)
def test_valid_numbers_give_birth_date_and_sex(number: str, birth: date, sex: str) -> None:
    parsed = parse_resident_id(number)

    assert parsed == ResidentId(number, birth, sex)


def test_lower_case_x_check_digit_is_accepted_and_stored_upper_case() -> None:
    parsed = parse_resident_id("11010519491231002x")

    assert parsed.number == "11010519491231002X"
    assert parsed.birth_date == date(1949, 12, 31)


def test_xixia_code_created_in_1994_is_accepted_on_a_card_of_someone_born_in_1950() -> None:
    """A card keeps the code of the county where it was first issued (docs/domain.md section 2);
    stdnum's is_valid rejects this number because 411323 did not exist in 1950."""
    number = "411323195003150014"

    assert not ric.is_valid(number)  # what we deliberately do not copy
    assert parse_resident_id(number).birth_date == date(1950, 3, 15)


def test_a_baby_born_today_is_accepted() -> None:
    today = date(2024, 6, 1)

    parsed = parse_resident_id(with_check_digit("44078120240601001"), today=today)

    assert parsed.birth_date == today
    assert parsed.age_on(today) == 0


def test_age_is_completed_years_on_the_day() -> None:
    parsed = parse_resident_id("411323195003150014")

    assert parsed.age_on(date(2017, 3, 14)) == 66
    assert parsed.age_on(date(2017, 3, 15)) == 67


# -- identity numbers: rejected ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        pytest.param(411323195003150014, "string", id="not-a-string"),
        pytest.param(None, "string", id="none"),
        pytest.param("", "18 characters, not 0", id="empty"),
        pytest.param("41132319500315001", "18 characters, not 17", id="17-characters"),
        pytest.param("4113231950031500140", "18 characters, not 19", id="19-characters"),
        pytest.param("41132319500315001A", "17 digits and a check digit", id="letter-check-digit"),
        pytest.param("4113231950X3150014", "17 digits and a check digit", id="x-in-the-middle"),
        pytest.param("41132319500315-014", "17 digits and a check digit", id="hyphen"),
        pytest.param("411323195003150015", "wrong check digit 5", id="wrong-check-digit"),
        pytest.param("411323195003150014"[:17] + "X", "wrong check digit X", id="wrong-check-X"),
        pytest.param(with_check_digit("99132319500315001"), "province prefix 99", id="prefix-99"),
        pytest.param(with_check_digit("00132319500315001"), "province prefix 00", id="prefix-00"),
        pytest.param(with_check_digit("10010519500315001"), "province prefix 10", id="prefix-10"),
        pytest.param(with_check_digit("41132319500230001"), "19500230 is not a real", id="feb-30"),
        pytest.param(
            with_check_digit("41132319501301001"), "19501301 is not a real", id="month-13"
        ),
        pytest.param(with_check_digit("41132319500100001"), "19500100 is not a real", id="day-0"),
        pytest.param(
            with_check_digit("41132320230229001"), "20230229 is not a real", id="feb-29-2023"
        ),
        pytest.param(with_check_digit("41132318790101001"), "too far in the past", id="born-1879"),
    ],
)
def test_rejected_numbers_say_why(text: object, phrase: str) -> None:
    with pytest.raises(ValueError, match=re.escape(phrase)):
        parse_resident_id(text)


def test_a_birth_date_after_today_is_rejected() -> None:
    number = with_check_digit("44078120240602001")

    with pytest.raises(ValueError, match="in the future"):
        parse_resident_id(number, today=date(2024, 6, 1))
    assert parse_resident_id(number, today=date(2024, 6, 2)).birth_date == date(2024, 6, 2)


def test_a_birth_date_after_the_real_today_is_rejected_by_default() -> None:
    next_year = date.today().year + 1

    with pytest.raises(ValueError, match="in the future"):
        parse_resident_id(with_check_digit(f"411323{next_year}0101001"))


@pytest.mark.parametrize(
    "digits",
    [
        pytest.param(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"), id="arabic-indic"),
        pytest.param(str.maketrans("0123456789", "０１２３４５６７８９"), id="full-width"),
    ],
)
def test_non_ascii_digits_are_rejected_or_normalised(digits: dict[int, str]) -> None:
    number = "411323195003150014"
    odd = number[:2] + number[2:17].translate(digits) + number[17]

    try:
        parsed = parse_resident_id(odd)
    except ValueError:
        return
    assert parsed.number == number


# -- masking -------------------------------------------------------------------


def test_mask_hides_the_birth_date_and_keeps_the_region_and_the_last_four() -> None:
    assert mask("11010519491231002X") == "110105********002X"
    assert mask(parse_resident_id("411323195003150014").number) == "411323********0014"


@pytest.mark.parametrize("text", ["", "4113231950", "4113231950031500149"], ids=["0", "10", "19"])
def test_mask_of_a_malformed_number_shows_nothing_of_it(text: str) -> None:
    assert mask(text) == "*" * len(text)


# -- money: rounding -----------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        pytest.param(0, 10, 0, id="zero"),
        pytest.param(4, 10, 0, id="0.4-down"),
        pytest.param(5, 10, 1, id="0.5-up"),
        pytest.param(15, 10, 2, id="1.5-up"),
        pytest.param(25, 10, 3, id="2.5-up-not-to-even"),
        pytest.param(35, 10, 4, id="3.5-up"),
        pytest.param(249, 100, 2, id="2.49-down"),
        pytest.param(250, 100, 3, id="2.50-up"),
        pytest.param(1, 3, 0, id="third-down"),
        pytest.param(2, 3, 1, id="two-thirds-up"),
        pytest.param(7, 7, 1, id="exact"),
        pytest.param(10**30 + 5, 10, 10**29 + 1, id="huge-exact-integer"),
    ],
)
def test_round_half_up(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up(numerator, denominator) == expected


@pytest.mark.parametrize(("numerator", "denominator"), [(-5, 10), (5, 0), (5, -10)])
def test_round_half_up_refuses_negative_numerators_and_non_positive_denominators(
    numerator: int, denominator: int
) -> None:
    with pytest.raises(ValueError, match="non-negative numerator"):
        round_half_up(numerator, denominator)


@pytest.mark.parametrize(
    ("amount", "ratio", "expected"),
    [
        pytest.param(5000000 - 50000, 8000, 3960000, id="worked-example-basic"),
        pytest.param(1, 5000, 1, id="half-a-fen-rounds-up"),
        pytest.param(1, 4999, 0, id="just-under-half-a-fen-rounds-down"),
        pytest.param(3, 5000, 2, id="1.5-fen-up"),
        pytest.param(12345, 10000, 12345, id="full-ratio"),
        pytest.param(12345, 0, 0, id="zero-ratio"),
        pytest.param(333, 7250, 241, id="72.5-percent-of-333-is-241.425"),
        pytest.param(10, 7250, 7, id="72.5-percent-of-10-is-7.25"),
        pytest.param(2, 7250, 1, id="72.5-percent-of-2-is-1.45"),
    ],
)
def test_apply_ratio_rounds_half_up_to_the_fen(amount: int, ratio: int, expected: int) -> None:
    assert apply_ratio(amount, ratio) == expected


# -- money: yuan and fen -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        pytest.param(0, 0, id="int-zero"),
        pytest.param(150000, 15000000, id="int"),
        pytest.param("12.50", 1250, id="two-decimals"),
        pytest.param("12.5", 1250, id="one-decimal"),
        pytest.param("0.29", 29, id="0.29-exact-where-float-gives-28.999"),
        pytest.param("0.01", 1, id="one-fen"),
        pytest.param(" 300 ", 30000, id="surrounding-spaces"),
        pytest.param("1e2", 10000, id="exponent"),
        pytest.param("12345678901234567.89", 1234567890123456789, id="beyond-float-precision"),
    ],
)
def test_yuan_to_fen_is_exact(value: object, fen: int) -> None:
    assert yuan_to_fen(value) == fen


def test_yuan_to_fen_is_exact_where_a_float_would_not_be() -> None:
    assert int(0.29 * 100) == 28  # the trap
    assert yuan_to_fen("0.29") == 29
    assert yuan_to_fen("1.15") == 115


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        pytest.param(12.5, "not 12.5", id="float"),
        pytest.param(12.0, "not 12.0", id="float-whole"),
        pytest.param(True, "not True", id="bool"),
        pytest.param("12.505", "not a whole number of fen", id="three-decimals"),
        pytest.param("0.001", "not a whole number of fen", id="tenth-of-a-fen"),
        pytest.param("twelve", "not a number", id="words"),
        pytest.param("", "not a number", id="empty"),
        pytest.param("NaN", "not a finite number", id="nan"),
        pytest.param("Infinity", "not a finite number", id="infinity"),
        pytest.param(None, "must be a number", id="none"),
        pytest.param([12], "must be a number", id="list"),
    ],
)
def test_yuan_to_fen_rejects_floats_and_fractions_of_a_fen(value: object, phrase: str) -> None:
    with pytest.raises(ValueError, match=re.escape(phrase)):
        yuan_to_fen(value)


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        pytest.param(0, "0.00", id="zero"),
        pytest.param(1, "0.01", id="one-fen"),
        pytest.param(10, "0.10", id="ten-fen"),
        pytest.param(100, "1.00", id="one-yuan"),
        pytest.param(12345, "123.45", id="plain"),
        pytest.param(15000000, "150000.00", id="no-thousands-separator"),
        pytest.param(-5, "-0.05", id="negative-below-a-yuan"),
        pytest.param(-12345, "-123.45", id="negative"),
    ],
)
def test_fen_to_yuan_writes_two_decimals(fen: int, text: str) -> None:
    assert fen_to_yuan(fen) == text


@pytest.mark.parametrize("fen", [0, 1, 99, 100, 101, 12345, 987654321])
def test_fen_to_yuan_and_back_is_the_identity(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        pytest.param(0, "0.00", id="zero"),
        pytest.param(5, "0.05", id="fen"),
        pytest.param(123456, "1,234.56", id="thousands"),
        pytest.param(1_500_000_000, "15,000,000.00", id="millions"),
        pytest.param(-123456, "-1,234.56", id="negative"),
    ],
)
def test_format_yuan_is_for_people_to_read(fen: int, text: str) -> None:
    assert format_yuan(fen) == text


# -- money: percentages --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "points"),
    [
        pytest.param(80, 8000, id="int"),
        pytest.param(0, 0, id="zero"),
        pytest.param(100, 10000, id="hundred"),
        pytest.param("72.5", 7250, id="one-decimal"),
        pytest.param("72.55", 7255, id="two-decimals"),
        pytest.param("0.01", 1, id="one-basis-point"),
        pytest.param(-20, -2000, id="negative-points-for-adjustments"),
    ],
)
def test_percent_to_basis_points(value: object, points: int) -> None:
    assert percent_to_basis_points(value) == points


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        pytest.param("72.555", "finer than a basis point", id="three-decimals"),
        pytest.param(80.5, "not 80.5", id="float"),
        pytest.param(False, "not False", id="bool"),
        pytest.param("eighty", "not a number", id="words"),
        pytest.param("inf", "not a finite number", id="infinity"),
    ],
)
def test_percent_to_basis_points_rejects(value: object, phrase: str) -> None:
    with pytest.raises(ValueError, match=re.escape(phrase)):
        percent_to_basis_points(value)

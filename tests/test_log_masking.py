"""Identity numbers in log lines: masked wherever they stand, and nothing else masked.

A run of 18 characters (17 digits and a digit or X) not inside a longer run of
digits is masked when it is a plausible identity number (a known province
prefix, a real birth date, the right check digit), whatever letters or
punctuation stand next to it: a visit id ``ZY<number>``, a path segment, a
query parameter. An 18-digit amount or request id that is not a valid number
stays as it is.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date

import pytest
import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from doudi.common.logs import LogFormat, formatter, mask_identity_numbers
from doudi.core.identity import PROVINCE_PREFIXES, mask, resident_id_number
from tests.support import with_check_digit

ZHANG = "411323195003150014"
BEIJING_X = "11010519491231002X"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        pytest.param(f"person {ZHANG} settled", "person 411323********0014 settled", id="alone"),
        pytest.param(f"visit ZY{ZHANG} refused", "visit ZY411323********0014 refused", id="ZY"),
        pytest.param(f"visit {ZHANG}a", "visit 411323********0014a", id="letter-after"),
        pytest.param(
            f"GET /v1/persons/{ZHANG}/statuses 404",
            "GET /v1/persons/411323********0014/statuses 404",
            id="path-segment",
        ),
        pytest.param(f"?id={ZHANG}&x=1", "?id=411323********0014&x=1", id="query"),
        pytest.param(f"id={BEIJING_X}.", "id=110105********002X.", id="check-X"),
        pytest.param("id=11010519491231002x", "id=110105********002x", id="check-lower-x"),
        pytest.param(f"{ZHANG}_{BEIJING_X}", "411323********0014_110105********002X", id="two"),
        pytest.param(f"身份证{ZHANG}，", "身份证411323********0014，", id="chinese"),
    ],
)
def test_a_valid_number_is_masked_whatever_stands_next_to_it(line: str, masked: str) -> None:
    assert mask_identity_numbers(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("total_fen=123456789012345678", id="amount-18-digits"),
        pytest.param("paid 900000000000000000 fen", id="amount-round"),
        pytest.param(f"request {ZHANG[:-1]}5 failed", id="wrong-check-digit"),
        pytest.param("id 991323195003150014", id="unknown-province"),
        pytest.param(f"id {with_check_digit('41132319501315001')}", id="month-13"),
        pytest.param(f"id {with_check_digit('41132330000101001')}", id="born-in-the-future"),
        pytest.param(f"request 7{ZHANG}", id="inside-a-longer-digit-run-before"),
        pytest.param(f"request {ZHANG}7", id="inside-a-longer-digit-run-after"),
        pytest.param(f"hash {ZHANG}{ZHANG}", id="two-glued"),
        pytest.param("12345678901234567X", id="x-but-invalid"),
    ],
)
def test_what_is_not_a_valid_number_is_left_as_it_is(line: str) -> None:
    assert mask_identity_numbers(line) == line


def _record_with_a_traceback() -> logging.LogRecord:
    try:
        raise ValueError(f"bad visit ZY{ZHANG}")
    except ValueError:
        record = logging.LogRecord(
            "doudi", logging.INFO, __file__, 1, "GET /v1/persons/%s", (ZHANG,), None
        )
        record.exc_info = sys.exc_info()
    return record


def test_the_text_formatter_masks_the_message_its_arguments_and_the_traceback() -> None:
    line = formatter("text").format(_record_with_a_traceback())
    assert ZHANG not in line
    assert line.count("411323********0014") == 2
    assert "GET /v1/persons/411323********0014" in line.splitlines()[0]


def test_a_json_line_parses_and_masks_the_message_its_arguments_and_the_traceback() -> None:
    line = formatter("json").format(_record_with_a_traceback())
    assert "\n" not in line.strip("\n"), "one line per record"
    fields = json.loads(line)
    assert fields["event"] == "GET /v1/persons/411323********0014"
    assert fields["level"] == "info"
    assert fields["logger"] == "doudi"
    assert "ValueError: bad visit ZY411323********0014" in fields["exception"]
    assert ZHANG not in line


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_extra_fields_and_the_request_id_are_masked_in_either_format(log_format: LogFormat) -> None:
    record = logging.LogRecord("doudi.x", logging.WARNING, __file__, 1, "sent", (), None)
    # Fields a call site gives (extra=), as text and as a number, and a key.
    record.person = f"person {ZHANG}"
    record.number = int(ZHANG)
    record.__dict__[f"k{ZHANG}"] = "v"
    token = structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        line = formatter(log_format).format(record)
    finally:
        structlog.contextvars.reset_contextvars(**token)
    assert ZHANG not in line
    assert line.count("411323********0014") == 3
    assert "r-1" in line
    if log_format == "json":
        fields = json.loads(line)
        assert fields["request_id"] == "r-1"
        assert fields["person"] == "person 411323********0014"


@pytest.mark.parametrize("escaped", ["\x10", "\x01", '"', "\\", "\n"])
def test_a_json_escape_never_glues_a_digit_to_a_number(escaped: str) -> None:
    """JSON writes a control character as ``\\u0010``: a number after it must not become
    part of a longer run of digits (and so escape the line's masking)."""
    record = logging.LogRecord("doudi", logging.INFO, __file__, 1, "%s", (escaped + ZHANG,), None)
    line = formatter("json").format(record)
    assert ZHANG not in line
    assert json.loads(line)["event"] == escaped + "411323********0014"


@settings(max_examples=100, deadline=None)
@given(before=st.text(max_size=20), number=st.just(ZHANG), after=st.text(max_size=20))
def test_a_json_line_always_parses_and_masks_a_number_standing_alone(
    before: str, number: str, after: str
) -> None:
    message = f"{before} {number} {after}"
    line = formatter("json").format(
        logging.LogRecord("doudi", logging.INFO, __file__, 1, "%s", (message,), None)
    )
    assert ZHANG not in line
    assert json.loads(line)["event"] == mask_identity_numbers(message)


# -- properties ------------------------------------------------------------------


@st.composite
def identity_numbers(draw: st.DrawFn) -> str:
    """Valid numbers: a known province, a real birth date up to today, the check digit."""
    province = draw(st.sampled_from(sorted(PROVINCE_PREFIXES)))
    rest_of_area = draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
    born = draw(st.dates(min_value=date(1880, 1, 1), max_value=date.today()))
    sequence = draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    number = with_check_digit(f"{province}{rest_of_area}{born:%Y%m%d}{sequence}")
    return number if draw(st.booleans()) else number.lower()


# Text around a number: anything, but no digit at the seam (that would make it part of a
# longer run of digits, not a number standing on its own).
surroundings = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


def _not_a_digit_at(text: str, index: int) -> bool:
    return not text or not text[index].isascii() or not text[index].isdigit()


@settings(max_examples=200, deadline=None)
@given(before=surroundings, number=identity_numbers(), after=surroundings)
@example(before="visit ZY", number=ZHANG, after="")
@example(before="/v1/persons/", number=BEIJING_X, after="/statuses")
def test_a_valid_number_standing_anywhere_is_masked_and_the_rest_kept(
    before: str, number: str, after: str
) -> None:
    if not (_not_a_digit_at(before, -1) and _not_a_digit_at(after, 0)):
        before, after = before + " ", " " + after
    line = before + number + after
    masked = mask_identity_numbers(line)
    assert number not in masked
    assert masked == mask_identity_numbers(before) + mask(number) + mask_identity_numbers(after)


@settings(max_examples=200, deadline=None)
@given(
    before=surroundings,
    digits=st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True),
    after=surroundings,
)
@example(before="total_fen=", digits="123456789012345678", after="")
def test_an_eighteen_character_run_that_is_not_a_valid_number_is_kept(
    before: str, digits: str, after: str
) -> None:
    try:
        resident_id_number(digits)
    except ValueError:
        pass
    else:
        return  # a valid number by chance (province, date and check digit): masked, above
    line = f"{before} {digits} {after}"
    masked = mask_identity_numbers(line)
    assert digits in masked
    assert masked == f"{mask_identity_numbers(before)} {digits} {mask_identity_numbers(after)}"

"""Every status a roster command can meet, in words: never the code's name."""

from __future__ import annotations

import grpc
import pytest

from doudi.cli.rpc_errors import sentence
from doudi.common.errors import DecodedStatus, FieldViolation
from doudi.core.identity import mask
from tests.support import with_check_digit

HUB = ("the datashare hub", "127.0.0.1:50052")
CODES = [code for code in grpc.StatusCode if code != grpc.StatusCode.OK]


def status(code: grpc.StatusCode, message: str, *violations: FieldViolation) -> DecodedStatus:
    return DecodedStatus(code, message, code.name, violations)


@pytest.mark.parametrize("code", CODES, ids=lambda code: code.name)
def test_no_status_is_named_by_its_code(code: grpc.StatusCode) -> None:
    text = sentence(status(code, "something went wrong"), *HUB)
    assert code.name not in text
    assert "_" not in text
    assert text[0].islower() or text[0].isdigit()


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, "no comparison 99", "comparison 99 does not exist"),
        (
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses",
            "the datashare hub at 127.0.0.1:50052 could not be reached (is it running, and is "
            "that its address?)",
        ),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "Deadline Exceeded",
            "the datashare hub at 127.0.0.1:50052 did not answer in time",
        ),
        (
            grpc.StatusCode.UNAUTHENTICATED,
            "unknown token",
            "the datashare hub at 127.0.0.1:50052 did not accept the key: unknown token",
        ),
        (
            grpc.StatusCode.PERMISSION_DENIED,
            "agency callers may not call this method",
            "the datashare hub at 127.0.0.1:50052 refused the request: agency callers may not "
            "call this method",
        ),
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            "no policy pack of 540400 is in force in 2031",
            "the datashare hub at 127.0.0.1:50052 cannot do that now: no policy pack of 540400 "
            "is in force in 2031",
        ),
        (
            grpc.StatusCode.ABORTED,
            "the roster's stream was abandoned",
            "the datashare hub at 127.0.0.1:50052 gave up the request part way (the roster's "
            "stream was abandoned); try again",
        ),
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max",
            "the datashare hub at 127.0.0.1:50052 is overloaded or the request is too large "
            "(Received message larger than max); try again later",
        ),
        (
            grpc.StatusCode.UNIMPLEMENTED,
            "Method not found!",
            "127.0.0.1:50052 does not answer as the datashare hub: is that the right address?",
        ),
        (
            grpc.StatusCode.INTERNAL,
            "internal error; see the service log",
            "the datashare hub at 127.0.0.1:50052 failed on the request: internal error; see the "
            "service log",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, grpc.StatusCode) else "",
)
def test_each_status_in_words(code: grpc.StatusCode, message: str, expected: str) -> None:
    assert sentence(status(code, message), *HUB) == expected


def test_field_violations_are_named_and_identity_numbers_masked() -> None:
    number = with_check_digit("41132319500315001")
    invalid = status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "header.region: '999999' is not a pooling region",
        FieldViolation("header.region", "'999999' is not a pooling region"),
        FieldViolation("rows[0].person_id", f"{number} is on an earlier row"),
    )
    assert sentence(invalid, *HUB, "the roster") == (
        "the datashare hub at 127.0.0.1:50052 refused the roster as invalid: header.region: "
        f"'999999' is not a pooling region; rows[0].person_id: {mask(number)} is on an "
        "earlier row"
    )

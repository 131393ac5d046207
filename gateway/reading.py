"""Reading what a hospital sends: the body (JSON, bounded) and the bill in it.

The visit is read by :func:`doudi.core.cases.parse_visit`, the reader ``doudi
calc`` uses, so a bill gets the same errors, with the same field paths, here
and on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import Request

from doudi.common.visits import visit_to_proto
from doudi.core.cases import load_json, parse_visit
from doudi.core.dates import parse_date
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.settlement.v1 import settlement_pb2
from gateway.problems import Problem

JSON_MEDIA_TYPE = "application/json"
BILL_FIELDS = ("person_id", "visit")
OPTIONAL_BILL_FIELDS = ("pay_from_personal_account", "admission_id")
ADMISSION_FIELDS = ("person_id", "admitted", "referred")
MAX_ADMISSION_ID_LENGTH = 36


@dataclass(frozen=True, slots=True)
class Bill:
    """A bill as the settlement service takes it: the person, the checked visit and the
    admission it is settled against ("" none)."""

    person_id: str
    visit: settlement_pb2.Visit
    pay_from_personal_account: bool = False
    """The employee agrees that their personal account pays the self-pay."""
    admission_id: str = ""


@dataclass(frozen=True, slots=True)
class AdmissionAsk:
    """An admission as ``POST /v1/admissions`` reads it."""

    person_id: str
    admitted: date
    referred: bool


async def read_json(request: Request, limit: int) -> Any:
    """The body as strict JSON; 415 unless it is JSON, 413 as soon as it passes ``limit``
    bytes (declared or streamed), 400 unless it parses."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise Problem(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"send the body as {JSON_MEDIA_TYPE}",
            headers={"Accept": JSON_MEDIA_TYPE},
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():  # chunked bodies declare no length: count them
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    try:
        return load_json(b"".join(chunks).decode("utf-8"))
    except UnicodeDecodeError:
        raise Problem(400, "MALFORMED_JSON", "the body is not UTF-8 text") from None
    except InvalidInput as error:
        raise Problem(400, "MALFORMED_JSON", str(error), "Malformed JSON") from None


def _too_large(limit: int) -> Problem:
    return Problem(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes")


def read_bill(data: Any, hospital_level: int) -> Bill:
    """``{"person_id": ..., "visit": {...}}`` checked; ``hospital_level`` is the calling
    hospital's registered level (0, a pharmacy, has none)."""
    _known_fields(data, BILL_FIELDS, OPTIONAL_BILL_FIELDS)
    resident = read_resident_id(data["person_id"], "person_id")
    visit = parse_visit(data["visit"], "visit", hospital_level=hospital_level or None)
    pay = data.get("pay_from_personal_account", False)
    if not isinstance(pay, bool):
        raise InvalidInput("pay_from_personal_account", "true or false")
    admission_id = data.get("admission_id")
    if admission_id is None:
        return Bill(resident.number, visit_to_proto(visit), pay)
    if not isinstance(admission_id, str) or not 0 < len(admission_id) <= MAX_ADMISSION_ID_LENGTH:
        raise InvalidInput(
            "admission_id", f"an admission's id: 1 to {MAX_ADMISSION_ID_LENGTH} characters"
        )
    return Bill(resident.number, visit_to_proto(visit), pay, admission_id)


def read_admission(data: Any) -> AdmissionAsk:
    """``{"person_id": ..., "admitted": "YYYY-MM-DD", "referred": false}`` checked
    (``referred`` may be left out: false)."""
    _known_fields(data, ADMISSION_FIELDS[:2], ADMISSION_FIELDS[2:])
    resident = read_resident_id(data["person_id"], "person_id")
    try:
        admitted = parse_date(data["admitted"])
    except ValueError as error:
        raise InvalidInput("admitted", str(error)) from None
    referred = data.get("referred", False)
    if not isinstance(referred, bool):
        raise InvalidInput("referred", "expected true or false")
    return AdmissionAsk(resident.number, admitted, referred)


def _known_fields(data: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """InvalidInput unless ``data`` is an object of the ``required`` fields (not null) and
    perhaps some ``optional`` ones."""
    if not isinstance(data, dict):
        raise InvalidInput("", f"expected a JSON object with {', '.join(required)}")
    for key in data:
        if key not in required and key not in optional:
            raise InvalidInput(key, f"unknown field (expected {', '.join((*required, *optional))})")
    for key in required:
        if data.get(key) is None:
            raise InvalidInput(key, "missing required field")

"""Hostile input to every gRPC method of the four services, built from their descriptors.

Each service's descriptor is walked, every method (unary and streaming), and
each is sent, through the real platform (demo data loaded):

- messages generated from the request's message descriptor: every field of its
  type, at random or left unset, with extreme integers, long and odd unicode
  strings, unknown enum numbers, nested messages and repeated fields, and for
  the fields that name things (a person, a region, a hospital, a date) now and
  then a value the platform knows, so that calls get past the first check;
- raw random bytes as the request body (a generic call with no serializer);

as the platform (the internal token), an agency and a hospital. Every answer
must be OK or a deliberate refusal (:data:`DELIBERATE`), never UNKNOWN or
INTERNAL (a server error), and every service must still answer its health
check afterwards. The runs are derandomised and bounded (a fixed number of
examples per method), so the suite runs the same in every ``make test``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    FileDescriptor,
    MethodDescriptor,
)
from google.protobuf.message import Message
from google.type import date_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doudi.assistance.v1 import assistance_pb2
from doudi.cli import demo
from doudi.common.errors import MAX_MESSAGE_BYTES, decode_status
from doudi.common.grpc_client import serving_status
from doudi.datashare.v1 import datashare_pb2
from doudi.enrollment.v1 import enrollment_pb2, enrollment_pb2_grpc
from doudi.settlement.v1 import settlement_pb2
from tests.conftest import BACKENDS
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, bearer
from tests.support import business_day, with_check_digit

YEAR = business_day().year
FILES: dict[str, FileDescriptor] = {
    "enrollment": enrollment_pb2.DESCRIPTOR,
    "datashare": datashare_pb2.DESCRIPTOR,
    "settlement": settlement_pb2.DESCRIPTOR,
    "assistance": assistance_pb2.DESCRIPTOR,
}
CALLERS = {
    "internal": INTERNAL,
    "agency": bearer(demo.POVERTY_OFFICE_KEY),
    "hospital": bearer(demo.HOSPITALS[0].api_key),
    "unknown": bearer("not-a-key"),
}
KNOWN_CALLERS = {
    "enrollment": ["internal"],
    "datashare": ["agency", "internal"],
    "settlement": ["hospital", "internal"],
    "assistance": ["internal"],
}
"""Who each service knows: generated messages are sent as one of them (a stranger's call
ends at the token, before the message is read); raw bytes as anyone."""
DELIBERATE = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""What a service may answer hostile input: OK or a refusal it chose."""
CALL_TIMEOUT_SECONDS = 30.0
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
RAW = settings(FUZZ, max_examples=20)


@dataclass(frozen=True)
class Method:
    service: str
    """The service's short name (``settlement``), whose process answers."""
    descriptor: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def request_class(self) -> type[Message]:
        return message_factory.GetMessageClass(self.descriptor.input_type)

    def __str__(self) -> str:
        return f"{self.descriptor.containing_service.name}.{self.descriptor.name}"


METHODS = [
    Method(name, method)
    for name, file in FILES.items()
    for service in file.services_by_name.values()
    for method in service.methods
]


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The platform with the demo data on each backend, for the module's tests."""
    with demo_platforms(tmp_path_factory, "fuzz", YEAR) as on:
        yield on(request.param)


# -- values of every field type ---------------------------------------------------------
#
# A message is drawn in one of two moods. Hostile: every field any value of its type
# (extreme integers, odd and long strings, unknown enum numbers, dates that are not). Or
# plausible: the values a caller would send (small numbers, short ids, named enum values,
# real dates of these years, persons, regions and hospitals the platform knows), so that
# calls get past the first check to the handlers' inner work; a field now and then unset.

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Any integer of the range, its extremes and the small ones more often."""
    edges = [value for value in (low, high, 0, -1, 1, 2**31 - 1, 2**53 + 1) if low <= value <= high]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(max(low, -1000), min(high, 10**9)),
        st.integers(low, high),
    )


short_ids = st.from_regex(r"[A-Za-z0-9-]{1,16}", fullmatch=True)
# Any character a protobuf string can carry (no lone surrogates: not UTF-8): control
# characters, NUL, combining marks, right-to-left text, emoji, CJK; and long runs.
hostile_strings = st.one_of(
    short_ids,
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.sampled_from(["", " ", "\x00", "'; DROP TABLE persons; --", "%", "_", "\u202e", "𠀀" * 3]),
    st.tuples(st.sampled_from(["x", "名", "\x00", "9"]), st.integers(1_000, 70_000)).map(
        lambda pair: pair[0] * pair[1]
    ),
)


def _person_ids() -> st.SearchStrategy[str]:
    known = [person.person_id for person in demo.PERSONS]
    made = st.builds(
        lambda region, born, serial: with_check_digit(f"{region}{born:%Y%m%d}{serial:03d}"),
        st.sampled_from(["411323", "440781", "540400", "120101"]),
        st.dates(date(1920, 1, 1), date(YEAR - 1, 12, 31)),
        st.integers(0, 999),
    )
    return st.one_of(st.sampled_from(known), made)


# What a plausible caller sends in the fields that name something.
KNOWN: dict[str, st.SearchStrategy[Any]] = {
    "person_id": _person_ids(),
    "person_ids": _person_ids(),  # ScreenSettlements
    "household_id": st.sampled_from([person.household_id for person in demo.PERSONS]),
    "region": st.sampled_from(["411323", "440781", "540400", "120000"]),
    "hospital_id": st.sampled_from([hospital.hospital_id for hospital in demo.HOSPITALS]),
    "year": st.integers(YEAR - 2, YEAR + 1),
    "page_size": st.integers(0, 1000),
    "comparison_id": st.integers(1, 5),
    "submission_id": st.integers(1, 5),
    "level": st.integers(0, 3),
    "line": st.integers(1, 10),
    "name": st.sampled_from(["张建国", "李桂兰", "Wang Fang", "买买提·艾力"]),
}


def dates(*, plausible: bool) -> st.SearchStrategy[Message]:
    real = st.dates(date(YEAR - 3, 1, 1), date(YEAR, 12, 31)).map(
        lambda day: date_pb2.Date(year=day.year, month=day.month, day=day.day)
    )
    if plausible:
        return real
    number = integers(-(2**31), 2**31 - 1)
    return st.one_of(real, st.builds(date_pb2.Date, year=number, month=number, day=number))


def scalar_values(field: FieldDescriptor, *, plausible: bool) -> st.SearchStrategy[Any]:
    """A hostile value of the field's type; a plausible one, but one time in eight a hostile
    one all the same (a good request with one bad field)."""
    if not plausible:
        return _scalar_values(field, plausible=False)
    return st.integers(0, 7).flatmap(
        lambda draw: _scalar_values(field, plausible=draw < 7)  # type: ignore[arg-type]
    )


def _scalar_values(field: FieldDescriptor, *, plausible: bool) -> st.SearchStrategy[Any]:
    kind = field.type
    if plausible and field.name in KNOWN:
        return KNOWN[field.name]
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return st.integers(max(low, 0), 10**7) if plausible else integers(low, high)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    if kind == FieldDescriptor.TYPE_STRING:
        return short_ids if plausible else hostile_strings
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        named = [value.number for value in field.enum_type.values]
        if plausible:
            return st.sampled_from([number for number in named if number] or named)
        # Open enums (proto3): a number the enum does not name arrives as it is.
        return st.one_of(st.sampled_from(named), integers(-(2**31), 2**31 - 1))
    raise AssertionError(f"{field.full_name}: unexpected type {kind}")


def field_values(field: FieldDescriptor, depth: int, *, plausible: bool) -> st.SearchStrategy[Any]:
    """A value for ``field``: a list for a repeated field, a dict for a map."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = (field.message_type.fields_by_name[name] for name in ("key", "value"))
        return st.dictionaries(
            single_values(key, depth, plausible=plausible),
            single_values(value, depth, plausible=plausible),
            max_size=3,
        )
    single = single_values(field, depth, plausible=plausible)
    if field.is_repeated:
        return st.lists(single, min_size=1 if plausible else 0, max_size=3 if depth else 5)
    return single


def single_values(field: FieldDescriptor, depth: int, *, plausible: bool) -> st.SearchStrategy[Any]:
    if field.message_type is None:
        return scalar_values(field, plausible=plausible)
    if field.message_type.full_name == "google.type.Date":
        return dates(plausible=plausible)
    if plausible and field.message_type.full_name == "doudi.settlement.v1.Visit":
        return visits(depth + 1)
    return messages(field.message_type, depth + 1, plausible=plausible)


def visits(depth: int) -> st.SearchStrategy[Message]:
    """Visits a hospital would send: a stay with its admission and discharge days, or an
    outpatient visit or purchase with its day, of this year; plausible items."""
    visit = settlement_pb2.Visit
    days = st.dates(date(YEAR, 1, 1), business_day())
    items = st.lists(
        messages(settlement_pb2.Item.DESCRIPTOR, depth + 1, plausible=True), max_size=4
    )
    stays = st.builds(
        lambda visit_id, first, nights, items: visit(
            visit_id=visit_id,
            visit_type=settlement_pb2.VISIT_TYPE_INPATIENT,
            admitted=date_pb2.Date(year=first.year, month=first.month, day=first.day),
            discharged=date_pb2.Date(year=first.year, month=first.month, day=first.day),
            items=items,
        ),
        short_ids,
        days,
        st.just(0),
        items,
    )
    others = st.builds(
        lambda visit_id, kind, day, items: visit(
            visit_id=visit_id,
            visit_type=kind,
            date=date_pb2.Date(year=day.year, month=day.month, day=day.day),
            items=items,
        ),
        short_ids,
        st.sampled_from(
            [
                settlement_pb2.VISIT_TYPE_OUTPATIENT_CHRONIC,
                settlement_pb2.VISIT_TYPE_OUTPATIENT_MAJOR,
                settlement_pb2.VISIT_TYPE_OUTPATIENT_GENERAL,
                settlement_pb2.VISIT_TYPE_PHARMACY,
            ]
        ),
        days,
        items,
    )
    return st.one_of(stays, others)


_MAX_DEPTH = 4
_UNSET = object()


def requests(descriptor: Descriptor) -> st.SearchStrategy[Message]:
    """Requests of ``descriptor``, plausible or hostile."""
    return st.one_of(messages(descriptor, plausible=True), messages(descriptor, plausible=False))


def messages(
    descriptor: Descriptor, depth: int = 0, *, plausible: bool
) -> st.SearchStrategy[Message]:
    """Messages of ``descriptor``: each field set to a value of its type, or left unset
    (one time in ten when plausible, in three when not); nested down to a few levels."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth >= _MAX_DEPTH:
        return st.just(cls())
    odds = 9 if plausible else 2
    fields = {
        field.name: st.deferred(
            lambda field=field: maybe(field_values(field, depth, plausible=plausible), odds)  # type: ignore[misc]
        )
        for field in descriptor.fields
    }
    return st.fixed_dictionaries(fields).map(lambda values: build(cls, values))


def maybe(values: st.SearchStrategy[Any], odds: int) -> st.SearchStrategy[Any]:
    """A value ``odds`` times out of ``odds + 1``, else none (the field left unset)."""
    return st.tuples(st.integers(0, odds), values).map(
        lambda pair: pair[1] if pair[0] < odds else _UNSET
    )


def build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        if value is _UNSET:
            continue
        field = cls.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, name)
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            getattr(message, name).extend(value)
        elif isinstance(value, Message):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


# -- calling ------------------------------------------------------------------------------


def call(
    platform: Platform, method: Method, requests: list[Any], caller: str, *, raw: bool
) -> tuple[grpc.StatusCode, str]:
    """Send ``requests`` (one, or a stream) to the method as ``caller``; answer the status."""
    channel = platform.services[method.service].channel()
    serializer = None if raw else method.request_class.SerializeToString
    descriptor = method.descriptor
    kwargs: dict[str, Any] = {"metadata": CALLERS[caller], "timeout": CALL_TIMEOUT_SECONDS}
    try:
        if descriptor.client_streaming and descriptor.server_streaming:
            calling = channel.stream_stream(method.path, request_serializer=serializer)
            for _ in calling(iter(requests), **kwargs):
                pass
        elif descriptor.client_streaming:
            channel.stream_unary(method.path, request_serializer=serializer)(
                iter(requests), **kwargs
            )
        elif descriptor.server_streaming:
            for _ in channel.unary_stream(method.path, request_serializer=serializer)(
                requests[0], **kwargs
            ):
                pass
        else:
            channel.unary_unary(method.path, request_serializer=serializer)(requests[0], **kwargs)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def requests_for(method: Method, one: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """One request, or a stream of a few for a client-streaming method."""
    if method.descriptor.client_streaming:
        return st.lists(one, max_size=4)
    return st.lists(one, min_size=1, max_size=1)


def assert_every_service_serves(platform: Platform) -> None:
    for name, service in platform.services.items():
        with grpc.insecure_channel(service.address) as channel:
            assert serving_status(channel, timeout=5) == "SERVING", (name, service.log()[-3000:])


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_generated_messages_get_a_deliberate_answer(platform: Platform, method: Method) -> None:
    @FUZZ
    @given(
        requests=requests_for(method, requests(method.descriptor.input_type)),
        caller=st.sampled_from(KNOWN_CALLERS[method.service]),
    )
    def fuzz(requests: list[Message], caller: str) -> None:
        code, details = call(platform, method, requests, caller, raw=False)
        assert code in DELIBERATE, (str(method), caller, code, details, requests)

    fuzz()
    assert_every_service_serves(platform)


@pytest.mark.parametrize("method", METHODS, ids=str)
def test_raw_bytes_get_a_deliberate_answer(platform: Platform, method: Method) -> None:
    @RAW
    @given(
        requests=requests_for(method, st.binary(max_size=256)),
        caller=st.sampled_from(sorted(CALLERS)),
    )
    def fuzz(requests: list[bytes], caller: str) -> None:
        code, details = call(platform, method, requests, caller, raw=True)
        assert code in DELIBERATE, (str(method), caller, code, details, requests)

    fuzz()
    assert_every_service_serves(platform)


@pytest.mark.parametrize("character", ["9", "名"])
def test_an_error_quoting_a_huge_value_still_reaches_the_caller(
    platform: Platform, character: str
) -> None:
    """A status travels in the call's trailers, which clients refuse beyond 8 KiB
    (RESOURCE_EXHAUSTED, the service's answer lost): an error quoting what the caller sent
    is cut short, the more so for characters that take several bytes."""
    stub = enrollment_pb2_grpc.EnrollmentServiceStub(platform.services["enrollment"].channel())
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSubsidySummary(
            enrollment_pb2.GetSubsidySummaryRequest(region=character * 70_000, year=YEAR),
            metadata=INTERNAL,
        )
    status = decode_status(raised.value)  # type: ignore[arg-type]
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT, status
    assert [violation.field for violation in status.violations] == ["region"]
    assert status.message.startswith(f"region: unknown region '{character * 3}")
    assert len(status.message.encode()) <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("method", "message"),
    [
        pytest.param(
            "/doudi.settlement.v1.SettlementService/GetHospital",
            settlement_pb2.GetHospitalRequest(hospital_id="\x00"),
            id="nul-in-a-key",
        ),
        pytest.param(
            "/doudi.datashare.v1.DatashareService/ListComparisons",
            datashare_pb2.ListComparisonsRequest(region="4" * 100),
            id="longer-than-the-column",
        ),
    ],
)
def test_text_the_database_cannot_take_is_bad_input_not_a_server_error(
    platform: Platform, method: str, message: Message
) -> None:
    """PostgreSQL refuses a NUL character, and a text longer than the column it is compared
    with (SQLite takes both): found by the fuzz above, answered INTERNAL before."""
    service = method.split(".")[1]
    call = (
        platform.services[service]
        .channel()
        .unary_unary(method, request_serializer=type(message).SerializeToString)
    )
    try:
        call(message, metadata=INTERNAL, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.RpcError as error:
        status = decode_status(error)  # type: ignore[arg-type]
        assert status.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
        assert status.from_service

"""The console's pure parts: signed sessions and their expiry, CSRF tokens, redirects kept
inside the console, money and times as people read them, the roles' table, and the Chinese
catalog complete for every message the templates and views use."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2

from gateway.console import formats, i18n, roles
from gateway.console.pages.auth import safe_next
from gateway.console.sessions import Session, SessionCodec, csrf_matches


def codec(idle: float = 60, maximum: float = 3600, secret: str = "s" * 40) -> SessionCodec:
    return SessionCodec(secret, idle_seconds=idle, max_seconds=maximum)


def session(**changes: object) -> Session:
    fresh = Session.begin("wang", "王芳", "case_worker", "", ())
    return Session(**{**{f: getattr(fresh, f) for f in Session.__slots__}, **changes})  # type: ignore[arg-type]


def test_a_session_reads_back_as_signed() -> None:
    signed = codec().dumps(session())
    loaded = codec().loads(signed)
    assert loaded is not None
    assert loaded[0].username == "wang"
    assert loaded[0].role == "case_worker"
    assert 0 <= loaded[1] < 5


def test_a_session_signed_with_another_secret_or_altered_is_refused() -> None:
    signed = codec().dumps(session())
    assert codec(secret="t" * 40).loads(signed) is None
    head, _, signature = signed.rpartition(".")
    altered = head + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert codec().loads(altered) is None
    assert codec().loads("not a cookie") is None


def test_a_session_unused_past_its_idle_time_has_expired() -> None:
    signed = codec(idle=1).dumps(session())
    assert codec(idle=1).loads(signed) is not None
    time.sleep(2.1)
    assert codec(idle=1).loads(signed) is None


def test_a_session_older_than_its_maximum_has_expired_however_recently_used() -> None:
    old = session(started=int(time.time()) - 7200)
    assert codec(maximum=3600).loads(codec(maximum=3600).dumps(old)) is None
    assert codec(maximum=10_000).loads(codec(maximum=10_000).dumps(old)) is not None


def test_a_csrf_token_matches_only_itself() -> None:
    one = session()
    assert csrf_matches(one.csrf, one.csrf)
    assert not csrf_matches(one.csrf, session().csrf)
    assert not csrf_matches(one.csrf, "")
    assert not csrf_matches(one.csrf, None)
    assert not csrf_matches(None, one.csrf)


def test_the_login_forms_token_is_read_back_only_from_its_own_cookie() -> None:
    token, cookie = codec().login_token()
    assert codec().login_token_of(cookie) == token
    assert codec().login_token_of(codec().dumps(session())) is None
    assert codec(secret="t" * 40).login_token_of(cookie) is None
    assert codec().login_token_of(None) is None


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/console/warnings?kind=impoverishment", True),
        ("/console/", True),
        ("https://evil.example/console/", False),
        ("//evil.example/console/", False),
        ("/console\\..\\evil", False),
        ("/v1/settlements", False),
        ("/console/\r\nSet-Cookie: x", False),
        ("/console/../../docs", False),
        ("/console/%2e%2e/docs", False),
        ("/console/./warnings", False),
        ("", False),
        (None, False),
    ],
)
def test_after_login_the_console_goes_back_only_to_one_of_its_own_pages(
    target: str | None, kept: bool
) -> None:
    assert safe_next(target) == (target if kept else None)


def test_money_and_times_read_as_people_read_them() -> None:
    assert formats.yuan(123456) == "1,234.56"
    assert formats.yuan(-5) == "-0.05"
    assert formats.yuan(0) == "0.00"
    assert formats.hundredths(8050) == "80.50"
    assert formats.hundredths(-101) == "-1.01"
    assert formats.percent(7250) == "72.5%"
    moment = timestamp_pb2.Timestamp()
    moment.FromDatetime(datetime(2026, 12, 3, 17, 30, tzinfo=UTC))
    assert formats.moment(moment) == "2026-12-04 01:30"  # Asia/Shanghai, the next day
    assert formats.moment(timestamp_pb2.Timestamp()) == ""
    assert formats.identity("411323199001010012", full=False) == "411323********0012"
    assert formats.identity("411323199001010012", full=True) == "411323199001010012"


def test_only_supervisors_approve_and_only_clerks_decide_warnings() -> None:
    assert {role for role in roles.ROLES if roles.may(role, "approve_secondary_run")} == {
        "supervisor"
    }
    deciders = {role for role in roles.ROLES if roles.may(role, "decide_warning", "civil_affairs")}
    assert deciders == {"agency_clerk"}
    assert not roles.may("agency_clerk", "dashboard")
    # warnings go to civil affairs and the poverty office: a union clerk has no queue
    assert roles.may("agency_clerk", "warnings", "civil_affairs")
    assert not roles.may("agency_clerk", "warnings", "trade_union")
    assert not roles.may("agency_clerk", "decide_warning", "trade_union")
    assert roles.may("agency_clerk", "rosters", "trade_union")
    assert not roles.may("analyst", "full_identity_numbers")
    assert not roles.may("case_worker", "no such permission")
    # every permission names known roles only
    for holders in roles.PERMISSIONS.values():
        assert holders <= set(roles.ROLES)


def test_every_message_of_the_console_has_its_chinese_and_the_catalog_holds_no_other() -> None:
    used = i18n.extracted()
    catalog = i18n.read_catalog("zh_CN")
    translated = {
        (message.id if isinstance(message.id, str) else tuple(message.id)): message.string
        for message in catalog
        if message.id
    }
    untranslated = sorted(
        str(key)
        for key in used
        if not (
            (value := translated.get(key))
            and (all(value) if isinstance(value, tuple) else bool(value))
        )
    )
    assert not untranslated, (
        f"messages without Chinese (python -m gateway.console.i18n): {untranslated}"
    )
    unused = sorted(str(key) for key in translated if key not in used)
    assert not unused, f"catalog entries no template or view uses: {unused}"
    with i18n.speaking("zh_CN"):
        assert i18n.gettext_("Warnings") == "预警"
        assert i18n.gettext_("Month %(month)d") % {"month": 3} == "3月"
    with i18n.speaking("en"):
        assert i18n.gettext_("Warnings") == "Warnings"

"""Logging in and out, the home page, and the language switch.

The password goes to the datashare service, which keeps the accounts (Argon2
hashes), counts failures and locks an account after repeated ones; the console
never sees a hash. A successful login begins a session (a signed cookie); the
session's role, agency and regions are the account's at that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final
from urllib.parse import unquote

import grpc
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from doudi.datashare.v1 import datashare_pb2
from gateway.console import formats, i18n
from gateway.console.clients import failure
from gateway.console.i18n import _
from gateway.console.render import (
    PREFIX,
    SECURITY_HEADERS,
    LoginRequired,
    acting,
    clients_of,
    render,
)
from gateway.console.roles import may
from gateway.console.sessions import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    Session,
    SessionCodec,
    csrf_matches,
)

router = APIRouter()

MAX_USERNAME: Final = 64
MAX_PASSWORD: Final = 256


def role_code(role: int) -> str:
    """``CONSOLE_ROLE_CASE_WORKER`` → ``case_worker``."""
    name: str = datashare_pb2.ConsoleRole.DESCRIPTOR.values_by_number[role].name
    return name.removeprefix("CONSOLE_ROLE_").lower()


def home_of(session: Session | None) -> str:
    if session is None:
        return f"{PREFIX}/login"
    for permission, page in (("dashboard", "dashboard"), ("warnings", "warnings")):
        if may(session.role, permission, session.agency):
            return f"{PREFIX}/{page}"
    return f"{PREFIX}/rosters"


def safe_next(target: str | None) -> str | None:
    """A place inside the console to go back to; nothing else (no open redirect)."""
    if not target or not target.startswith(PREFIX + "/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 0x20 for char in target):
        return None
    path = unquote(target.partition("?")[0])
    if any(segment in (".", "..") for segment in path.split("/")) or "\\" in path:
        return None  # a dot segment would lead the browser out of the console
    return target


@router.get("/", include_in_schema=False)
async def home(request: Request) -> RedirectResponse:
    return RedirectResponse(home_of(request.state.session), status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    if request.state.session is not None:
        return RedirectResponse(safe_next(next) or home_of(request.state.session), 303)
    return _login_page(request, next=safe_next(next) or "")


def _login_page(
    request: Request, *, next: str, username: str = "", error: str = "", status_code: int = 200
) -> Response:
    codec: SessionCodec = request.app.state.codec
    token, cookie = codec.login_token()
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": next, "username": username, "error": error},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        cookie,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.app.state.settings.secure_cookies,
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    codec: SessionCodec = request.app.state.codec
    form = await request.form()
    username = str(form.get("username", "")).strip().lower()[:MAX_USERNAME]
    password = str(form.get("password", ""))
    next_page = safe_next(str(form.get("next", ""))) or ""
    sent = form.get(CSRF_FIELD)
    expected = codec.login_token_of(request.cookies.get(LOGIN_COOKIE))
    if not csrf_matches(expected, sent if isinstance(sent, str) else None):
        return _login_page(
            request,
            next=next_page,
            username=username,
            error=_("The login form had expired. Please enter your password again."),
            status_code=403,
        )
    if not username or not password or len(password) > MAX_PASSWORD:
        return _login_page(
            request,
            next=next_page,
            username=username,
            error=_("Enter your user name and password."),
            status_code=422,
        )
    clients = clients_of(request)
    try:
        answer = await clients.datashare.AuthenticateConsoleUser(
            datashare_pb2.AuthenticateConsoleUserRequest(username=username, password=password),
            metadata=clients.metadata(None),
            timeout=clients.timeout,
        )
    except grpc.aio.AioRpcError as error:
        refused = failure(error)
        if refused.status != 401:
            raise refused from None
        message = _("Wrong user name or password.")
        if refused.reason == "LOCKED":
            until = refused.metadata.get("locked_until", "")
            message = _(
                "Too many failed attempts: this account is locked until %(time)s. "
                "Try again then, or ask an administrator to reset the password."
            ) % {"time": _local(until)}
        return _login_page(
            request, next=next_page, username=username, error=message, status_code=401
        )
    user = answer.user
    session = Session.begin(
        user.username,
        user.display_name,
        role_code(user.role),
        user.agency,
        tuple(user.regions),
    )
    clients.forget(user.username)
    request.state.session = session
    response = RedirectResponse(next_page or home_of(session), 303, headers=SECURITY_HEADERS)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


def _local(iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return formats.moment(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@router.post("/logout")
async def logout(request: Request) -> Response:
    if request.state.session is None:
        raise LoginRequired
    await acting(request, "packs")  # every role may; the CSRF token must be the session's
    request.state.session = None
    return RedirectResponse(f"{PREFIX}/login", 303, headers=SECURITY_HEADERS)


@router.get("/language/{locale}")
async def language(request: Request, locale: str, next: str | None = None) -> Response:
    response = RedirectResponse(
        safe_next(next) or home_of(request.state.session), 303, headers=SECURITY_HEADERS
    )
    if locale in i18n.LOCALES:
        response.set_cookie(
            i18n.LANGUAGE_COOKIE,
            locale,
            max_age=365 * 24 * 3600,
            path=PREFIX,
            samesite="lax",
            secure=request.app.state.settings.secure_cookies,
        )
    return response

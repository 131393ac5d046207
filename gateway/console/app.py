"""The console's application, mounted by the gateway under ``/console``.

A FastAPI application of its own, apart from the hospitals' API: its own
authentication (accounts in the datashare service, sessions in signed cookies,
:mod:`gateway.console.sessions`), its own errors (pages, not problem+json), no
OpenAPI document. Around every request a middleware chooses the language, reads
the session and signs it again when it has been used for a while (so an idle
session expires, a busy one does not until its maximum). Views live in
:mod:`gateway.console.pages`, one module per menu entry; the front-end libraries
(htmx, ECharts) are served from their npm packages (:mod:`gateway.console.vendor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from doudi.core.packs import PackRegistry
from gateway.console import i18n, vendor
from gateway.console.clients import ConsoleError
from gateway.console.i18n import _
from gateway.console.pages import ROUTERS
from gateway.console.references import PersonReferences
from gateway.console.render import (
    PREFIX,
    SECURITY_HEADERS,
    LoginRequired,
    environment,
    is_htmx,
    render,
)
from gateway.console.sessions import RENEW_AFTER_SECONDS, SESSION_COOKIE, SessionCodec
from gateway.settings import Settings

log = logging.getLogger("doudi.console")

STATIC: Final = Path(__file__).parent / "static"


PUBLIC_PATHS = tuple(f"{PREFIX}/{path}" for path in ("login", "language/", "static/"))
"""The console's addresses served without a session."""


def create_console(settings: Settings) -> FastAPI:
    """The console; its ``state.clients`` is set by the gateway's lifespan (the channels
    belong to the running event loop)."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.templates = environment()
    console.state.codec = SessionCodec(
        settings.console_secret.get_secret_value(),
        idle_seconds=settings.console_idle_minutes * 60,
        max_seconds=settings.console_session_hours * 3600,
    )
    console.state.settings = settings
    console.state.references = PersonReferences(settings.console_secret.get_secret_value())
    console.state.clients = None
    packs = PackRegistry.load()
    console.state.packs = packs
    console.state.region_names = {pack.region_code: pack.region_name for pack in packs}
    console.state.fund_names = {code: name for pack in packs for code, name in pack.funds.items()}
    vendor.check()

    @console.middleware("http")
    async def session_and_language(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        codec: SessionCodec = console.state.codec
        cookie = request.cookies.get(SESSION_COOKIE)
        loaded = codec.loads(cookie) if cookie else None
        request.state.session = loaded[0] if loaded else None
        started = time.perf_counter()
        with i18n.speaking(i18n.chosen_locale(request.cookies.get(i18n.LANGUAGE_COOKIE))):
            response = await call_next(request)
        # How long the gateway took to answer, for the browser's developer tools and
        # bench/console.py (the server's side of a page, without the network's).
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        session = request.state.session
        if session is None:
            if cookie:  # ended, expired or logged out: forget it
                response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        elif loaded is None or loaded[0] != session or loaded[1] > RENEW_AFTER_SECONDS:
            set_session_cookie(response, codec.dumps(session), settings)
        return response

    @console.exception_handler(LoginRequired)
    async def login_required(request: Request, _error: Exception) -> Response:
        target = f"{PREFIX}/login?next={quote(_next_of(request), safe='')}"
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method != "GET":
            return render(
                request, "error.html", _error_page(401, _("Please log in again.")), status_code=401
            )
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)

    @console.exception_handler(ConsoleError)
    async def console_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ConsoleError)
        return render(
            request,
            "error.html",
            _error_page(error.status, _message(error)),
            status_code=error.status,
        )

    @console.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        message = _("No such page.") if error.status_code == 404 else str(error.detail)
        return render(
            request,
            "error.html",
            _error_page(error.status_code, message),
            status_code=error.status_code,
            headers=error.headers,
        )

    @console.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        if request.state.session is None and not request.url.path.startswith(PUBLIC_PATHS):
            # FastAPI reads an address's ids before the view asks for a session: whoever
            # has none is asked to log in first, whatever the address holds.
            return await login_required(request, LoginRequired())
        fields = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'][1:])}: {problem['msg']}"
            for problem in error.errors()
        )
        return render(
            request,
            "error.html",
            _error_page(422, _("The request is not valid: %(fields)s") % {"fields": fields}),
            status_code=422,
        )

    @console.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        # A fault of the console itself: logged with its trace, and a page that says so
        # rather than the server's bare text.
        log.exception("console: %s %s failed", request.method, request.url.path, exc_info=error)
        return render(
            request,
            "error.html",
            _error_page(500, _("Something went wrong on our side; it has been logged.")),
            status_code=500,
        )

    console.mount("/static/app", StaticFiles(directory=STATIC), name="static")

    @console.get("/static/vendor/{name}", include_in_schema=False)
    async def vendor_file(name: str) -> FileResponse:
        if name not in vendor.VENDOR_FILES:
            raise StarletteHTTPException(404)
        try:
            path = vendor.vendor_file(name)
        except vendor.VendorFileMissing:
            log.error("the console's %s is not installed: run make install", name)
            raise StarletteHTTPException(503, "not installed") from None
        return FileResponse(
            path,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    for router in ROUTERS:
        console.include_router(router)
    return console


def set_session_cookie(response: Response, value: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(settings.console_session_hours * 3600),
        path=PREFIX,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


def _next_of(request: Request) -> str:
    """Where to come back to after logging in: this page (a GET), else the home page."""
    if request.method != "GET" or is_htmx(request):
        return PREFIX + "/"
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def _error_page(status: int, message: str) -> dict[str, object]:
    titles = {
        401: _("Please log in"),
        403: _("Not allowed"),
        404: _("Not found"),
        409: _("Cannot be done now"),
        422: _("Check the input"),
        503: _("The platform did not answer"),
    }
    return {"status": status, "title": titles.get(status, _("Error")), "message": message}


def _message(error: ConsoleError) -> str:
    if error.status == 503:
        return _(
            "A service of the platform did not answer in time. Nothing was changed; try again in a moment."
        )
    if error.fields:
        return "; ".join(f"{name}: {text}" for name, text in error.fields.items())
    return error.message

"""Pages: the Jinja2 environment, what every page knows, and the guard every view passes.

A view begins with :func:`viewer` (a page: signed in, the role holds the
permission) or :func:`acting` (a change: the same, and the form's CSRF token is
the session's), and ends with :func:`render`. Both raise what
:mod:`gateway.console.app` turns into a page: :class:`LoginRequired` (to the login
form, or htmx told to go there) or :class:`~gateway.console.clients.ConsoleError`
(403, 404, 422...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from gateway.console import formats, i18n, labels
from gateway.console.clients import Clients, ConsoleError
from gateway.console.i18n import _
from gateway.console.labels import N_
from gateway.console.references import PersonReferences
from gateway.console.roles import may
from gateway.console.sessions import CSRF_FIELD, CSRF_HEADER, Session, csrf_matches

TEMPLATES: Final = Path(__file__).parent / "templates"
PREFIX: Final = "/console"

# The menu: (permission, path, label). Labels are message ids (translated when shown).
MENU: Final = (
    ("dashboard", "/dashboard", N_("Dashboard")),
    ("warnings", "/warnings", N_("Warnings")),
    ("persons", "/persons", N_("Persons")),
    ("applications", "/applications", N_("Applications")),
    ("secondary", "/secondary", N_("Secondary assistance")),
    ("screening", "/screening", N_("Screening")),
    ("rosters", "/rosters", N_("Rosters")),
    ("settlements", "/settlements", N_("Settlements")),
    ("packs", "/packs", N_("Policy packs")),
)

# Security headers of every console answer. Scripts only from the gateway itself (no
# inline script: chart data travels as JSON in <script type="application/json">); styles
# inline too (ECharts' tooltips).
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No session, or it has ended: log in (again)."""


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext_, i18n.ngettext_, newstyle=True
    )
    env.filters.update(
        yuan=formats.yuan,
        percent=formats.percent,
        moment=formats.moment,
        day=formats.day,
    )
    return env


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, and the services as they may ask them."""

    session: Session
    clients: Clients

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.clients.metadata(self.session.username)

    def may(self, permission: str) -> bool:
        return may(self.session.role, permission, self.session.agency)

    def identity(self, number: str) -> str:
        return formats.identity(number, self.may("full_identity_numbers"))


def clients_of(request: Request) -> Clients:
    clients: Clients = request.app.state.clients
    return clients


async def viewer(request: Request, permission: str) -> Viewer:
    """The signed-in viewer of a page that needs ``permission``."""
    session: Session | None = request.state.session
    if session is None:
        raise LoginRequired
    clients = clients_of(request)
    account = await clients.account(session.username)
    if account is None or account.disabled or account.password_changed_at > session.started:
        request.state.session = None
        raise LoginRequired
    if not may(session.role, permission, session.agency):
        raise ConsoleError(403, _("Your role may not open this page or do this."))
    return Viewer(session, clients)


async def acting(request: Request, permission: str) -> tuple[Viewer, FormData]:
    """The signed-in viewer making a change that needs ``permission``, and the form sent;
    403 unless the form or the ``X-CSRF-Token`` header carries the session's CSRF token."""
    session: Session | None = request.state.session
    if session is None:
        raise LoginRequired
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not csrf_matches(session.csrf, sent if isinstance(sent, str) else None):
        raise ConsoleError(
            403, _("The form has expired or did not come from this console. Open the page again.")
        )
    return await viewer(request, permission), form


def render(
    request: Request,
    template: str,
    values: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page (or, for htmx, the fragment) ``template`` with what every page knows."""
    env: jinja2.Environment = request.app.state.templates
    session: Session | None = request.state.session
    locale = i18n.current_locale()
    path = request.url.path
    context: dict[str, Any] = {
        "session": session,
        "may": (
            lambda permission: session is not None and may(session.role, permission, session.agency)
        ),
        "menu": [
            (PREFIX + route, label, path.startswith(PREFIX + route))
            for permission, route, label in MENU
            if session is not None and may(session.role, permission, session.agency)
        ],
        "csrf_token": session.csrf if session is not None else "",
        "locale": locale,
        "html_lang": i18n.HTML_LANG[locale],
        "other_locale": "en" if locale == "zh_CN" else "zh_CN",
        "prefix": PREFIX,
        "path": path,
        "query": request.url.query,
        "static": f"{PREFIX}/static",
        "labels": labels,
        "person_url": lambda person_id, reason="": person_url(request, person_id, reason),
        **(values or {}),
    }
    html = env.get_template(template).render(context)
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def person_url(request: Request, person_id: str, reason: str = "") -> str:
    """The address of a person's page: the identity number sealed, never in clear
    (:mod:`gateway.console.references`); with the reason for opening it, if known."""
    references: PersonReferences = request.app.state.references
    address = f"{PREFIX}/persons/{references.seal(person_id)}"
    return f"{address}?reason={quote(reason, safe='')}" if reason else address


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"

"""The console's languages: Simplified Chinese by default, English by choice.

Templates and views write English message ids (``{{ _("Warnings") }}``,
``_("Warnings")``); the catalog ``locales/zh_CN/LC_MESSAGES/messages.po`` (gettext,
read with Babel) gives each its Chinese. English pages show the ids themselves.
The catalog is compiled in memory when the gateway starts, so no compiled file
is kept in the repository; ``tests/test_console_i18n.py`` fails when a message of
a template or view has no translation.

The language of a request is the ``doudi_lang`` cookie's (set by the menu's
language switch), else Chinese; it holds for the request through a context
variable, so templates and views translate without passing it around.
"""

from __future__ import annotations

import contextvars
import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Final

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES: Final = ("zh_CN", "en")
DEFAULT_LOCALE: Final = "zh_CN"
LANGUAGE_COOKIE: Final = "doudi_lang"
HTML_LANG: Final = {"zh_CN": "zh-CN", "en": "en"}
CATALOG_DIR: Final = Path(__file__).parent / "locales"
DOMAIN: Final = "messages"

_locale: contextvars.ContextVar[str] = contextvars.ContextVar("locale", default=DEFAULT_LOCALE)


def catalog_path(locale: str) -> Path:
    return CATALOG_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(locale: str) -> Catalog:
    with catalog_path(locale).open("rb") as file:
        return read_po(file, locale=locale, domain=DOMAIN)


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalog of ``locale`` (English: the message ids themselves)."""
    if not catalog_path(locale).exists():
        return gettext.NullTranslations()
    catalog = read_catalog(locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def chosen_locale(cookie: str | None) -> str:
    return cookie if cookie in LOCALES else DEFAULT_LOCALE


@contextmanager
def speaking(locale: str) -> Iterator[None]:
    """Translate into ``locale`` inside the block (one request)."""
    token = _locale.set(locale)
    try:
        yield
    finally:
        _locale.reset(token)


def current_locale() -> str:
    return _locale.get()


def gettext_(message: str) -> str:
    return translations(_locale.get()).gettext(message)


def ngettext_(singular: str, plural: str, count: int) -> str:
    return translations(_locale.get()).ngettext(singular, plural, count)


_ = gettext_


# --- keeping the catalog up to date: python -m gateway.console.i18n ----------------------

PACKAGE_DIR: Final = Path(__file__).parent
KEYWORDS: Final = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def extracted() -> dict[str | tuple[str, str], list[tuple[str, int]]]:
    """Every message of the console's templates and views, with where it stands."""
    from babel.messages.extract import extract_from_dir

    found: dict[str | tuple[str, str], list[tuple[str, int]]] = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        str(PACKAGE_DIR),
        method_map=[("templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={
            "templates/**.html": {
                "extensions": "jinja2.ext.i18n",
                "trim_blocks": "true",
                "lstrip_blocks": "true",
            }
        },
        keywords=KEYWORDS,
    ):
        key = message if isinstance(message, str) else (message[0], message[1])
        found.setdefault(key, []).append((filename, line))
    return found


def update_catalog(locale: str = DEFAULT_LOCALE) -> tuple[int, int]:
    """Bring ``locale``'s catalog up to the messages in use: new ones added untranslated,
    unused ones dropped; answer how many there are and how many lack a translation."""
    from babel.messages.pofile import write_po

    template = Catalog(locale=locale, domain=DOMAIN, project="Doudi console")
    for message, places in extracted().items():
        template.add(message, locations=places)
    path = catalog_path(locale)
    if path.exists():
        catalog = read_catalog(locale)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
    else:
        catalog = template
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=100, sort_output=False, omit_header=False)
    messages = [message for message in catalog if message.id]
    missing = sum(1 for message in messages if not _translated(message.string))
    return len(messages), missing


def _translated(string: str | tuple[str, ...] | list[str] | None) -> bool:
    if isinstance(string, tuple | list):
        return all(string)
    return bool(string)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gateway.console.i18n",
        description="Update the console's Chinese catalog (locales/zh_CN/LC_MESSAGES/"
        "messages.po) from the messages its templates and views use: new ones are added "
        "untranslated for a translator to fill in, unused ones dropped.",
    )
    parser.parse_args()
    total, missing = update_catalog()
    print(f"{total} messages, {missing} without a translation")


if __name__ == "__main__":
    main()

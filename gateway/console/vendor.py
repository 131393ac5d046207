"""The console's front-end libraries, as their npm packages install them.

htmx, Apache ECharts and axe-core come from the npm registry at the exact versions
of ``gateway/console/static-vendor/package-lock.json``, never from a CDN and never
copied into the repository: ``make install`` installs them into
``.venv/console/node_modules`` at the repository root (which is where they are looked
for by default), the container image into the folder its ``DOUDI_CONSOLE_VENDOR_DIR``
names. The console serves each file of :data:`VENDOR_FILES` under
``/console/static/vendor/<name>``; axe-core is served too (harmless, and what the
browser tests check accessibility with, :mod:`tests.browser`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

log = logging.getLogger("doudi.console")

VENDOR_DIR_ENV: Final = "DOUDI_CONSOLE_VENDOR_DIR"
"""The ``node_modules`` folder the libraries are installed in, when not the default."""
DEFAULT_VENDOR_DIR: Final = (
    Path(__file__).resolve().parents[2] / ".venv" / "console" / "node_modules"
)
"""Where ``make install`` puts them: ``<repository>/.venv/console/node_modules``."""

VENDOR_FILES: Final[dict[str, Path]] = {
    "htmx.min.js": Path("htmx.org/dist/htmx.min.js"),
    "echarts.min.js": Path("echarts/dist/echarts.min.js"),
    "axe.min.js": Path("axe-core/axe.min.js"),
}
"""Each file's name under ``/console/static/vendor/``, and its path in ``node_modules``."""


class VendorFileMissing(FileNotFoundError):
    """A library's file is not installed where the gateway looks for it."""


def vendor_dir() -> Path:
    """The ``node_modules`` folder: ``DOUDI_CONSOLE_VENDOR_DIR``, or ``make install``'s."""
    configured = os.environ.get(VENDOR_DIR_ENV)
    return Path(configured) if configured else DEFAULT_VENDOR_DIR


def vendor_file(name: str) -> Path:
    """The installed file served as ``name`` (a key of :data:`VENDOR_FILES`).

    Raises :class:`KeyError` for another name and :class:`VendorFileMissing`, saying
    how to install it, when the file is not there.
    """
    path = vendor_dir() / VENDOR_FILES[name]
    if not path.is_file():
        raise VendorFileMissing(
            f"the console's {name} is not installed at {path}: run `make install` "
            f"(or point {VENDOR_DIR_ENV} to the node_modules folder that has it)"
        )
    return path


def missing() -> list[Path]:
    """The files of :data:`VENDOR_FILES` not installed, as the paths looked for."""
    folder = vendor_dir()
    return [folder / path for path in VENDOR_FILES.values() if not (folder / path).is_file()]


def check() -> bool:
    """Log a warning naming every missing file (the gateway starts all the same, and
    serves none of them until they are installed); true when none is missing."""
    absent = missing()
    if absent:
        log.warning(
            "the console's front-end libraries are missing (run `make install`, or set %s): %s",
            VENDOR_DIR_ENV,
            ", ".join(str(path) for path in absent),
        )
    return not absent

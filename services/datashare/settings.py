"""The datashare service's settings (``DOUDI_*``; see doudi.common.settings).

The agencies' API keys are kept by the hub itself, as digests, and made, listed and
rotated with ``doudi admin agency`` (services/datashare/agency_keys.py). For
``DOUDI_ENVIRONMENT=local`` only, ``DOUDI_AGENCY_KEYS`` names keys to store at start-up
(``doudi run`` gives the demo keys of :mod:`doudi.cli.demo`): a JSON object from each key
to the agency code it authenticates (``{"<secret>": "poverty_office", ...}``), or to the
agency and the pooling regions it serves
(``{"<secret>": {"agency": "civil_affairs", "regions": ["411323"]}}``: such a key sees the
dual early warnings of those regions only; a bare agency code serves every region the
hub has a pack of). Outside local it is refused: keys given by environment would stand
in the deployment's configuration in clear.
"""

from __future__ import annotations

import secrets
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from doudi.common.settings import SenderSettings
from doudi.core.statuses import AGENCIES

DEFAULT_PORT = 50052


class AgencyKey(BaseModel):
    """What an agency's key stands for: the agency, and the regions it serves (None: every
    region)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agency: str
    regions: frozenset[str] | None = Field(default=None, min_length=1)


class Settings(SenderSettings):
    agency_keys: dict[str, str | AgencyKey] = Field(default_factory=dict, repr=False)  # secrets
    """Local only: keys to store at start-up, key → agency code, or agency and regions
    (``DOUDI_AGENCY_KEYS``, JSON)."""
    agency_key_cache_seconds: float = Field(default=60.0, ge=0)
    """How long an agency's key, once checked, is remembered: a key retired by
    ``doudi admin agency end-rotation`` is refused from that moment all the same."""
    roster_stream_max_seconds: float = Field(default=3600.0, gt=0)
    """The longest a roster's stream of rows may stay open (``SubmitRoster``: a million
    rows take well under a minute). A submission still receiving rows after that is
    abandoned and its rows dropped: what a stream cut by a killed process leaves."""
    roster_revocation_limit_percent: int = Field(default=5, ge=0, le=100)
    """A roster that would revoke more than this share of the agency's current roster of
    the region (``DOUDI_ROSTER_REVOCATION_LIMIT_PERCENT``) is refused unless the clerk
    confirms the number of revocations (assumed: a month's usual turnover of a roster is
    well under it, and a file cut short or of the wrong region far above)."""
    console_lockout_attempts: int = Field(default=5, ge=1, le=1000)
    """Failed logins in a row after which a console account is locked
    (``DOUDI_CONSOLE_LOCKOUT_ATTEMPTS``; ``AuthenticateConsoleUser``): every attempt while
    it is locked is refused, the right password too."""
    console_lockout_minutes: float = Field(default=15.0, gt=0, le=7 * 24 * 60)
    """How long a console account stays locked (``DOUDI_CONSOLE_LOCKOUT_MINUTES``); the
    attempts made meanwhile do not extend it, and a password reset ends it."""

    @field_validator("agency_keys", mode="before")
    @classmethod
    def _read_agency_keys(cls, value: Any) -> Any:
        """Each entry read here, so that a refusal never names the key (a secret)."""
        if not isinstance(value, dict):
            return value
        read: dict[Any, Any] = {}
        for place, (key, entry) in enumerate(value.items(), 1):
            if isinstance(entry, str | AgencyKey):
                read[key] = entry
                continue
            try:
                read[key] = AgencyKey.model_validate(entry)
            except ValidationError:
                raise ValueError(
                    f"DOUDI_AGENCY_KEYS: entry {place} must be an agency code or "
                    '{"agency": CODE, "regions": [REGION, ...]} with at least one region'
                ) from None
        return read

    @model_validator(mode="after")
    def _agency_keys_are_real(self) -> Self:
        unknown = sorted({key.agency for key in self.agency_credentials.values()} - AGENCIES)
        if unknown:
            raise ValueError(
                f"DOUDI_AGENCY_KEYS names unknown agencies {', '.join(unknown)} "
                f"(known: {', '.join(sorted(AGENCIES))})"
            )
        internal = self.internal_token.get_secret_value().encode()
        if any(secrets.compare_digest(key.encode(), internal) for key in self.agency_keys):
            raise ValueError("an agency key in DOUDI_AGENCY_KEYS must not be the internal token")
        if self.environment != "local" and self.agency_keys:
            raise ValueError(
                "DOUDI_AGENCY_KEYS is for DOUDI_ENVIRONMENT=local only: outside it the hub "
                "keeps the agencies' keys itself (doudi admin agency add)"
            )
        return self

    @property
    def agency_credentials(self) -> dict[str, AgencyKey]:
        """Each key's agency and regions, a bare agency code serving every region."""
        return {
            key: value if isinstance(value, AgencyKey) else AgencyKey(agency=value)
            for key, value in self.agency_keys.items()
        }

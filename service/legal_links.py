"""Where the footer's Impressum and privacy notice lead: the operator's pages, or the demo's placeholders.

A service for the public needs both (§ 5 DDG, Art. 13 GDPR); their content is the operator's, not ours.
Production refuses to start without them (service/config_checks.py, check_production). The embedded
default (the demo, `make run`) links placeholder pages of its own that say plainly that they are
placeholders, so that a demo never looks like a service with a real imprint, and a footer is never without
the two links.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Mode, Settings

IMPRINT_PLACEHOLDER = "/impressum"
PRIVACY_PLACEHOLDER = "/datenschutz"


@dataclass(frozen=True)
class LegalLinks:
    imprint_url: str
    privacy_url: str
    # The operator's own pages open elsewhere; the placeholders are pages of this site.
    imprint_external: bool
    privacy_external: bool


def legal_links(settings: Settings) -> LegalLinks:
    return LegalLinks(
        imprint_url=settings.imprint_url or IMPRINT_PLACEHOLDER,
        privacy_url=settings.privacy_url or PRIVACY_PLACEHOLDER,
        imprint_external=settings.imprint_url is not None,
        privacy_external=settings.privacy_url is not None,
    )


def placeholder_served(settings: Settings, which: str) -> bool:
    """Whether this placeholder page exists: never in production, and not once the operator named a page."""
    if settings.mode is Mode.production:
        return False
    configured = settings.imprint_url if which == "imprint" else settings.privacy_url
    return configured is None

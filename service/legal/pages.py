"""The embedded demo's placeholder Impressum and privacy notice (routes only; the rules are in links.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.deps import runtime_of
from service.errors import NotFound
from service.legal_links import IMPRINT_PLACEHOLDER, PRIVACY_PLACEHOLDER, placeholder_served
from service.web import Pages, StrictRoute

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


def _placeholder(request: Request, which: str) -> Response:
    if not placeholder_served(runtime_of(request).settings, which):
        raise NotFound()
    pages: Pages = request.app.state.pages
    return pages.render(request, "legal_placeholder.html", which=which)


@router.get(IMPRINT_PLACEHOLDER)
def imprint(request: Request) -> Response:
    return _placeholder(request, "imprint")


@router.get(PRIVACY_PLACEHOLDER)
def privacy(request: Request) -> Response:
    return _placeholder(request, "privacy")

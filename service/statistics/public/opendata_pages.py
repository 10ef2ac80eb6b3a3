"""The open-data addresses of the public statistics (``opendata`` and ``dcat`` build the files; here they are
served).

Public like /statistik, and read from the same release store only. A year without a published release, a
table the release does not have, anything that is not a year: 404. Each answer carries an ETag (a hash of
its bytes, which are the same on every request for the same release) and may be cached if revalidated
(``public, no-cache``): a harvester asking again with If-None-Match gets a 304. CORS is open (``*``, no
credentials), as for open data generally: a browser application elsewhere may read the files, which
hold nothing that is not public.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from service.deps import runtime_of
from service.errors import NotFound
from service.i18n import SUPPORTED, Translator
from service.legal_links import legal_links
from service.runtime import Runtime
from service.statistics.labels import cell_label
from service.statistics.public.dcat import catalogue_turtle, dataset_turtle
from service.statistics.public.dp import PublicRelease
from service.statistics.public.ledger import (
    content_of,
    published,
    published_in,
    spent_per_table,
    year_budgets,
)
from service.statistics.public.models import PublicReleaseRecord
from service.statistics.public.opendata import (
    CATALOGUE_FILE,
    DATA_PATH,
    DATASET_FILE,
    PACKAGE_FILE,
    Labeller,
    Ledger,
    Publication,
    Release,
    ReleaseFiles,
    release_files,
)
from service.web import StrictRoute

router = APIRouter(include_in_schema=False, route_class=StrictRoute)


def publication_of(runtime: Runtime) -> Publication:
    settings = runtime.settings
    base = settings.public_url.rstrip("/")
    contact = legal_links(settings).imprint_url
    return Publication(
        base_url=base,
        publisher=settings.open_data_publisher,
        contact_url=base + contact if contact.startswith("/") else contact,
        contributor_id=settings.open_data_contributor_id,
    )


def labeller_of(runtime: Runtime) -> Labeller:
    translators = {lang: Translator(lang) for lang in SUPPORTED}

    def label(dimension: str, key: str, lang: str) -> str:
        return cell_label(runtime, dimension, key, lang, translators[lang])

    return label


def releases_of(session: Session, records: Iterable[PublicReleaseRecord]) -> list[Release]:
    """The records with what the budget ledger says about each."""
    records = list(records)
    budgets = year_budgets(session)
    spent = spent_per_table(session, [record.id for record in records])
    releases = []
    for record in records:
        assert record.published_at is not None  # ``published`` returns published records only
        budget = budgets[record.year]
        releases.append(
            Release(
                id=record.id,
                published_at=record.published_at,
                content=PublicRelease.from_json(content_of(record)),
                ledger=Ledger(
                    release_micro=record.micro_epsilon,
                    table_micro=spent.get(record.id, {}),
                    year_total_micro=budget.total_micro_epsilon,
                    year_spent_micro=budget.spent_micro_epsilon,
                ),
            )
        )
    return releases


def _year(runtime: Runtime, year: str) -> tuple[Release, ReleaseFiles]:
    with runtime.sessions() as db:
        record = published_in(db, year)
        if record is None:
            raise NotFound()
        (release,) = releases_of(db, [record])
    return release, release_files(release, publication_of(runtime), labeller_of(runtime))


def _file(request: Request, body: bytes, media_type: str) -> Response:
    etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'
    headers = {
        "etag": etag,
        "cache-control": "public, no-cache",
        "access-control-allow-origin": "*",
        "cross-origin-resource-policy": "cross-origin",
    }
    wanted = request.headers.get("if-none-match", "")
    if etag in {tag.strip().removeprefix("W/") for tag in wanted.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(f"{DATA_PATH}/{CATALOGUE_FILE}")
def catalogue(request: Request) -> Response:
    runtime = runtime_of(request)
    with runtime.sessions() as db:
        newest: dict[int, PublicReleaseRecord] = {}
        for record in published(db):
            newest.setdefault(record.year, record)  # the year's addresses show its newest release
        releases = releases_of(db, newest.values())
    publication = publication_of(runtime)
    label = labeller_of(runtime)
    body = catalogue_turtle(((r, release_files(r, publication, label)) for r in releases), publication)
    return _file(request, body, "text/turtle")


@router.get(f"{DATA_PATH}/{{year}}/{DATASET_FILE}")
def dataset(year: str, request: Request) -> Response:
    runtime = runtime_of(request)
    release, files = _year(runtime, year)
    return _file(request, dataset_turtle(release, files, publication_of(runtime)), "text/turtle")


@router.get(f"{DATA_PATH}/{{year}}/{PACKAGE_FILE}")
def data_package(year: str, request: Request) -> Response:
    _, files = _year(runtime_of(request), year)
    return _file(request, files.datapackage, "application/json")


@router.get(f"{DATA_PATH}/{{year}}/{{resource}}.csv")
def table(year: str, resource: str, request: Request) -> Response:
    _, files = _year(runtime_of(request), year)
    body = files.csvs.get(resource)
    if body is None:
        raise NotFound()
    return _file(request, body, "text/csv")

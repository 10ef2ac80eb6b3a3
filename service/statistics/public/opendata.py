"""Each public release as open data: a Frictionless Data Package and DCAT-AP.de metadata.

Stable addresses (``opendata_pages``), listed on /statistik:

    /statistik/daten/katalog.ttl               dcat:Catalog of every published year (DCAT-AP.de, Turtle)
    /statistik/daten/{year}/dcat.ttl           one year: its dcat:Dataset and dcat:Distributions
    /statistik/daten/{year}/datapackage.json   the Data Package: one Table Schema per CSV, method, budget
    /statistik/daten/{year}/{resource}.csv     one table, e.g. k1-persons-by-month.csv

What goes in, and nothing else: the stored release (``ledger.published``, the same record /statistik and
the JSON API show) and the privacy-budget ledger of its year. The CSVs hold exactly the figures the page
shows (``value`` and the interval around it) and the raw noisy draws its JSON and CSV downloads already
carry; nothing is recomputed from the statistics extract, and no exact figure can leave this way.

Every file is a pure function of those inputs and of the settings (public address, publisher), so the same
release gives the same bytes on every request (served with an ETag); the Turtle (``dcat``) and the JSON
(here) are written without rdflib or frictionless, which the tests use to check them.

Standards followed:
- Frictionless Data Package and Tabular Data Resource (https://specs.frictionlessdata.io/data-package/,
  https://specs.frictionlessdata.io/table-schema/), profile ``tabular-data-package``. The method and the
  budget are the custom properties ``differentialPrivacy`` of the package and of each resource (the specs
  allow properties of one's own) and are also written out in ``description``.
- DCAT-AP.de metadata: ``dcat``, which cites the profile and the conventions it follows.

Licence: CC BY 4.0, the licence the project already names for the data it ships (the district list) and
one of the two GovData recommends; the attribution is the publisher's name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.i18n import Translator
from service.statistics.public.dp import PublicRelease, PublicTableRelease, shown_interval
from service.statistics.public.ledger import MICRO

# (dimension, key, lang) -> the label the page shows for a cell.
Labeller = Callable[[str, str, str], str]

DATA_PATH = "/statistik/daten"
CATALOGUE_FILE = "katalog.ttl"
DATASET_FILE = "dcat.ttl"
PACKAGE_FILE = "datapackage.json"

LICENCE_SPDX = "CC-BY-4.0"
LICENCE_TITLE = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"

CSV_COLUMNS = (
    "key",
    "label_de",
    "label_en",
    "value",
    "interval_lower",
    "interval_upper",
    "raw",
    "half_width",
)


@dataclass(frozen=True, slots=True)
class Publication:
    """Who publishes, and where: from the settings, the same for every file."""

    base_url: str  # the public address, without a trailing slash
    publisher: str
    contact_url: str
    contributor_id: str | None = None  # a GovData Datenbereitsteller-ID, http://dcat-ap.de/def/contributors/…

    def url(self, path: str) -> str:
        return self.base_url + path

    def year_url(self, year: int, name: str = "") -> str:
        return self.url(f"{DATA_PATH}/{year}/{name}")

    @property
    def vocabulary(self) -> str:
        return self.url(f"{DATA_PATH}/{CATALOGUE_FILE}#")


@dataclass(frozen=True, slots=True)
class Ledger:
    """What the privacy-budget ledger says about a release, in millionths of epsilon (exact)."""

    release_micro: int  # spent by this release
    table_micro: dict[str, int]  # spent by this release, per table
    year_total_micro: int
    year_spent_micro: int  # by every release of the year


@dataclass(frozen=True, slots=True)
class Release:
    """A published release as the open data sees it."""

    id: str
    published_at: datetime
    content: PublicRelease
    ledger: Ledger

    @property
    def year(self) -> int:
        return self.content.year


@dataclass(frozen=True, slots=True)
class ReleaseFiles:
    """The CSVs (resource name -> bytes, in table order) and the data package of one release."""

    csvs: dict[str, bytes]
    datapackage: bytes


def resource_name(table_id: str, measure: str, by: str) -> str:
    """``k1-persons-by-month``: a table's file name (and its Data Package resource name)."""
    return f"{table_id}-{measure}-by-{by}".lower()


def table_resource_name(table: PublicTableRelease) -> str:
    return resource_name(table.id, table.measure, table.by)


# -- numbers -------------------------------------------------------------------------------------------------


def plain(value: Decimal) -> str:
    """A decimal in plain notation without trailing zeros: 0.9, 1, 6.6667 (never 1E+1)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def epsilon_text(micro: int) -> str:
    return plain(Decimal(micro) / MICRO)


def rounded(value: float, places: int = 4) -> Decimal:
    return Decimal(repr(round(value, places)))


def _number(text: str) -> int | float:
    """A plain decimal as the JSON number that reads back as it."""
    return int(text) if "." not in text else float(text)


def iso_time(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- CSV and Data Package ------------------------------------------------------------------------------------


def table_csv(table: PublicTableRelease, label: Labeller) -> bytes:
    """One table as published: the figure and interval the page shows, the raw draw the downloads keep."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for cell in table.cells:
        lower, upper = shown_interval(cell.value, cell.half_width)
        writer.writerow(
            [
                cell.key,
                label(table.by, cell.key, "de"),
                label(table.by, cell.key, "en"),
                cell.value,
                lower,
                upper,
                cell.raw,
                cell.half_width,
            ]
        )
    return out.getvalue().encode("utf-8")


def keywords(lang: str) -> list[str]:
    return [word.strip() for word in Translator(lang)("opendata.keywords").split(",")]


def _both(key: str, **values: object) -> str:
    return f"{Translator('de')(key, **values)} / {Translator('en')(key, **values)}"


def _confidence(release: Release) -> str:
    return plain(rounded(release.content.interval_confidence * 100, 2))


def _schema(table: PublicTableRelease, confidence: str) -> dict[str, Any]:
    def field(name: str, kind: str, **constraints: Any) -> dict[str, Any]:
        described = _both(f"opendata.field.{name}", confidence=confidence)
        result: dict[str, Any] = {"name": name, "type": kind, "description": described}
        if constraints:
            result["constraints"] = constraints
        return result

    return {
        "fields": [
            field("key", "string", required=True, unique=True, enum=[cell.key for cell in table.cells]),
            field("label_de", "string", required=True),
            field("label_en", "string", required=True),
            field("value", "integer", required=True, minimum=0),
            field("interval_lower", "integer", required=True, minimum=0),
            field("interval_upper", "integer", required=True, minimum=0),
            field("raw", "integer", required=True),
            field("half_width", "integer", required=True, minimum=0),
        ],
        "primaryKey": ["key"],
    }


def table_facts(release: Release, table: PublicTableRelease) -> dict[str, str]:
    return {
        "sensitivity": str(table.sensitivity),
        "epsilon": epsilon_text(release.ledger.table_micro[table.id]),
        "scale": plain(rounded(table.scale)),
        "half_width": str(table.cells[0].half_width if table.cells else 0),
        "confidence": _confidence(release),
    }


def _in(lang: str, number: str) -> str:
    """A plain decimal as a reader of ``lang`` writes it (0,9 in German)."""
    return number.replace(".", ",") if lang == "de" else number


def table_description(release: Release, table: PublicTableRelease, lang: str) -> str:
    t = Translator(lang)
    facts = {name: _in(lang, value) for name, value in table_facts(release, table).items()}
    return t("opendata.table.description", title=t(f"statistics.table.{table.id}"), **facts)


def dataset_description(release: Release, lang: str) -> str:
    """Summary, method, privacy budget and the note on population figures, in one language."""
    t = Translator(lang)
    ledger = release.ledger
    return "\n\n".join(
        [
            t("opendata.dataset.summary", year=release.year),
            t("opendata.dataset.method", confidence=_confidence(release)),
            t(
                "opendata.dataset.budget",
                year=release.year,
                epsilon=_in(lang, epsilon_text(ledger.release_micro)),
                total=_in(lang, epsilon_text(ledger.year_total_micro)),
                spent=_in(lang, epsilon_text(ledger.year_spent_micro)),
                remaining=_in(lang, epsilon_text(ledger.year_total_micro - ledger.year_spent_micro)),
            ),
            t("opendata.dataset.population"),
        ]
    )


def _privacy(release: Release) -> dict[str, Any]:
    """The package's ``differentialPrivacy``: method and budget as numbers."""
    ledger = release.ledger
    remaining = ledger.year_total_micro - ledger.year_spent_micro
    return {
        "guarantee": "pure epsilon-differential privacy",
        "mechanism": "discrete Laplace (OpenDP), drawn once per release and stored; never drawn again",
        "privacyUnit": release.content.privacy_unit,
        "epsilon": _number(epsilon_text(ledger.release_micro)),
        "epsilonPerTable": {
            table.id: _number(epsilon_text(ledger.table_micro[table.id])) for table in release.content.tables
        },
        "intervalConfidence": release.content.interval_confidence,
        "smallCellSuppression": False,
        "suppressionThreshold": None,
        "negativeValues": "value shows a negative draw as 0; raw keeps the draw",
        "budget": {
            "year": release.year,
            "epsilonPerYear": _number(epsilon_text(ledger.year_total_micro)),
            "epsilonSpentInYear": _number(epsilon_text(ledger.year_spent_micro)),
            "epsilonRemainingInYear": _number(epsilon_text(remaining)),
        },
    }


def _resource(release: Release, table: PublicTableRelease, body: bytes) -> dict[str, Any]:
    facts = table_facts(release, table)
    name = table_resource_name(table)
    return {
        "name": name,
        "path": f"{name}.csv",
        "profile": "tabular-data-resource",
        "title": Translator("de")(f"statistics.table.{table.id}"),
        "description": table_description(release, table, "de")
        + "\n\n"
        + table_description(release, table, "en"),
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "bytes": len(body),
        "hash": "sha256:" + hashlib.sha256(body).hexdigest(),
        "dialect": {"delimiter": ",", "lineTerminator": "\r\n", "quoteChar": '"', "header": True},
        "schema": _schema(table, facts["confidence"]),
        "differentialPrivacy": {
            "table": table.id,
            "measure": table.measure,
            "by": table.by,
            "sensitivity": table.sensitivity,
            "epsilon": _number(facts["epsilon"]),
            "noiseScale": _number(facts["scale"]),
            "intervalHalfWidth": int(facts["half_width"]),
        },
    }


def release_files(release: Release, publication: Publication, label: Labeller) -> ReleaseFiles:
    csvs = {table_resource_name(table): table_csv(table, label) for table in release.content.tables}
    year = release.year
    package = {
        "profile": "tabular-data-package",
        "name": f"rueckhalt-statistik-{year}",
        "id": publication.year_url(year, PACKAGE_FILE),
        "title": Translator("de")("opendata.dataset.title", year=year),
        "description": dataset_description(release, "de") + "\n\n" + dataset_description(release, "en"),
        "homepage": publication.url(f"/statistik?jahr={year}"),
        "created": iso_time(release.published_at),
        "keywords": [word for lang in ("de", "en") for word in keywords(lang)],
        "licenses": [{"name": LICENCE_SPDX, "path": LICENCE_URL, "title": LICENCE_TITLE}],
        "contributors": [{"title": publication.publisher, "role": "publisher"}],
        "differentialPrivacy": {"release": release.id, **_privacy(release)},
        "resources": [
            _resource(release, table, csvs[table_resource_name(table)]) for table in release.content.tables
        ],
    }
    body = json.dumps(package, ensure_ascii=False, indent=2) + "\n"
    return ReleaseFiles(csvs=csvs, datapackage=body.encode("utf-8"))

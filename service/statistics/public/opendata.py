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
release gives the same bytes on every request (served with an ETag); the Turtle and JSON are written here
without rdflib or frictionless, which the tests use to check them.

Standards followed:
- Frictionless Data Package and Tabular Data Resource (https://specs.frictionlessdata.io/data-package/,
  https://specs.frictionlessdata.io/table-schema/), profile ``tabular-data-package``. The method and the
  budget are the custom properties ``differentialPrivacy`` of the package and of each resource (the specs
  allow properties of one's own) and are also written out in ``description``.
- DCAT-AP.de, the German application profile of DCAT-AP (specification 2.0,
  http://dcat-ap.de/def/dcatde/2.0/spec/; its conventions handbook "Konventionenhandbuch 2.0",
  https://www.dcat-ap.de/def/dcatde/2.0/implRules/; sources and the 3.0 draft in the GitHub repository
  GovDataOfficial/DCAT-AP.de). Mandatory: dct:title, dct:description, dct:publisher on dcat:Catalog and
  dcat:Dataset, dcat:accessURL and dct:license on dcat:Distribution. Used from the conventions:
  dcatde:politicalGeocodingLevelURI .../Level/federal with dcatde:politicalGeocodingURI per Land
  (.../stateKey/NN: the dataset covers the federal territory and breaks it down by Land; convention 8) and
  dct:spatial DEU (convention 11); dcatde:contributorID only if the operator was given one by GovData
  (conventions 12 and 13: the IDs are assigned, never made up); dcat:accessURL equal to dcat:downloadURL
  for a plain download (convention 39); adms:status on every distribution (convention 22); dct:license
  from the DCAT-AP.de licence list with dcatde:licenseAttributionByText (conventions 32 and 35).
  DCAT has no terms for differential privacy: the figures are in dct:description, and machine-readable in
  a small vocabulary of our own (``rhs:``) that the catalogue file defines (rdfs:label, rdfs:comment).

Licence: CC BY 4.0, the licence the project already names for the data it ships (the district list) and
one of the two GovData recommends; the attribution is the publisher's name.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.i18n import Translator
from service.statistics.public.dp import PublicRelease, PublicTableRelease, shown_interval
from service.statistics.public.ledger import MICRO
from service.statistics.public.turtle import IRI, Document, Literal, Node, Object, Term, node
from service.taxonomy import LANDS

# (dimension, key, lang) -> the label the page shows for a cell.
Labeller = Callable[[str, str, str], str]

DATA_PATH = "/statistik/daten"
CATALOGUE_FILE = "katalog.ttl"
DATASET_FILE = "dcat.ttl"
PACKAGE_FILE = "datapackage.json"

LICENCE_SPDX = "CC-BY-4.0"
LICENCE_TITLE = "Creative Commons Attribution 4.0 International (CC BY 4.0)"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"
LICENCE_DCAT_AP_DE = "http://dcat-ap.de/def/licenses/cc-by/4.0"

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

_EU = "http://publications.europa.eu/resource/authority/"
_GEOCODING = "http://dcat-ap.de/def/politicalGeocoding/"
PREFIXES = {
    "adms": "http://www.w3.org/ns/adms#",
    "dcat": "http://www.w3.org/ns/dcat#",
    "dcatap": "http://data.europa.eu/r5r/",
    "dcatde": "http://dcat-ap.de/def/dcatde/",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "spdx": "http://spdx.org/rdf/terms#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

# The ``rhs:`` vocabulary: name -> (range, English definition). Defined in the catalogue file, whose
# address is its namespace.
VOCABULARY: dict[str, tuple[str, str]] = {
    "privacyUnit": ("xsd:string", "What one person's privacy is protected over: one reporter in one year."),
    "noiseMechanism": ("xsd:string", "The randomised mechanism that adds the noise."),
    "epsilon": (
        "xsd:decimal",
        "The privacy loss epsilon (pure epsilon-differential privacy) that a release or a table spends.",
    ),
    "epsilonBudgetOfYear": ("xsd:decimal", "The privacy budget of the year, from the budget ledger."),
    "epsilonSpentInYear": ("xsd:decimal", "Epsilon spent on the year by all its releases so far."),
    "epsilonRemainingInYear": ("xsd:decimal", "Epsilon of the year's budget that is not spent."),
    "intervalConfidence": ("xsd:decimal", "Probability with which the published interval holds the truth."),
    "smallCellSuppression": (
        "xsd:boolean",
        "Whether small cells are hidden. False: every cell of the fixed domain is published, zeros "
        "included, because the noise protects every cell.",
    ),
    "sensitivity": ("xsd:integer", "Most that adding or removing one reporter-year changes the table."),
    "noiseScale": ("xsd:decimal", "Scale of the discrete Laplace noise: sensitivity / epsilon."),
    "intervalHalfWidth": ("xsd:integer", "Half width of the published interval around each figure."),
}


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


def _plain(value: Decimal) -> str:
    """A decimal in plain notation without trailing zeros: 0.9, 1, 6.6667 (never 1E+1)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def epsilon_text(micro: int) -> str:
    return _plain(Decimal(micro) / MICRO)


def _rounded(value: float, places: int = 4) -> Decimal:
    return Decimal(repr(round(value, places)))


def _number(text: str) -> int | float:
    """A plain decimal as the JSON number that reads back as it."""
    return int(text) if "." not in text else float(text)


def _iso(moment: datetime) -> str:
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


def _keywords(lang: str) -> list[str]:
    return [word.strip() for word in Translator(lang)("opendata.keywords").split(",")]


def _both(key: str, **values: object) -> str:
    return f"{Translator('de')(key, **values)} / {Translator('en')(key, **values)}"


def _confidence(release: Release) -> str:
    return _plain(_rounded(release.content.interval_confidence * 100, 2))


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


def _table_facts(release: Release, table: PublicTableRelease) -> dict[str, str]:
    return {
        "sensitivity": str(table.sensitivity),
        "epsilon": epsilon_text(release.ledger.table_micro[table.id]),
        "scale": _plain(_rounded(table.scale)),
        "half_width": str(table.cells[0].half_width if table.cells else 0),
        "confidence": _confidence(release),
    }


def _in(lang: str, number: str) -> str:
    """A plain decimal as a reader of ``lang`` writes it (0,9 in German)."""
    return number.replace(".", ",") if lang == "de" else number


def _table_description(release: Release, table: PublicTableRelease, lang: str) -> str:
    t = Translator(lang)
    facts = {name: _in(lang, value) for name, value in _table_facts(release, table).items()}
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
    facts = _table_facts(release, table)
    name = table_resource_name(table)
    return {
        "name": name,
        "path": f"{name}.csv",
        "profile": "tabular-data-resource",
        "title": Translator("de")(f"statistics.table.{table.id}"),
        "description": _table_description(release, table, "de")
        + "\n\n"
        + _table_description(release, table, "en"),
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
        "created": _iso(release.published_at),
        "keywords": [word for lang in ("de", "en") for word in _keywords(lang)],
        "licenses": [{"name": LICENCE_SPDX, "path": LICENCE_URL, "title": LICENCE_TITLE}],
        "contributors": [{"title": publication.publisher, "role": "publisher"}],
        "differentialPrivacy": {"release": release.id, **_privacy(release)},
        "resources": [
            _resource(release, table, csvs[table_resource_name(table)]) for table in release.content.tables
        ],
    }
    body = json.dumps(package, ensure_ascii=False, indent=2) + "\n"
    return ReleaseFiles(csvs=csvs, datapackage=body.encode("utf-8"))


# -- DCAT-AP.de ----------------------------------------------------------------------------------------------


def _de_en(key: str, **values: object) -> list[Object]:
    return [
        Literal(Translator("de")(key, **values), lang="de"),
        Literal(Translator("en")(key, **values), lang="en"),
    ]


def _decimal(text: str) -> Literal:
    return Literal(text, datatype="xsd:decimal")


def _when(moment: datetime) -> Literal:
    return Literal(_iso(moment), datatype="xsd:dateTime")


def _publisher(publication: Publication) -> Node:
    return node([("a", Term("foaf:Agent")), ("foaf:name", Literal(publication.publisher))])


def _shared_distribution(
    release: Release, publication: Publication, url: str, body: bytes
) -> list[tuple[str, Object | Sequence[Object]]]:
    """What every distribution says: where, licence, status, dates, size and checksum."""
    sha256 = hashlib.sha256(body).hexdigest()
    return [
        ("dcat:accessURL", IRI(url)),
        ("dcat:downloadURL", IRI(url)),
        ("dct:license", IRI(LICENCE_DCAT_AP_DE)),
        ("dcatde:licenseAttributionByText", Literal(publication.publisher)),
        ("adms:status", IRI("http://purl.org/adms/status/Completed")),
        ("dcatap:availability", IRI(_EU + "planned-availability/STABLE")),
        ("dct:issued", _when(release.published_at)),
        ("dct:modified", _when(release.published_at)),
        ("dcat:byteSize", Literal(str(len(body)), datatype="xsd:nonNegativeInteger")),
        (
            "spdx:checksum",
            node(
                [
                    ("a", Term("spdx:Checksum")),
                    ("spdx:algorithm", Term("spdx:checksumAlgorithm_sha256")),
                    ("spdx:checksumValue", Literal(sha256, datatype="xsd:hexBinary")),
                ]
            ),
        ),
    ]


def dataset_iri(publication: Publication, year: int) -> IRI:
    return IRI(publication.year_url(year, DATASET_FILE) + "#dataset")


def distribution_iri(publication: Publication, year: int, name: str) -> IRI:
    return IRI(publication.year_url(year, DATASET_FILE) + "#" + name)


def _add_dataset(doc: Document, release: Release, files: ReleaseFiles, publication: Publication) -> None:
    year = release.year
    ledger = release.ledger
    dataset = dataset_iri(publication, year)
    tables = {table_resource_name(table): table for table in release.content.tables}
    distributions = [distribution_iri(publication, year, "datapackage")] + [
        distribution_iri(publication, year, name) for name in files.csvs
    ]
    properties: list[tuple[str, Object | Sequence[Object]]] = [
        ("a", Term("dcat:Dataset")),
        ("dct:title", _de_en("opendata.dataset.title", year=year)),
        (
            "dct:description",
            [
                Literal(dataset_description(release, "de"), lang="de"),
                Literal(dataset_description(release, "en"), lang="en"),
            ],
        ),
        ("dct:publisher", _publisher(publication)),
        ("dct:identifier", Literal(dataset.value)),
    ]
    if publication.contributor_id:
        properties.append(("dcatde:contributorID", IRI(publication.contributor_id)))
    properties += [
        ("dcatde:politicalGeocodingLevelURI", IRI(_GEOCODING + "Level/federal")),
        ("dcatde:politicalGeocodingURI", [IRI(f"{_GEOCODING}stateKey/{land.code}") for land in LANDS]),
        ("dct:spatial", IRI(_EU + "country/DEU")),
        (
            "dct:temporal",
            node(
                [
                    ("a", Term("dct:PeriodOfTime")),
                    ("dcat:startDate", Literal(f"{year:04d}-01-01", datatype="xsd:date")),
                    ("dcat:endDate", Literal(f"{year:04d}-12-31", datatype="xsd:date")),
                ]
            ),
        ),
        ("dcat:keyword", [Literal(word, lang=lang) for lang in ("de", "en") for word in _keywords(lang)]),
        ("dcat:theme", [IRI(_EU + "data-theme/JUST"), IRI(_EU + "data-theme/SOCI")]),
        (
            "dcat:contactPoint",
            node(
                [
                    ("a", Term("vcard:Organization")),
                    ("vcard:fn", Literal(publication.publisher)),
                    ("vcard:hasURL", IRI(publication.contact_url)),
                ]
            ),
        ),
        ("dct:language", [IRI(_EU + "language/DEU"), IRI(_EU + "language/ENG")]),
        ("dct:accessRights", IRI(_EU + "access-right/PUBLIC")),
        ("dct:accrualPeriodicity", IRI(_EU + "frequency/ANNUAL")),
        ("dcatap:availability", IRI(_EU + "planned-availability/STABLE")),
        ("dcat:landingPage", IRI(publication.url(f"/statistik?jahr={year}"))),
        ("foaf:page", IRI(publication.url(f"/statistik?jahr={year}#method"))),
        ("dct:issued", _when(release.published_at)),
        ("dct:modified", _when(release.published_at)),
        ("dcat:distribution", distributions),
        ("rhs:privacyUnit", Literal(release.content.privacy_unit)),
        ("rhs:noiseMechanism", Literal("discrete Laplace (OpenDP)")),
        ("rhs:epsilon", _decimal(epsilon_text(ledger.release_micro))),
        ("rhs:epsilonBudgetOfYear", _decimal(epsilon_text(ledger.year_total_micro))),
        ("rhs:epsilonSpentInYear", _decimal(epsilon_text(ledger.year_spent_micro))),
        (
            "rhs:epsilonRemainingInYear",
            _decimal(epsilon_text(ledger.year_total_micro - ledger.year_spent_micro)),
        ),
        ("rhs:intervalConfidence", _decimal(_plain(_rounded(release.content.interval_confidence)))),
        ("rhs:smallCellSuppression", Literal("false", datatype="xsd:boolean")),
    ]
    doc.add(dataset, properties)

    package_url = publication.year_url(year, PACKAGE_FILE)
    doc.add(
        distributions[0],
        [
            ("a", Term("dcat:Distribution")),
            ("dct:title", _de_en("opendata.package.title")),
            ("dct:description", _de_en("opendata.package.description")),
            ("dct:format", IRI(_EU + "file-type/JSON")),
            ("dcat:mediaType", IRI("https://www.iana.org/assignments/media-types/application/json")),
            ("dct:conformsTo", IRI("https://specs.frictionlessdata.io/tabular-data-package/")),
            *_shared_distribution(release, publication, package_url, files.datapackage),
        ],
    )
    for iri, (name, body) in zip(distributions[1:], files.csvs.items(), strict=True):
        table = tables[name]
        facts = _table_facts(release, table)
        doc.add(
            iri,
            [
                ("a", Term("dcat:Distribution")),
                ("dct:title", _de_en(f"statistics.table.{table.id}")),
                (
                    "dct:description",
                    [
                        Literal(_table_description(release, table, "de"), lang="de"),
                        Literal(_table_description(release, table, "en"), lang="en"),
                    ],
                ),
                ("dct:format", IRI(_EU + "file-type/CSV")),
                ("dcat:mediaType", IRI("https://www.iana.org/assignments/media-types/text/csv")),
                ("foaf:page", IRI(publication.url(f"/statistik?jahr={year}#table-{table.id}"))),
                *_shared_distribution(release, publication, publication.year_url(year, f"{name}.csv"), body),
                ("rhs:epsilon", _decimal(facts["epsilon"])),
                ("rhs:sensitivity", Literal(facts["sensitivity"], datatype="xsd:integer")),
                ("rhs:noiseScale", _decimal(facts["scale"])),
                ("rhs:intervalHalfWidth", Literal(facts["half_width"], datatype="xsd:integer")),
            ],
        )


def dataset_turtle(release: Release, files: ReleaseFiles, publication: Publication) -> bytes:
    """``/statistik/daten/{year}/dcat.ttl``: the year's dataset and its distributions."""
    doc = Document({**PREFIXES, "rhs": publication.vocabulary})
    _add_dataset(doc, release, files, publication)
    return doc.text().encode("utf-8")


def catalogue_turtle(published: Iterable[tuple[Release, ReleaseFiles]], publication: Publication) -> bytes:
    """``/statistik/daten/katalog.ttl``: the catalogue of every published year (newest first), each with
    its dataset and distributions in full, and the definitions of the ``rhs:`` terms the datasets use."""
    releases = list(published)
    doc = Document({**PREFIXES, "rhs": publication.vocabulary})
    catalogue: list[tuple[str, Object | Sequence[Object]]] = [
        ("a", Term("dcat:Catalog")),
        ("dct:title", _de_en("opendata.catalogue.title")),
        ("dct:description", _de_en("opendata.catalogue.description")),
        ("dct:publisher", _publisher(publication)),
        ("foaf:homepage", IRI(publication.url("/statistik"))),
        ("dct:language", [IRI(_EU + "language/DEU"), IRI(_EU + "language/ENG")]),
        ("dct:license", IRI(LICENCE_DCAT_AP_DE)),
        ("dct:spatial", IRI(_EU + "country/DEU")),
        ("dcat:themeTaxonomy", IRI(_EU + "data-theme")),
    ]
    if releases:
        moments = [release.published_at for release, _ in releases]
        catalogue += [("dct:issued", _when(min(moments))), ("dct:modified", _when(max(moments)))]
    catalogue.append(("dcat:dataset", [dataset_iri(publication, release.year) for release, _ in releases]))
    doc.add(IRI(publication.vocabulary + "catalogue"), catalogue)
    for release, files in releases:
        _add_dataset(doc, release, files, publication)
    for name, (kind, comment) in VOCABULARY.items():
        doc.add(
            IRI(publication.vocabulary + name),
            [
                ("a", Term("rdf:Property")),
                ("rdfs:label", Literal(name, lang="en")),
                ("rdfs:comment", Literal(comment, lang="en")),
                ("rdfs:range", Term(kind)),
            ],
        )
    return doc.text().encode("utf-8")

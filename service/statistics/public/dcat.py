"""Each public release's DCAT-AP.de metadata, in Turtle: the catalogue of every published year and each year's
dataset with its distributions (the Data Package and the CSVs that ``opendata`` writes).

Standards followed:
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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime

from service.i18n import Translator
from service.statistics.public.opendata import (
    DATASET_FILE,
    PACKAGE_FILE,
    Publication,
    Release,
    ReleaseFiles,
    dataset_description,
    epsilon_text,
    iso_time,
    keywords,
    plain,
    rounded,
    table_description,
    table_facts,
    table_resource_name,
)
from service.statistics.public.turtle import IRI, Document, Literal, Node, Object, Term, node
from service.taxonomy import LANDS

LICENCE_DCAT_AP_DE = "http://dcat-ap.de/def/licenses/cc-by/4.0"

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


def _de_en(key: str, **values: object) -> list[Object]:
    return [
        Literal(Translator("de")(key, **values), lang="de"),
        Literal(Translator("en")(key, **values), lang="en"),
    ]


def _decimal(text: str) -> Literal:
    return Literal(text, datatype="xsd:decimal")


def _when(moment: datetime) -> Literal:
    return Literal(iso_time(moment), datatype="xsd:dateTime")


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
        ("dcat:keyword", [Literal(word, lang=lang) for lang in ("de", "en") for word in keywords(lang)]),
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
        ("rhs:intervalConfidence", _decimal(plain(rounded(release.content.interval_confidence)))),
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
        facts = table_facts(release, table)
        doc.add(
            iri,
            [
                ("a", Term("dcat:Distribution")),
                ("dct:title", _de_en(f"statistics.table.{table.id}")),
                (
                    "dct:description",
                    [
                        Literal(table_description(release, table, "de"), lang="de"),
                        Literal(table_description(release, table, "en"), lang="en"),
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

"""The public releases as open data (service/statistics/public/opendata.py): a Frictionless Data Package with
its CSVs and DCAT-AP.de metadata at stable addresses, fetched over HTTP and checked with the reference tools.

- The Data Package and every CSV validate with ``frictionless`` (descriptor, schema, every row, size and
  hash), and each CSV holds exactly the figures that /statistik and the JSON API show for that release.
- The DCAT-AP.de catalogue and each year's dataset parse as RDF (``rdflib``) and say what they must:
  catalogue -> dataset per year -> a distribution per CSV and for the package, licence, method and budget.
- The same release gives the same bytes on every request (ETag, 304); a year without a release is a 404;
  nothing but the release store and the budget ledger is read.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frictionless
import pytest
from fastapi.testclient import TestClient
from rdflib import RDF, RDFS, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF
from rdflib.term import Node
from sqlalchemy import event

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from service.statistics.public.dcat import catalogue_turtle, dataset_turtle
from service.statistics.public.dp import PublicRelease, PublicTableJson
from service.statistics.public.ledger import release_year
from service.statistics.public.opendata import (
    Ledger,
    Publication,
    Release,
    release_files,
)
from service.statistics.synthetic import generate

YEAR = 2025
BASE = "http://127.0.0.1:8000"  # the settings' public address (the default)
DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
DCATAP = Namespace("http://data.europa.eu/r5r/")
ADMS = Namespace("http://www.w3.org/ns/adms#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
RHS = Namespace(f"{BASE}/statistik/daten/katalog.ttl#")
CC_BY = URIRef("http://dcat-ap.de/def/licenses/cc-by/4.0")
TABLES = {
    "K1": "k1-persons-by-month",
    "K2": "k2-reports-by-type",
    "K3": "k3-persons-by-land",
    "K4": "k4-persons-by-office",
    "K5": "k5-reports-by-channel",
}


def publish(runtime: Runtime, year: int = YEAR, seed: int = 5) -> None:
    rows = generate(f"{year}-12", months=12, reports_per_year=2400, seed=seed)
    with runtime.sessions() as db:
        release_year(
            db,
            year=year,
            policy=load_statistics_policy(runtime.settings.policies_dir).public,
            domains=domains_from(runtime.taxonomy),
            audit=runtime.audit,
            rows=lambda: rows,
        )
        db.commit()


def fetch(client: TestClient, url: str) -> bytes:
    """A file named by an absolute URL of the metadata, fetched from the application."""
    assert url.startswith(BASE + "/statistik/daten/"), url
    answer = client.get(url.removeprefix(BASE))
    assert answer.status_code == 200, (url, answer.status_code)
    return answer.content


@pytest.fixture
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement the application runs while the test watches."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    yield seen
    event.remove(runtime.engine, "before_cursor_execute", record)


def _page_rows(page: str, table_id: str) -> dict[str, tuple[str, int, int, int]]:
    """label -> (label, value, lower, upper) of one table of /statistik, as a reader sees it."""
    section = page.split(f'id="table-{table_id}"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<tr><th scope="row">(.*?)</th><td>(-?\d+)</td><td>(\d+)–(\d+)</td></tr>', section)
    return {
        html.unescape(label): (html.unescape(label), int(v), int(lo), int(hi)) for label, v, lo, hi in rows
    }


def test_the_data_package_validates_and_holds_exactly_the_released_figures(
    client: TestClient, runtime: Runtime, tmp_path: Path, statements: list[str]
) -> None:
    """Given a published release
    When the data package and each CSV it names are fetched over HTTP
    Then frictionless finds no error in the descriptor nor in any resource (schema, rows, bytes, hash),
    And every CSV row is the release's cell: the API's value, raw and half-width, the page's label, figure
    and interval,
    And the method and the privacy budget are in the package, from the ledger,
    And only the release store and the budget ledger were read."""
    publish(runtime)
    statements.clear()
    package_bytes = client.get(f"/statistik/daten/{YEAR}/datapackage.json").content
    descriptor = json.loads(package_bytes)
    folder = tmp_path / "paket"
    folder.mkdir()
    (folder / "datapackage.json").write_bytes(package_bytes)
    for resource in descriptor["resources"]:
        (folder / resource["path"]).write_bytes(
            fetch(client, f"{BASE}/statistik/daten/{YEAR}/{resource['path']}")
        )
    read = " ".join(statements).lower()
    assert "public_release" in read
    assert "privacy_budget" in read
    assert "statistics_extract" not in read
    assert "statistics_snapshot" not in read

    assert descriptor_errors(descriptor) == []
    report = frictionless.validate(str(folder / "datapackage.json"))
    assert report.valid, report.flatten(["taskNumber", "rowNumber", "fieldName", "type", "note"])
    assert sorted(task.name for task in report.tasks) == sorted(TABLES.values())
    assert all(task.valid and task.stats["rows"] > 0 for task in report.tasks)

    assert descriptor["profile"] == "tabular-data-package"
    assert descriptor["licenses"] == [
        {
            "name": "CC-BY-4.0",
            "path": "https://creativecommons.org/licenses/by/4.0/",
            "title": "Creative Commons Attribution 4.0 International (CC BY 4.0)",
        }
    ]
    privacy = descriptor["differentialPrivacy"]
    assert privacy["privacyUnit"] == "reporter_year"
    assert privacy["epsilon"] == 0.9
    assert privacy["epsilonPerTable"] == {"K1": 0.4, "K2": 0.15, "K3": 0.15, "K4": 0.1, "K5": 0.1}
    assert privacy["budget"] == {
        "year": YEAR,
        "epsilonPerYear": 1,
        "epsilonSpentInYear": 0.9,
        "epsilonRemainingInYear": 0.1,
    }
    assert privacy["smallCellSuppression"] is False
    assert privacy["suppressionThreshold"] is None
    assert "Differential-Privacy" in descriptor["description"]
    assert "ε = 0,9" in descriptor["description"]  # German first, then English
    assert "ε = 1;" in descriptor["description"]
    assert "this release spends ε = 0.9" in descriptor["description"]
    assert "Destatis" in descriptor["description"]
    assert "CC BY 4.0" in descriptor["description"]
    by_name = {resource["name"]: resource for resource in descriptor["resources"]}
    k1 = by_name["k1-persons-by-month"]["differentialPrivacy"]
    assert k1 == {
        "table": "K1",
        "measure": "persons",
        "by": "month",
        "sensitivity": 3,
        "epsilon": 0.4,
        "noiseScale": 7.5,
        "intervalHalfWidth": k1["intervalHalfWidth"],
    }

    (release,) = [r for r in client.get("/api/v1/public/releases").json() if r["year"] == YEAR]
    page = client.get(f"/statistik?jahr={YEAR}").text
    for table in release["tables"]:
        name = TABLES[table["id"]]
        rows = list(csv.DictReader(io.StringIO((folder / f"{name}.csv").read_text(encoding="utf-8"))))
        assert [row["key"] for row in rows] == [cell["key"] for cell in table["cells"]]
        for row, cell in zip(rows, table["cells"], strict=True):
            assert int(row["value"]) == cell["value"]
            assert int(row["raw"]) == cell["raw"]
            assert int(row["half_width"]) == cell["half_width"]
        shown = _page_rows(page, table["id"])
        assert len(shown) == len(rows)
        for row in rows:
            assert shown[row["label_de"]] == (
                row["label_de"],
                int(row["value"]),
                int(row["interval_lower"]),
                int(row["interval_upper"]),
            ), (table["id"], row["key"])


def literals(nodes: Iterable[Node]) -> list[Literal]:
    """The literals among RDF objects (a title or description that is not a literal fails the test)."""
    found = list(nodes)
    assert all(isinstance(node, Literal) for node in found), found
    return [node for node in found if isinstance(node, Literal)]


def descriptor_errors(descriptor: dict[str, Any]) -> list[str]:
    return [error.message for error in frictionless.Package.validate_descriptor(descriptor).errors]


def test_the_dcat_ap_de_metadata_parse_as_rdf_and_describe_every_file(
    client: TestClient, runtime: Runtime
) -> None:
    """Given releases of two years
    When the catalogue and each year's dataset file are fetched and parsed as Turtle
    Then the catalogue lists one dataset per year, each with the mandatory DCAT-AP.de properties, the
    federal level and the Länder as geocoding, CC BY 4.0, and method and budget (dct:description and the
    rhs: terms, which the catalogue defines),
    And each dataset has a distribution for the data package and one per CSV whose download URL serves a
    file of exactly the size and SHA-256 the metadata state."""
    publish(runtime, 2024, seed=4)
    publish(runtime, YEAR)
    catalogue = Graph().parse(data=client.get("/statistik/daten/katalog.ttl").text, format="turtle")
    (catalogue_node,) = catalogue.subjects(RDF.type, DCAT.Catalog)
    assert catalogue.value(catalogue_node, DCTERMS.title) is not None
    assert catalogue.value(catalogue_node, DCTERMS.description) is not None
    assert catalogue.value(catalogue.value(catalogue_node, DCTERMS.publisher), FOAF.name) == Literal(
        "Rückhalt"
    )
    assert catalogue.value(catalogue_node, DCTERMS.license) == CC_BY
    datasets = set(catalogue.objects(catalogue_node, DCAT.dataset))
    assert datasets == {URIRef(f"{BASE}/statistik/daten/{year}/dcat.ttl#dataset") for year in (2024, YEAR)}
    assert set(catalogue.subjects(RDF.type, DCAT.Dataset)) == datasets

    for year in (2024, YEAR):
        dataset = URIRef(f"{BASE}/statistik/daten/{year}/dcat.ttl#dataset")
        own = Graph().parse(data=client.get(f"/statistik/daten/{year}/dcat.ttl").text, format="turtle")
        for graph in (catalogue, own):
            assert (dataset, RDF.type, DCAT.Dataset) in graph
            titles = {str(t.language): str(t) for t in literals(graph.objects(dataset, DCTERMS.title))}
            assert titles["de"] == f"Gemeldete Anfeindungen gegen Kommunalpolitik und -verwaltung {year}"
            assert str(year) in titles["en"]
            descriptions = {
                str(d.language): str(d) for d in literals(graph.objects(dataset, DCTERMS.description))
            }
            assert "ε-Differential-Privacy" in descriptions["de"]
            assert "OpenDP" in descriptions["de"]
            assert "Diese Veröffentlichung verbraucht ε = 0,9" in descriptions["de"]
            assert "this release spends ε = 0.9" in descriptions["en"]
            assert "nicht unterdrückt" in descriptions["de"]
            assert "not suppressed" in descriptions["en"]
            assert "Destatis" in descriptions["de"]
            assert "CC BY 4.0" in descriptions["en"]
            assert graph.value(graph.value(dataset, DCTERMS.publisher), FOAF.name) == Literal("Rückhalt")
            assert graph.value(dataset, DCATDE.politicalGeocodingLevelURI) == URIRef(
                "http://dcat-ap.de/def/politicalGeocoding/Level/federal"
            )
            states = set(graph.objects(dataset, DCATDE.politicalGeocodingURI))
            assert len(states) == 16
            assert URIRef("http://dcat-ap.de/def/politicalGeocoding/stateKey/09") in states
            assert graph.value(dataset, DCATDE.contributorID) is None  # none was assigned
            period = graph.value(dataset, DCTERMS.temporal)
            assert graph.value(period, DCAT.startDate) == Literal(f"{year}-01-01", datatype=XSD.date)
            assert graph.value(dataset, RHS.epsilon) == Literal("0.9", datatype=XSD.decimal)
            assert graph.value(dataset, RHS.epsilonBudgetOfYear) == Literal("1", datatype=XSD.decimal)
            assert graph.value(dataset, RHS.epsilonSpentInYear) == Literal("0.9", datatype=XSD.decimal)
            assert graph.value(dataset, RHS.epsilonRemainingInYear) == Literal("0.1", datatype=XSD.decimal)
            assert graph.value(dataset, RHS.privacyUnit) == Literal("reporter_year")
            assert graph.value(dataset, RHS.smallCellSuppression) == Literal(False)

            distributions = set(graph.objects(dataset, DCAT.distribution))
            assert len(distributions) == 1 + len(TABLES)
            downloads = set()
            for distribution in distributions:
                assert (distribution, RDF.type, DCAT.Distribution) in graph
                url = graph.value(distribution, DCAT.downloadURL)
                assert graph.value(distribution, DCAT.accessURL) == url
                assert graph.value(distribution, DCTERMS.license) == CC_BY
                assert graph.value(distribution, DCATDE.licenseAttributionByText) == Literal("Rückhalt")
                assert graph.value(distribution, ADMS.status) == URIRef(
                    "http://purl.org/adms/status/Completed"
                )
                body = fetch(client, str(url))
                size = graph.value(distribution, DCAT.byteSize)
                assert isinstance(size, Literal)
                assert size.toPython() == len(body)
                checksum = graph.value(distribution, SPDX.checksum)
                assert str(graph.value(checksum, SPDX.checksumValue)) == hashlib.sha256(body).hexdigest()
                downloads.add(str(url).removeprefix(f"{BASE}/statistik/daten/{year}/"))
                if str(url).endswith(".csv"):
                    assert graph.value(distribution, RHS.sensitivity) is not None
                    assert graph.value(distribution, RHS.epsilon) is not None
            assert downloads == {"datapackage.json", *(f"{name}.csv" for name in TABLES.values())}

    used = {predicate for predicate in catalogue.predicates() if str(predicate).startswith(str(RHS))}
    assert len(used) >= 10
    for term in used:
        assert (term, RDF.type, RDF.Property) in catalogue
        assert catalogue.value(term, RDFS.comment) is not None


def test_the_same_release_gives_the_same_bytes(client: TestClient, runtime: Runtime) -> None:
    """Given a published release
    When each open-data file is fetched twice, and once more from a second application on the same data
    Then the bytes and the ETag are the same each time, a revalidation with the ETag gets 304 and no body,
    and the answers may be cached (public, revalidated) and read from any origin."""
    publish(runtime)
    paths = [
        "/statistik/daten/katalog.ttl",
        f"/statistik/daten/{YEAR}/dcat.ttl",
        f"/statistik/daten/{YEAR}/datapackage.json",
        *(f"/statistik/daten/{YEAR}/{name}.csv" for name in TABLES.values()),
    ]
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as other:
        for path in paths:
            first, second, third = client.get(path), client.get(path), other.get(path)
            assert first.status_code == 200
            assert first.content == second.content == third.content, path
            etag = first.headers["etag"]
            assert etag == second.headers["etag"] == third.headers["etag"]
            assert first.headers["cache-control"] == "public, no-cache"
            assert first.headers["access-control-allow-origin"] == "*"
            again = client.get(path, headers={"if-none-match": etag})
            assert again.status_code == 304
            assert again.content == b""
            assert again.headers["etag"] == etag
            assert client.get(path, headers={"if-none-match": '"other"'}).status_code == 200
    types = {
        "/statistik/daten/katalog.ttl": "text/turtle; charset=utf-8",
        f"/statistik/daten/{YEAR}/datapackage.json": "application/json",
        f"/statistik/daten/{YEAR}/k3-persons-by-land.csv": "text/csv; charset=utf-8",
    }
    for path, content_type in types.items():
        assert client.get(path).headers["content-type"] == content_type


def test_years_without_a_release_and_unknown_tables_are_not_found(
    client: TestClient, runtime: Runtime
) -> None:
    """Given no release, the catalogue is empty and every year's file is a 404; given a release of one
    year, another year, a table the release does not have, and a year spelled otherwise are 404 too."""
    empty = Graph().parse(data=client.get("/statistik/daten/katalog.ttl").text, format="turtle")
    assert len(list(empty.subjects(RDF.type, DCAT.Catalog))) == 1
    assert not list(empty.subjects(RDF.type, DCAT.Dataset))
    for name in ("datapackage.json", "dcat.ttl", "k1-persons-by-month.csv"):
        assert client.get(f"/statistik/daten/{YEAR}/{name}").status_code == 404

    publish(runtime)
    assert client.get(f"/statistik/daten/{YEAR}/datapackage.json").status_code == 200
    for path in (
        f"/statistik/daten/{YEAR - 1}/datapackage.json",
        f"/statistik/daten/{YEAR - 1}/dcat.ttl",
        f"/statistik/daten/{YEAR - 1}/k1-persons-by-month.csv",
        f"/statistik/daten/{YEAR}/k9-persons-by-district.csv",
        f"/statistik/daten/{YEAR}/datapackage.csv",
        f"/statistik/daten/0{YEAR}/datapackage.json",
        "/statistik/daten/jahr/datapackage.json",
    ):
        assert client.get(path).status_code == 404, path


def test_statistik_lists_the_open_data(client: TestClient, runtime: Runtime) -> None:
    """/statistik explains the open data in German and English and links every file of the release shown,
    and the catalogue; each link answers."""
    assert 'href="/statistik/daten/katalog.ttl"' in client.get("/statistik").text
    publish(runtime)
    page = client.get("/statistik").text
    assert "Offene Daten" in page
    assert "CC BY 4.0" in page
    assert "DCAT-AP.de" in page
    links = re.findall(r'href="(/statistik/daten/[^"]+)"', page)
    assert set(links) == {
        "/statistik/daten/katalog.ttl",
        f"/statistik/daten/{YEAR}/datapackage.json",
        f"/statistik/daten/{YEAR}/dcat.ttl",
        *(f"/statistik/daten/{YEAR}/{name}.csv" for name in TABLES.values()),
    }
    for link in links:
        assert client.get(link).status_code == 200, link
    english = client.get("/statistik?lang=en").text
    assert "Open data" in english
    assert "Frictionless Data Package" in english


def _release(year: int = YEAR) -> Release:
    table: PublicTableJson = {
        "id": "K3",
        "measure": "persons",
        "by": "land",
        "sensitivity": 1,
        "epsilon": 0.15,
        "scale": 1 / 0.15,
        "cells": [{"key": "01", "value": 0, "raw": -3, "half_width": 15}],
    }
    content = PublicRelease.from_json(
        {
            "version": 1,
            "year": year,
            "privacy_unit": "reporter_year",
            "epsilon_spent": 0.15,
            "epsilon_by_table": {"K3": 0.15},
            "interval_confidence": 0.9,
            "tables": [table],
        }
    )
    return Release(
        id="r1",
        published_at=datetime(year + 1, 1, 10, 9, 30, tzinfo=UTC),
        content=content,
        ledger=Ledger(
            release_micro=150_000,
            table_micro={"K3": 150_000},
            year_total_micro=1_000_000,
            year_spent_micro=150_000,
        ),
    )


def test_the_files_are_a_function_of_the_release_and_the_settings() -> None:
    """Built twice from the same release, the files are identical; a contributor ID that GovData assigned
    appears as dcatde:contributorID; a publisher name with quotes and an address with odd characters
    still give Turtle that parses; a negative draw is 0 in value, kept in raw, interval from 0."""
    publication = Publication(
        base_url="https://statistik.example.org/rück halt",
        publisher='Verein "Rückhalt" e.V.\\',
        contact_url="https://example.org/impressum",
        contributor_id="http://dcat-ap.de/def/contributors/rueckhalt",
    )

    def label(dimension: str, key: str, lang: str) -> str:
        return f"Land {key} ({lang})"

    release = _release()
    files = release_files(release, publication, label)
    assert files == release_files(release, publication, label)
    assert files.csvs["k3-persons-by-land"].decode() == (
        "key,label_de,label_en,value,interval_lower,interval_upper,raw,half_width\r\n"
        "01,Land 01 (de),Land 01 (en),0,0,15,-3,15\r\n"
    )
    ttl = catalogue_turtle([(release, files)], publication)
    assert ttl == catalogue_turtle([(release, files)], publication)
    graph = Graph().parse(data=ttl.decode(), format="turtle")
    (dataset,) = graph.subjects(RDF.type, DCAT.Dataset)
    assert str(dataset).startswith("https://statistik.example.org/r%C3%BCck%20halt/statistik/daten/2025/")
    assert graph.value(dataset, DCATDE.contributorID) == URIRef(
        "http://dcat-ap.de/def/contributors/rueckhalt"
    )
    assert graph.value(graph.value(dataset, DCTERMS.publisher), FOAF.name) == Literal(
        'Verein "Rückhalt" e.V.\\'
    )
    single = Graph().parse(data=dataset_turtle(release, files, publication).decode(), format="turtle")
    assert set(single.subjects(RDF.type, DCAT.Dataset)) == {dataset}
    package = json.loads(files.datapackage)
    assert package["resources"][0]["differentialPrivacy"]["noiseScale"] == 6.6667
    assert package["differentialPrivacy"]["budget"]["epsilonRemainingInYear"] == 0.85


@pytest.mark.parametrize(
    "value",
    [
        "rueckhalt",
        "https://dcat-ap.de/def/contributors/x",
        "http://dcat-ap.de/def/contributors/",
        "http://dcat-ap.de/def/contributors/a b",
    ],
)
def test_a_contributor_id_must_be_one_govdata_assigns(value: str) -> None:
    with pytest.raises(ValueError, match="contributors"):
        Settings(open_data_contributor_id=value)

"""/statistik: the stored release as charts and tables, downloads, the methodology; no release, no figures."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient

from service.runtime import Runtime
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from service.statistics.public.ledger import release_year
from service.statistics.synthetic import generate

YEAR = 2025


def publish(runtime: Runtime) -> None:
    rows = generate(f"{YEAR}-12", months=12, reports_per_year=2400, seed=5)
    with runtime.sessions() as db:
        release_year(
            db,
            year=YEAR,
            policy=load_statistics_policy(runtime.settings.policies_dir).public,
            domains=domains_from(runtime.taxonomy),
            audit=runtime.audit,
            rows=lambda: rows,
        )
        db.commit()


def test_without_a_release_the_page_says_so(client: TestClient) -> None:
    page = client.get("/statistik")
    assert page.status_code == 200
    assert "Es gibt noch keine veröffentlichten Zahlen." in page.text
    assert "Wie diese Zahlen entstehen" in page.text
    assert client.get(f"/statistik/{YEAR}.csv").status_code == 404


def test_the_published_release_is_shown_and_downloadable(client: TestClient, runtime: Runtime) -> None:
    publish(runtime)
    page = client.get("/statistik")
    assert page.status_code == 200
    text = page.text
    assert f"Veröffentlichung für {YEAR}" in text
    assert "<svg" in text
    assert text.count("<rect") == 12, "one bar per month"
    assert "Bayern" in text
    # No third-party resource: nothing is loaded from another address (links to read elsewhere are fine).
    assert 'src="http' not in text
    assert not re.search(r"<link[^>]+href=\"https?:", text)
    english = client.get("/statistik?lang=en").text
    assert f"Release for {YEAR}" in english
    assert "How these figures are made" in english

    data = client.get(f"/statistik/{YEAR}.json").json()
    assert data["year"] == YEAR
    rows = list(csv.DictReader(io.StringIO(client.get(f"/statistik/{YEAR}.csv").text)))
    assert {row["table"] for row in rows} == {"K1", "K2", "K3", "K4", "K5"}
    k1 = {row["key"]: row for row in rows if row["table"] == "K1"}
    assert sorted(k1) == [f"{YEAR}-{m:02d}" for m in range(1, 13)]
    assert all(int(row["value"]) == max(0, int(row["raw"])) for row in rows), "negatives shown as 0, raw kept"
    assert client.get("/statistik/1999.json").status_code == 404

"""Dashboard and public-release benchmark over 1,000,000 extract rows on PostgreSQL (loopback only).

Measures: loading the rows, one public release (OpenDP noise, budget ledger) over all of them, building and
gating one coordinator snapshot, and then the coordinator pages served from the stored snapshot (p50/p95
over a bounded number of requests at one connection; target p95 < 200 ms per page). Prints the figures and
writes bench/results/dashboard.json.

Usage: python -m bench.dashboard [--rows 1000000] [--requests 40]   (make bench-dashboard)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Stack, free_port
from bench.intake import percentile
from service.crypto import totp_code
from service.statistics.dashboard.service import make_snapshot
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from service.statistics.public.ledger import release_year
from service.statistics.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent

YEAR = 2025
COLUMNS = (
    "id", "reporter_pseudonym", "receipt_month", "incident_month", "land", "primary_type", "type_codes",
    "channel", "office", "severity_group",
)  # fmt: skip


def load_rows(url: str, count: int) -> float:
    import uuid

    import psycopg

    rows = generate(f"{YEAR}-12", months=12, reports_per_year=count, seed=99)
    start = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY statistics_extract ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(
                    (
                        str(uuid.uuid4()), r.reporter_pseudonym, r.receipt_month, r.incident_month, r.land,
                        r.primary_type, json.dumps(list(r.type_codes)), r.channel, r.office, r.severity_group,
                    )
                )  # fmt: skip
        conn.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--snapshot-month", default=f"{YEAR}-03")
    args = parser.parse_args()
    results: dict[str, Any] = {"rows": args.rows}
    stack = Stack()
    try:
        url = stack.database("bench_dashboard")
        runtime = stack.runtime(url)
        results["load_seconds"] = round(load_rows(url, args.rows), 1)
        print(f"loaded {args.rows} rows in {results['load_seconds']} s")
        policy = load_statistics_policy(runtime.settings.policies_dir)
        domains = domains_from(runtime.taxonomy)
        start = time.perf_counter()
        with runtime.sessions() as db:
            release_year(db, year=YEAR, policy=policy.public, domains=domains, audit=runtime.audit)
            db.commit()
        results["public_release_seconds"] = round(time.perf_counter() - start, 1)
        print(f"public release over {args.rows} rows: {results['public_release_seconds']} s")
        start = time.perf_counter()
        with runtime.sessions() as db:
            snapshot = make_snapshot(
                db, as_of=args.snapshot_month, domains=domains, rules=policy.coordinator, audit=runtime.audit
            )
            db.commit()
        results["snapshot_seconds"] = round(time.perf_counter() - start, 1)
        results["snapshot_released"] = snapshot.released
        print(
            f"snapshot {args.snapshot_month}: {results['snapshot_seconds']} s, released {snapshot.released}"
        )

        from tests.support.staff import Clock, staff_factory, weak_accounts

        runtime.recovery_shares = {}  # type: ignore[attr-defined]
        coordinator = staff_factory(runtime, weak_accounts(runtime, Clock()))(
            email="koordination@bench.example", coordinator=True
        )
        runtime.dispose()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=stack.env(url),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.processes.append(server)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post(
                "/api/v1/session",
                json={
                    "email": coordinator.email,
                    "password": coordinator.password,
                    "totp": totp_code(coordinator.totp_secret, time.time()),
                },
            )
            login.raise_for_status()
            pages = {
                "dashboard_page": "/intern/statistik",
                "snapshot_api": f"/api/v1/dashboard/snapshots/{args.snapshot_month}",
                "csv_export": f"/intern/statistik/{args.snapshot_month}.csv",
                "public_page": "/statistik",
                "public_api": "/api/v1/public/releases",
            }
            results["pages"] = {}
            for name, path in pages.items():
                latencies = []
                for _ in range(args.requests):
                    start = time.perf_counter()
                    response = client.get(path)
                    latencies.append((time.perf_counter() - start) * 1000)
                    response.raise_for_status()
                figures = {
                    "p50_ms": round(percentile(latencies, 50), 1),
                    "p95_ms": round(percentile(latencies, 95), 1),
                }
                results["pages"][name] = figures
                p50, p95 = figures["p50_ms"], figures["p95_ms"]
                print(f"{name:15} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  (target p95 < 200)")
        results["met"] = all(page["p95_ms"] < 200 for page in results["pages"].values())
    finally:
        stack.close()
    out = ROOT / "bench" / "results" / "dashboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

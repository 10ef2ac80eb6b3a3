"""Statistics benchmark: synthetic extract generation, the public DP release and the dashboard gate.

The gate is measured on the real catalogue of a full synthetic year (2,400 reports by default): the four
quarter-end snapshots built in turn (each with secondary suppression, each checked with all earlier ones),
then the gate alone on each. Writes bench/results/statistics.json. Pure Python, no services needed.

Usage: python -m bench.statistics_engine [--reports 2400] [--rows 1000000]   (make bench-statistics)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from service.statistics.dashboard.catalogue import compute_catalogue
from service.statistics.dashboard.gate import run_gate
from service.statistics.dashboard.snapshot import Snapshot
from service.statistics.dashboard.suppression import build_snapshot
from service.statistics.domains import domains_from
from service.statistics.policy import load_statistics_policy
from service.statistics.public.dp import release
from service.statistics.synthetic import generate
from service.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=2400, help="reports per year for the gate")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the generator timing")
    args = parser.parse_args()
    policies = ROOT / "policies"
    domains = domains_from(load_taxonomy(policies))
    policy = load_statistics_policy(policies)
    results: dict[str, Any] = {}

    started = time.perf_counter()
    big = generate("2025-12", reports_per_year=args.rows)
    results["generate"] = {"rows": len(big), "seconds": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    release(big, 2025, policy.public, domains)
    results["dp_release"] = {"rows": len(big), "seconds": round(time.perf_counter() - started, 2)}
    del big

    rows = generate("2025-12", reports_per_year=args.reports)
    snapshots: list[Snapshot] = []
    results["gate"] = []
    for month in ("2025-03", "2025-06", "2025-09", "2025-12"):
        started = time.perf_counter()
        snapshot = build_snapshot(rows, month, snapshots, domains, policy.coordinator)
        built = time.perf_counter() - started
        started = time.perf_counter()
        gate = run_gate(
            compute_catalogue(rows, month, domains), domains, policy.coordinator, snapshots, snapshot
        )
        alone = time.perf_counter() - started
        statuses: dict[str, int] = {}
        for table in snapshot.tables:
            for cell in table.cells:
                statuses[cell.status.value] = statuses.get(cell.status.value, 0) + 1
        entry = {
            "as_of": month,
            "cells": sum(statuses.values()),
            "statuses": statuses,
            "released": snapshot.released,
            "hidden_numbers_checked": len(gate.findings),
            "lp_solved": gate.lp_solved,
            "narrowest_width": gate.narrowest_width,
            "build_with_secondary_seconds": round(built, 1),
            "gate_alone_seconds": round(alone, 1),
        }
        print(json.dumps(entry), flush=True)
        results["gate"].append(entry)
        snapshots.append(snapshot)
    out = ROOT / "bench" / "results" / "statistics.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "gate"}))


if __name__ == "__main__":
    main()

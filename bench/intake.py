"""Intake benchmark: encrypted JSON intake against a bare-insert baseline on the same PostgreSQL.

Both run under the same uvicorn setup (uvloop, the same number of workers) on loopback only, side by side
for the whole run. For each: the maximum rate with a closed loop of concurrent clients, then p50/p99
latency at half that rate with an open loop (requests sent on a fixed schedule), and p50 at one connection.

The maximum rates are measured in rounds that alternate the two (baseline, intake; then intake, baseline;
...): this machine's speed drifts by a fifth over a minute (other guests on the host), and a ratio of two
rates measured a minute apart carries that drift. Each round's ratio compares two neighbouring
measurements; the reported ``ratio`` is the median over the rounds, and every round is in the JSON.
Writes bench/results/intake.json. Every loop is bounded in time.

Usage: python bench/intake.py --seconds 20   (make bench-intake BENCH_SECONDS=20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Stack, free_port  # noqa: E402

BODY: dict[str, Any] = {
    "land": "09",
    "district_ags": "09162",
    "municipality": "Musterstadt",
    "type_codes": ["A3a"],
    "description": "Nach der Ratssitzung erhielt ich drei E-Mails mit Gewaltandrohungen. " * 8,
    "occurred_on": "2026-11-03",
    "channel": "email",
    "targets": ["self", "partner"],
    "office": "mayor_volunteer",
    "urgency": "high",
}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def closed_loop(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    response = await client.post(url, json=BODY)
                    ok = response.status_code == 201
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - start) * 1000)
                if not ok:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "rate_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


async def open_loop(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Send at a fixed rate regardless of answers, so queueing shows up in the latencies."""
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    total = int(rate * seconds)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=256), timeout=10) as client:

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                response = await client.post(url, json=BODY)
                if response.status_code != 201:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - start) * 1000)

        tasks = []
        begin = time.perf_counter()
        for index in range(total):
            delay = begin + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return {
        "target_rate_per_s": rate,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
    }


def start_server(app: str, env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # Ready when the database answers (no worker runs beside this api: /healthz says 503 for that).
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if health.status_code == 200 or health.json().get("database", {}).get("ok"):
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"{app} did not become healthy")


def latencies(name: str, url: str, peak: dict[str, Any], seconds: float) -> dict[str, Any]:
    half = asyncio.run(open_loop(url, peak["rate_per_s"] / 2, seconds))
    single = asyncio.run(closed_loop(url, 1, max(2.0, seconds / 4)))
    print(
        f"{name:9} max {peak['rate_per_s']:7.1f}/s (p99 {peak['p99_ms']:.1f} ms) | "
        f"at {half['target_rate_per_s']:.0f}/s: p50 {half['p50_ms']:.1f} ms p99 {half['p99_ms']:.1f} ms | "
        f"1 conn p50 {single['p50_ms']:.1f} ms"
    )
    return {"max": peak, "half_rate": half, "one_connection": single}


def peak_rates(
    urls: dict[str, str], seconds: float, concurrency: int, rounds: int
) -> tuple[dict[str, list[dict[str, float]]], list[float]]:
    """Closed-loop maximum rates of both, alternating, and the ratio intake/baseline of each round."""
    for url in urls.values():
        asyncio.run(closed_loop(url, concurrency, min(2.0, seconds / 4)))  # warm-up
    measured: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    ratios = []
    for index in range(rounds):
        order = ["baseline", "intake"] if index % 2 == 0 else ["intake", "baseline"]
        for name in order:
            measured[name].append(asyncio.run(closed_loop(urls[name], concurrency, seconds)))
        ratio = measured["intake"][-1]["rate_per_s"] / measured["baseline"][-1]["rate_per_s"]
        ratios.append(ratio)
        print(
            f"round {index + 1}: baseline {measured['baseline'][-1]['rate_per_s']:.1f}/s, "
            f"intake {measured['intake'][-1]['rate_per_s']:.1f}/s, ratio {ratio:.2f}"
        )
    return measured, ratios


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The round with the median rate (a whole measurement, so its latencies belong to its rate)."""
    return sorted(runs, key=lambda run: run["rate_per_s"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "20")))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating max-rate rounds (odd)")
    args = parser.parse_args()

    stack = Stack()
    try:
        intake_url = stack.database("bench_intake")
        baseline_url = stack.database("bench_baseline", migrated=False)
        stack.runtime(intake_url).dispose()
        results: dict[str, Any] = {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "rounds": args.rounds,
        }
        urls = {}
        for name, app, url in (
            ("baseline", "bench.baseline_app:create_app", baseline_url),
            ("intake", "service.app:app_factory", intake_url),
        ):
            port = free_port()
            stack.processes.append(start_server(app, stack.env(url), port, args.workers))
            urls[name] = f"http://127.0.0.1:{port}/api/v1/reports"
        measured, ratios = peak_rates(urls, args.seconds, args.concurrency, args.rounds)
        for name, url in urls.items():
            results[name] = latencies(name, url, median_run(measured[name]), args.seconds)
            results[name]["max_rounds"] = measured[name]
        results["ratio_rounds"] = ratios
        results["ratio"] = statistics.median(ratios)
        results["targets"] = {"ratio_at_least": 0.5, "p99_ms_at_half_rate_below": 50}
        results["met"] = {
            "ratio": results["ratio"] >= 0.5,
            "p99_at_half_rate": results["intake"]["half_rate"]["p99_ms"] < 50,
        }
        out = ROOT / "bench" / "results" / "intake.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"ratio {results['ratio']:.2f} (target >= 0.5); written to {out.relative_to(ROOT)}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()

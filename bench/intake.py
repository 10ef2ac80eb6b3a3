"""Intake benchmark: encrypted JSON intake against a bare-insert baseline on the same PostgreSQL.

Both run under the same server setup (uvloop, the same number of workers, each on its own socket of the port:
service/serving.py) on loopback only, side by side
for the whole run. The load comes from wrk (Debian's package, bench/wrk_post.lua), a C client that costs a
few microseconds of CPU a request: a Python client on the same two cores costs about as much per request as
the baseline's server and caps both servers, which pushes the ratio toward 1. wrk's Lua counts every answer
that is not a 201; the rate is of 201s only. The Python client only checks a few answers' content.

For each connection count (16 and 32): the closed-loop maximum rate of both, in rounds that alternate the two
(baseline, intake; then intake, baseline; ...): this machine's speed drifts by a fifth over a minute (other
guests on the host), and a ratio of two rates measured a minute apart carries that drift. Each round's ratio
compares two neighbouring measurements; the reported ``ratio`` is the median over the rounds at 16
connections, and every round is in the JSON. Then both at half the intake's maximum rate (paced with wrk's
``delay()``, an open loop): p50/p99; and p50 at one connection.

A third server runs in the same rounds: ``bench.floor_app``, the baseline plus only what the issue's goal
keeps (the shared rate limit, the report sealed and its key wrapped for as many holders as the intake wrapped
it for this body, as many rows as the intake stored, the commit before the 201) and nothing else. Its ratio
is an upper bound for any intake that keeps those promises on this machine and stores each report in its own
statement; the intake, which stores reports that arrive together in one (``service.group_commit``), passes it.

Every run records wrk's own CPU share (its rusage over wall time and cores), the CPU per 201 of the api
processes, PostgreSQL and Redis (/proc), and the machine's busy and stolen shares (/proc/stat).
Writes bench/results/intake.json. Every loop is bounded in time.

Usage: python -m bench.intake --seconds 20   (make bench-intake BENCH_SECONDS=20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bench import wrk
from bench.common import Stack, free_port
from service import serving
from service.db import Base
from service.identity.models import CaseKeyGrant
from service.runtime import Runtime
from tests.support.forms import report_body

ROOT = Path(__file__).resolve().parent.parent
# Reports each server answers in full before the rates are measured.
CHECKED = 3

BODY: dict[str, Any] = report_body(
    district_ags="09162",
    municipality="Musterstadt",
    type_codes=["A3a"],
    description="Nach der Ratssitzung erhielt ich drei E-Mails mit Gewaltandrohungen. " * 8,
    occurred_on="2026-11-03",
    targets=["self", "partner"],
    office="mayor_volunteer",
    urgency="high",
)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# The Python client: kept for the other benchmarks (bench/login_flood.py, memory.py, uploads_loop.py), never
# for this one's rates.
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
    # Served as `rueckhalt serve` serves the api (service/serving.py): a socket per worker, so that the
    # kernel spreads wrk's connections over the workers instead of handing them all to the first awake.
    command = serving.command(app, port, workers)
    # The servers' log lines (an access line per request) go to a file, as in production, not to the terminal.
    log = open(Path(env.get("RUECKHALT_DATA_DIR", "/tmp")) / f"server-{port}.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    log.close()
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


def check_answers(urls: dict[str, str], count: int = 3) -> dict[str, bool]:
    """A few answers read in full (what wrk does not look at): a 201 with a receipt and a routing."""
    checked = {}
    with httpx.Client(timeout=10) as client:
        for name, url in urls.items():
            ok = True
            for _ in range(count):
                response = client.post(url, json=BODY)
                answer = response.json() if response.status_code == 201 else {}
                ok = ok and response.status_code == 201 and bool(answer.get("receipt"))
                ok = ok and isinstance(answer.get("routed_to"), list)
            checked[name] = ok
    return checked


def peak_rates(
    urls: dict[str, str], parts: dict[str, dict[str, int]], seconds: float, connections: int, rounds: int
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[float]]]:
    """Closed-loop maximum rates of all three with wrk, alternating (baseline, floor, intake; then the other
    way round); the ratios intake/baseline and floor/baseline of each round."""
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    ratios: dict[str, list[float]] = {"intake": [], "floor": []}
    for index in range(rounds):
        order = ["baseline", "floor", "intake"] if index % 2 == 0 else ["intake", "floor", "baseline"]
        for name in order:
            load = wrk.Load(urls[name], connections, seconds)
            measured[name].append(wrk.run(load, BODY, parts[name]))
        base = measured["baseline"][-1]
        for name in ratios:
            rate = measured[name][-1]["rate_per_s"]
            ratios[name].append(rate / base["rate_per_s"] if base["rate_per_s"] else float("nan"))
        intake, floor = measured["intake"][-1], measured["floor"][-1]
        print(
            f"{connections:2} conn round {index + 1}: baseline {base['rate_per_s']:7.1f}/s "
            f"(p99 {base['p99_ms']:5.1f} ms), floor {floor['rate_per_s']:6.1f}/s, "
            f"intake {intake['rate_per_s']:6.1f}/s (p99 {intake['p99_ms']:5.1f} ms), "
            f"ratio {ratios['intake'][-1]:.2f} (floor {ratios['floor'][-1]:.2f}) | wrk CPU "
            f"{base['client_cpu_share']:.1%}/{intake['client_cpu_share']:.1%}, stolen "
            f"{base['machine']['steal_share']:.1%}/{intake['machine']['steal_share']:.1%}"
        )
    return measured, ratios


def stored_rows(runtime: Runtime) -> tuple[int, int]:
    """Rows of every table of the intake's database, and its wrapped case keys (one per holder)."""
    with runtime.sessions() as session:
        total = sum(
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        )
        grants = session.execute(select(func.count()).select_from(CaseKeyGrant)).scalar_one()
    return total, grants


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (a whole measurement, so its latencies belong to its rate)."""
    return sorted(runs, key=lambda run: run["rate_per_s"])[len(runs) // 2]


def cpu_per_201(runs: list[dict[str, Any]]) -> dict[str, float]:
    """CPU milliseconds per 201 of each part over all the given runs, weighted by their requests."""
    total = sum(run["created_201"] for run in runs) or 1
    parts = runs[0]["cpu_ms_per_201"].keys()
    return {
        part: round(sum((run["cpu_ms_per_201"][part] or 0) * run["created_201"] for run in runs) / total, 3)
        for part in parts
    }


def spread(runs: list[dict[str, Any]]) -> dict[str, float]:
    rates = [run["rate_per_s"] for run in runs]
    middle = statistics.median(rates)
    return {
        "min": round(min(rates), 1),
        "median": round(middle, 1),
        "max": round(max(rates), 1),
        "range_of_median": round((max(rates) - min(rates)) / middle, 3) if middle else float("nan"),
    }


def server_parts(stack: Stack, servers: dict[str, subprocess.Popen[bytes]]) -> dict[str, dict[str, int]]:
    """The process trees whose CPU is counted for each server: its api processes, PostgreSQL, Redis."""
    postmaster = int((stack.cluster.data / "postmaster.pid").read_text().split()[0])
    redis_pid = stack.redis.process.pid
    return {
        name: {"api": server.pid, "postgres": postmaster, "redis": redis_pid}
        for name, server in servers.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "20")))
    parser.add_argument(
        "--connections", default="16,32", help="closed-loop connection counts; the first gives the ratio"
    )
    parser.add_argument(
        "--paced-connections", type=int, default=32, help="connections of the paced open loop"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating max-rate rounds (odd)")
    args = parser.parse_args()
    connection_counts = [int(value) for value in args.connections.split(",")]

    stack = Stack()
    try:
        intake_url = stack.database("bench_intake")
        baseline_url = stack.database("bench_baseline", migrated=False)
        floor_url = stack.database("bench_floor", migrated=False)
        intake_runtime = stack.runtime(intake_url)
        results: dict[str, Any] = {
            "client": wrk.version(),
            "seconds": args.seconds,
            "connections": connection_counts,
            "workers": args.workers,
            "rounds": args.rounds,
            "cores": wrk.CORES,
        }
        urls, servers = {}, {}
        for name, app, url in (
            ("baseline", "bench.baseline_app:create_app", baseline_url),
            ("intake", "service.app:app_factory", intake_url),
        ):
            port = free_port()
            servers[name] = start_server(app, stack.env(url), port, args.workers)
            stack.processes.append(servers[name])
            urls[name] = f"http://127.0.0.1:{port}/api/v1/reports"
        rows_before, grants_before = stored_rows(intake_runtime)
        results["answers_checked"] = check_answers(urls, CHECKED)
        rows_after, grants_after = stored_rows(intake_runtime)
        intake_runtime.dispose()
        # The floor does what the intake stored for the same body: its wraps and its number of rows.
        wraps, rows = (grants_after - grants_before) // CHECKED, (rows_after - rows_before) // CHECKED
        results["floor"] = {"wraps": wraps, "rows": rows}
        port = free_port()
        floor_env = stack.env(floor_url, BENCH_FLOOR_WRAPS=str(wraps), BENCH_FLOOR_ROWS=str(rows))
        servers["floor"] = start_server("bench.floor_app:create_app", floor_env, port, args.workers)
        stack.processes.append(servers["floor"])
        urls["floor"] = f"http://127.0.0.1:{port}/api/v1/reports"
        results["answers_checked"] |= check_answers({"floor": urls["floor"]}, CHECKED)
        print(f"floor: {wraps} HPKE wraps and {rows} rows per report, as the intake stored for this body")
        parts = server_parts(stack, servers)
        for name in urls:  # warm-up
            wrk.run(wrk.Load(urls[name], connection_counts[0], min(3.0, args.seconds / 4)), BODY, parts[name])
        by_connections: dict[str, Any] = {}
        for connections in connection_counts:
            measured, ratios = peak_rates(urls, parts, args.seconds, connections, args.rounds)
            by_connections[str(connections)] = {
                "ratio": statistics.median(ratios["intake"]),
                "ratio_rounds": ratios["intake"],
                "floor_ratio": statistics.median(ratios["floor"]),
                "floor_ratio_rounds": ratios["floor"],
                **{
                    name: {
                        "rounds": runs,
                        "median_round": median_run(runs),
                        "spread": spread(runs),
                        "cpu_ms_per_201": cpu_per_201(runs),
                        "client_cpu_share_max": max(run["client_cpu_share"] for run in runs),
                    }
                    for name, runs in measured.items()
                },
            }
        results["closed_loop"] = by_connections
        first = by_connections[str(connection_counts[0])]
        results["ratio"] = first["ratio"]
        results["floor"]["ratio"] = first["floor_ratio"]
        compared = {name: urls[name] for name in ("baseline", "intake")}
        # Both at the same paced rate: half the intake's maximum at the first connection count.
        target = first["intake"]["median_round"]["rate_per_s"] / 2
        delay_ms = args.paced_connections * 1000 / target
        results["half_rate"] = {
            "target_rate_per_s": target,
            **{
                name: wrk.run(
                    wrk.Load(url, args.paced_connections, args.seconds, delay_ms=delay_ms), BODY, parts[name]
                )
                for name, url in compared.items()
            },
        }
        results["one_connection"] = {
            name: wrk.run(wrk.Load(url, 1, max(3.0, args.seconds / 4)), BODY, parts[name])
            for name, url in compared.items()
        }
        for name in compared:
            half = results["half_rate"][name]
            print(
                f"{name:9} at {target:.0f}/s (wrk delay {delay_ms:.0f} ms x {args.paced_connections} conn): "
                f"sent {half['rate_per_s']:.1f}/s p50 {half['p50_ms']:.1f} ms p99 {half['p99_ms']:.1f} ms | "
                f"1 conn p50 {results['one_connection'][name]['p50_ms']:.1f} ms"
            )
        print("CPU ms per 201 (closed loop, all rounds):")
        print(
            f"  {'conn':>4} {'server':9} "
            + " ".join(f"{part:>8}" for part in ("api", "postgres", "redis", "wrk"))
        )
        for connections in connection_counts:
            for name in urls:
                cpu = by_connections[str(connections)][name]["cpu_ms_per_201"]
                print(
                    f"  {connections:>4} {name:9} "
                    + " ".join(f"{cpu[part]:8.3f}" for part in ("api", "postgres", "redis", "wrk"))
                )
        for connections in connection_counts:
            entry = by_connections[str(connections)]
            base, intake = entry["baseline"]["spread"], entry["intake"]["spread"]
            print(
                f"{connections} conn: baseline {base}, intake {intake}, "
                f"ratio {entry['ratio']:.2f} "
                f"(rounds {', '.join(f'{r:.2f}' for r in entry['ratio_rounds'])}); "
                f"floor {entry['floor']['spread']}, ratio {entry['floor_ratio']:.2f} "
                f"(rounds {', '.join(f'{r:.2f}' for r in entry['floor_ratio_rounds'])})"
            )
        results["targets"] = {"ratio_at_least": 0.5, "p99_ms_at_half_rate_below": 50}
        results["met"] = {
            "ratio": results["ratio"] >= 0.5,
            "p99_at_half_rate": results["half_rate"]["intake"]["p99_ms"] < 50,
            "answers": all(results["answers_checked"].values()),
        }
        out = ROOT / "bench" / "results" / "intake.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(
            f"client {results['client']}; ratio {results['ratio']:.2f} at {connection_counts[0]} connections "
            f"(target >= 0.5); the floor (rate limit, {wraps} wraps, {rows} rows, commit; nothing else) "
            f"{results['floor']['ratio']:.2f}; written to {out.relative_to(ROOT)}"
        )
    finally:
        stack.close()


if __name__ == "__main__":
    main()

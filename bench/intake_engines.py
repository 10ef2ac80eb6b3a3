"""Does the JSON intake's event-loop engine earn its place? The same intake served two ways, in one run.

Where the served application has asyncio connections (PostgreSQL), the intake files on the event loop: a
report that is one statement with no session (``service.reports.on_loop``), any other through
``service.deps.in_transaction`` (``AsyncSession.run_sync``); otherwise in the thread pool on the sync engine.
This benchmark serves the same application both ways against the same PostgreSQL and Redis (two uvloop workers
each), drives both with wrk at 16 connections in alternating rounds, and prints the rate, p99 and CPU per 201
of each. Loopback only; bounded by ``--seconds`` x ``--rounds``.

Usage: python -m bench.intake_engines --seconds 10 --rounds 3   (make bench-intake-engines)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from bench import wrk
from bench.common import Stack, free_port
from bench.intake import BODY, server_parts, start_server

ROOT = Path(__file__).resolve().parent.parent


def thread_pool_app() -> FastAPI:
    """The served application without the event loop's engine: the intake runs in the thread pool."""
    import service.app

    service.app.make_async_engine = lambda _url: None  # type: ignore[attr-defined,assignment]
    return service.app.create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = Stack()
    try:
        url = stack.database("bench_engines")
        stack.runtime(url).dispose()
        urls, servers = {}, {}
        for name, app in (
            ("event loop", "service.app:app_factory"),
            ("thread pool", "bench.intake_engines:thread_pool_app"),
        ):
            port = free_port()
            servers[name] = start_server(app, stack.env(url), port, args.workers)
            stack.processes.append(servers[name])
            urls[name] = f"http://127.0.0.1:{port}/api/v1/reports"
        parts = server_parts(stack, servers)
        for name in urls:  # warm-up
            wrk.run(wrk.Load(urls[name], args.connections, 3.0), BODY, parts[name])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        for index in range(args.rounds):
            order = list(urls) if index % 2 == 0 else list(reversed(urls))
            for name in order:
                runs[name].append(
                    wrk.run(wrk.Load(urls[name], args.connections, args.seconds), BODY, parts[name])
                )
                run = runs[name][-1]
                print(
                    f"round {index + 1} {name:11}: {run['rate_per_s']:7.1f}/s p99 {run['p99_ms']:6.1f} ms, "
                    f"CPU ms/201 api {run['cpu_ms_per_201']['api']:.3f} "
                    f"postgres {run['cpu_ms_per_201']['postgres']:.3f} "
                    f"| wrk CPU {run['client_cpu_share']:.1%}"
                )
        summary = {
            name: {
                "rate_per_s_median": statistics.median(run["rate_per_s"] for run in measured),
                "p99_ms_median": statistics.median(run["p99_ms"] for run in measured),
                "api_cpu_ms_per_201_median": statistics.median(
                    run["cpu_ms_per_201"]["api"] for run in measured
                ),
                "rounds": measured,
            }
            for name, measured in runs.items()
        }
        for name, entry in summary.items():
            print(
                f"{name:11}: median {entry['rate_per_s_median']:.1f}/s, p99 {entry['p99_ms_median']:.1f} ms, "
                f"api CPU {entry['api_cpu_ms_per_201_median']:.3f} ms per report"
            )
        out = ROOT / "bench" / "results" / "intake-engines.json"
        out.write_text(
            json.dumps({"client": wrk.version(), "connections": args.connections, **summary}, indent=2)
        )
        print(f"written to {out.relative_to(ROOT)}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()

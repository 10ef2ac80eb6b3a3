"""Where an intake request's CPU goes: the intake under wrk, one api worker sampled by py-spy.

Starts PostgreSQL, Redis and the intake as bench/intake.py does (uvicorn, uvloop, two workers), drives it
with wrk (closed loop) for the given time while py-spy samples one of the api workers (non-blocking), then
sorts the samples into parts by the innermost frame that names one, and multiplies each part's share by the
api's CPU per 201 measured in the same run. Prints the table (CPU ms per report by part; PostgreSQL, Redis
and wrk from /proc) and writes bench/results/intake-profile.json with the collapsed stacks beside it.
Needs py-spy (pip install py-spy) and root or ptrace rights. Loopback only; bounded in time.

Usage: python -m bench.profile_intake --seconds 20 --connections 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import wrk
from bench.common import Stack, free_port
from bench.intake import BODY, start_server
from bench.wrk import descendants

ROOT = Path(__file__).resolve().parent.parent

# Parts, tried in order on each frame from the innermost outwards; the first match names the sample.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("crypto (HPKE, AEAD, HMAC)", ("service/crypto", "cryptography/", "hpke", "hmac.py", "hashlib")),
    ("outbox publish (Celery)", ("outbox/dispatch", "celery/", "kombu/")),
    ("rate limit (Redis)", ("service/ratelimit", "redis/")),
    ("psycopg (driver)", ("psycopg/", "psycopg_pool/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("pydantic validation", ("pydantic", "service/reports/schemas", "strict_json")),
    ("routing policy", ("service/routing",)),
    ("intake code", ("service/reports", "service/statistics", "service/organisations", "service/db.py")),
    ("logging", ("logging/",)),
    (
        "HTTP (uvicorn, starlette, fastapi)",
        ("uvicorn/", "starlette/", "fastapi/", "h11", "httptools", "anyio/"),
    ),
    ("asyncio, threads", ("asyncio/", "uvloop", "threading.py", "concurrent/")),
]


def part_of(stack: str) -> str:
    frames = stack.split(";")[1:]  # the first is the thread
    for frame in reversed(frames):
        for name, needles in PARTS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--label", default="profile", help="names the output files")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample threads that wait in a system call too (default: only the thread holding the GIL, "
        "which is where the Python CPU goes; a thread blocked in recv() otherwise looks busy)",
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    stack = Stack()
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    collapsed = out_dir / f"intake-{args.label}.collapsed.txt"
    try:
        url = stack.database("bench_intake")
        stack.runtime(url).dispose()
        port = free_port()
        server = start_server("service.app:app_factory", stack.env(url), port, args.workers)
        stack.processes.append(server)
        target = f"http://127.0.0.1:{port}/api/v1/reports"
        postmaster = int((stack.cluster.data / "postmaster.pid").read_text().split()[0])
        parts = {"api": server.pid, "postgres": postmaster, "redis": stack.redis.process.pid}
        wrk.run(wrk.Load(target, args.connections, 3), BODY, parts)  # warm-up
        workers = [pid for pid in descendants(server.pid) if pid != server.pid]
        sampled = max(workers, key=wrk.tree_cpu_seconds)
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(sampled),
                "--rate",
                str(args.rate),
                "--nonblocking",
                *([] if args.all_threads else ["--gil"]),
                "--format",
                "raw",
                "--duration",
                str(round(args.seconds)),
                "--output",
                str(collapsed),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        run = wrk.run(wrk.Load(target, args.connections, args.seconds), BODY, parts)
        spy.wait(timeout=args.seconds + 60)
    finally:
        stack.close()
    samples: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if stack_text:
            samples[part_of(stack_text)] += int(count)
    total = sum(samples.values()) or 1
    api_ms = run["cpu_ms_per_201"]["api"]
    table = {
        name: {"share": count / total, "cpu_ms_per_201": api_ms * count / total}
        for name, count in samples.items()
    }
    print(
        f"intake alone, {args.connections} connections, {run['rate_per_s']:.1f} 201/s, "
        f"p99 {run['p99_ms']:.1f} ms, "
        f"wrk CPU {run['client_cpu_share']:.1%}, stolen {run['machine']['steal_share']:.1%}"
    )
    print(f"{'part':38} {'share':>7} {'CPU ms/report':>14}")
    for name, entry in sorted(table.items(), key=lambda item: -item[1]["share"]):
        print(f"{name:38} {entry['share']:7.1%} {entry['cpu_ms_per_201']:14.3f}")
    for name in ("postgres", "redis", "wrk"):
        print(f"{name + ' (process)':38} {'':>7} {run['cpu_ms_per_201'][name]:14.3f}")
    result: dict[str, Any] = {"run": run, "parts": table, "samples": total, "sampled_pid": sampled}
    (out_dir / f"intake-{args.label}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Login flood beside intake: does a flood of sign-ins (each one an Argon2id derivation of 64 MiB) starve
the intake of reports?

Production setup on loopback: PostgreSQL, Redis for rate limits, uvicorn with uvloop and one worker per core.
First the intake rate alone (closed loop), then the same intake load while other clients flood POST
/api/v1/session with wrong credentials (rate limits raised so that every attempt reaches Argon2). Reports
the intake rate under the flood as a share of the rate alone (target >= 0.8), the sign-in attempts per second
that got an answer, and how many were turned away as busy (503) by the bounded Argon2 gate.

Usage: python -m bench.login_flood --seconds 15   (make bench-login BENCH_SECONDS=15)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Stack, free_port
from bench.intake import closed_loop, start_server

ROOT = Path(__file__).resolve().parent.parent


async def flood(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    counts = {"answered": 0, "busy": 0, "other": 0}
    deadline = time.monotonic() + seconds
    body = {"email": "flood@example.org", "password": "definitely not it, sorry", "totp": "000000"}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=15) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    response = await client.post(url, json=body)
                except httpx.HTTPError:
                    counts["other"] += 1
                    continue
                if response.status_code == 401:
                    counts["answered"] += 1
                elif response.status_code == 503:
                    counts["busy"] += 1
                else:
                    counts["other"] += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {**counts, "answered_per_s": counts["answered"] / elapsed, "busy_per_s": counts["busy"] / elapsed}


async def intake_during_flood(
    intake_url: str, login_url: str, seconds: float, concurrency: int, flooders: int
) -> tuple[dict[str, float], dict[str, float]]:
    intake, logins = await asyncio.gather(
        closed_loop(intake_url, concurrency, seconds), flood(login_url, flooders, seconds)
    )
    return intake, logins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "15")))
    parser.add_argument("--concurrency", type=int, default=8, help="intake clients")
    parser.add_argument("--flooders", type=int, default=32, help="concurrent sign-in clients")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    stack = Stack()
    try:
        url = stack.database("bench_login")
        runtime = stack.runtime(url)
        with runtime.sessions() as session:
            runtime.accounts.create_user(session, "flood@example.org", "Flood Target")
            session.commit()
        runtime.dispose()
        port = free_port()
        env = stack.env(
            url,
            RUECKHALT_LOGIN_LIMIT_PER_HOUR="100000000",
            RUECKHALT_LOGIN_ACCOUNT_LIMIT_PER_HOUR="100000000",
        )
        stack.processes.append(start_server("service.app:app_factory", env, port, args.workers))
        base = f"http://127.0.0.1:{port}"
        intake_url, login_url = f"{base}/api/v1/reports", f"{base}/api/v1/session"

        asyncio.run(closed_loop(intake_url, args.concurrency, min(2.0, args.seconds / 4)))  # warm-up
        alone = asyncio.run(closed_loop(intake_url, args.concurrency, args.seconds))
        logins_alone = asyncio.run(flood(login_url, args.flooders, args.seconds))
        under, logins = asyncio.run(
            intake_during_flood(intake_url, login_url, args.seconds, args.concurrency, args.flooders)
        )
        share = under["rate_per_s"] / alone["rate_per_s"]
        results: dict[str, Any] = {
            "seconds": args.seconds,
            "workers": args.workers,
            "intake_alone": alone,
            "logins_alone": logins_alone,
            "intake_under_flood": under,
            "logins_under_flood": logins,
            "intake_share_under_flood": share,
            "target": {"intake_share_at_least": 0.8},
            "met": share >= 0.8,
        }
        print(
            f"intake alone {alone['rate_per_s']:.1f}/s (p99 {alone['p99_ms']:.0f} ms); logins alone "
            f"{logins_alone['answered_per_s']:.1f}/s answered, {logins_alone['busy_per_s']:.1f}/s busy"
        )
        print(
            f"under flood: intake {under['rate_per_s']:.1f}/s (p99 {under['p99_ms']:.0f} ms) = "
            f"{share:.2f} of alone; logins {logins['answered_per_s']:.1f}/s answered, "
            f"{logins['busy_per_s']:.1f}/s busy (503)"
        )
        out = ROOT / "bench" / "results" / "login_flood.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"written to {out.relative_to(ROOT)}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
